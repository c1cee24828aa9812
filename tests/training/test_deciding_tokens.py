"""The deciding-token loss weight: which characters decide an answer, which tokens carry them,
and a loss that weights exactly those (and is the plain mean at weight 1)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import tiny_config

from smolrgpt_core.modeling.smolrgpt import IGNORE_INDEX, SmolRGPT
from smolrgpt_core.tokens import SmolRGPTTokenizer
from training.collate import Collator, ExampleDataset, encode_example
from training.config import TrainConfig
from training.datasets import load_examples
from training.deciding import deciding_span
from training.synth import templates
from training.trainer import Trainer, loss_sum


def _decided(answer: str, category: str, normalized: object) -> str | None:
    span = deciding_span(answer, category, normalized)
    return None if span is None else answer[span[0] : span[1]]


def test_the_span_is_what_the_metric_reads_in_every_synthetic_phrasing() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        _, answer = templates.left_right(rng, 'pallet', 'transporter', 'right')
        assert _decided(answer, 'left_right', 'right') == 'right'
        _, answer = templates.count_in_buffer(rng, 'left', 3, 5, 2, [3, 5, 6])
        assert _decided(answer, 'count', 3) == 'three'
        _, answer = templates.count_in_buffer(rng, 'right', 2, 3, 1, [])
        assert _decided(answer, 'count', 0) == 'no'
        _, answer = templates.mcq_extreme(rng, 'leftmost', 3, 2)
        assert _decided(answer, 'mcq', 2) == '[Region 2]'


def test_region_numbers_are_never_taken_for_the_answer() -> None:
    # the 1 in [Region 1] is not the count, the 0 in [Region 0] not the distance
    text = 'The leftmost buffer region [Region 1] holds one pallet: [Region 3].'
    assert _decided(text, 'count', 1) == 'one'
    assert _decided('The pallet [Region 0] is 0.5 m from [Region 1].', 'distance', 0.5) == '0.5'
    assert _decided('[Region 2] is 3 meters from [Region 3].', 'distance', 3.0) == '3'
    assert _decided('The pallet [Region 0] is left of [Region 1].', 'mcq', 1) == '[Region 1]'


@pytest.mark.parametrize(
    ('answer', 'category', 'normalized'),
    [
        ('The pallet is on the left.', 'left_right', 'right'),  # not spelt
        ('It is 4.93 meters away.', 'distance', 4.0),  # another number
        ('It holds three pallets.', 'count', 4),
        ('The leftmost is [Region 0].', 'mcq', 2),
        ('Anything.', None, 'left'),  # no category: a caption or a region description
        ('Anything.', 'left_right', None),
        ('Anything.', 'unknown', 'left'),
    ],
)
def test_no_span_where_the_answer_does_not_spell_it(
    answer: str, category: str | None, normalized: object
) -> None:
    assert deciding_span(answer, category, normalized) is None


@pytest.fixture(scope='module')
def tok_and_examples(tiny_dir: Path, synth_root: Path) -> tuple[SmolRGPTTokenizer, list]:
    cfg = SmolRGPT.from_pretrained(tiny_dir).cfg
    tok = SmolRGPTTokenizer.from_dir(tiny_dir, cfg)
    return tok, load_examples('warehouse', synth_root, 'train')


def test_weighted_tokens_spell_the_span_and_the_ids_do_not_change(tok_and_examples) -> None:
    tok, examples = tok_and_examples
    seen = set()
    for ex in examples:
        ids1, plain = encode_example(ex, tok)
        ids4, weights = encode_example(ex, tok, deciding_weight=4.0)
        assert ids4 == ids1  # the weight never changes how an answer is tokenised
        assert [w > 0 for w in weights] == [w > 0 for w in plain]
        assert set(plain) <= {0.0, 1.0} and set(weights) <= {0.0, 1.0, 4.0}
        span = deciding_span(ex.answer, ex.category, ex.normalized_answer)
        assert span is not None, ex.answer
        at = [k for k, w in enumerate(weights) if w == 4.0]
        assert at == list(range(at[0], at[-1] + 1))  # one run of tokens
        # the tokens that hold the span (a token may also hold a neighbour, e.g. "].")
        heavy = tok.decode([ids4[k] for k in at])
        assert ex.answer[span[0] : span[1]].strip() in heavy
        assert len(heavy.strip()) <= span[1] - span[0] + 2
        seen.add(ex.category)
    assert seen == {'left_right', 'count', 'distance', 'mcq'}


def test_the_weighted_loss_is_the_weighted_mean_and_weight_1_is_the_plain_loss(
    tiny_dir: Path, tok_and_examples
) -> None:
    tok, examples = tok_and_examples
    model = SmolRGPT.from_pretrained(tiny_dir).eval()
    kw = {'uses_regions': True, 'max_length': 2048}
    plain = Collator(tok.pad_token_id)(
        [ExampleDataset(examples[:4], tok, **kw)[i] for i in range(4)]
    )
    ones = Collator(tok.pad_token_id, weighted=True)(
        [ExampleDataset(examples[:4], tok, **kw)[i] for i in range(4)]
    )
    heavy_set = ExampleDataset(examples[:4], tok, **kw, deciding_weight=5.0)
    heavy = Collator(tok.pad_token_id, weighted=True)([heavy_set[i] for i in range(4)])
    with torch.no_grad():
        loss, n = loss_sum(model, plain, autocast=False)
        loss1, n1 = loss_sum(model, ones, autocast=False)
        loss5, n5 = loss_sum(model, heavy, autocast=False)
        logits, _ = model(
            heavy['input_ids'],
            heavy['images'],
            heavy['depths'],
            heavy['masks'],
            heavy['attention_mask'],
            image_index=heavy['image_index'],
        )
    assert n == n1 == float((plain['targets'] != IGNORE_INDEX).sum())
    assert loss1.item() == pytest.approx(loss.item(), rel=1e-6)
    per_token = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1),
        heavy['targets'].flatten(),
        ignore_index=IGNORE_INDEX,
        reduction='none',
    )
    w = heavy['target_weights'].flatten()
    assert n5 == pytest.approx(float(w.sum())) and n5 > n  # 4 deciding spans at weight 5
    assert loss5.item() == pytest.approx(float((per_token * w).sum()), rel=1e-5)
    assert bool((w[heavy['targets'].flatten() == IGNORE_INDEX] == 0).all())


def test_a_weighted_run_trains_and_validates_with_the_plain_mean(
    tiny_dir: Path, synth_root: Path, tmp_path: Path
) -> None:
    examples = {
        'train': load_examples('warehouse', synth_root, 'train')[:6],
        'val': load_examples('warehouse', synth_root, 'val')[:2],
    }
    runs = {}
    for weight in (1.0, 4.0):
        cfg = tiny_config(
            'sft', tiny_dir, tmp_path / str(weight), max_steps=3, deciding_token_weight=weight
        )
        torch.manual_seed(0)
        runs[weight] = Trainer(cfg, examples=examples).train()
    assert all(np.isfinite(runs[4.0].losses))
    assert runs[4.0].losses != pytest.approx(runs[1.0].losses)  # the weight reaches the loss
    assert runs[1.0].val_loss is not None and runs[4.0].val_loss is not None


@pytest.mark.parametrize('bad', [0.5, 0, 101, float('nan'), True, '2'])
def test_the_weight_is_bounded(bad: object) -> None:
    with pytest.raises(ValueError, match='deciding_token_weight'):
        TrainConfig(stage='sft', deciding_token_weight=bad)


def test_the_weight_round_trips_through_the_config_file(tmp_path: Path) -> None:
    cfg = TrainConfig(stage='sft', deciding_token_weight=3)
    cfg.to_json(tmp_path / 'c.json')
    assert dataclasses.asdict(TrainConfig.from_json(tmp_path / 'c.json')) == dataclasses.asdict(
        cfg
    )
    assert TrainConfig.from_json(tmp_path / 'c.json').deciding_token_weight == 3.0
