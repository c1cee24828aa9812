"""The region-position probe: what it measures, on made-up and on real region vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smolrgpt_core.modeling.smolrgpt import SmolRGPT
from smolrgpt_core.preprocess import masks_to_tensor
from training.datasets import load_examples
from training.probe import fit_probe, main, region_positions


def test_probe_tells_position_carrying_vectors_from_noise() -> None:
    rng = np.random.default_rng(0)
    columns = rng.uniform(0, 1, 400)
    noise = rng.normal(size=(400, 16))
    carrying = noise.copy()
    carrying[:, 3] += 20 * columns  # one direction holds the column
    good, blind = fit_probe(carrying, columns), fit_probe(noise, columns)
    assert good.r2 > 0.9 and good.half_accuracy > 0.9
    assert blind.r2 < 0.1 and blind.half_accuracy < 0.65
    assert (good.n_fit, good.n_test) == (300, 100)
    # the column direction holds var(20 u) = 400/12 of the 16 + 400/12 total variance
    assert good.variance_share == pytest.approx((400 / 12) / (16 + 400 / 12), abs=0.05)
    assert blind.variance_share < 0.02


def test_a_faint_column_is_decodable_but_has_a_small_variance_share() -> None:
    rng = np.random.default_rng(1)
    columns = rng.uniform(0, 1, 400)
    loud = rng.normal(size=(400, 16)) * 10  # other directions, 100x the variance
    loud[:, 0] = columns  # exact, but faint
    result = fit_probe(loud, columns)
    assert result.r2 > 0.99
    assert result.variance_share < 0.01  # 1/12 of 1500, plus chance correlation


def test_region_positions_are_the_mask_centroids(tiny_dir: Path, synth_root: Path) -> None:
    model = SmolRGPT.from_pretrained(tiny_dir).eval()
    examples = load_examples('regions', synth_root, 'train')[:5]
    features, columns = region_positions(model, examples)
    assert features.shape == (len(examples), 2 * model.cfg.lm_hidden_dim)
    for ex, col in zip(examples, columns, strict=True):
        mask = masks_to_tensor(ex.rle)[0].numpy()
        assert col == pytest.approx(np.nonzero(mask)[1].mean() / mask.shape[1], abs=1e-5)


def test_too_few_regions_is_a_one_line_error(tiny_dir: Path, synth_root: Path, capsys) -> None:
    assert (
        main(['--checkpoint', str(tiny_dir), '--data-root', str(synth_root), '--limit', '10']) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith('probe: the probe needs at least 32 regions') and '\n' not in err
