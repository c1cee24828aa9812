"""Bag -> node over DDS -> answers: replay-eval equals the engine run directly on the data."""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros


@pytest.fixture(scope='module')
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from smolrgpt_cli.main import main

    out = tmp_path_factory.mktemp('synth') / 'data'
    # 10 scenes -> 1 val scene; enough for 8 questions over one frame
    assert (
        main(
            [
                'synth',
                '--out',
                str(out),
                '--scenes',
                '10',
                '--seed',
                '3',
                '--size',
                '160x90',
                '--format',
                'nvidia',
                '--no-progress',
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope='module')
def node(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Iterator[object]:
    from smolrgpt_ros.node_process import NodeProcess

    proc = NodeProcess(
        checkpoint=str(tiny_checkpoint), extra_params={'generation.max_new_tokens': '6'}
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def test_replay_matches_the_engine(
    dataset: Path, node: object, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from smolrgpt_cli.main import main
    from smolrgpt_core.geometry import CameraModel
    from smolrgpt_core.inference.engine import Frame, SpatialQueryEngine
    from smolrgpt_core.settings import InferenceSettings
    from smolrgpt_ros.node_config import NODE_INFERENCE_DEFAULTS
    from smolrgpt_ros.replay import replay, write_outputs
    from training.dataset_bag import frames_from_dataset

    bag = tmp_path / 'bag'
    assert (
        main(
            [
                'bag',
                'from-dataset',
                '--data-root',
                str(dataset),
                '--split',
                'val',
                '--out',
                str(bag),
                '--rate',
                '5',
            ]
        )
        == 0
    )
    result = replay(bag, rate=1.0, timeout_s=60)
    # the node's own settings (hybrid answers) and what it receives (CameraInfo from the bag)
    engine = SpatialQueryEngine.from_checkpoint(
        tiny_checkpoint,
        InferenceSettings.from_flat({'generation.max_new_tokens': 6}, NODE_INFERENCE_DEFAULTS),
    )
    direct, sources = {}, {}
    for frame in frames_from_dataset(dataset, 'val', rate_hz=5):
        k = frame.intrinsics
        h, w = frame.depth.shape
        f = Frame(
            rgb=frame.rgb,
            depth=frame.depth,
            masks=frame.masks,
            region_ids=frame.region_ids,
            depth_encoding='16UC1' if frame.depth.dtype.name == 'uint16' else 'mono8',
            labels=frame.labels,
            camera=CameraModel.from_intrinsics_text(
                f'{k["fx"]},{k["fy"]},{k["cx"]},{k["cy"]}', w, h
            ),
        )
        for q in frame.questions:
            answer = engine.ask(f, q.question, q.region_ids)
            direct[q.id], sources[q.id] = answer.text, answer.source
    assert result.frames == 1 and len(result.answers) == len(direct) >= 4
    assert result.rejected == 0 and result.frames_dropped == 0
    assert all(a['success'] for a in result.answers), [a['error'] for a in result.answers]
    assert {a['id']: a['answer'] for a in result.answers} == direct
    assert {a['id']: a['source'] for a in result.answers} == sources
    assert 'geometry' in sources.values()
    report = write_outputs(result, bag, tmp_path / 'out')
    assert report['questions'] == len(direct) and 'score' in report
    preds = json.loads((tmp_path / 'out' / 'predictions.json').read_text())
    assert {p['id'] for p in preds} == set(direct)
    assert (tmp_path / 'out' / 'latency_histogram.png').stat().st_size > 1000


def test_replay_eval_command_reports(
    dataset: Path, node: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from smolrgpt_cli.main import main

    bag = tmp_path / 'bag'
    assert (
        main(
            [
                'bag',
                'from-dataset',
                '--data-root',
                str(dataset),
                '--split',
                'val',
                '--out',
                str(bag),
                '--storage',
                'sqlite3',
            ]
        )
        == 0
    )
    assert (
        main(['replay-eval', '--bag', str(bag), '--rate', 'max', '--out', str(tmp_path / 'o')])
        == 0
    )
    out = capsys.readouterr().out
    assert 'official warehouse score:' in out and '0 rejected (busy)' in out
    assert main(['replay-eval', '--bag', str(bag), '--rate', 'fast']) == 2
