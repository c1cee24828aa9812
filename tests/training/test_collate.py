"""Collator: padding to the longest sample, attention masks, loss targets, mask alignment."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from training_helpers import batch_for

from smolrgpt_core.modeling.smolrgpt import IGNORE_INDEX, SmolRGPT
from smolrgpt_core.tokens import SmolRGPTTokenizer
from training.collate import Collator, ExampleDataset, encode_example
from training.datasets import load_examples


def test_batch_is_left_padded_to_the_longest_sample(tiny_dir: Path, synth_root: Path) -> None:
    _, batch = batch_for('sft', tiny_dir, synth_root, n=4)
    ids, attn, targets = batch['input_ids'], batch['attention_mask'], batch['targets']
    lengths = attn.sum(1)
    assert ids.shape[1] == int(lengths.max())  # right-sized, not a fixed 512
    assert bool((lengths < ids.shape[1]).any()), 'the fixture should mix lengths'
    for row in range(ids.shape[0]):
        n = int(lengths[row])
        assert attn[row, : ids.shape[1] - n].sum() == 0  # pads on the left
        assert bool((ids[row, : ids.shape[1] - n] == 2).all())  # pad = <|im_end|>
        assert bool((targets[row, : ids.shape[1] - n] == IGNORE_INDEX).all())
    assert batch['image_index'].shape == (ids.shape[0],) and len(batch['masks']) == ids.shape[0]


def test_targets_are_the_answer_and_its_end_shifted_by_one(
    tiny_dir: Path, synth_root: Path
) -> None:
    cfg = SmolRGPT.from_pretrained(tiny_dir).cfg
    tok = SmolRGPTTokenizer.from_dir(tiny_dir, cfg)
    ex = load_examples('warehouse', synth_root, 'train')[0]
    ids, target = encode_example(ex, tok)
    answer_ids = tok.encode(f'{ex.answer}<|im_end|>\n')
    assert [i for i, t in zip(ids, target) if t] == answer_ids
    assert ids[-len(answer_ids) :] == answer_ids
    # the prompt part is exactly what inference builds
    prompt = tok.build_prompt(ex.question.replace('<image>', ''), len(ex.rle))
    assert ids[: len(prompt.ids)] == list(prompt.ids)
    _, batch = batch_for('sft', tiny_dir, synth_root, n=1)
    labels = batch['targets'][0]
    row = batch['input_ids'][0]
    kept = labels != IGNORE_INDEX
    assert torch.equal(labels[:-1][kept[:-1]], row[1:][kept[:-1]])
    assert labels[-1] == IGNORE_INDEX


def test_masks_follow_their_token_pairs(tiny_dir: Path, synth_root: Path) -> None:
    _, batch = batch_for('sft', tiny_dir, synth_root, n=4)
    cfg = SmolRGPT.from_pretrained(tiny_dir).cfg
    for row, masks in zip(batch['input_ids'], batch['masks']):
        assert int((row == cfg.mask_rgb_token_id).sum()) == masks.shape[0]
        assert int((row == cfg.mask_depth_token_id).sum()) == masks.shape[0]


def test_region_count_mismatch_is_an_error(tiny_dir: Path, synth_root: Path) -> None:
    cfg = SmolRGPT.from_pretrained(tiny_dir).cfg
    tok = SmolRGPTTokenizer.from_dir(tiny_dir, cfg)
    ex = load_examples('warehouse', synth_root, 'train')[0]
    bad = dataclasses.replace(ex, rle=ex.rle[:1])
    with pytest.raises(ValueError, match='region token pairs'):
        encode_example(bad, tok)


def test_an_image_shared_by_samples_is_stacked_once(tiny_dir: Path, synth_root: Path) -> None:
    model = SmolRGPT.from_pretrained(tiny_dir)
    tok = SmolRGPTTokenizer.from_dir(tiny_dir, model.cfg)
    examples = load_examples('warehouse', synth_root, 'train')[:6]
    ds = ExampleDataset(examples, tok, uses_regions=True, max_length=2048)
    items = [ds[i] for i in range(len(ds))]
    batch = Collator(tok.pad_token_id)(items)
    paths = [str(ex.rgb_path) for ex in examples]
    distinct = list(dict.fromkeys(paths))
    assert 1 < len(distinct) < len(paths), 'the fixture should share some images'
    assert batch['images'].shape[0] == batch['depths'].shape[0] == len(distinct)
    index = batch['image_index'].tolist()
    assert index == [distinct.index(p) for p in paths]
    for b, item in enumerate(items):
        assert torch.equal(batch['images'][index[b]], item['image'])
        assert torch.equal(batch['depths'][index[b]], item['depth'])


def test_labelled_training_prompts_are_the_inference_prompts(
    tiny_dir: Path, synth_root: Path
) -> None:
    cfg = SmolRGPT.from_pretrained(tiny_dir).cfg
    cfg.prompt_region_labels = True
    tok = SmolRGPTTokenizer.from_dir(tiny_dir, cfg)
    ex = next(e for e in load_examples('warehouse', synth_root, 'train') if len(e.rle) >= 2)
    ids, _ = encode_example(ex, tok)
    prompt = tok.build_prompt(ex.question, len(ex.rle))
    assert ids[: len(prompt.ids)] == list(prompt.ids)
    text = tok.decode(prompt.ids, skip_special_tokens=False)
    assert '[Region 1] <mask_rgb><mask_depth>' in text
    assert text.count('[Region') == len(ex.rle) == ids.count(tok.mask_rgb_token_id)


def test_a_metric_depth_model_trains_on_the_millimetre_depth(
    tiny_dir: Path, synth_root: Path, tmp_path: Path
) -> None:
    """depth_input 'metric': the depth tensor comes from depth_mm/ through the fixed range (the
    same bytes inference makes of the camera's 16UC1 frame), not from the 8-bit PNG."""
    import numpy as np
    from PIL import Image

    from smolrgpt_core import depth as depth_codec
    from smolrgpt_core.preprocess import preprocess_depth8

    cfg = SmolRGPT.from_pretrained(tiny_dir).cfg
    metric = dataclasses.replace(cfg, depth_input='metric', depth_min_m=0.0, depth_max_m=20.0)
    ex = load_examples('warehouse', synth_root, 'train')[0]
    item = ExampleDataset(
        [ex], SmolRGPTTokenizer.from_dir(tiny_dir, metric), uses_regions=True, max_length=512
    )[0]
    mm = np.asarray(Image.open(ex.rgb_path.parent.parent / 'depth_mm' / ex.rgb_path.name))
    assert mm.dtype == np.uint16
    depth8 = depth_codec.to_depth8(mm, '16UC1', (0.0, 20.0), metric)
    expected = preprocess_depth8(depth8, metric.vit_img_size, metric.depth_pipeline)
    assert torch.equal(item['depth'], expected)
    stored = ExampleDataset(
        [ex], SmolRGPTTokenizer.from_dir(tiny_dir, cfg), uses_regions=True, max_length=512
    )[0]
    assert not torch.equal(stored['depth'], expected)  # the per-frame 8-bit PNG differs

    # a dataset without millimetre depth cannot train a metric model: one clear error
    import shutil

    (tmp_path / 'images').mkdir()
    moved = dataclasses.replace(ex, rgb_path=tmp_path / 'images' / ex.rgb_path.name)
    shutil.copyfile(ex.rgb_path, moved.rgb_path)  # the RGB image without its depth_mm/
    with pytest.raises(ValueError, match='no millimetre depth'):
        ExampleDataset(
            [moved],
            SmolRGPTTokenizer.from_dir(tiny_dir, metric),
            uses_regions=True,
            max_length=512,
        )[0]
