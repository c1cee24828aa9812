"""NodeStats -> one DiagnosticStatus: levels (no model, no frame for stale_s, busy) and the
figures a robot integrator reads (inputs, queue, batch sizes, latencies, last error)."""

from __future__ import annotations

from types import SimpleNamespace

from smolrgpt_ros.diagnostics import ERROR, OK, WARN, EngineInfo, NodeStats

TYPES = SimpleNamespace(DiagnosticStatus=SimpleNamespace, KeyValue=SimpleNamespace)
ENGINE = EngineInfo('/models/tiny', 'torch', 'cpu', 'float32')


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _report(stats: NodeStats, engine=ENGINE, state='active', **kwargs):
    status = stats.report(TYPES, 'node: spatial query', engine, state, (3, 2), 5.0, **kwargs)
    return status, {kv.key: kv.value for kv in status.values}


def test_no_model_is_an_error_with_the_reason() -> None:
    status, values = _report(NodeStats(), engine=None, state='unconfigured')
    assert status.level == bytes([ERROR]) and status.message == 'no model loaded'
    failed = _report(NodeStats(), None, 'unconfigured', problem='configure failed: no such dir')
    assert failed[0].message == 'configure failed: no such dir'
    assert 'model' not in values and values['state'] == 'unconfigured'


def test_no_frame_for_stale_s_is_an_error_then_ok() -> None:
    clock = Clock()
    stats = NodeStats(clock)
    stats.since_active()
    assert _report(stats)[0].level == bytes([OK])
    clock.now += 6
    status, values = _report(stats)
    assert status.level == bytes([ERROR])
    assert status.message == 'no frame synchronised for 6.0 s (diagnostics.stale_s 5.0)'
    assert values['last frame age s'] == 'never'
    stats.synchronised()
    clock.now += 1.5
    status, values = _report(stats)
    assert status.level == bytes([OK]) and values['last frame age s'] == '1.50'
    assert _report(stats, state='inactive')[0].level == bytes([OK])  # not serving: no frames due


def test_busy_refusals_warn_once_per_report() -> None:
    stats = NodeStats()
    stats.count('busy', 4)
    status, values = _report(stats)
    assert status.level == bytes([WARN]) and status.message.startswith('4 questions refused')
    assert values['busy'] == '4'
    assert _report(stats)[0].level == bytes([OK])


def test_figures() -> None:
    stats = NodeStats()
    for topic in ('rgb/image', 'rgb/image', 'depth/image'):
        stats.receive(topic)
    stats.synchronised()
    stats.count('frames refused')
    stats.batch(8, {'encode': 10.0, 'generate': 100.0})
    stats.batch(2, {'encode': 20.0, 'generate': 300.0})
    stats.batch(1, {'encode': 0.0, 'generate': 0.0})  # geometry only: no model latency
    stats.count('answered', 11)
    stats.error('region 9 has an empty mask')
    _, values = _report(stats)
    assert values['model'] == '/models/tiny' and values['backend'] == 'torch'
    assert (values['device'], values['dtype']) == ('cpu', 'float32')
    assert values['received rgb/image'] == '2' and values['received depth/image'] == '1'
    assert values['frames synchronised'] == '1' and values['frames refused'] == '1'
    assert (values['questions waiting'], values['questions being answered']) == ('3', '2')
    assert values['batches'] == '3' and values['questions per batch'] == '3.67'
    assert values['largest batch'] == '8'
    assert values['encode ms p50/p95'] == '15.0 / 19.5'
    assert values['generate ms p50/p95'] == '200.0 / 290.0'
    assert values['answered'] == '11' and values['last error'] == 'region 9 has an empty mask'
