"""FrameCache: bounded, stamp-ordered, latest on stamp 0, clear errors."""

from __future__ import annotations

import threading

import pytest

from smolrgpt_ros.frame_cache import FrameCache, FrameNotFoundError


def test_latest_and_exact_lookup() -> None:
    cache: FrameCache[str] = FrameCache(3)
    cache.put(100, 'a')
    cache.put(200, 'b')
    assert cache.get(0) == (200, 'b')
    assert cache.get(100) == (100, 'a')


def test_capacity_evicts_oldest() -> None:
    cache: FrameCache[int] = FrameCache(2)
    for stamp in (1, 2, 3):
        cache.put(stamp, stamp)
    assert cache.stamps() == [2, 3]
    with pytest.raises(FrameNotFoundError, match=r'stamp 1 ns.*2 frames from 2 to 3'):
        cache.get(1)


def test_late_frame_is_sorted_and_oldest_still_evicted() -> None:
    cache: FrameCache[int] = FrameCache(2)
    cache.put(10, 10)
    cache.put(30, 30)
    cache.put(20, 20)  # arrives late
    assert cache.stamps() == [20, 30] and cache.get(0) == (30, 30)


def test_empty_cache_error() -> None:
    with pytest.raises(FrameNotFoundError, match='no synchronised frame received yet'):
        FrameCache(1).get(0)
    with pytest.raises(ValueError, match='capacity'):
        FrameCache(0)


def test_concurrent_puts_stay_bounded() -> None:
    cache: FrameCache[int] = FrameCache(5)

    def feed(offset: int) -> None:
        for i in range(500):
            cache.put(i * 2 + offset, i)

    threads = [threading.Thread(target=feed, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 5 and cache.stamps() == sorted(cache.stamps())
    assert cache.stamps()[-1] == 999
