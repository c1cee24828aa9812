"""Collator: padding to the longest sample, attention masks, loss targets, mask alignment."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_helpers import batch_for

from smolrgpt_core.modeling.smolrgpt import IGNORE_INDEX, SmolRGPT
from smolrgpt_core.tokens import SmolRGPTTokenizer
from training.collate import encode_example
from training.datasets import Example, load_examples


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
    assert batch['images'].shape[0] == ids.shape[0] == len(batch['masks'])


def test_targets_are_the_answer_and_its_end_shifted_by_one(tiny_dir: Path,
                                                           synth_root: Path) -> None:
    cfg = SmolRGPT.from_pretrained(tiny_dir).cfg
    tok = SmolRGPTTokenizer.from_dir(tiny_dir, cfg)
    ex = load_examples('warehouse', synth_root, 'train')[0]
    ids, target = encode_example(ex, tok)
    answer_ids = tok.encode(f'{ex.answer}<|im_end|>\n')
    assert [i for i, t in zip(ids, target) if t] == answer_ids
    assert ids[-len(answer_ids):] == answer_ids
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
    bad = Example(ex.id, ex.turns, ex.rgb_path, ex.depth_path, ex.rle[:1])
    with pytest.raises(ValueError, match='region token pairs'):
        encode_example(bad, tok)
