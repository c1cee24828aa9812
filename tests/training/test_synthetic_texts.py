"""Synthetic captions and region descriptions: what they say agrees with the scene files and
with the generator's own count answers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import re

import numpy as np
import pytest

from smolrgpt_core.masks import rles_decode
from training.datasets import (
    SceneFiles,
    containment_question,
    load_examples,
    pointer_question,
    region_text,
    side_of,
    visible_objects,
    where_text,
)
from training.synth.scene import in_rect_xz
from training.synth.templates import number_word


def _obj(kind: str, centre: tuple[float, float, float], rect: list[float] | None = None) -> dict:
    return {'kind': kind, 'center_m': list(centre), 'floor_rect_m': rect}


def test_where_a_pallet_stands_and_how_many_a_buffer_holds() -> None:
    left = _obj('buffer', (-2.0, 0.0, 8.0), [-3.0, 7.0, -1.0, 9.0])
    right = _obj('buffer', (2.0, 0.0, 8.0), [1.0, 7.0, 3.0, 9.0])
    inside = [_obj('pallet', (-2.5, 0.07, 7.5)), _obj('pallet', (-1.2, 0.07, 8.9))]
    outside = _obj('pallet', (0.0, 0.07, 8.0))  # between the two buffers
    scene = [left, right, *inside, outside]
    assert where_text(left, scene) == 'It holds two pallets.'
    assert where_text(right, scene) == 'It holds no pallets.'
    assert where_text(left, [left, inside[0]]) == 'It holds one pallet.'
    assert where_text(inside[0], scene) == 'It stands in a buffer region.'
    assert where_text(outside, scene) == 'It stands outside the buffer regions.'
    assert where_text(_obj('shelf', (0.0, 2.0, 20.0)), scene) == ''
    text = region_text(left, np.eye(4), 0.1, where_text(left, scene))
    assert text == (
        'A buffer region, 8.25 meters from the camera, on the left of the image. '
        'It holds two pallets.'
    )


@pytest.fixture(scope='module')
def scenes(make_synth: Callable[..., Path]) -> Path:
    return make_synth(30, seed=11, width=256, height=144, per_category=2)


def _instance_of(mask: np.ndarray, instances: np.ndarray) -> int:
    ids, counts = np.unique(instances[mask], return_counts=True)
    return int(ids[counts.argmax()])


def test_buffer_descriptions_agree_with_the_count_answers(scenes: Path) -> None:
    """Where a count question lists every visible pallet, the target buffer's description
    holds exactly the answer's number of pallets."""
    held = {}
    for ex in load_examples('regions', scenes, 'train'):
        found = re.search(r'It holds (\w+) pallets?\.', ex.answer)
        if found:
            held[ex.id] = found.group(1)
    checked = 0
    for ex in load_examples('warehouse', scenes, 'train'):
        if ex.category != 'count':
            continue
        files = SceneFiles(scenes / 'train', Path(ex.rgb_path).stem)
        meta, instances = files.meta(), files.instances()
        ids = [_instance_of(m.astype(bool), instances) for m in rles_decode(ex.rle)]
        visible = visible_objects(meta, instances)
        kinds = {o['instance_id']: o['kind'] for o in visible}
        if sorted(i for i in ids if kinds[i] == 'pallet') != sorted(
            i for i, k in kinds.items() if k == 'pallet'
        ):
            continue  # the question lists only some of the pallets
        target = int(re.search(r'buffer region \[Region (\d+)\]', ex.answer).group(1))
        description = held[f'region-train-{files.stem}-{ids[target]}']
        assert description == number_word(ex.normalized_answer), ex.answer
        checked += 1
    assert checked >= 5


def test_pointer_questions_name_the_one_listed_region_with_the_label() -> None:
    rng = np.random.default_rng(0)
    labels = ['pallet', 'pallet', 'shelf', 'buffer region', 'pallet', 'transporter']
    seen = set()
    for _ in range(200):
        question, answer, listed = pointer_question(rng, labels, 'kind')
        assert 2 <= len(listed) <= 4 and len(set(listed)) == len(listed)
        assert question.count('<mask>') == len(listed)
        asked = re.fullmatch(r'Which of the regions [<mask> ]+ is the ([a-z ]+)\?', question)[1]
        k = int(re.fullmatch(r'The [a-z ]+ is \[Region (\d)\]\.', answer)[1])
        assert [labels[i] for i in listed].count(asked) == 1 and labels[listed[k]] == asked
        seen.add((asked, k))
    assert len(seen) > 8  # every label gets asked, at several places in the list
    _, answer, listed = pointer_question(rng, ['on the left', 'on the right'], 'side')
    assert answer.endswith('of the image.') and sorted(listed) == [0, 1]
    assert pointer_question(rng, ['pallet'] * 3, 'kind') is None


def test_pointer_examples_point_at_the_asked_region(scenes: Path) -> None:
    examples = load_examples('pointers', scenes, 'train')
    assert len(examples) >= 30 and {e.category for e in examples} == {'pointer'}
    assert all(e.category == 'region' for e in load_examples('regions', scenes, 'train'))
    for ex in examples:
        assert ex.question.count('<mask>') == len(ex.rle)
        files = SceneFiles(scenes / 'train', ex.id.split('-')[2])
        kinds = {o['instance_id']: o['kind'] for o in files.meta()['objects']}
        k = int(re.search(r'\[Region (\d)\]', ex.answer)[1])
        target = rles_decode(ex.rle)[k].astype(bool)
        if 'of the image' in ex.question:
            column = np.nonzero(target)[1].mean() / target.shape[1]
            assert side_of(column) in ex.question
        else:
            kind = kinds[_instance_of(target, files.instances())]
            noun = 'buffer region' if kind == 'buffer' else kind
            assert ex.question.endswith(f'is the {noun}?')


def test_pointers_need_scene_files(tmp_path: Path) -> None:
    (tmp_path / 'data').mkdir()  # the parquet layout
    with pytest.raises(ValueError, match='pointers kind is made from `smolrgpt synth` scene'):
        load_examples('pointers', tmp_path, 'train')


def test_containment_questions_put_the_verdict_first_and_name_both_masks() -> None:
    rng = np.random.default_rng(0)
    for inside in (True, False):
        for pallet_first in (True, False):
            question, answer = containment_question(rng, inside, pallet_first)
            assert question.count('<mask>') == 2
            assert answer.startswith('Yes, ' if inside else 'No, ')
            pallet, buffer = re.fullmatch(
                r'(?:Yes|No), the pallet \[Region (\d)\] stands (?:in|outside) the buffer '
                r'region \[Region (\d)\]\.',
                answer,
            ).groups()
            # the masks come in the question's order
            first = question.index('pallet') < question.index('buffer')
            assert first == pallet_first
            assert (pallet, buffer) == (('0', '1') if first else ('1', '0'))


def test_containment_examples_agree_with_the_scene_files(scenes: Path) -> None:
    examples = load_examples('containment', scenes, 'train')
    assert len(examples) >= 20 and {e.category for e in examples} == {'containment'}
    verdicts = {'Yes': 0, 'No': 0}
    for ex in examples:
        files = SceneFiles(scenes / 'train', ex.id.split('-')[2])
        objects = {o['instance_id']: o for o in files.meta()['objects']}
        listed = [
            objects[_instance_of(m.astype(bool), files.instances())] for m in rles_decode(ex.rle)
        ]
        k_pallet = int(re.search(r'pallet \[Region (\d)\]', ex.answer)[1])
        pallet, buffer = listed[k_pallet], listed[1 - k_pallet]
        assert (pallet['kind'], buffer['kind']) == ('pallet', 'buffer')
        inside = in_rect_xz(buffer['floor_rect_m'], pallet['center_m'])
        assert ex.answer.startswith('Yes' if inside else 'No')
        verdicts[ex.answer.split(',')[0]] += 1
    assert min(verdicts.values()) >= len(examples) // 4  # alternated where the scene allows
