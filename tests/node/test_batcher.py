"""QuestionBatcher on the real engine (tiny checkpoint): questions about one frame share one
``ask_many`` and get the one-at-a-time answers; the backlog bounds batches; a bad question
fails alone; cancel ends a waiting job at once and a generating one at its next token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import threading

import numpy as np
import pytest

from smolrgpt_core.inference.engine import Frame, Query, SpatialQueryEngine
from smolrgpt_core.settings import InferenceSettings
from smolrgpt_ros.batcher import ANSWERED, CANCELED, FAILED, BusyError, Job, QuestionBatcher

H, W = 36, 48
WAIT_S = 60.0


class SpyEngine:
    """The real engine, recording what each ask_many call was given and answered."""

    def __init__(self, engine: SpatialQueryEngine) -> None:
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.calls: list[tuple[list[Query], list[str]]] = []
        self.steps = 0  # decode steps of the last call

    def check(self, frame: Frame, query: Query) -> None:
        self.engine.check(frame, query)

    def ask_many(self, frame: Frame, queries: list[Query], on_token=None) -> list:
        self.steps = 0

        def counting(step: int, tokens: dict[int, int]):
            self.steps = step + 1
            return on_token(step, tokens)

        answers = self.engine.ask_many(frame, queries, on_token=counting)
        self.calls.append((list(queries), [a.text for a in answers]))
        return answers


@pytest.fixture(scope='module')
def engine(tiny_checkpoint: Path) -> SpatialQueryEngine:
    return SpatialQueryEngine.from_checkpoint(
        tiny_checkpoint, InferenceSettings.from_flat({'generation.max_new_tokens': 6})
    )


def _frame(stamp_ns: int) -> Frame:
    rng = np.random.default_rng(stamp_ns)
    masks = np.zeros((2, H, W), np.uint8)
    masks[0, 2:12, 3:20] = 255
    masks[1, 15:30, 25:45] = 255
    return Frame(
        rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        rng.integers(500, 9000, (H, W), dtype=np.uint16),
        masks,
        [4, 9],
        '16UC1',
        stamp_ns=stamp_ns,
    )


def _job(query: Query, stamp_ns: int = 1, frame=None, **kwargs) -> Job:
    frames = {stamp_ns: _frame(stamp_ns)}
    limit = query.max_new_tokens or 6
    return Job(query, stamp_ns, frame or (lambda: frames[stamp_ns]), limit, **kwargs)


@pytest.fixture
def spy(engine: SpatialQueryEngine) -> SpyEngine:
    return SpyEngine(engine)


@pytest.fixture
def batcher(spy: SpyEngine) -> Iterator[QuestionBatcher]:
    b = QuestionBatcher(spy, window_s=0.3, max_batch=8, backlog=2)
    yield b
    b.stop()


QUERIES = [
    Query('Is <region4> left of <region9>?', [], 3, 'model'),
    Query('How far is <mask> from <mask>?', [9, 4], 0, 'model'),
    Query('Describe <region9>.', [], 9, 'model'),
    Query('Is <region4> left of <region9>?', [], 0, 'hybrid'),
    Query('Which is closer, <region4> or <region9>?', [], 5, ''),
]


def test_one_batch_gets_the_one_at_a_time_answers(
    batcher: QuestionBatcher, spy: SpyEngine, engine: SpatialQueryEngine
) -> None:
    jobs = [_job(q) for q in QUERIES]
    for job in jobs:
        batcher.submit(job)
    assert all(job.wait(WAIT_S) for job in jobs)
    assert [j.status for j in jobs] == [ANSWERED] * len(QUERIES)
    assert len(spy.calls) == 1 and {j.batch_size for j in jobs} == {len(QUERIES)}
    alone = [engine.ask_many(_frame(1), [q])[0] for q in QUERIES]
    assert [j.answer.text for j in jobs] == [a.text for a in alone]
    assert [j.answer.source for j in jobs] == [a.source for a in alone]
    # the feedback tokens of a model answer are its answer's tokens
    assert engine.tokenizer.decode(jobs[2].tokens).strip() == jobs[2].answer.text


def test_a_bad_question_fails_alone(batcher: QuestionBatcher) -> None:
    good = _job(QUERIES[0])
    bad = _job(Query('Is <region4> left of <region77>?', [], 3, 'model'))
    empty = _job(Query('   ', [], 3, 'model'))
    for job in (good, bad, empty):
        batcher.submit(job)
    assert all(job.wait(WAIT_S) for job in (good, bad, empty))
    assert good.status == ANSWERED and good.batch_size == 1
    assert bad.status == FAILED and 'unknown region ids [77]' in bad.error
    assert empty.status == FAILED and empty.error == 'the question is empty'


def test_questions_wait_in_batches_while_the_engine_is_busy(spy: SpyEngine) -> None:
    release = threading.Event()
    batcher = QuestionBatcher(spy, window_s=0.0, max_batch=2, backlog=1)
    try:

        def slow_frame() -> Frame:
            release.wait(WAIT_S)
            return _frame(1)

        blocker = _job(QUERIES[0], frame=slow_frame)
        batcher.submit(blocker)
        while batcher.depth() != (0, 1):  # the worker holds the blocker
            threading.Event().wait(0.01)
        a, b = _job(QUERIES[1], stamp_ns=2), _job(QUERIES[2], stamp_ns=2)
        batcher.submit(a)
        batcher.submit(b)  # joins a's batch: same frame, room left
        assert batcher.depth() == (2, 1)
        with pytest.raises(BusyError, match=r'busy: 1 batches are already waiting'):
            batcher.submit(_job(QUERIES[3], stamp_ns=2))  # a's batch is full
        with pytest.raises(BusyError, match=r'requests.queue_limit 1, up to 2 questions each'):
            batcher.submit(_job(QUERIES[3], stamp_ns=3))
        release.set()
        assert a.wait(WAIT_S) and b.wait(WAIT_S) and blocker.wait(WAIT_S)
        assert (a.status, b.status, a.batch_size, b.batch_size) == (ANSWERED, ANSWERED, 2, 2)
    finally:
        release.set()
        batcher.stop()


def test_cancel_ends_a_waiting_job_at_once(spy: SpyEngine) -> None:
    release = threading.Event()
    batcher = QuestionBatcher(spy, window_s=0.0, max_batch=4, backlog=4)
    try:
        blocker = _job(QUERIES[0], frame=lambda: release.wait(WAIT_S) and _frame(1))
        batcher.submit(blocker)
        waiting = _job(QUERIES[1], stamp_ns=2)
        batcher.submit(waiting)
        assert waiting.cancel() and waiting.status == CANCELED and waiting.finished
        release.set()
        assert blocker.wait(WAIT_S)
        batcher.stop()  # the worker is idle again: the canceled job was never asked
        assert [len(qs) for qs, _ in spy.calls] == [1]
    finally:
        release.set()
        batcher.stop()


def test_cancel_stops_a_generating_job_at_its_next_token(
    batcher: QuestionBatcher, spy: SpyEngine
) -> None:
    def cancel_after_three(tokens: list[int]) -> None:
        if len(tokens) == 3:
            job.cancel()

    job = _job(Query('Describe <region4>.', [], 200, 'model'), on_tokens=cancel_after_three)
    batcher.submit(job)
    assert job.wait(WAIT_S)
    assert job.status == CANCELED and len(job.tokens) == 3
    while spy.calls == []:  # the worker finishes the (stopped) generation
        threading.Event().wait(0.01)
    assert spy.steps == 4  # the step after the cancel was the last one, not step 200


def test_a_canceled_row_leaves_the_others_as_they_were(
    batcher: QuestionBatcher, engine: SpatialQueryEngine
) -> None:
    other = Query('Describe <region9>.', [], 12, 'model')

    def cancel_after_two(tokens: list[int]) -> None:
        if len(tokens) == 2:
            canceled.cancel()

    canceled = _job(Query('Describe <region4>.', [], 200, 'model'), on_tokens=cancel_after_two)
    kept = _job(other)
    batcher.submit(canceled)
    batcher.submit(kept)
    assert canceled.wait(WAIT_S) and kept.wait(WAIT_S)
    assert canceled.status == CANCELED and kept.status == ANSWERED and kept.batch_size == 2
    assert kept.answer.text == engine.ask_many(_frame(1), [other])[0].text
    batcher.stop()
    with pytest.raises(BusyError, match='shutting down'):  # nothing is taken after stop
        batcher.submit(_job(QUERIES[0]))


def test_stop_fails_waiting_jobs_with_the_reason(spy: SpyEngine) -> None:
    release = threading.Event()
    batcher = QuestionBatcher(spy, window_s=0.0, max_batch=4, backlog=4)
    blocker = _job(QUERIES[0], frame=lambda: release.wait(WAIT_S) and _frame(1))
    batcher.submit(blocker)
    waiting = _job(QUERIES[1], stamp_ns=2)
    batcher.submit(waiting)
    threading.Timer(0.2, release.set).start()
    batcher.stop()
    assert waiting.status == FAILED and waiting.error == 'the node is shutting down'
    assert blocker.wait(WAIT_S) and blocker.status == ANSWERED
