"""Reader for SpatialRGPT-Bench records (``SpatialRGPT-Bench_v1.json``, spatial-benchmarks §1.2).

Records: ``id``, ``image_info`` {file_path, height, width}, ``text_q``, ``qa_info`` {type,
category}, ``conversations`` (human with ``<mask>``, gpt = ground truth), ``rle`` (COCO RLE per
region) and ``bbox`` (xyxy, the fallback when there is no RLE). Images live under an image
root as ``<image root>/<file_path>``; the bench itself has no depth (an optional depth root
holds ``<stem>.png`` per image, e.g. SmolRGPT's precomputed ``depths/``).
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
from typing import Any

from training.data.samples import Sample, Turn
from training.data.validation import (
    RecordError,
    RecordPolicy,
    ValidationReport,
    check_file,
    check_regions,
    record_path,
)

BENCH_FILE = 'SpatialRGPT-Bench_v1.json'
MASK = '<mask>'


class BenchFormatError(ValueError):
    """A bench file that is not a list of bench records."""


def bench_items(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Bench records -> ``{id, category, type, question, answer}`` items for the scorer."""
    items = []
    for index, record in enumerate(records):
        try:
            turns = record['conversations']
            items.append(
                {
                    'id': str(record['id']),
                    'category': record['qa_info']['category'],
                    'type': record['qa_info'].get('type'),
                    'question': record.get('text_q') or turns[0]['value'],
                    'answer': turns[1]['value'],
                }
            )
        except (KeyError, IndexError, TypeError) as exc:
            raise BenchFormatError(
                f'bench record {record.get("id", index) if isinstance(record, dict) else index} '
                f'lacks {exc} (needs id, qa_info.category and a gpt answer turn)'
            ) from exc
    return items


def normalized_bench_answer(category: str, answer: str) -> str | int | float | None:
    """The rule judge's reading of a GT answer: metres, clock hour, yes/no or region index."""
    from smolrgpt_core.normalize import strip_regions
    from smolrgpt_core.text_numbers import length_in_metres
    from training.metrics.spatialrgpt import clock_hour, judge_choice, judge_predicate

    if category == 'direction':
        return clock_hour(strip_regions(answer))
    if category.endswith('_data'):
        return length_in_metres(strip_regions(answer))
    relation = category.split('_')[0]
    if category.endswith('_predicate'):
        return judge_predicate(answer, relation)
    return judge_choice(answer, relation)


def boxes_to_rles(boxes: list[list[float]], image_hw: tuple[int, int]) -> list[dict[str, Any]]:
    """xyxy boxes -> filled-rectangle masks as RLE."""
    import numpy as np

    from smolrgpt_core.masks import rle_encode

    height, width = image_hw
    rles = []
    for x1, y1, x2, y2 in boxes:
        mask = np.zeros(image_hw, dtype=bool)
        mask[
            max(0, int(y1)) : min(height, int(np.ceil(y2))),
            max(0, int(x1)) : min(width, int(np.ceil(x2))),
        ] = True
        rles.append(rle_encode(mask))
    return rles


class SpatialRGPTBenchReader:
    def __init__(
        self,
        data_root: str | Path,
        image_root: str | Path | None = None,
        depth_root: str | Path | None = None,
        strict: bool = False,
        check_files: bool = True,
        bench_file: str = BENCH_FILE,
    ) -> None:
        self.data_root = Path(data_root)
        self.path = self.data_root / bench_file
        if not self.path.is_file():
            raise FileNotFoundError(
                f'{self.path} not found (is --data-root the folder holding {bench_file}?)'
            )
        self.image_root = Path(image_root) if image_root else self.data_root
        self.depth_root = Path(depth_root) if depth_root else None
        self.check_files = check_files
        self.report = ValidationReport()
        self.policy = RecordPolicy(strict, self.report)

    def __iter__(self) -> Iterator[Sample]:
        data = json.loads(self.path.read_text(encoding='utf-8'))
        if not isinstance(data, list):
            raise BenchFormatError(f'{self.path}: expected a JSON list of records')
        for index, record in enumerate(data):
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
        try:
            item = bench_items([record])[0]
            info = record['image_info']
            file_path = str(info['file_path'])
            image_hw = (int(info['height']), int(info['width']))
        except (BenchFormatError, KeyError, TypeError, ValueError) as exc:
            raise RecordError(record_id, f'malformed record: {exc}') from exc
        question = str(record['conversations'][0]['value'])
        rle = record.get('rle')
        bbox = record.get('bbox')
        if rle:
            check_regions(record_id, rle, question.count(MASK), image_hw)
        elif not bbox or len(bbox) != question.count(MASK):
            raise RecordError(
                record_id,
                f'{question.count(MASK)} <mask> placeholders but '
                f'{len(bbox or [])} boxes and no RLE',
            )
        else:
            rle = boxes_to_rles(bbox, image_hw)  # the reference evaluator's fallback
        rgb_path = record_path(record_id, self.image_root, file_path, 'RGB image')
        depth_path = (
            record_path(record_id, self.depth_root, f'{Path(file_path).stem}.png', 'depth image')
            if self.depth_root
            else None
        )
        if self.check_files:
            check_file(record_id, rgb_path, 'RGB image')
            if depth_path is not None:
                check_file(record_id, depth_path, 'depth image')
        category = item['category']
        return Sample(
            id=record_id,
            turns=(Turn(question, item['answer']),),
            source='spatialrgpt-bench',
            rgb_path=rgb_path,
            depth_path=depth_path,
            rle=list(rle) if rle else None,
            category=category,
            normalized_answer=normalized_bench_answer(category, item['answer']),
            meta={
                'qa_type': item['type'],
                'bbox': bbox,
                'text_q': record.get('text_q'),
                'image_hw': image_hw,
            },
        )
