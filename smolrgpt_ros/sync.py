"""Approximate-time synchronisation of RGB, depth and region masks.

``message_filters`` (ROS 2) is used when it is importable. It is not on PyPI, so this module
also carries a shim with the same Python-level contract as ``message_filters`` (ros2/
message_filters ``src/message_filters/__init__.py``): ``SimpleFilter``, ``Subscriber``,
``ApproximateTimeSynchronizer(fs, queue_size, slop, allow_headerless=False)``, slop in
seconds. The matching rule is the Python one, not the C++ pivot-based ApproximateTime policy:

* each input keeps a dict ``stamp_ns -> msg`` (a duplicate stamp overwrites), trimmed to
  ``queue_size`` by dropping the oldest stamp;
* a new message looks, in every other queue, for stamps within ``slop`` of its own, nearest
  first; the first combination (in ``itertools.product`` order) whose spread is strictly
  below ``slop`` is emitted in input order and removed from the queues; at most one set per
  incoming message; unmatched messages stay until evicted by the queue size.

The shim imports no rclpy at module level, so it is unit-tested without ROS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import importlib.util
import itertools
import logging
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

Callback = Callable[..., None]


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (sec, nanosec) or anything with ``.nanoseconds`` -> int ns."""
    if hasattr(stamp, 'nanoseconds'):
        return int(stamp.nanoseconds)
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class SimpleFilter:
    """A source of message tuples that calls registered callbacks (as message_filters')."""

    def __init__(self) -> None:
        self.callbacks: dict[int, tuple[Callback, tuple[Any, ...]]] = {}

    def registerCallback(self, cb: Callback, *args: Any) -> int:  # upstream's camelCase name
        conn = len(self.callbacks)
        self.callbacks[conn] = (cb, args)
        return conn

    def signalMessage(self, *msgs: Any) -> None:  # upstream's camelCase name
        for cb, args in list(self.callbacks.values()):
            cb(*(msgs + args))


class Subscriber(SimpleFilter):
    """A ROS subscription as a filter source, as ``message_filters.Subscriber``."""

    def __init__(
        self, node: Any, msg_type: type, topic: str, qos_profile: Any = 10, **kwargs: Any
    ) -> None:
        super().__init__()
        self.node = node
        self.topic = topic
        self.sub = node.create_subscription(
            msg_type, topic, self.callback, qos_profile=qos_profile, **kwargs
        )

    def callback(self, msg: Any) -> None:
        self.signalMessage(msg)

    def getTopic(self) -> str:  # upstream's camelCase name
        return self.topic


class ApproximateTimeSynchronizer(SimpleFilter):
    """Emits one tuple (in input order) per set of messages whose stamps lie within ``slop``."""

    def __init__(
        self,
        fs: Sequence[SimpleFilter],
        queue_size: int,
        slop: float,
        allow_headerless: bool = False,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        super().__init__()
        if queue_size < 1:
            raise ValueError(f'queue_size must be >= 1, got {queue_size}')
        if slop < 0:
            raise ValueError(f'slop must be >= 0 seconds, got {slop}')
        self.queue_size = queue_size
        self.slop_ns = round(slop * 1e9)
        self.allow_headerless = allow_headerless
        self._clock_ns = clock_ns  # upstream uses ROSClock().now() for headerless messages
        self.lock = threading.Lock()
        self.queues: list[dict[int, Any]] = [{} for _ in fs]
        self.input_connections = [
            f.registerCallback(self.add, q, i) for i, (f, q) in enumerate(zip(fs, self.queues))
        ]

    def _stamp_of(self, msg: Any) -> int | None:
        header = getattr(msg, 'header', None)
        if header is not None and hasattr(header, 'stamp'):
            return stamp_to_ns(header.stamp)
        if not self.allow_headerless:
            logger.warning('dropping a message without header.stamp (allow_headerless is off)')
            return None
        return int(self._clock_ns())

    def add(self, msg: Any, my_queue: dict[int, Any], my_queue_index: int | None = None) -> None:
        stamp = self._stamp_of(msg)
        if stamp is None:
            return
        with self.lock:
            my_queue[stamp] = msg
            while len(my_queue) > self.queue_size:
                del my_queue[min(my_queue)]
            # candidate stamps in every other queue, nearest to the new stamp first
            if my_queue_index is None:
                search = self.queues
            else:
                search = self.queues[:my_queue_index] + self.queues[my_queue_index + 1 :]
            candidates = []
            for queue in search:
                near = sorted(
                    (s for s in queue if abs(s - stamp) <= self.slop_ns),
                    key=lambda s: abs(s - stamp),
                )
                if not near:
                    return
                candidates.append(near)
            for combo in itertools.product(*candidates):
                stamps = list(combo)
                if my_queue_index is not None:
                    stamps.insert(my_queue_index, stamp)
                if max(stamps) - min(stamps) >= self.slop_ns:
                    continue  # the spread must be strictly below slop
                if not all(s in q for s, q in zip(stamps, self.queues)):
                    continue
                msgs = [q[s] for s, q in zip(stamps, self.queues)]
                for s, q in zip(stamps, self.queues):
                    del q[s]
                break
            else:
                return
        self.signalMessage(*msgs)


def load() -> tuple[type, type, str]:
    """(Subscriber, ApproximateTimeSynchronizer, source): upstream when importable, else ours."""
    if importlib.util.find_spec('message_filters') is not None:
        import message_filters

        return (
            message_filters.Subscriber,
            message_filters.ApproximateTimeSynchronizer,
            'message_filters',
        )
    return Subscriber, ApproximateTimeSynchronizer, 'smolrgpt_ros.sync (shim)'
