"""The latest CameraInfo messages, matched to frames by stamp (no rclpy import).

Drivers publish ``camera_info`` with the image's stamp, so a frame's intrinsics are looked up
by its stamp first; a camera whose intrinsics never change may publish them at another rate,
so the latest message serves a frame without an exact match (the answer says which).
"""

from __future__ import annotations

from collections import OrderedDict
import threading
from typing import Any


class CameraInfoCache:
    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self._infos: OrderedDict[int, Any] = OrderedDict()  # stamp_ns -> message, arrival order
        self._lock = threading.Lock()

    def put(self, stamp_ns: int, msg: Any) -> None:
        with self._lock:
            self._infos[stamp_ns] = msg
            self._infos.move_to_end(stamp_ns)
            while len(self._infos) > self.capacity:
                self._infos.popitem(last=False)

    def match(self, stamp_ns: int) -> tuple[Any, str] | None:
        """(message, 'stamp' | 'latest') for a frame stamp, or None before any message."""
        with self._lock:
            if stamp_ns in self._infos:
                return self._infos[stamp_ns], 'stamp'
            if not self._infos:
                return None
            return next(reversed(self._infos.values())), 'latest'

    def clear(self) -> None:
        with self._lock:
            self._infos.clear()
