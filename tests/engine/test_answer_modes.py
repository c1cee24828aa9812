"""Answer modes: model, geometry and hybrid, their preconditions and fall-backs, on synthetic
frames exactly as a robot would hand them over (RGB, 16UC1 depth, masks, intrinsics)."""

from __future__ import annotations

from pathlib import Path
import shutil

import numpy as np
import pytest

from smolrgpt_core.geometry import CameraModel
from smolrgpt_core.inference.engine import Frame, Query, SpatialQueryEngine
from smolrgpt_core.settings import InferenceSettings
from smolrgpt_core.warehouse_metric import CORRECT


@pytest.fixture(scope='module')
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Frame, list]]:
    from training.dataset_bag import frames_from_dataset
    from training.synth.generate import generate

    root = tmp_path_factory.mktemp('modes') / 'data'
    generate(root, 12, seed=11, width=320, height=180, formats={'nvidia'}, progress=False)
    out = []
    for bag_frame in frames_from_dataset(root, 'train'):
        k = bag_frame.intrinsics
        h, w = bag_frame.depth.shape
        camera = CameraModel.from_intrinsics_text(f'{k["fx"]},{k["fy"]},{k["cx"]},{k["cy"]}', w, h)
        frame = Frame(
            rgb=bag_frame.rgb,
            depth=bag_frame.depth,
            masks=bag_frame.masks,
            region_ids=bag_frame.region_ids,
            depth_encoding='16UC1',
            camera=camera,
        )
        out.append((frame, bag_frame.questions))
    # the geometry path reads only what it is handed: the scene files (ground truth) are gone
    shutil.rmtree(root / 'train' / 'scenes')
    return out


def _engine(tiny_checkpoint: Path, **flat: object) -> SpatialQueryEngine:
    settings = InferenceSettings.from_flat({'generation.max_new_tokens': 4, **flat})
    return SpatialQueryEngine.from_checkpoint(tiny_checkpoint, settings)


def _copy(frame: Frame, **changes: object) -> Frame:
    fields = {**frame.__dict__, **changes}
    return Frame(**fields)


def test_geometry_answers_every_category_right_on_clean_frames(
    frames: list, tiny_checkpoint: Path
) -> None:
    engine = _engine(tiny_checkpoint, **{'answer.mode': 'geometry'})
    right, total, categories = 0, 0, set()
    for frame, questions in frames:
        answers = engine.ask_many(frame, [Query(q.question, q.region_ids) for q in questions])
        for q, a in zip(questions, answers):
            assert a.source in ('geometry', 'image') and a.answered, a.geometry_reason
            assert a.source == 'geometry' or a.geometry_reason  # image plane: says why
            assert a.text and a.detail and len(a.regions_3d) == len(q.region_ids)
            total += 1
            right += CORRECT[q.category](a.normalized_answer, q.normalized_answer)
            categories.add(q.category)
    assert categories == {'left_right', 'count', 'distance', 'mcq'}
    assert total >= 20 and right / total >= 0.9, (right, total)


def test_model_mode_never_measures(frames: list, tiny_checkpoint: Path) -> None:
    engine = _engine(tiny_checkpoint)
    frame, questions = frames[0]
    answer = engine.ask(frame, questions[0].question, questions[0].region_ids)
    assert answer.source == 'model' and answer.regions_3d == [] and answer.geometry_reason == ''


def test_cross_check_runs_the_other_path(frames: list, tiny_checkpoint: Path) -> None:
    hybrid = _engine(tiny_checkpoint, **{'answer.mode': 'hybrid', 'answer.cross_check': True})
    model = _engine(tiny_checkpoint)
    frame, questions = frames[0]
    queries = [Query(q.question, q.region_ids) for q in questions]
    both = hybrid.ask_many(frame, queries)
    alone = model.ask_many(frame, queries)
    assert [a.source for a in both] == ['geometry'] * len(queries)
    assert [a.cross_check for a in both] == [a.normalized_answer for a in alone]
    # a per-query mode overrides the settings
    forced = hybrid.ask_many(
        frame, [Query(q.question, q.region_ids, mode='model') for q in questions]
    )
    assert [a.text for a in forced] == [a.text for a in alone]


def test_without_intrinsics_image_plane_tools_or_the_model(
    frames: list, tiny_checkpoint: Path
) -> None:
    engine = _engine(tiny_checkpoint, **{'answer.mode': 'hybrid'})
    geometry_only = _engine(tiny_checkpoint, **{'answer.mode': 'geometry'})
    seen = set()
    for frame, questions in frames:
        bare = _copy(frame, camera=None)
        for q in questions:
            a = engine.ask(bare, q.question, q.region_ids)
            assert 'no camera intrinsics' in a.geometry_reason
            if q.category == 'left_right':
                assert a.source == 'image'
            elif q.category == 'count':  # floor containment survives perspective: 2D is fine
                assert a.source in ('image', 'model')
            elif q.category == 'distance':  # metres need metric depth and intrinsics
                assert a.source == 'model'
                g = geometry_only.ask(bare, q.question, q.region_ids)
                assert not g.answered and g.source == 'none' and g.normalized_answer == ''
            seen.add((q.category, a.source))
    assert ('distance', 'model') in seen and ('left_right', 'image') in seen


@pytest.mark.parametrize(
    ('change', 'reason'),
    [
        ('mono8', 'not metric'),
        ('camera size', 'camera'),
    ],
)
def test_preconditions_fall_back_with_a_reason(
    frames: list, tiny_checkpoint: Path, change: str, reason: str
) -> None:
    engine = _engine(tiny_checkpoint, **{'answer.mode': 'hybrid'})
    frame, questions = next((f, q) for f, q in frames if any(x.category == 'distance' for x in q))
    q = next(x for x in questions if x.category == 'distance')
    if change == 'mono8':
        bad = _copy(frame, depth=np.full(frame.depth.shape, 99, np.uint8), depth_encoding='mono8')
    else:
        h, w = frame.depth.shape
        cam = frame.camera
        bad = _copy(frame, camera=CameraModel.from_intrinsics_text(
            f'{cam.fx},{cam.fy},{cam.cx},{cam.cy}', w * 2, h * 2))  # fmt: skip
    a = engine.ask(bad, q.question, q.region_ids)
    assert a.source == 'model' and reason in a.geometry_reason, a.geometry_reason


def test_questions_geometry_does_not_understand_go_to_the_model(
    frames: list, tiny_checkpoint: Path
) -> None:
    engine = _engine(tiny_checkpoint, **{'answer.mode': 'hybrid'})
    frame, _ = frames[0]
    ids = list(frame.region_ids[:2])
    a = engine.ask(frame, 'From the transporter <mask> own view, is <mask> on its left?', ids)
    assert a.source == 'model' and 'not understood' in a.geometry_reason


def test_too_few_valid_points_is_a_reason(frames: list, tiny_checkpoint: Path) -> None:
    engine = _engine(tiny_checkpoint, **{'answer.mode': 'geometry', 'answer.min_points': 20000})
    frame, questions = next((f, q) for f, q in frames if any(x.category == 'distance' for x in q))
    q = next(x for x in questions if x.category == 'distance')
    a = engine.ask(frame, q.question, q.region_ids)
    assert not a.answered and 'valid depth points' in a.geometry_reason
