"""The spatial-query node in its own process, driven over Fast DDS on loopback.

The node runs the real engine on a tiny checkpoint made by the test; this process publishes
synchronised RGB / depth / RegionMaskArray and calls /spatial_query.
"""

from __future__ import annotations

from collections.abc import Iterator
import math
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time

from peer import TIMEOUT_S, H, Peer, W, publish_until_answered
import pytest

pytestmark = pytest.mark.ros

PARAMS = Path(__file__).resolve().parents[2] / 'config' / 'warehouse.yaml'


@pytest.fixture(scope='module')
def node_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen]:
    from smolrgpt_core.testing import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path_factory.mktemp('node_ckpt'))
    log = tmp_path_factory.mktemp('node_log') / 'node.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen(
            # `smolrgpt node` = the node's main() with the shipped parameters file
            [
                sys.executable,
                '-m',
                'smolrgpt_cli',
                'node',
                '--params',
                str(PARAMS),
                '-p',
                f'model.checkpoint_dir:={checkpoint}',
                '-p',
                'generation.max_new_tokens:=4',
                '-p',
                'requests.queue_limit:=2',
                '-p',
                'cache.frames:=3',
                '-p',
                'sync.max_age_s:=0.0',  # the frames here carry stamps from 2023
                '-p',
                'requests.batch_max:=1',  # one question a pass: the backlog fills up
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print(log.read_text()[-3000:])


@pytest.fixture(scope='module')
def peer(node_process: subprocess.Popen) -> Iterator[Peer]:
    p = Peer()
    try:
        assert p.client.wait_for_service(timeout_sec=TIMEOUT_S), 'node never offered the service'
        yield p
    finally:
        p.close()


def test_1_no_frame_yet(peer: Peer) -> None:
    response = peer.call('Is the pallet <mask> left of the pallet <mask>?', [4, 9])
    assert not response.success and response.error == 'no synchronised frame received yet'
    assert math.isnan(response.value)


def test_2_answers_on_a_published_frame(peer: Peer) -> None:
    stamp = 1_700_000_000_100_000_000
    response = publish_until_answered(peer, stamp)
    assert response.success, response.error
    assert response.category == 'left_right'
    assert (response.frame_stamp.sec, response.frame_stamp.nanosec) == divmod(stamp, 1_000_000_000)
    assert response.latency_ms > 0
    latest = peer.call('How far is <region9> from <region4>?', [])
    assert latest.success and latest.category == 'distance'
    deadline = time.monotonic() + 10
    while len(peer.answers) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert peer.answers and peer.answers[-1].question == 'How far is <region9> from <region4>?'
    assert peer.answers[-1].header.frame_id == 'camera'


@pytest.mark.parametrize(
    ('question', 'ids', 'stamp_ns', 'error'),
    [
        ('Is <mask> left of <mask>?', [4, 77], 0, 'unknown region ids [77]'),
        ('Is <mask> left of <mask>?', [4], 0, '2 <mask> placeholders but 1 region ids'),
        ('Is the pallet left of the other pallet?', [], 0, 'needs region references'),
        ('Is <region4> left of <region9>?', [], 123, 'no frame with stamp 123 ns'),
    ],
)
def test_3_bad_requests_get_clear_errors(
    peer: Peer, question: str, ids: list[int], stamp_ns: int, error: str
) -> None:
    response = peer.call(question, ids, stamp_ns=stamp_ns)
    assert not response.success and error in response.error


@pytest.mark.parametrize(
    ('kwargs', 'error'),
    [
        ({'empty_region': True}, 'region 9 has an empty mask'),
        ({'mask_hw': (H + 2, W)}, 'size mismatch: mask of region 4'),
        ({'depth_encoding': 'rgb8'}, "malformed depth: unsupported depth encoding 'rgb8'"),
    ],
)
def test_4_bad_frames_get_clear_errors(peer: Peer, kwargs: dict, error: str) -> None:
    stamp = 1_700_000_001_000_000_000 + len(error) * 1000
    response = publish_until_answered(peer, stamp, **kwargs)
    assert not response.success and error in response.error


def test_5_node_still_serves_after_errors(peer: Peer, node_process: subprocess.Popen) -> None:
    assert node_process.poll() is None
    stamp = 1_700_000_002_000_000_000
    assert publish_until_answered(peer, stamp).success


def test_6_concurrent_calls_are_answered_or_rejected(peer: Peer) -> None:
    stamp = 1_700_000_003_000_000_000
    assert publish_until_answered(peer, stamp).success
    results: list = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            response = peer.call(
                'Is <region4> left of <region9>?', [], stamp_ns=stamp, max_new_tokens=2
            )
            with lock:
                results.append(response)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 200
    ok = [r for r in results if r.success]
    busy = [r for r in results if not r.success]
    assert all(r.error.startswith('busy: ') for r in busy), {r.error for r in busy}
    assert ok, 'no call was answered'
    assert {r.batch_size for r in ok} == {1}  # requests.batch_max 1
    assert len({r.answer for r in ok}) == 1  # same frame, same question, same greedy answer


def test_7_query_command_prints_like_ros2_service_call(peer: Peer) -> None:
    stamp = 1_700_000_004_000_000_000
    assert publish_until_answered(peer, stamp).success
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'smolrgpt_cli',
            'query',
            'Is <region4> left of <region9>?',
            '--stamp',
            '1700000004.0',
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr
    assert 'requester: making request: smolrgpt_ros.srv.SpatialQuery_Request(' in proc.stdout
    assert 'response:\nsmolrgpt_ros.srv.SpatialQuery_Response(success=True' in proc.stdout
    bad = subprocess.run(
        [sys.executable, '-m', 'smolrgpt_cli', 'query', 'Is <region5> left?'],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert bad.returncode == 1 and "error='unknown region ids [5]" in bad.stdout
