"""Resumable ';'-separated answer files (``raw_output.csv``: ``id;image_id;output``).

A long run is appended to batch by batch and flushed to disk each time, so an interrupted run
leaves whole rows plus, at worst, one partial last line. Reopening drops that line and returns
the ids already answered, so the rerun skips them. Every row is one physical line: line breaks
inside a model output are written as spaces (no answer depends on them), which is what lets a
partial last line be recognised from the bytes alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import csv
import io
import logging
import os
from pathlib import Path
import re

RAW_COLUMNS = ('id', 'image_id', 'output')
DELIMITER = ';'
_LINE_BREAKS = re.compile(r'[\r\n\u2028\u2029\x0b\x0c\x1c\x1d\x1e\x85]+')

log = logging.getLogger(__name__)


class RawCsvError(ValueError):
    """An existing output file that cannot be resumed (other columns, malformed rows)."""


def one_line(text: str) -> str:
    return _LINE_BREAKS.sub(' ', text).strip()


def _encode(rows: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=DELIMITER, lineterminator='\n')
    for row in rows:
        writer.writerow([one_line(str(cell)) for cell in row])
    return buffer.getvalue()


def _parse(path: Path, data: bytes) -> list[list[str]]:
    """Rows of a ';'-separated UTF-8 file, or a RawCsvError naming what is wrong."""
    try:
        return list(csv.reader(io.StringIO(data.decode('utf-8')), delimiter=DELIMITER))
    except UnicodeDecodeError as exc:
        raise RawCsvError(f'{path}: not UTF-8 text (byte {exc.start})') from exc
    except csv.Error as exc:
        raise RawCsvError(f'{path}: not a readable {DELIMITER!r}-separated file ({exc})') from exc


def open_for_resume(path: str | Path, columns: Sequence[str] = RAW_COLUMNS) -> set[str]:
    """Prepare ``path`` for appending and return the ids it already holds.

    A missing or empty file gets the header; a partial last line (an interrupted write) is cut
    off; a file with other columns or malformed rows raises RawCsvError instead of being mixed
    with new rows.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = path.read_bytes() if path.is_file() else b''
    if data and not data.endswith(b'\n'):
        keep = data.rfind(b'\n') + 1
        log.warning(
            '%s: dropped an incomplete last line (%d bytes) left by an interrupted run',
            path,
            len(data) - keep,
        )
        data = data[:keep]
        with open(path, 'r+b') as f:
            f.truncate(keep)
    if not data:
        path.write_text(_encode([columns]), encoding='utf-8')
        return set()
    rows = _parse(path, data)
    if tuple(rows[0]) != tuple(columns):
        raise RawCsvError(
            f'{path}: header {DELIMITER.join(rows[0])!r} is not '
            f'{DELIMITER.join(columns)!r}; pass another --out to start afresh'
        )
    done = set()
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(columns):
            raise RawCsvError(
                f'{path}: line {number} has {len(row)} fields, expected {len(columns)}'
            )
        done.add(row[0])
    return done


def append_rows(path: str | Path, rows: Sequence[Sequence[str]]) -> None:
    """Append rows in one write and force them to disk (one call per batch)."""
    if not rows:
        return
    with open(path, 'a', encoding='utf-8', newline='') as f:
        f.write(_encode(rows))
        f.flush()
        os.fsync(f.fileno())


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of an answer file as dicts keyed by the header (complete lines only)."""
    path = Path(path)
    if not path.is_file():
        raise RawCsvError(f'{path}: ' + ('not a file' if path.exists() else 'no such file'))
    data = path.read_bytes()
    if data and not data.endswith(b'\n'):
        data = data[: data.rfind(b'\n') + 1]  # an interrupted run's partial line
    rows = _parse(path, data)
    if not rows or 'id' not in rows[0]:
        raise RawCsvError(f'{path}: expected a {DELIMITER!r}-separated file with an "id" column')
    header = rows[0]
    out = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise RawCsvError(
                f'{path}: line {number} has {len(row)} fields, expected {len(header)}'
            )
        out.append(dict(zip(header, row)))
    return out
