"""Generate a synthetic dataset: scene -> rendering -> questions -> files."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from training.synth.questions import make_questions
from training.synth.render import render
from training.synth.scene import make_scene
from training.synth.writer import SceneWriter, split_of

log = logging.getLogger(__name__)


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """One independent stream per scene: scene i is the same whatever --scenes says."""
    return np.random.default_rng([seed, index])


def generate(
    out: Path,
    n_scenes: int,
    seed: int,
    width: int,
    height: int,
    formats: set[str],
    per_category: int = 2,
    float_depth: bool = False,
    previews: int = 0,
    progress: bool = True,
) -> dict[str, int]:
    from tqdm import tqdm

    writer = SceneWriter(Path(out), formats, float_depth=float_depth)
    writer.prepare()
    for index in tqdm(range(n_scenes), desc='scenes', unit='scene', disable=not progress):
        rng = scene_rng(seed, index)
        scene = make_scene(rng, width, height)
        rendering = render(scene, rng)
        qas = make_questions(scene, rendering.instances, rng, per_category)
        writer.add(seed, index, split_of(index, n_scenes), scene, rendering, qas)
        if index < previews:
            from training.synth.preview import save_preview

            save_preview(Path(out) / 'previews' / f'{index:06d}.png', rendering)
    return writer.finish()
