"""Reader for the warehouse dataset in NVIDIA's layout (AI City Challenge 2025 Track 3).

::

    DATA_ROOT/{train,val,test}.json
    DATA_ROOT/<split>/images/<image>              RGB PNG
    DATA_ROOT/<split>/depths/<stem>_depth.png     8-bit depth, near = dark

Records: ``id``, ``image``, ``conversations`` (human, then gpt), ``rle`` (one per ``<mask>``),
and for train/val ``category``, ``normalized_answer`` (string or number) and
``freeform_answer``. ``test.json`` has no answers.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
from typing import Any

from smolrgpt_core.normalize import CATEGORIES, NormalizationError, canonical
from training.data.samples import Sample, Turn
from training.data.validation import (
    RecordError,
    RecordPolicy,
    ValidationReport,
    check_file,
    check_regions,
    image_size,
    record_path,
)

MASK = '<mask>'


def depth_name(image: str) -> str:
    """'000190.png' -> '000190_depth.png', the dataset's depth file name."""
    stem = image[:-4] if image.lower().endswith('.png') else Path(image).stem
    return f'{stem}_depth.png'


class WarehouseJsonReader:
    """Iterate the samples of one split; bad records are skipped and counted, or raise."""

    def __init__(
        self,
        data_root: str | Path,
        split: str = 'train',
        strict: bool = False,
        check_files: bool = True,
    ) -> None:
        self.data_root = Path(data_root)
        self.split = split
        self.check_files = check_files
        self.report = ValidationReport()
        self.policy = RecordPolicy(strict, self.report)
        self.annotation_path = self.data_root / f'{split}.json'
        if not self.annotation_path.is_file():
            raise FileNotFoundError(
                f'{self.annotation_path} not found (is --data-root the '
                'folder holding train.json/val.json/test.json?)'
            )

    def records(self) -> list[dict[str, Any]]:
        data = json.loads(self.annotation_path.read_text(encoding='utf-8'))
        if not isinstance(data, list):
            raise ValueError(f'{self.annotation_path}: expected a JSON list of records')
        return data

    def __iter__(self) -> Iterator[Sample]:
        for index, record in enumerate(self.records()):
            try:
                sample = self.parse(record, index)
            except RecordError as error:
                self.policy.reject(error)
                continue
            self.report.read += 1
            yield sample

    def parse(self, record: Any, index: int = 0) -> Sample:
        if not isinstance(record, dict):
            raise RecordError(f'#{index}', 'not a JSON object')
        record_id = str(record.get('id', f'#{index}'))
        for key in ('id', 'image', 'conversations', 'rle'):
            if key not in record:
                raise RecordError(record_id, f'missing field {key!r}')
        turns = record['conversations']
        if (
            not isinstance(turns, list)
            or not turns
            or not isinstance(turns[0], dict)
            or ('value' not in turns[0])
        ):
            raise RecordError(record_id, 'conversations must start with a {from, value} turn')
        question = str(turns[0]['value'])
        answer = record.get('freeform_answer')
        if answer is None and len(turns) > 1 and isinstance(turns[1], dict):
            answer = turns[1].get('value')

        image_dir = self.data_root / self.split
        image = str(record['image'])
        rgb_path = record_path(record_id, image_dir / 'images', image, 'RGB image')
        depth_path = record_path(record_id, image_dir / 'depths', depth_name(image), 'depth image')
        image_hw = None
        if self.check_files:
            check_file(record_id, rgb_path, 'RGB image')
            check_file(record_id, depth_path, 'depth image')
            image_hw = image_size(rgb_path)
        check_regions(record_id, record['rle'], question.count(MASK), image_hw)

        category = record.get('category')
        normalized = record.get('normalized_answer')
        if category is not None and category not in CATEGORIES:
            raise RecordError(record_id, f'unknown category {category!r}')
        if category is not None and normalized is not None:
            try:
                normalized = canonical(category, normalized)
            except (NormalizationError, ValueError) as exc:
                raise RecordError(
                    record_id, f'bad normalized_answer {normalized!r}: {exc}'
                ) from exc
        scene_path = record_path(
            record_id, image_dir / 'scenes', f'{Path(image).stem}.json', 'scene'
        )
        meta = {'image': record['image']}
        if scene_path.is_file():  # synthetic data: intrinsics and the depth range
            meta['scene_path'] = scene_path
        return Sample(
            id=record_id,
            turns=(Turn(question, None if answer is None else str(answer)),),
            source='warehouse-json',
            rgb_path=rgb_path,
            depth_path=depth_path,
            rle=list(record['rle']),
            category=category,
            normalized_answer=normalized,
            split=self.split,
            meta=meta,
        )
