"""Fixtures for the submission, classifier and bench tests: small synthetic data sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
import pytest

from smolrgpt_core.masks import rle_encode
from training.synth.generate import generate


@pytest.fixture(scope='session')
def warehouse_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 tiny scenes, NVIDIA layout: train 11 questions on 3 images, val 3, test 4."""
    out = tmp_path_factory.mktemp('submission') / 'warehouse'
    generate(
        out, 5, seed=5, width=128, height=72, formats={'nvidia'}, per_category=1, progress=False
    )
    return out


@pytest.fixture(scope='session')
def classifier_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """More scenes (questions only matter) for the classifier: about 200 train questions."""
    out = tmp_path_factory.mktemp('classifier') / 'warehouse'
    generate(out, 30, seed=11, width=160, height=90, formats={'nvidia'}, progress=False)
    return out


BENCH_ITEMS = [  # (category, type, question, ground truth)
    (
        'left_predicate',
        'qualitative',
        'Is <mask> to the left of <mask>?',
        'Yes, Region [0] is to the left of Region [1].',
    ),
    ('tall_choice', 'qualitative', 'Which is taller, <mask> or <mask>?', 'Region [1] is taller.'),
    (
        'distance_data',
        'quantitative',
        'How far apart are <mask> and <mask>?',
        'They are 2.5 meters apart.',
    ),
    ('width_data', 'quantitative', 'How wide is <mask>?', 'It is 45 inches wide.'),
    (
        'direction',
        'quantitative',
        'If you are at <mask>, where will you find <mask>?',
        "Region [1] is roughly at 3 o'clock from Region [0].",
    ),
]


@pytest.fixture()
def bench_root(tmp_path: Path) -> Path:
    """A five-item SpatialRGPT-Bench in its own record format, two images, depth maps."""
    root = tmp_path / 'bench'
    (root / 'images').mkdir(parents=True)
    (root / 'depths').mkdir()
    rng = np.random.default_rng(0)
    h, w = 48, 64
    records = []
    for index, (category, kind, question, answer) in enumerate(BENCH_ITEMS):
        image = f'scene{index % 2}.jpg'
        if not (root / 'images' / image).exists():
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
                root / 'images' / image
            )
            Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8)).save(
                root / 'depths' / image.replace('.jpg', '.png')
            )
        masks = []
        for k in range(question.count('<mask>')):
            mask = np.zeros((h, w), dtype=bool)
            mask[5 + 10 * k : 15 + 10 * k, 5 + 20 * k : 25 + 20 * k] = True
            masks.append(rle_encode(mask))
        records.append(
            {
                'id': f'{kind}_{index}',
                'image_info': {'file_path': f'images/{image}', 'height': h, 'width': w},
                'text_q': question.replace('<mask>', 'Region [k]'),
                'qa_info': {'type': kind, 'category': category},
                'conversations': [
                    {'from': 'human', 'value': f'<image>\n{question}'},
                    {'from': 'gpt', 'value': answer},
                ],
                'rle': masks,
                'bbox': [[0, 0, 10, 10]] * len(masks),
            }
        )
    (root / 'SpatialRGPT-Bench_v1.json').write_text(json.dumps(records))
    return root
