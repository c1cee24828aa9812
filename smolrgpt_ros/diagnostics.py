"""What the node counts, and its /diagnostics report (diagnostic_msgs/DiagnosticArray).

``NodeStats`` is thread-safe and imports no rclpy: the subscription callbacks, the service and
action callbacks and the batch worker count into it; ``report`` turns a snapshot into one
``DiagnosticStatus`` (message classes passed in, so it is tested without ROS). The level is
ERROR when no model is loaded or no frame has been synchronised for ``stale_s`` seconds, WARN
when questions were refused as busy since the last report, else OK.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
import threading
import time
from typing import Any

import numpy as np

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels (bytes on the wire)
WINDOW = 200  # recent batches the latency and batch-size figures cover


@dataclass(frozen=True)
class EngineInfo:
    checkpoint: str
    backend: str
    device: str
    dtype: str


class NodeStats:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.received: Counter[str] = Counter()  # input -> messages taken
        self.counts: Counter[str] = Counter()  # synchronised, refused, answered, busy, ...
        self.batch_sizes: deque[int] = deque(maxlen=WINDOW)
        self.encode_ms: deque[float] = deque(maxlen=WINDOW)
        self.generate_ms: deque[float] = deque(maxlen=WINDOW)
        self.last_error = ''
        self.last_frame_at: float | None = None
        self.started_at = clock()
        self._busy_reported = 0

    def receive(self, topic: str) -> None:
        with self._lock:
            self.received[topic] += 1

    def count(self, what: str, n: int = 1) -> int:
        with self._lock:
            self.counts[what] += n
            return self.counts[what]

    def synchronised(self) -> None:
        with self._lock:
            self.counts['frames synchronised'] += 1
            self.last_frame_at = self._clock()

    def error(self, text: str) -> None:
        with self._lock:
            self.last_error = text

    def batch(self, size: int, timings_ms: dict[str, float]) -> None:
        with self._lock:
            self.counts['batches'] += 1
            self.counts['questions batched'] += size
            self.batch_sizes.append(size)
            # a batch that needed no model (geometry answers) ran no encoder nor generation
            if timings_ms.get('generate', 0.0) > 0:
                self.encode_ms.append(timings_ms['encode'])
                self.generate_ms.append(timings_ms['generate'])

    def since_active(self) -> None:
        """Restart the no-frame clock (activation)."""
        with self._lock:
            self.started_at = self._clock()
            self.last_frame_at = None

    def report(
        self,
        types: Any,
        name: str,
        engine: EngineInfo | None,
        state: str,
        queue: tuple[int, int],
        stale_s: float,
        problem: str = '',
    ) -> Any:
        """One DiagnosticStatus (``types`` has DiagnosticStatus and KeyValue)."""
        now = self._clock()
        with self._lock:
            since = self.last_frame_at if self.last_frame_at is not None else self.started_at
            frame_age = now - since
            busy_new = self.counts['busy'] - self._busy_reported
            self._busy_reported = self.counts['busy']
            values = self._values(engine, state, queue, now)
        if engine is None:
            level, message = ERROR, problem or 'no model loaded'
        elif state == 'active' and frame_age > stale_s:
            level = ERROR
            message = (
                f'no frame synchronised for {frame_age:.1f} s (diagnostics.stale_s {stale_s})'
            )
        elif busy_new:
            level, message = WARN, f'{busy_new} questions refused as busy since the last report'
        else:
            level, message = OK, f'{state}: serving' if state == 'active' else state
        status = types.DiagnosticStatus(
            level=bytes([level]), name=name, message=message, hardware_id=name
        )
        status.values = [types.KeyValue(key=k, value=v) for k, v in values]
        return status

    def _values(
        self, engine: EngineInfo | None, state: str, queue: tuple[int, int], now: float
    ) -> list[tuple[str, str]]:
        values = [('state', state)]
        if engine is not None:
            values += [
                ('model', engine.checkpoint),
                ('backend', engine.backend),
                ('device', engine.device),
                ('dtype', engine.dtype),
            ]
        values += [(f'received {topic}', str(n)) for topic, n in sorted(self.received.items())]
        c = self.counts
        values += [
            ('frames synchronised', str(c['frames synchronised'])),
            ('frames refused', str(c['frames refused'])),
            (
                'last frame age s',
                f'{now - self.last_frame_at:.2f}' if self.last_frame_at is not None else 'never',
            ),
            ('questions waiting', str(queue[0])),
            ('questions being answered', str(queue[1])),
            ('batches', str(c['batches'])),
            (
                'questions per batch',
                f'{np.mean(self.batch_sizes):.2f}' if self.batch_sizes else '0',
            ),
            ('largest batch', str(max(self.batch_sizes, default=0))),
        ]
        for what, series in (('encode', self.encode_ms), ('generate', self.generate_ms)):
            if series:
                p50, p95 = np.percentile(np.asarray(series), [50, 95])
                values.append((f'{what} ms p50/p95', f'{p50:.1f} / {p95:.1f}'))
            else:
                values.append((f'{what} ms p50/p95', 'none yet'))
        values += [
            (what, str(c[what]))
            for what in ('answered', 'failed', 'busy', 'stale', 'canceled', 'expired')
        ]
        values.append(('last error', self.last_error or 'none'))
        return values
