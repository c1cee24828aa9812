"""SmolRGPT's parquet datasets (smolrgpt-reference §3.4-3.5), read and written with pyarrow.

Used for ``warehouse-rgbd-smolRGPT``, ``osd-110k-smolRGPT``, ``llava-cc3m-smolRGPT`` and
``spacial-rgpt-bench-smolRGPT``. DATA_ROOT is the dataset folder itself::

    DATA_ROOT/data/*.parquet                     one split, or
    DATA_ROOT/data/train-*.parquet, val*.parquet when DATA_ROOT/train/ exists
    DATA_ROOT/[<split>/]images/<rgb_image>, DATA_ROOT/[<split>/]depths/<depth_image>

``texts`` is one ``{user, assistant}`` dict, or a list of them (multi-turn captions); ``rle``
may be null (captions have no regions). The k-th ``<mask_rgb><mask_depth>`` pair is ``rle[k]``.
"""

from __future__ import annotations

from collections.abc import Iterator
import logging
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

log = logging.getLogger(__name__)

MASK_PAIR = '<mask_rgb><mask_depth>'


def schema() -> Any:
    """The explicit feature schema SmolRGPT loads its parquet files with."""
    import pyarrow as pa

    rle = pa.list_(pa.struct([('size', pa.list_(pa.int32())), ('counts', pa.string())]))
    return pa.schema(
        [
            ('id_db', pa.string()),
            ('id', pa.string()),
            ('rgb_image', pa.string()),
            ('depth_image', pa.string()),
            ('rle', rle),
            ('texts', pa.struct([('user', pa.string()), ('assistant', pa.string())])),
            ('category', pa.string()),
            ('normalized_answer', pa.string()),
            ('dataset_name', pa.string()),
        ]
    )


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema())
    pq.write_table(table, path, compression='zstd')


def discover(data_root: Path, split: str | None) -> tuple[list[Path], str | None]:
    """Parquet files of a split, following SmolRGPT's rule; returns (files, split column)."""
    data = data_root / 'data'
    if not data.is_dir():
        raise FileNotFoundError(f'{data} not found (is --data-root the dataset folder?)')
    if (data_root / 'train').is_dir():
        wanted = split or 'train'
        pattern = {'train': 'train-*.parquet', 'val': 'val*.parquet', 'test': 'test*.parquet'}.get(
            wanted
        )
        if pattern is None:
            raise ValueError(f'unknown split {wanted!r}; expected train, val or test')
        files, column = sorted(data.glob(pattern)), wanted
    else:
        if split is not None:
            log.info('%s has no train/ folder: one split, --split %s ignored', data_root, split)
        files, column = sorted(data.glob('*.parquet')), None
    if not files:
        raise FileNotFoundError(f'no parquet files for split {split or "(all)"} in {data}')
    return files, column


class ParquetReader:
    """Iterate the samples of a SmolRGPT parquet dataset (one split)."""

    def __init__(
        self,
        data_root: str | Path,
        split: str | None = None,
        strict: bool = False,
        check_files: bool = True,
    ) -> None:
        self.data_root = Path(data_root)
        self.files, self.split = discover(self.data_root, split)
        self.check_files = check_files
        self.report = ValidationReport()
        self.policy = RecordPolicy(strict, self.report)
        base = self.data_root / self.split if self.split else self.data_root
        self.image_dir = base / 'images'
        self.depth_dir = base / 'depths'
        # caption sets ship no depth folder: then depth is absent rather than missing per record
        self.has_depth = self.depth_dir.is_dir()
        self._name_warned = False

    def __iter__(self) -> Iterator[Sample]:
        import pyarrow.parquet as pq

        for path in self.files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
                for index, row in enumerate(batch.to_pylist()):
                    try:
                        sample = self.parse(row, index)
                    except RecordError as error:
                        self.policy.reject(error)
                        continue
                    self.report.read += 1
                    yield sample

    def parse(self, row: dict[str, Any], index: int = 0) -> Sample:
        record_id = str(row.get('id') or f'#{index}')
        for key in ('id', 'rgb_image', 'texts'):
            if row.get(key) is None:
                raise RecordError(record_id, f'missing field {key!r}')
        texts = row['texts']
        turns_raw = texts if isinstance(texts, list) else [texts]
        if not turns_raw or not all(isinstance(t, dict) and 'user' in t for t in turns_raw):
            raise RecordError(record_id, 'texts must be {user, assistant} or a list of them')
        turns = tuple(Turn(str(t['user']), t.get('assistant')) for t in turns_raw)
        self._check_dataset_name(row.get('dataset_name'))

        rgb_path = record_path(record_id, self.image_dir, str(row['rgb_image']), 'RGB image')
        depth_path = (
            record_path(record_id, self.depth_dir, str(row['depth_image']), 'depth image')
            if self.has_depth and row.get('depth_image')
            else None
        )
        image_hw = None
        if self.check_files:
            check_file(record_id, rgb_path, 'RGB image')
            if depth_path is not None:
                check_file(record_id, depth_path, 'depth image')
            image_hw = image_size(rgb_path)
        placeholders = sum(t.user.count(MASK_PAIR) for t in turns)
        if sum(t.user.count('<mask_rgb>') for t in turns) != placeholders:
            raise RecordError(record_id, '<mask_rgb> without its <mask_depth> partner')
        rle = row.get('rle')
        check_regions(record_id, rle, placeholders, image_hw)

        category = row.get('category') or None
        normalized = row.get('normalized_answer')
        if category in CATEGORIES and normalized not in (None, ''):
            try:
                normalized = canonical(category, normalized)
            except (NormalizationError, ValueError) as exc:
                raise RecordError(
                    record_id, f'bad normalized_answer {normalized!r}: {exc}'
                ) from exc
        return Sample(
            id=record_id,
            turns=turns,
            source='smolrgpt-parquet',
            rgb_path=rgb_path,
            depth_path=depth_path,
            rle=list(rle) if rle is not None else None,
            category=category,
            normalized_answer=normalized if normalized != '' else None,
            split=self.split,
            meta={'dataset_name': row.get('dataset_name'), 'id_db': row.get('id_db')},
        )

    def _check_dataset_name(self, name: str | None) -> None:
        # SmolRGPT resolves files through <root>/<dataset_name>/, so a mismatch breaks it
        if name and name != self.data_root.name and not self._name_warned:
            log.warning(
                'dataset_name %r differs from the folder name %r; SmolRGPT itself '
                'would look for its files under %r',
                name,
                self.data_root.name,
                name,
            )
            self._name_warned = True
