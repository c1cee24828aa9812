"""Write synthetic scenes in the real datasets' layouts.

NVIDIA layout (``--format nvidia``), as ``nvidia/PhysicalAI-Spatial-Intelligence-Warehouse``::

    OUT/{train,val,test}/images/000123.png          RGB
    OUT/{train,val,test}/depths/000123_depth.png    8-bit L, near = dark (range in the scene JSON)
    OUT/train.json, val.json, test.json              LLaVA-style records (test: no answers)

SmolRGPT parquet layout (``--format parquet``), as ``warehouse-rgbd-smolRGPT``::

    OUT/data/{train,val,test}-00000-of-00001.parquet
    (same images/ and depths/ folders; ``dataset_name`` = the name of OUT)

Extras that the real data lacks, for metric depth and the ROS demo::

    OUT/<split>/depth_mm/000123.png     16-bit depth in millimetres
    OUT/<split>/instances/000123.png    8-bit instance ids (0 = background)
    OUT/<split>/scenes/000123.json      intrinsics, camera pose, depth range, objects
    OUT/<split>/depth_m/000123.npy      float32 metres (only with --float-depth)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from smolrgpt_core.masks import rle_encode
from training.data import depth as depth_codec
from training.synth.questions import QA
from training.synth.render import Rendering
from training.synth.scene import Scene

SPLITS = ('train', 'val', 'test')
_PNG = {'compress_level': 3}  # deterministic; level 3 is ~3x faster than 6 for ~5% more bytes


def split_of(index: int, n_scenes: int) -> str:
    """Contiguous split: 80% train, 10% val, 10% test (each at least one scene from 3 on)."""
    n_small = max(1, round(0.1 * n_scenes)) if n_scenes >= 3 else 0
    n_train = n_scenes - 2 * n_small
    if index < n_train:
        return 'train'
    return 'val' if index < n_train + n_small else 'test'


def record_id(seed: int, scene_index: int, qa_index: int) -> str:
    return hashlib.md5(f'smolrgpt-synth/{seed}/{scene_index}/{qa_index}'.encode()).hexdigest()


class SceneWriter:
    def __init__(self, out: Path, formats: set[str], float_depth: bool = False) -> None:
        self.out = out
        self.formats = formats
        self.float_depth = float_depth
        self.records: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        self.rows: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}

    def add(
        self, seed: int, index: int, split: str, scene: Scene, rendering: Rendering, qas: list[QA]
    ) -> None:
        stem = f'{index:06d}'
        image_name, depth_name = f'{stem}.png', f'{stem}_depth.png'
        base = self.out / split
        depth = rendering.depth
        near, far = float(depth.min()), float(depth.max())
        # images; identical bytes for identical arrays
        Image.fromarray(rendering.rgb).save(base / 'images' / image_name, **_PNG)
        Image.fromarray(depth_codec.encode_u8(depth, near, far), mode='L').save(
            base / 'depths' / depth_name, **_PNG
        )
        Image.fromarray(depth_codec.encode_mm(depth)).save(base / 'depth_mm' / image_name, **_PNG)
        Image.fromarray(rendering.instances, mode='L').save(
            base / 'instances' / image_name, **_PNG
        )
        if self.float_depth:
            np.save(base / 'depth_m' / f'{stem}.npy', depth.astype(np.float32))
        self._write_scene_json(base / 'scenes' / f'{stem}.json', scene, near, far)

        rles: dict[int, dict[str, Any]] = {}
        for k, qa in enumerate(qas):
            for instance_id in qa.regions:
                if instance_id not in rles:
                    rles[instance_id] = rle_encode(rendering.instances == instance_id)
            rle = [rles[i] for i in qa.regions]
            qa_id = record_id(seed, index, k)
            self._add_json(split, qa_id, image_name, qa, rle)
            self._add_row(split, qa_id, image_name, depth_name, qa, rle)

    def _write_scene_json(self, path: Path, scene: Scene, near: float, far: float) -> None:
        objects = []
        for obj in scene.objects:
            lo = np.min([b.lo for b in obj.boxes], axis=0) if obj.boxes else None
            hi = np.max([b.hi for b in obj.boxes], axis=0) if obj.boxes else None
            objects.append(
                {
                    'instance_id': obj.instance_id,
                    'kind': obj.kind,
                    'center_m': [round(float(v), 6) for v in obj.center],
                    'bbox_min_m': None if lo is None else [round(float(v), 6) for v in lo],
                    'bbox_max_m': None if hi is None else [round(float(v), 6) for v in hi],
                    'floor_rect_m': None if obj.rect is None else [round(v, 6) for v in obj.rect],
                }
            )
        meta = {
            'intrinsics': scene.camera.intrinsics(),
            'world_from_camera': scene.camera.world_from_camera(),
            'camera_frame': 'OpenCV (x right, y down, z forward); world: x right, y up',
            'depth_png': {'encoding': 'uint8, near = dark, linear', 'near_m': near, 'far_m': far},
            'depth_mm_png': {'encoding': 'uint16 millimetres, 0 = invalid'},
            'depth_kind': 'z-depth along the optical axis',
            'objects': objects,
        }
        path.write_text(json.dumps(meta, indent=1) + '\n', encoding='utf-8')

    def _add_json(
        self, split: str, qa_id: str, image: str, qa: QA, rle: list[dict[str, Any]]
    ) -> None:
        record: dict[str, Any] = {'id': qa_id, 'image': image}
        if split == 'test':  # the real test.json carries no answers
            record['conversations'] = [{'from': 'human', 'value': qa.question}]
            record['rle'] = rle
        else:
            record['conversations'] = [
                {'from': 'human', 'value': qa.question},
                {'from': 'gpt', 'value': qa.answer},
            ]
            record['rle'] = rle
            record['category'] = qa.category
            # the real val key stores mcq answers as digit strings, train.json as numbers
            value = qa.normalized
            record['normalized_answer'] = (
                str(value) if (split == 'val' and qa.category == 'mcq') else value
            )
            record['freeform_answer'] = qa.answer
        self.records[split].append(record)

    def _add_row(
        self, split: str, qa_id: str, image: str, depth: str, qa: QA, rle: list[dict[str, Any]]
    ) -> None:
        user = qa.question.replace('<image>', '').replace('<mask>', '<mask_rgb><mask_depth>')
        self.rows[split].append(
            {
                'id_db': qa_id,
                'id': qa_id,
                'rgb_image': image,
                'depth_image': depth,
                'rle': [{'size': [int(v) for v in r['size']], 'counts': r['counts']} for r in rle],
                'texts': {'user': user, 'assistant': qa.answer},
                'category': qa.category,
                'normalized_answer': str(qa.normalized),
                'dataset_name': self.out.name,
            }
        )

    def prepare(self) -> None:
        sub = ['images', 'depths', 'depth_mm', 'instances', 'scenes']
        if self.float_depth:
            sub.append('depth_m')
        for split in SPLITS:
            for name in sub:
                (self.out / split / name).mkdir(parents=True, exist_ok=True)

    def finish(self) -> dict[str, int]:
        """Write the annotation files; returns the number of QA records per split."""
        if 'nvidia' in self.formats:
            for split in SPLITS:
                (self.out / f'{split}.json').write_text(
                    json.dumps(self.records[split], indent=1) + '\n', encoding='utf-8'
                )
        if 'parquet' in self.formats:
            from training.data.parquet import write_parquet

            for split in SPLITS:
                if self.rows[split]:
                    write_parquet(
                        self.out / 'data' / f'{split}-00000-of-00001.parquet', self.rows[split]
                    )
        return {s: len(self.records[s]) for s in SPLITS}
