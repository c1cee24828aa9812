"""Training examples for the three stages, from real datasets or synthetic scenes.

Dataset kinds (``TrainConfig.datasets``):

* ``warehouse``: warehouse QA; NVIDIA layout (``train.json``) or SmolRGPT parquet (``data/``).
* ``captions``: stage-I image captions. A parquet dataset (llava-cc3m-smolRGPT layout) is read
  as is; a synthetic dataset (``<split>/scenes/*.json`` from ``smolrgpt synth``) gets captions
  made in memory from its scene files and instance masks, e.g. "A warehouse with 3 pallets,
  2 buffer regions and a transporter."
* ``regions``: stage-II region descriptions. A parquet dataset (osd-110k-smolRGPT layout) is
  read as is; a synthetic one gets, per scene, descriptions of a few visible objects (kind,
  distance from the camera, side of the image) made from the scene files.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
from typing import Any

import numpy as np

from smolrgpt_core.masks import rle_encode
from training.data.samples import Sample

CAPTION_PROMPTS = ('Describe the image briefly.', 'What does this warehouse scene contain?',
                   'Give a short caption of the picture.')
REGION_PROMPTS = ('Describe the region <mask>.', 'What is <mask>, and where is it?',
                  'Tell me about the object <mask>.')
REGIONS_PER_SCENE = 4
_NOUNS = {'pallet': ('pallet', 'pallets'), 'buffer': ('buffer region', 'buffer regions'),
          'transporter': ('transporter', 'transporters'), 'shelf': ('shelf', 'shelves')}


@dataclass
class Example:
    """One training/inspection item: chat turns about one image (and its regions)."""

    id: str
    turns: list[tuple[str, str | None]]  # (user, assistant); dataset placeholders kept
    rgb_path: Path
    depth_path: Path | None = None
    rle: list[dict[str, Any]] | None = None
    category: str | None = None
    normalized_answer: Any = None

    @property
    def question(self) -> str:
        return self.turns[0][0]

    @property
    def answer(self) -> str | None:
        return self.turns[-1][1]


def from_sample(sample: Sample) -> Example:
    turns = [(t.user, t.assistant) for t in sample.turns] or [(sample.question, sample.answer)]
    if sample.rgb_path is None:
        raise ValueError(f'sample {sample.id} has no image')
    return Example(sample.id, turns, sample.rgb_path, sample.depth_path, sample.rle,
                   sample.category, sample.normalized_answer)


def _parquet(data_root: Path, split: str) -> list[Example]:
    from training.data.parquet import ParquetReader

    return [from_sample(s) for s in ParquetReader(data_root, split=split)]


def _is_parquet(data_root: Path) -> bool:
    return (data_root / 'data').is_dir()


def load_examples(kind: str, data_root: str | Path, split: str, seed: int = 0
                  ) -> list[Example]:
    """All examples of one dataset kind and split (``train`` or ``val``)."""
    root = Path(data_root)
    if kind == 'warehouse':
        if _is_parquet(root):
            return _parquet(root, split)
        from training.data.warehouse_json import WarehouseJsonReader

        return [from_sample(s) for s in WarehouseJsonReader(root, split, check_files=False)]
    if kind in ('captions', 'regions'):
        if _is_parquet(root):
            return _parquet(root, split)
        scenes = sorted((root / split / 'scenes').glob('*.json'))
        if not scenes:
            raise FileNotFoundError(f'{root / split / "scenes"}: no scene files (expected a '
                                    f'`smolrgpt synth` output or a parquet dataset)')
        build = _caption if kind == 'captions' else _regions
        out: list[Example] = []
        for path in scenes:
            rng = np.random.default_rng([seed, int(path.stem)])
            out.extend(build(SceneFiles(root / split, path.stem), rng))
        return out
    raise ValueError(f'unknown dataset kind {kind!r}; expected warehouse, captions or regions')


# synthetic captions and region descriptions ------------------------------------------------
@dataclass
class SceneFiles:
    base: Path
    stem: str

    @property
    def rgb(self) -> Path:
        return self.base / 'images' / f'{self.stem}.png'

    @property
    def depth(self) -> Path:
        return self.base / 'depths' / f'{self.stem}_depth.png'

    def meta(self) -> dict[str, Any]:
        return json.loads((self.base / 'scenes' / f'{self.stem}.json').read_text('utf-8'))

    def instances(self) -> np.ndarray:
        from PIL import Image

        with Image.open(self.base / 'instances' / f'{self.stem}.png') as image:
            return np.asarray(image)


def visible_objects(meta: dict[str, Any], instances: np.ndarray) -> list[dict[str, Any]]:
    """Objects with enough visible pixels (the generator's own threshold)."""
    min_area = max(40, instances.size // 2500)
    ids, counts = np.unique(instances, return_counts=True)
    area = dict(zip(ids.tolist(), counts.tolist()))
    return [o for o in meta['objects'] if area.get(o['instance_id'], 0) >= min_area]


def _count_phrase(kind: str, n: int) -> str:
    one, many = _NOUNS.get(kind, (kind, kind + 's'))
    article = 'an' if one[0] in 'aeiou' else 'a'
    return f'{article} {one}' if n == 1 else f'{n} {many}'


def caption_text(objects: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for obj in objects:
        counts[obj['kind']] = counts.get(obj['kind'], 0) + 1
    parts = [_count_phrase(k, counts[k]) for k in _NOUNS if counts.get(k)]
    if not parts:
        return 'An empty warehouse floor.'
    listed = parts[0] if len(parts) == 1 else ', '.join(parts[:-1]) + ' and ' + parts[-1]
    return f'A warehouse with {listed}.'


def _caption(scene: SceneFiles, rng: np.random.Generator) -> list[Example]:
    objects = visible_objects(scene.meta(), scene.instances())
    prompt = CAPTION_PROMPTS[int(rng.integers(len(CAPTION_PROMPTS)))]
    return [Example(f'caption-{scene.base.name}-{scene.stem}', [(prompt, caption_text(objects))],
                    scene.rgb)]


def region_text(obj: dict[str, Any], camera_from_world: np.ndarray, column: float) -> str:
    """'A pallet, 7.93 meters from the camera, on the left of the image.'"""
    centre = camera_from_world @ np.array([*obj['center_m'], 1.0])
    metres = float(np.linalg.norm(centre[:3]))
    side = 'in the middle'
    if column < 1 / 3 or column > 2 / 3:
        side = 'on the left' if column < 1 / 3 else 'on the right'
    noun = _NOUNS.get(obj['kind'], (obj['kind'],))[0]
    article = 'An' if noun[0] in 'aeiou' else 'A'
    return f'{article} {noun}, {metres:.2f} meters from the camera, {side} of the image.'


def _regions(scene: SceneFiles, rng: np.random.Generator) -> list[Example]:
    meta, instances = scene.meta(), scene.instances()
    camera_from_world = np.linalg.inv(np.array(meta['world_from_camera']))
    objects = visible_objects(meta, instances)
    out = []
    for k in rng.permutation(len(objects))[:REGIONS_PER_SCENE]:
        obj = objects[int(k)]
        mask = instances == obj['instance_id']
        column = float(np.nonzero(mask)[1].mean()) / instances.shape[1]
        prompt = REGION_PROMPTS[int(rng.integers(len(REGION_PROMPTS)))]
        out.append(Example(f'region-{scene.base.name}-{scene.stem}-{obj["instance_id"]}',
                           [(prompt, region_text(obj, camera_from_world, column))],
                           scene.rgb, scene.depth, [rle_encode(mask)], 'region'))
    return out
