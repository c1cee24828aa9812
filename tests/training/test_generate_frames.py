"""Dataset evaluation packs each image's questions into frames the engine accepts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from smolrgpt_core.settings import InferenceSettings
from training.datasets import load_examples
from training.generate import generate_answers


def _busiest_image(root: Path) -> list:
    examples = load_examples('warehouse', root, 'train')
    path, _ = Counter(e.rgb_path for e in examples).most_common(1)[0]
    return [e for e in examples if e.rgb_path == path]


def test_an_image_whose_masks_exceed_one_frame_is_answered_in_several(
    make_synth: Callable[..., Path], tiny_dir: Path
) -> None:
    # 8 questions a category on one image: more masks than the limit below lets in a frame
    group = _busiest_image(make_synth(1, seed=11, per_category=8))
    masks = [len(e.rle or ()) for e in group]
    limit = max(masks) + 2
    assert sum(masks) > 2 * limit  # the whole image would need at least three frames
    settings = InferenceSettings.from_flat(
        {'generation.max_new_tokens': 6, 'limits.max_regions': limit}
    )
    together = generate_answers(tiny_dir, group, settings, progress=False)
    assert [r['id'] for r in together] == [e.id for e in group]  # order kept
    assert {r['source'] for r in together} == {'model'}
    assert not any(r['geometry_reason'] for r in together)
    alone = [generate_answers(tiny_dir, [e], settings, progress=False)[0] for e in group]
    assert [r['answer'] for r in together] == [r['answer'] for r in alone]


def test_only_a_question_with_too_many_masks_of_its_own_is_refused(
    make_synth: Callable[..., Path], tiny_dir: Path
) -> None:
    group = _busiest_image(make_synth(1, seed=12, per_category=3))
    masks = [len(e.rle or ()) for e in group]
    limit = sorted(set(masks))[-2]  # the questions with the most masks exceed it alone
    settings = InferenceSettings.from_flat(
        {'generation.max_new_tokens': 6, 'limits.max_regions': limit}
    )
    records = generate_answers(tiny_dir, group, settings, progress=False)
    for n, record in zip(masks, records):
        if n > limit:
            assert record['source'] == 'none' and record['answer'] == ''
            assert f'above limits.max_regions {limit}' in record['geometry_reason']
        else:
            assert record['source'] == 'model'
    assert any(n > limit for n in masks) and any(n <= limit for n in masks)
