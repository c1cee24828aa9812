"""Training examples for the three stages, from real datasets or synthetic scenes.

Dataset kinds (``TrainConfig.datasets``):

* ``warehouse``: warehouse QA; NVIDIA layout (``train.json``) or SmolRGPT parquet (``data/``).
* ``captions``: stage-I image captions. A parquet dataset (llava-cc3m-smolRGPT layout) is read
  as is; a synthetic dataset (``<split>/scenes/*.json`` from ``smolrgpt synth``) gets captions
  made in memory from its scene files and instance masks, e.g. "A warehouse with 3 pallets,
  2 buffer regions and a transporter."
* ``regions``: stage-II region descriptions. A parquet dataset (osd-110k-smolRGPT layout) is
  read as is; a synthetic one gets, per scene, descriptions of every visible buffer region and
  a few other visible objects (kind, distance from the camera, side of the image; whether a
  pallet stands in a buffer region, how many pallets a buffer region holds) made from the scene
  files.
* ``pointers``: synthetic only, region-pointing questions ("Which of the regions <mask> <mask>
  is the shelf?" -> "The shelf is [Region 1].") that teach what the mcq and count answers
  need: the place of a region in the question's list. A decoder trained from scratch learns
  them only with ``prompt_region_labels`` on (measured in docs/training.md).
* ``containment``: synthetic only, pairwise questions "Is the pallet <mask> in the buffer
  region <mask>?" -> "Yes, the pallet [Region 0] stands in the buffer region [Region 1].",
  half yes and half no where the scene allows: the relation a count answer applies to each
  pallet it lists, asked one pair at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
import json
from pathlib import Path
from typing import Any

import numpy as np

from smolrgpt_core.masks import rle_encode
from training.data.samples import Sample, Turn
from training.synth.scene import in_rect_xz
from training.synth.templates import masks, number_word, region

CAPTION_PROMPTS = (
    'Describe the image briefly.',
    'What does this warehouse scene contain?',
    'Give a short caption of the picture.',
)
REGION_PROMPTS = (
    'Describe the region <mask>.',
    'What is <mask>, and where is it?',
    'Tell me about the object <mask>.',
)
REGIONS_PER_SCENE = 4
POINTERS_PER_SCENE = 4  # questions answered by a region's place in the list ('[Region k]')
CONTAINMENT_PER_SCENE = 4  # (pallet, buffer region) pairs: does the buffer region hold it?
_NOUNS = {
    'pallet': ('pallet', 'pallets'),
    'buffer': ('buffer region', 'buffer regions'),
    'transporter': ('transporter', 'transporters'),
    'shelf': ('shelf', 'shelves'),
}


def _parquet(data_root: Path, split: str) -> list[Sample]:
    from training.data.parquet import ParquetReader

    return list(ParquetReader(data_root, split=split))


def _is_parquet(data_root: Path) -> bool:
    return (data_root / 'data').is_dir()


def load_examples(kind: str, data_root: str | Path, split: str, seed: int = 0) -> list[Sample]:
    """All examples of one dataset kind and split (``train`` or ``val``)."""
    root = Path(data_root)
    if kind == 'warehouse':
        if _is_parquet(root):
            return _parquet(root, split)
        from training.data.warehouse_json import WarehouseJsonReader

        return list(WarehouseJsonReader(root, split, check_files=False))
    if kind in _SCENE_BUILDERS:
        if _is_parquet(root):
            if kind in ('pointers', 'containment'):
                raise ValueError(
                    f'{root}: the {kind} kind is made from `smolrgpt synth` '
                    f'scene files; a parquet dataset has none'
                )
            return _parquet(root, split)
        scenes = sorted((root / split / 'scenes').glob('*.json'))
        if not scenes:
            raise FileNotFoundError(
                f'{root / split / "scenes"}: no scene files (expected a '
                f'`smolrgpt synth` output or a parquet dataset)'
            )
        build = _SCENE_BUILDERS[kind]
        out: list[Sample] = []
        for path in scenes:
            rng = np.random.default_rng([seed, int(path.stem)])
            out.extend(build(SceneFiles(root / split, path.stem), rng))
        return out
    raise ValueError(
        f'unknown dataset kind {kind!r}; expected warehouse, {", ".join(_SCENE_BUILDERS)}'
    )


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

    def sample(
        self,
        sample_id: str,
        question: str,
        answer: str,
        rle: list[dict[str, Any]] | None = None,
        category: str | None = None,
    ) -> Sample:
        """A one-turn sample about this scene (depth only where it has regions)."""
        return Sample(
            id=sample_id,
            turns=(Turn(question, answer),),
            rgb_path=self.rgb,
            source='synth-scenes',
            depth_path=self.depth if rle else None,
            rle=rle,
            category=category,
            split=self.base.name,
        )


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


def _caption(scene: SceneFiles, rng: np.random.Generator) -> list[Sample]:
    objects = visible_objects(scene.meta(), scene.instances())
    prompt = CAPTION_PROMPTS[int(rng.integers(len(CAPTION_PROMPTS)))]
    return [scene.sample(f'caption-{scene.base.name}-{scene.stem}', prompt, caption_text(objects))]


def region_text(
    obj: dict[str, Any], camera_from_world: np.ndarray, column: float, where: str = ''
) -> str:
    """'A pallet, 7.93 meters from the camera, on the left of the image.' (+ ``where``)"""
    centre = camera_from_world @ np.array([*obj['center_m'], 1.0])
    metres = float(np.linalg.norm(centre[:3]))
    noun = _noun(obj)
    article = 'An' if noun[0] in 'aeiou' else 'A'
    text = (
        f'{article} {noun}, {metres:.2f} meters from the camera, {side_of(column)} of the image.'
    )
    return f'{text} {where}' if where else text


def side_of(column: float) -> str:
    """Image third of a mask centroid column in [0, 1]."""
    if column < 1 / 3:
        return 'on the left'
    return 'on the right' if column > 2 / 3 else 'in the middle'


def _noun(obj: dict[str, Any]) -> str:
    return _NOUNS.get(obj['kind'], (obj['kind'],))[0]


def where_text(obj: dict[str, Any], visible: list[dict[str, Any]]) -> str:
    """What the count questions hinge on: whether a pallet stands in a buffer region, and how
    many of the visible pallets a buffer region holds."""
    if obj['kind'] == 'pallet':
        inside = any(
            in_rect_xz(o['floor_rect_m'], obj['center_m'])
            for o in visible
            if o['kind'] == 'buffer'
        )
        return f'It stands {"in a buffer region" if inside else "outside the buffer regions"}.'
    if obj['kind'] == 'buffer':
        n = sum(
            in_rect_xz(obj['floor_rect_m'], o['center_m'])
            for o in visible
            if o['kind'] == 'pallet'
        )
        # spelt as the count answers spell it ("two pallets"), so both share the number words
        return f'It holds {number_word(n)} pallet{"" if n == 1 else "s"}.'
    return ''


def pointer_question(
    rng: np.random.Generator, labels: Sequence[str], what: str
) -> tuple[str, str, list[int]] | None:
    """'Which of the regions <mask> <mask> <mask> is the shelf?' -> 'The shelf is [Region 1].'

    ``labels`` holds one label per visible object (its kind noun, or its image third); the
    question lists 2-4 of them, of which exactly one carries the asked-for label, and the
    answer names that one's place in the list, as the mcq and count answers do. Returns
    (question, answer, the listed objects' indices) or None when no label is unique enough.
    """
    distinct = sorted(set(labels))
    if len(distinct) < 2:
        return None
    target_label = distinct[int(rng.integers(len(distinct)))]
    targets = [i for i, lab in enumerate(labels) if lab == target_label]
    others = [i for i, lab in enumerate(labels) if lab != target_label]
    listed = [targets[int(rng.integers(len(targets)))]]
    listed += [others[int(k)] for k in rng.permutation(len(others))[: int(rng.integers(1, 4))]]
    listed = [listed[int(k)] for k in rng.permutation(len(listed))]
    k = listed.index(next(i for i in listed if labels[i] == target_label))
    refs = masks(len(listed))
    if what == 'kind':
        question = f'Which of the regions {refs} is the {target_label}?'
        return question, f'The {target_label} is {region(k)}.', listed
    question = f'Which of the regions {refs} is {target_label} of the image?'
    return question, f'{region(k)} is {target_label} of the image.', listed


def _visible_regions(
    scene: SceneFiles, meta: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[np.ndarray], list[float]]:
    """The scene's visible objects, their instance masks [H, W] and mask centroid columns in
    [0, 1]."""
    instances = scene.instances()
    objects = visible_objects(meta, instances)
    object_masks = [instances == obj['instance_id'] for obj in objects]
    columns = [float(np.nonzero(m)[1].mean()) / instances.shape[1] for m in object_masks]
    return objects, object_masks, columns


def _regions(scene: SceneFiles, rng: np.random.Generator) -> list[Sample]:
    """Descriptions of every visible buffer region and REGIONS_PER_SCENE other visible
    objects."""
    meta = scene.meta()
    camera_from_world = np.linalg.inv(np.array(meta['world_from_camera']))
    objects, object_masks, columns = _visible_regions(scene, meta)
    buffers = [i for i, o in enumerate(objects) if o['kind'] == 'buffer']
    others = [i for i, o in enumerate(objects) if o['kind'] != 'buffer']
    chosen = buffers + [others[int(k)] for k in rng.permutation(len(others))[:REGIONS_PER_SCENE]]
    out = []
    name = f'{scene.base.name}-{scene.stem}'
    for i in chosen:
        obj = objects[i]
        prompt = REGION_PROMPTS[int(rng.integers(len(REGION_PROMPTS)))]
        text = region_text(obj, camera_from_world, columns[i], where_text(obj, objects))
        out.append(
            scene.sample(
                f'region-{name}-{obj["instance_id"]}',
                prompt,
                text,
                [rle_encode(object_masks[i])],
                'region',
            )
        )
    return out


def _pointers(scene: SceneFiles, rng: np.random.Generator) -> list[Sample]:
    """POINTERS_PER_SCENE region-pointing questions, alternately by kind and by image third."""
    objects, object_masks, columns = _visible_regions(scene, scene.meta())
    name = f'{scene.base.name}-{scene.stem}'
    out = []
    for n in range(POINTERS_PER_SCENE):
        what = ('kind', 'side')[n % 2]
        labels = [_noun(o) for o in objects] if what == 'kind' else [side_of(c) for c in columns]
        made = pointer_question(rng, labels, what)
        if made is None:
            continue
        question, answer, listed = made
        out.append(
            scene.sample(
                f'pointer-{name}-{n}',
                question,
                answer,
                [rle_encode(object_masks[i]) for i in listed],
                'pointer',
            )
        )
    return out


def containment_question(
    rng: np.random.Generator, inside: bool, pallet_first: bool
) -> tuple[str, str]:
    """'Is the pallet <mask> in the buffer region <mask>?' -> 'Yes, ...' / 'No, ...'; the
    masks come in the question's order, the pallet first when ``pallet_first``."""
    if pallet_first:
        question = _CONTAINMENT_PALLET_FIRST[int(rng.integers(len(_CONTAINMENT_PALLET_FIRST)))]
        p, b = region(0), region(1)
    else:
        question = _CONTAINMENT_BUFFER_FIRST[int(rng.integers(len(_CONTAINMENT_BUFFER_FIRST)))]
        p, b = region(1), region(0)
    # the deciding word first: the answer hinges on one token, as a left_right answer does
    if inside:
        return question, f'Yes, the pallet {p} stands in the buffer region {b}.'
    return question, f'No, the pallet {p} stands outside the buffer region {b}.'


_CONTAINMENT_PALLET_FIRST = (
    'Is the pallet <mask> in the buffer region <mask>?',
    'Does the pallet <mask> stand inside the buffer region <mask>?',
)
_CONTAINMENT_BUFFER_FIRST = (
    'Does the buffer region <mask> hold the pallet <mask>?',
    'Does the buffer region <mask> contain the pallet <mask>?',
)


def _containment(scene: SceneFiles, rng: np.random.Generator) -> list[Sample]:
    """CONTAINMENT_PER_SCENE (pallet, buffer region) questions, alternately a pair where the
    pallet stands in the buffer region and one where it does not: the relation a count answer
    applies to every pallet it lists. A scene without both kinds of pair gives the kind it
    has."""
    objects, object_masks, _ = _visible_regions(scene, scene.meta())
    pallets = [i for i, o in enumerate(objects) if o['kind'] == 'pallet']
    buffers = [i for i, o in enumerate(objects) if o['kind'] == 'buffer']
    pairs: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
    for p in pallets:
        for b in buffers:
            pairs[in_rect_xz(objects[b]['floor_rect_m'], objects[p]['center_m'])].append((p, b))
    order = {k: [v[int(i)] for i in rng.permutation(len(v))] for k, v in pairs.items()}
    name = f'{scene.base.name}-{scene.stem}'
    out = []
    for n in range(CONTAINMENT_PER_SCENE):
        inside = n % 2 == 0
        if not order[inside]:
            inside = not inside
        if not order[inside]:
            break
        p, b = order[inside].pop()
        pallet_first = bool(rng.random() < 0.5)
        question, answer = containment_question(rng, inside, pallet_first)
        listed = (p, b) if pallet_first else (b, p)
        out.append(
            scene.sample(
                f'containment-{name}-{n}',
                question,
                answer,
                [rle_encode(object_masks[i]) for i in listed],
                'containment',
            )
        )
    return out


# dataset kinds made from `smolrgpt synth` scene files
_SCENE_BUILDERS: dict[str, Callable[[SceneFiles, np.random.Generator], list[Sample]]] = {
    'captions': _caption,
    'regions': _regions,
    'pointers': _pointers,
    'containment': _containment,
}
