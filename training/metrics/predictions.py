"""Read prediction and ground-truth files: JSON lists of records, or CSV (',', ';' or tab).

SmolRGPT's raw outputs are ';'-separated CSV (``id;image_id;output``); the official submission
is a JSON list of ``{id, normalized_answer}``. Both are accepted.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

# columns holding a free-form answer, in order of preference
TEXT_FIELDS = ('output', 'answer', 'freeform_answer', 'prediction', 'text')


class PredictionFileError(ValueError):
    """A prediction or ground-truth file that cannot be read as records."""


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """A JSON list of objects or a CSV with a header -> list of dicts (each with an 'id')."""
    path = Path(path)
    if not path.is_file():
        raise PredictionFileError(
            f'{path}: ' + ('not a file' if path.exists() else 'no such file')
        )
    if path.suffix.lower() == '.json':
        records = _load_json(path)
    elif path.suffix.lower() in ('.csv', '.tsv', '.txt'):
        records = _load_csv(path)
    else:
        raise PredictionFileError(f'{path}: expected a .json or .csv file')
    for i, record in enumerate(records):
        if 'id' not in record:
            raise PredictionFileError(f'{path}: record {i} has no "id" field')
        record['id'] = str(record['id'])
    return records


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding='utf-8')
    except UnicodeDecodeError as exc:
        raise PredictionFileError(
            f'{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at {exc.start})'
        ) from exc


def _load_json(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise PredictionFileError(f'{path}: invalid JSON ({exc})') from exc
    if isinstance(data, dict):
        # {"id": answer} is a common hand-made shape; accept it explicitly
        data = [{'id': k, 'normalized_answer': v} for k, v in data.items()]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise PredictionFileError(f'{path}: expected a JSON list of objects')
    return data


def _load_csv(path: Path) -> list[dict[str, Any]]:
    text = _read_text(path)
    if not text.strip():
        raise PredictionFileError(f'{path}: empty file')
    header = text.splitlines()[0]
    delimiter = max((';', ',', '\t'), key=header.count)
    try:
        rows = list(csv.DictReader(text.splitlines(), delimiter=delimiter))
    except csv.Error as exc:
        raise PredictionFileError(f'{path}: not a readable CSV ({exc})') from exc
    if not rows or 'id' not in rows[0]:
        raise PredictionFileError(f'{path}: the CSV needs a header row with an "id" column')
    return [dict(row) for row in rows]


def text_of(record: dict[str, Any]) -> str | None:
    """The free-form answer of a prediction record, if it has one."""
    for name in TEXT_FIELDS:
        if record.get(name) is not None:
            return str(record[name])
    return None
