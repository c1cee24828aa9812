"""A bounded, thread-safe cache of synchronised frames keyed by stamp (no rclpy import).

Subscription callbacks only store frames here (cheap); the service looks frames up by stamp
(zero = latest). The oldest stamp is evicted beyond ``capacity`` frames or ``max_bytes`` bytes
(as the frames report them), so memory stays bounded whatever the camera rate and resolution.
"""

from __future__ import annotations

from collections import OrderedDict
import threading
from typing import Generic, TypeVar

T = TypeVar('T')


class FrameNotFoundError(LookupError):
    """No frame for the requested stamp (or none at all yet)."""


class FrameCache(Generic[T]):
    def __init__(self, capacity: int, max_bytes: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f'frame cache capacity must be >= 1, got {capacity}')
        self.capacity = capacity
        self.max_bytes = max_bytes  # 0 = no byte budget
        self._frames: OrderedDict[int, T] = OrderedDict()  # stamp_ns -> frame, stamp order
        self._sizes: dict[int, int] = {}
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def put(self, stamp_ns: int, frame: T, nbytes: int = 0) -> None:
        """Store a frame; with a byte budget, older frames go until it fits (a frame larger
        than the whole budget replaces every other one)."""
        with self._lock:
            newest = next(reversed(self._frames), None)
            self._frames[stamp_ns] = frame
            self._sizes[stamp_ns] = nbytes
            # frames usually arrive in stamp order; a late one is sorted into place
            if newest is not None and stamp_ns < newest:
                self._frames = OrderedDict(sorted(self._frames.items()))
            while len(self._frames) > 1 and (
                len(self._frames) > self.capacity
                or (self.max_bytes and sum(self._sizes.values()) > self.max_bytes)
            ):
                oldest, _ = self._frames.popitem(last=False)
                del self._sizes[oldest]

    def get(self, stamp_ns: int = 0) -> tuple[int, T]:
        """(stamp_ns, frame) for an exact stamp, or the latest frame for stamp 0."""
        with self._lock:
            if not self._frames:
                raise FrameNotFoundError('no synchronised frame received yet')
            if stamp_ns == 0:
                return next(reversed(self._frames.items()))
            if stamp_ns not in self._frames:
                oldest, newest = next(iter(self._frames)), next(reversed(self._frames))
                raise FrameNotFoundError(
                    f'no frame with stamp {stamp_ns} ns in the cache (it holds '
                    f'{len(self._frames)} frames from {oldest} to {newest} ns)'
                )
            return stamp_ns, self._frames[stamp_ns]

    def stamps(self) -> list[int]:
        with self._lock:
            return list(self._frames)

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()
            self._sizes.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)
