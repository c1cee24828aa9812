"""The node as robots use it, over Fast DDS on loopback, each node in its own process:
the three mask forms get the same answers; the action streams feedback before its result,
cancels within a bound and keeps its deadline; 8 concurrent clients share batches and get
the one-at-a-time answers; /diagnostics reports what happened; a stale "latest frame" fails.

Two nodes run (started together): one takes RegionMaskArray (full-frame or cropped masks),
one, in the namespace ``inst``, takes an instance-label image with a RegionArray.
"""

from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time

from peer import TIMEOUT_S, Peer, goal_result, now_ns, publish_until_answered
import pytest

pytestmark = pytest.mark.ros

PARAMS = Path(__file__).resolve().parents[2] / 'config' / 'warehouse.yaml'
STAMP = 1_700_000_010_000_000_000  # frames by stamp (sync.max_age_s applies to stamp 0 only)
CANCEL_BOUND_S = 2.0


def _start(checkpoint: Path, log: Path, *params: str, namespace: str = '') -> subprocess.Popen:
    argv = [sys.executable, '-m', 'smolrgpt_cli', 'node', '--params', str(PARAMS)]
    for param in (f'model.checkpoint_dir:={checkpoint}', 'generation.max_new_tokens:=4', *params):
        argv += ['-p', param]
    if namespace:
        argv += ['--namespace', namespace]
    with open(log, 'w') as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())


def _stop(proc: subprocess.Popen, log: Path) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    print(log.read_text()[-3000:])


@pytest.fixture(scope='module')
def peers(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Iterator[dict]:
    logs = tmp_path_factory.mktemp('robot_logs')
    masks_node = _start(tiny_checkpoint, logs / 'masks.log', 'sync.max_age_s:=1.0')
    instances_node = _start(
        tiny_checkpoint,
        logs / 'instances.log',
        'regions.form:=instances',
        'diagnostics.stale_s:=1.0',
        namespace='inst',
    )
    peers = {
        'full': Peer(name='full_peer'),
        'cropped': Peer(form='cropped', name='cropped_peer'),
        'instances': Peer('/inst', 'instances', name='instances_peer'),
    }
    try:
        for peer in peers.values():
            assert peer.client.wait_for_service(timeout_sec=TIMEOUT_S), 'no service'
        yield peers
    finally:
        for peer in peers.values():
            peer.close()
        _stop(masks_node, logs / 'masks.log')
        _stop(instances_node, logs / 'instances.log')


QUESTIONS = [
    ('Is <region4> left of <region9>?', [], 'model'),
    ('How far is <mask> from <mask>?', [9, 4], 'model'),
    ('Is <region4> left of <region9>?', [], ''),  # hybrid: image-plane geometry
    ('Describe <region9>.', [], 'model'),
]


def test_every_mask_form_gets_the_same_answers(peers: dict) -> None:
    answers = {}
    for k, (form, peer) in enumerate(peers.items()):
        stamp = STAMP + k * 1_000_000_000  # the same pixels: the peer seeds them by stamp % 1000
        assert publish_until_answered(peer, stamp).success
        answers[form] = [
            (r.success, r.answer, r.normalized_answer, r.source)
            for r in (peer.call(q, ids, stamp, mode=mode) for q, ids, mode in QUESTIONS)
        ]
    assert all(ok for ok, *_ in answers['full']), answers['full']
    assert answers['cropped'] == answers['full'] == answers['instances']


def test_action_feedback_arrives_before_the_result(peers: dict) -> None:
    from action_msgs.msg import GoalStatus

    peer = peers['full']
    handle, feedback = peer.send_goal(
        'Describe <region4>.', [], STAMP, max_new_tokens=24, mode='model'
    )
    result, status, arrived = goal_result(handle)
    assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.error
    early = [(at, f) for at, f in feedback if at <= arrived]
    assert early, 'no feedback before the result'
    tokens = [f.tokens for _, f in feedback]
    assert tokens == sorted(tokens) and 1 <= tokens[-1] <= 24
    # DDS does not order the feedback topic against the result service, and rclpy's action
    # client drops feedback that lands after the result: the last feedback received is the
    # answer so far, a prefix of the result (less a byte sequence the cut left unfinished)
    assert result.answer.startswith(feedback[-1][1].partial_answer.rstrip('\ufffd'))
    assert result.batch_size == 1 and result.category == 'other'
    assert (result.frame_stamp.sec, result.frame_stamp.nanosec) == divmod(STAMP, 10**9)


def test_cancel_ends_the_goal_as_canceled_within_a_bound(peers: dict) -> None:
    from action_msgs.msg import GoalStatus

    peer = peers['full']
    handle, feedback = peer.send_goal(
        'Describe <region9>.', [], STAMP, max_new_tokens=256, mode='model'
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not feedback:
        assert time.monotonic() < deadline, 'no feedback before the cancel'
        time.sleep(0.002)
    asked = time.monotonic()
    handle.cancel_goal_async()
    result, status, arrived = goal_result(handle)
    assert status == GoalStatus.STATUS_CANCELED, (status, result.error)
    assert not result.success and result.error == 'canceled'
    assert arrived - asked < CANCEL_BOUND_S
    assert feedback[-1][1].tokens < 256


def test_a_goal_past_its_deadline_is_aborted_with_the_reason(peers: dict) -> None:
    from action_msgs.msg import GoalStatus

    handle, _ = peers['full'].send_goal(
        'Describe <region9>.', [], STAMP, max_new_tokens=256, mode='model', timeout_s=0.2
    )
    result, status, _ = goal_result(handle)
    assert status == GoalStatus.STATUS_ABORTED
    assert result.error == 'no answer within timeout_s 0.2 s'


def test_a_goal_the_node_cannot_take_is_aborted_with_the_reason(peers: dict) -> None:
    from action_msgs.msg import GoalStatus

    handle, _ = peers['full'].send_goal('Is <region4> left of <region9>?', [], 123)
    result, status, _ = goal_result(handle)
    assert status == GoalStatus.STATUS_ABORTED and 'no frame with stamp 123 ns' in result.error


def test_concurrent_clients_share_batches_and_get_the_single_answers(peers: dict) -> None:
    peer = peers['full']
    questions = [QUESTIONS[0], QUESTIONS[1]]
    alone = [peer.call(q, ids, STAMP, mode=mode) for q, ids, mode in questions]
    assert all(r.success and r.batch_size == 1 for r in alone)
    results: list = []
    lock = threading.Lock()

    def client(k: int) -> None:
        for n in range(13):
            q, ids, mode = questions[(k + n) % 2]
            response = peer.call(q, ids, STAMP, mode=mode)
            with lock:
                results.append((q, response))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 104
    failed = {r.error for _, r in results if not r.success}
    assert not failed, failed  # the backlog holds every waiting caller: nobody is busy
    assert max(r.batch_size for _, r in results) > 1
    deadline = time.monotonic() + 10  # every answer is published, with its batch size
    while max((a.batch_size for a in peer.answers), default=0) < 2:
        assert time.monotonic() < deadline, 'no published answer says it shared a batch'
        time.sleep(0.05)
    expected = {q: a.answer for (q, _, _), a in zip(questions, alone)}
    assert {q: r.answer for q, r in results if q == questions[0][0]} == {
        questions[0][0]: expected[questions[0][0]]
    }
    assert {r.answer for q, r in results if q == questions[1][0]} == {expected[questions[1][0]]}


def test_query_command_follows_a_goal_like_ros2_action_send_goal(peers: dict) -> None:
    command = [sys.executable, '-m', 'smolrgpt_cli', 'query', '--action', '--mode', 'model']
    stamp = f'{STAMP // 10**9}.{STAMP % 10**9:09d}'
    proc = subprocess.run(
        [*command, 'Describe <region4>.', '--stamp', stamp, '--max-new-tokens', '5'],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert 'Sending goal:\n     question: Describe <region4>.' in out
    assert 'Goal accepted with ID: ' in out
    assert out.index('Feedback:\n    partial_answer: ') < out.index('Result:\n    success: true')
    assert 'tokens: 5' in out and 'batch_size: 1' in out
    assert out.rstrip().endswith('Goal finished with status: SUCCEEDED')
    bad = subprocess.run(
        [*command, 'Is <region4> left of <region5>?', '--stamp', stamp],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert bad.returncode == 1 and 'error: unknown region ids [5]' in bad.stdout
    assert bad.stdout.rstrip().endswith('Goal finished with status: ABORTED')


def _status(peer: Peer, name: str, since: float, timeout_s: float = 10.0) -> tuple:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for msg in reversed(peer.diagnostics):
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec / 1e9
            for status in msg.status:
                if status.name == name and stamp >= since:
                    return status, {kv.key: kv.value for kv in status.values}
        time.sleep(0.1)
    raise AssertionError(f'no /diagnostics status {name!r} after {since}')


def test_diagnostics_report_the_node(peers: dict) -> None:
    peers['full'].publish(STAMP + 5_000_000_000)  # a frame now: not stale (diagnostics.stale_s)
    time.sleep(0.1)
    status, values = _status(peers['full'], '/spatial_query_node: spatial query', time.time())
    assert status.level in (b'\x00', b'\x01'), status.message  # OK or WARN (busy): serving
    assert values['state'] == 'active' and values['backend'] == 'torch'
    assert (values['device'], values['dtype']) == ('cpu', 'float32')
    assert int(values['received rgb/image']) >= 1 and int(values['frames synchronised']) >= 1
    assert int(values['batches']) >= 1 and int(values['largest batch']) > 1
    assert float(values['questions per batch']) > 1
    assert int(values['answered']) >= 100 and int(values['canceled']) >= 1
    assert int(values['expired']) >= 1
    assert values['generate ms p50/p95'] != 'none yet'
    # the instances node has had no frame for longer than its diagnostics.stale_s (1 s)
    time.sleep(1.2)
    status, values = _status(peers['instances'], '/inst/spatial_query_node: spatial query', 0)
    assert status.level == b'\x02' and 'no frame synchronised for' in status.message
    assert int(values['received instances']) >= 1


def test_a_stale_latest_frame_fails_with_the_reason(peers: dict) -> None:
    peer = peers['full']
    old = now_ns() - 5_000_000_000
    assert publish_until_answered(peer, old).success  # by stamp: answered
    stale = peer.call('Is <region4> left of <region9>?', [])
    assert not stale.success
    assert 's old, above sync.max_age_s 1.0' in stale.error, stale.error
    fresh = now_ns()
    assert publish_until_answered(peer, fresh).success
    latest = peer.call('Is <region4> left of <region9>?', [])
    assert latest.success, latest.error
    assert latest.frame_stamp.sec * 10**9 + latest.frame_stamp.nanosec == fresh


def test_deactivate_and_activate_again(peers: dict) -> None:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    peer = peers['full']
    lifecycle = peer.node.create_client(ChangeState, '/spatial_query_node/change_state')
    assert lifecycle.wait_for_service(timeout_sec=TIMEOUT_S)
    for transition in (Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_ACTIVATE):
        reply = lifecycle.call(
            ChangeState.Request(transition=Transition(id=transition)), timeout_sec=TIMEOUT_S
        )
        assert reply is not None and reply.success
        if transition == Transition.TRANSITION_DEACTIVATE:  # service and action are gone
            _, values = _status(peer, '/spatial_query_node: spatial query', time.time())
            assert values['state'] == 'inactive'
    assert peer.client.wait_for_service(timeout_sec=TIMEOUT_S)
    assert peer.action.wait_for_server(timeout_sec=TIMEOUT_S)
    response = peer.call('Is <region4> left of <region9>?', [], STAMP)  # the cache survived
    assert response.success, response.error
    handle, _ = peer.send_goal('Is <region4> left of <region9>?', [], STAMP, mode='model')
    result, _, _ = goal_result(handle)
    assert result.success, result.error
