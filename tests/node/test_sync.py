"""The message_filters shim against the upstream ApproximateTimeSynchronizer contract.

Cases follow ros2/message_filters test/test_approxsync.py (equal stamps, shuffled sequences,
headerless messages) plus the rules stated in ros2-deployment.md §2.2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import random
import threading

import pytest

from smolrgpt_ros.sync import ApproximateTimeSynchronizer, SimpleFilter, Subscriber, stamp_to_ns


@dataclass
class Stamp:
    sec: int
    nanosec: int


@dataclass
class Header:
    stamp: Stamp


@dataclass
class Msg:
    header: Header
    name: str = field(default='')


def msg_at(t: float, name: str = '') -> Msg:
    ns = round(t * 1e9)
    return Msg(Header(Stamp(ns // 1_000_000_000, ns % 1_000_000_000)), name)


class Source(SimpleFilter):
    def push(self, msg: object) -> None:
        self.signalMessage(msg)


def make(n: int = 2, queue_size: int = 10, slop: float = 0.1, **kw: object):
    sources = [Source() for _ in range(n)]
    sync = ApproximateTimeSynchronizer(sources, queue_size, slop, **kw)
    out: list[tuple] = []
    sync.registerCallback(lambda *msgs: out.append(msgs))
    return sources, sync, out


def test_equal_stamps_emit_when_the_second_arrives() -> None:
    (a, b), _, out = make()
    m0, m1 = msg_at(1.0, 'a'), msg_at(1.0, 'b')
    a.push(m0)
    assert out == []
    b.push(m1)
    assert out == [(m0, m1)]


def test_shuffled_sequences_recombine_pairwise() -> None:
    n = 50
    rng = random.Random(0)
    seq0 = [msg_at(t, 'a') for t in range(n)]
    seq1 = [msg_at(t, 'b') for t in range(n)]
    rng.shuffle(seq0)
    rng.shuffle(seq1)
    (a, b), _, out = make(queue_size=n, slop=0.5)
    for m0, m1 in zip(seq0, seq1):
        a.push(m0)
        b.push(m1)
    expected = {
        (stamp_to_ns(x.header.stamp), stamp_to_ns(y.header.stamp))
        for x, y in zip(
            sorted(seq0, key=lambda m: stamp_to_ns(m.header.stamp)),
            sorted(seq1, key=lambda m: stamp_to_ns(m.header.stamp)),
        )
    }
    got = {(stamp_to_ns(x.header.stamp), stamp_to_ns(y.header.stamp)) for x, y in out}
    assert got == expected and len(out) == n


def test_headerless_messages_pair_when_allowed() -> None:
    clock = iter(range(10**9, 10**10, 10**6))
    (a, b), _, out = make(slop=10.0, allow_headerless=True, clock_ns=lambda: next(clock))
    a.push('headerless')
    b.push(msg_at(1.5, 'b'))
    assert len(out) == 1 and out[0][0] == 'headerless'


def test_headerless_messages_are_dropped_by_default() -> None:
    (a, b), sync, out = make(slop=10.0)
    a.push('headerless')
    b.push(msg_at(1.0))
    assert out == [] and sync.queues[0] == {}


def test_output_is_in_input_order_with_three_inputs() -> None:
    (rgb, depth, masks), _, out = make(n=3, slop=0.05)
    r, d, m = msg_at(10.000, 'rgb'), msg_at(10.003, 'depth'), msg_at(10.020, 'masks')
    masks.push(m)
    depth.push(d)
    assert out == []
    rgb.push(r)
    assert out == [(r, d, m)]


def test_spread_must_be_strictly_below_slop() -> None:
    (a, b), sync, out = make(slop=0.1)
    a.push(msg_at(1.0))
    b.push(msg_at(1.1))  # exactly slop apart: a candidate (<= slop) but spread not < slop
    assert out == []
    assert len(sync.queues[0]) == 1 and len(sync.queues[1]) == 1  # both kept, no expiry


def test_nearest_candidate_wins_and_is_consumed() -> None:
    (a, b), sync, out = make(slop=0.1)
    far, near = msg_at(0.95, 'far'), msg_at(0.99, 'near')
    b.push(far)
    b.push(near)
    mine = msg_at(1.0, 'a')
    a.push(mine)
    assert out == [(mine, near)]
    assert list(sync.queues[1].values()) == [far]  # the unmatched one stays


def test_queue_size_evicts_the_oldest_stamp() -> None:
    (a, b), sync, out = make(queue_size=2, slop=0.01)
    for t in (1.0, 2.0, 3.0):
        a.push(msg_at(t))
    assert sorted(sync.queues[0]) == [2_000_000_000, 3_000_000_000]
    b.push(msg_at(1.0))
    assert out == []  # the 1.0 partner was evicted


def test_duplicate_stamp_overwrites() -> None:
    (a, b), _, out = make()
    a.push(msg_at(1.0, 'old'))
    a.push(msg_at(1.0, 'new'))
    b.push(msg_at(1.0, 'b'))
    assert [m.name for m in out[0]] == ['new', 'b']


def test_one_set_per_incoming_message_under_threads() -> None:
    (a, b), _, out = make(queue_size=1000, slop=0.001)
    n = 400

    def feed(src: Source, name: str) -> None:
        for t in range(n):
            src.push(msg_at(t, name))

    threads = [
        threading.Thread(target=feed, args=(a, 'a')),
        threading.Thread(target=feed, args=(b, 'b')),
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(out) == n
    assert all(x.header.stamp == y.header.stamp for x, y in out)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match='queue_size'):
        ApproximateTimeSynchronizer([Source()], 0, 0.1)
    with pytest.raises(ValueError, match='slop'):
        ApproximateTimeSynchronizer([Source()], 1, -1.0)


def test_subscriber_wraps_create_subscription() -> None:
    calls = {}

    class FakeNode:
        def create_subscription(self, msg_type, topic, callback, qos_profile, **kw):
            calls.update(msg_type=msg_type, topic=topic, qos=qos_profile)
            return callback

    sub = Subscriber(FakeNode(), Msg, 'rgb/image', qos_profile=5)
    got = []
    sub.registerCallback(got.append)
    sub.sub(msg_at(1.0))  # what rclpy would call
    assert calls == {'msg_type': Msg, 'topic': 'rgb/image', 'qos': 5}
    assert sub.getTopic() == 'rgb/image' and len(got) == 1


def test_stamp_to_ns_accepts_rclpy_time_like_objects() -> None:
    class RclpyTime:
        nanoseconds = 1_500_000_000

    assert stamp_to_ns(RclpyTime()) == 1_500_000_000
    assert stamp_to_ns(Stamp(1, 500_000_000)) == 1_500_000_000
