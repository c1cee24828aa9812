"""Questions from every caller (service, action), answered in batches per frame. No rclpy.

A question is a ``Job``: its query, the frame it is about (resolved at arrival, so "the
latest" means the latest then) and what to do with tokens as they come. ``submit`` either
puts it into a waiting batch for the same frame with room, or opens a new batch, or refuses it
as busy when ``backlog`` batches are already waiting: the backlog bounds batches, not callers.

One worker thread answers the oldest waiting batch with one ``engine.ask_many`` (one vision
pass, one batched generation). A batch is taken when it is full, or ``window_s`` after its
first question or after the engine became free, whichever is later: questions that arrive
while the engine is busy with an earlier batch, or within the window, share a pass. (Counting
the window from the engine's last answer lets the callers just answered ask again in time to
join; otherwise callers split into groups that take turns with half-full batches.) Batched
answers are the one-at-a-time answers (``smolrgpt_core.generation`` batches without changing
a row).

A job ends exactly once: answered, failed (with the reason), canceled or past its deadline.
Cancel and deadline end a waiting job at once and a generating one at its next token (the
token hook stops its row; the other rows go on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import logging
import threading
import time
from typing import Any

from smolrgpt_core.inference.engine import Answer, EngineError, Frame, Query

logger = logging.getLogger(__name__)

ANSWERED, FAILED, CANCELED, EXPIRED = 'answered', 'failed', 'canceled', 'expired'


class BusyError(RuntimeError):
    """The backlog is full; the message says so (it is the caller's error text)."""


@dataclass
class Job:
    query: Query
    stamp_ns: int  # the frame's stamp (0 is resolved before a job is made)
    frame: Callable[[], Frame]  # converts the stored messages (once per frame)
    token_limit: int  # the query's own max_new_tokens (0 resolved to the default)
    # (token ids so far) -> None, on the worker thread after each token (action feedback)
    on_tokens: Callable[[list[int]], None] | None = None
    tag: Any = None  # the caller's own data (the node: the stored frame, for its header)
    arrived: float = field(default_factory=time.monotonic)
    # filled once, when the job ends
    status: str = ''
    answer: Answer | None = None
    error: str = ''
    batch_size: int = 0
    tokens: list[int] = field(default_factory=list)
    _done: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def finish(self, status: str, answer: Answer | None = None, error: str = '') -> bool:
        """End the job (first call wins); False when it had ended already."""
        with self._lock:
            if self._done.is_set():
                return False
            self.status, self.answer, self.error = status, answer, error
            self._done.set()
            return True

    def cancel(self) -> bool:
        return self.finish(CANCELED, error='canceled')

    def wait(self, timeout_s: float | None = None) -> bool:
        return self._done.wait(timeout_s)


@dataclass
class _Batch:
    stamp_ns: int
    opened: float
    jobs: list[Job] = field(default_factory=list)


class QuestionBatcher:
    """Admission, batching and the worker thread around one engine (see the module doc)."""

    def __init__(
        self,
        engine: Any,
        *,
        window_s: float,
        max_batch: int,
        backlog: int,
        on_batch: Callable[[list[Job], dict[str, float]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.window_s = window_s
        self.max_batch = max_batch
        self.backlog = backlog
        self.on_batch = on_batch  # (jobs answered together, timings ms), for the statistics
        self._waiting: list[_Batch] = []
        self._running: list[Job] = []
        self._free_at = 0.0  # time.monotonic() when the engine last finished a batch
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name='batcher', daemon=True)
        self._thread.start()

    # callers' side --------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue a job, or BusyError when no waiting batch can take it and none may open."""
        with self._cond:
            if self._stopped:
                raise BusyError('the node is shutting down')
            for batch in self._waiting:
                if batch.stamp_ns == job.stamp_ns and len(batch.jobs) < self.max_batch:
                    batch.jobs.append(job)
                    break
            else:
                if len(self._waiting) >= self.backlog:
                    raise BusyError(
                        f'busy: {len(self._waiting)} batches are already waiting '
                        f'(requests.queue_limit {self.backlog}, up to {self.max_batch} '
                        'questions each)'
                    )
                self._waiting.append(_Batch(job.stamp_ns, time.monotonic(), [job]))
            self._cond.notify_all()

    def depth(self) -> tuple[int, int]:
        """(questions waiting, questions being answered)."""
        with self._cond:
            return sum(len(b.jobs) for b in self._waiting), len(self._running)

    def stop(self) -> None:
        """Stop the worker; jobs still waiting fail with the reason."""
        with self._cond:
            self._stopped = True
            waiting = [j for b in self._waiting for j in b.jobs]
            self._waiting.clear()
            self._cond.notify_all()
        for job in waiting:
            job.finish(FAILED, error='the node is shutting down')
        self._thread.join(timeout=30)

    # worker ---------------------------------------------------------------------------------
    def _next_batch(self) -> _Batch | None:
        with self._cond:
            while not self._stopped:
                if not self._waiting:
                    self._cond.wait()
                    continue
                batch = self._waiting[0]
                ready_at = max(batch.opened, self._free_at) + self.window_s
                now = time.monotonic()
                if len(batch.jobs) >= self.max_batch or now >= ready_at:
                    self._waiting.pop(0)
                    self._running = batch.jobs
                    return batch
                self._cond.wait(ready_at - now)
            return None

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                self._answer(batch.jobs)
            except Exception:  # the worker must live on, whatever one batch did
                logger.exception('answering a batch failed')
                for job in batch.jobs:
                    job.finish(FAILED, error='internal error while answering; see the node log')
            finally:
                with self._cond:
                    self._running = []
                    self._free_at = time.monotonic()

    def _answer(self, jobs: list[Job]) -> None:
        live = [j for j in jobs if not j.finished]  # canceled or expired while waiting
        if not live:
            return
        try:
            frame = live[0].frame()
        except EngineError as exc:
            for job in live:
                job.finish(FAILED, error=str(exc))
            return
        good = []
        for job in live:  # one bad question must not fail the others
            try:
                self.engine.check(frame, job.query)
                good.append(job)
            except EngineError as exc:
                job.finish(FAILED, error=str(exc))
        if not good:
            return
        for job in good:
            job.batch_size = len(good)
        try:
            answers = self.engine.ask_many(
                frame, [j.query for j in good], on_token=self._token_hook(good)
            )
        except EngineError as exc:  # about the frame: the same for every question
            for job in good:
                job.finish(FAILED, error=str(exc))
            return
        for job, answer in zip(good, answers):
            job.finish(ANSWERED, answer)
        if self.on_batch is not None and answers:
            self.on_batch(good, answers[0].timings_ms)

    def _token_hook(self, jobs: list[Job]) -> Callable[[int, dict[int, int]], list[int]]:
        eos = self.engine.tokenizer.eos_token_id

        def hook(step: int, tokens: dict[int, int]) -> list[int]:
            stop = []
            for k, token in tokens.items():
                job = jobs[k]
                if job.finished:  # canceled or past its deadline: end its row now
                    stop.append(k)
                    continue
                if token == eos or len(job.tokens) >= job.token_limit:
                    continue
                job.tokens.append(token)
                if len(job.tokens) >= job.token_limit:
                    stop.append(k)  # its answer is complete; the engine truncates it there
                if job.on_tokens is not None:
                    try:
                        job.on_tokens(job.tokens)
                    except Exception:  # a feedback failure must not end the batch
                        logger.exception('token feedback failed')
            return stop

        return hook
