"""Record checks shared by the readers, and the skip-or-fail policy for bad records."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class RecordError(ValueError):
    """A dataset record that cannot be used; names the record and the problem."""

    def __init__(self, record_id: str, problem: str) -> None:
        self.record_id = record_id
        self.problem = problem
        super().__init__(f'record {record_id}: {problem}')


@dataclass
class ValidationReport:
    """What a reader saw: records read, records skipped and why."""

    read: int = 0
    skipped: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)  # (record id, problem)

    def summary(self) -> str:
        return f'{self.read} records read, {self.skipped} skipped'


@lru_cache(maxsize=4096)
def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the image header, without decoding pixels."""
    from PIL import Image

    with Image.open(path) as image:
        return image.height, image.width


def check_regions(
    record_id: str, rle: Any, n_placeholders: int, image_hw: tuple[int, int] | None
) -> None:
    """The RLE list must be well formed, one per placeholder, and sized like the image."""
    if rle is None:
        rle = []
    if not isinstance(rle, list):
        raise RecordError(record_id, f'rle must be a list, got {type(rle).__name__}')
    if len(rle) != n_placeholders:
        raise RecordError(record_id, f'{n_placeholders} mask placeholders but {len(rle)} RLEs')
    for k, entry in enumerate(rle):
        if not isinstance(entry, dict) or 'size' not in entry or 'counts' not in entry:
            raise RecordError(record_id, f"rle[{k}] is not a {{'size', 'counts'}} dict")
        size = [int(v) for v in entry['size']]
        if image_hw is not None and tuple(size) != tuple(image_hw):
            raise RecordError(
                record_id,
                f'rle[{k}] size {size[0]}x{size[1]} differs from the image size '
                f'{image_hw[0]}x{image_hw[1]}',
            )


def record_path(record_id: str, base: Path, name: str, what: str) -> Path:
    """``base / name`` for a file name read from a record, refused unless it stays inside
    ``base`` once symlinks are resolved: an absolute name, a ``../`` escape or a symlink to
    a file outside would let a dataset make the reader open any file of the machine."""
    if not name or Path(name).is_absolute():
        raise RecordError(record_id, f'{what} path {name!r} must be relative to {base}')
    path = base / name
    if not path.resolve().is_relative_to(base.resolve()):
        raise RecordError(record_id, f'{what} path {name!r} leads outside {base}')
    return path


def check_file(record_id: str, path: Path, what: str) -> None:
    if not path.is_file():
        raise RecordError(record_id, f'{what} file missing: {path}')


class RecordPolicy:
    """``strict``: the first bad record raises; otherwise bad records are skipped and counted."""

    def __init__(self, strict: bool, report: ValidationReport) -> None:
        self.strict = strict
        self.report = report

    def reject(self, error: RecordError) -> None:
        if self.strict:
            raise error
        self.report.skipped += 1
        self.report.problems.append((error.record_id, error.problem))
        log.debug('skipping %s', error)
