from __future__ import annotations

from smolrgpt_ros.camera_info_cache import CameraInfoCache


def test_match_by_stamp_then_latest_and_bounded() -> None:
    cache = CameraInfoCache(capacity=2)
    assert cache.match(5) is None
    cache.put(1, 'a')
    cache.put(2, 'b')
    assert cache.match(1) == ('a', 'stamp')
    assert cache.match(9) == ('b', 'latest')
    cache.put(3, 'c')
    assert cache.match(1) == ('c', 'latest')  # evicted
    cache.clear()
    assert cache.match(3) is None
