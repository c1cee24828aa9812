"""The shipped default model: loads, answers a synthetic question, stays small."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smolrgpt_core.inference.engine import Frame, SpatialQueryEngine
from smolrgpt_core.modeling.smolrgpt import SmolRGPT
from smolrgpt_core.settings import InferenceSettings
from training.data.sensors import sensor_depth
from training.datasets import load_examples

MODEL = Path(__file__).resolve().parents[2] / 'models' / 'smolrgpt-tiny-synthetic'


def test_files_and_size() -> None:
    names = {p.name for p in MODEL.iterdir()}
    assert {
        'config.json',
        'model.safetensors',
        'tokenizer.json',
        'tokenizer_config.json',
        'MODEL_CARD.md',
    } <= names
    assert sum(p.stat().st_size for p in MODEL.iterdir()) < 30e6
    assert 'majority' in (MODEL / 'MODEL_CARD.md').read_text()


def test_loads_and_answers_a_synthetic_question(synth_root: Path) -> None:
    from PIL import Image

    model = SmolRGPT.from_pretrained(MODEL)
    assert model.cfg.lm_vocab_size == model.decoder.token_embedding.weight.shape[0]
    engine = SpatialQueryEngine.from_checkpoint(MODEL)
    ex = next(
        e for e in load_examples('warehouse', synth_root, 'train') if e.category == 'left_right'
    )
    from smolrgpt_core.masks import rles_decode

    rgb = np.asarray(Image.open(ex.rgb_path).convert('RGB'))
    # what the camera delivers: millimetres for a metric-depth model, else the 8-bit image
    depth, encoding = sensor_depth(
        ex.rgb_path, ex.depth_path, rgb.shape[:2], metric=model.cfg.depth_input == 'metric'
    )
    masks = rles_decode(ex.rle).astype(bool)
    frame = Frame(rgb, depth, masks, [7, 9], depth_encoding=encoding)
    answer = engine.ask(frame, ex.question, [7, 9])
    assert answer.text
    assert answer.category == 'left_right'
    assert answer.normalized_answer in ('left', 'right')


@pytest.mark.parametrize('size', [(144, 256), (360, 640)])
def test_answers_metric_depth_frames(synth_root: Path, size: tuple[int, int]) -> None:
    engine = SpatialQueryEngine.from_checkpoint(
        MODEL, InferenceSettings.from_flat({'generation.max_new_tokens': 40})
    )
    h, w = size
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    depth = rng.uniform(2.0, 20.0, (h, w)).astype(np.float32)
    masks = np.zeros((2, h, w), bool)
    masks[0, h // 2 :, : w // 4] = True
    masks[1, h // 2 :, -w // 4 :] = True
    frame = Frame(rgb, depth, masks, [0, 1], depth_encoding='32FC1')
    answer = engine.ask(
        frame, 'What is the distance between the pallet <mask> and the pallet <mask>?', [0, 1]
    )
    assert answer.category == 'distance'


def test_the_shipped_model_reads_metric_depth_and_warns_on_an_8_bit_image(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The recipe's fixed range travels in config.json; an 8-bit image carries no scale."""
    import json
    import logging

    recipe = json.loads(
        (MODEL.parents[1] / 'training' / 'configs' / 'embedded' / 'model.json').read_text()
    )
    model = SmolRGPT.from_pretrained(MODEL)
    assert (model.cfg.depth_input, model.cfg.depth_min_m, model.cfg.depth_max_m) == (
        recipe['depth_input'],
        recipe['depth_min_m'],
        recipe['depth_max_m'],
    )
    engine = SpatialQueryEngine.from_checkpoint(MODEL)
    assert engine.depth_range == (recipe['depth_min_m'], recipe['depth_max_m'])
    h, w = 96, 128
    masks = np.zeros((2, h, w), bool)
    masks[0, :, :10] = masks[1, :, -10:] = True
    frame = Frame(np.zeros((h, w, 3), np.uint8), np.zeros((h, w), np.uint8), masks, [0, 1])
    with caplog.at_level(logging.WARNING):
        engine.ask(frame, 'Is the pallet <mask> to the left of the pallet <mask>?', [0, 1])
    assert 'send 16UC1/32FC1 depth' in caplog.text
