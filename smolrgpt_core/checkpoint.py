"""A checkpoint's files, found and read safely: every problem is a ``CheckpointError`` whose
message names the file and says what is wrong.

A checkpoint spec is a local directory, or ``hf://org/name[@revision]`` for the Hugging Face
Hub; nothing else touches the network, so a typo in a path is an error, not a download.

Each size a file controls is bounded before anything is allocated: JSON files by their length,
a safetensors header by its declared length and every tensor it lists by the file itself (the
model is built only from a config whose sizes config.py has bounded).
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import logging
import math
from pathlib import Path
import re
import struct
from typing import Any

from smolrgpt_core.config import SmolRGPTConfig, json_kind

logger = logging.getLogger(__name__)

CONFIG_NAME = 'config.json'
WEIGHTS_NAME = 'model.safetensors'
TOKENIZER_NAME = 'tokenizer.json'
TOKENIZER_CONFIG_NAME = 'tokenizer_config.json'
CHECKPOINT_FILES = (CONFIG_NAME, WEIGHTS_NAME, TOKENIZER_NAME, TOKENIZER_CONFIG_NAME)

HUB_SCHEME = 'hf://'
# hf://org/name or hf://org/name@revision; Path() collapses '//', so 'hf:/org/name' (what a
# caller that wrapped the spec in a Path hands on) means the same
_HUB_SPEC = re.compile(r'hf:/{1,2}(?P<repo>[^@]*)(?:@(?P<revision>.*))?')
_REPO_ID = re.compile(r'[\w][\w.-]{0,95}(/[\w][\w.-]{0,95})?')

MAX_CONFIG_BYTES = 1 << 20
MAX_TOKENIZER_BYTES = 256 << 20  # large-vocabulary tokenizer.json files reach tens of MB
MAX_TOKENIZER_CONFIG_BYTES = 16 << 20
MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit
MAX_TENSOR_DIMS = 8

# safetensors dtype name -> bytes per element
DTYPE_BYTES = {
    'BOOL': 1,
    'U8': 1,
    'I8': 1,
    'F8_E5M2': 1,
    'F8_E4M3': 1,
    'I16': 2,
    'U16': 2,
    'F16': 2,
    'BF16': 2,
    'I32': 4,
    'U32': 4,
    'F32': 4,
    'I64': 8,
    'U64': 8,
    'F64': 8,
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as a safetensors header describes it."""

    dtype: str
    shape: tuple[int, ...]


# --- where the checkpoint is ------------------------------------------------------------


def resolve_checkpoint(spec: str | Path) -> Path:
    """The checkpoint directory: ``spec`` itself, or the Hub snapshot for ``hf://org/name``."""
    hub = _HUB_SPEC.fullmatch(str(spec))
    if hub:
        return download(hub['repo'], hub['revision'], str(spec))
    path = Path(spec)
    if not path.exists():
        raise CheckpointError(
            f'no such checkpoint directory: {path} (for a Hub model write {HUB_SCHEME}org/name)'
        )
    if not path.is_dir():
        raise CheckpointError(
            f'{path}: not a directory (a checkpoint is a directory holding '
            f'{CONFIG_NAME}, {WEIGHTS_NAME} and {TOKENIZER_NAME})'
        )
    return path


def resolve_dir(spec: str | Path, filenames: list[str]) -> Path:
    """``resolve_checkpoint``, and each of ``filenames`` must be a file in it."""
    directory = resolve_checkpoint(spec)
    for name in filenames:
        if not (directory / name).is_file():
            raise CheckpointError(f'{directory / name}: no such file')
    return directory


def download(repo: str, revision: str | None, spec: str) -> Path:
    """The checkpoint files of a Hub model repository, through huggingface_hub's cache."""
    if not _REPO_ID.fullmatch(repo) or revision == '':
        raise CheckpointError(
            f'{spec}: not a Hub model; write {HUB_SCHEME}org/name or {HUB_SCHEME}org/name@revision'
        )
    try:
        import huggingface_hub
    except ImportError as exc:
        raise CheckpointError(
            f'{spec}: downloading from the Hugging Face Hub needs huggingface_hub '
            '(pip install huggingface_hub)'
        ) from exc
    logger.info('fetching %s from the Hugging Face Hub', spec)
    try:
        path = huggingface_hub.snapshot_download(
            repo_id=repo, revision=revision, allow_patterns=list(CHECKPOINT_FILES)
        )
    except Exception as exc:  # network, authentication, unknown repo: all reported alike
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f'{spec}: could not be fetched from the Hugging Face Hub ({reason}); offline? '
            'a model fetched before loads from the cache with HF_HUB_OFFLINE=1'
        ) from exc
    return Path(path)


# --- JSON files -------------------------------------------------------------------------


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def read_text(path: Path, max_bytes: int) -> str:
    """A UTF-8 file of at most ``max_bytes``."""
    try:
        if not path.is_file():
            what = 'not a regular file' if path.exists() else 'no such file'
            raise CheckpointError(f'{path}: {what}')
        size = path.stat().st_size
        if size > max_bytes:
            raise CheckpointError(
                f'{path}: {format_size(size)}, more than the {format_size(max_bytes)} '
                'such a file may have'
            )
        with open(path, 'rb') as f:
            data = f.read(max_bytes)  # the file may have grown since stat
    except OSError as exc:
        raise CheckpointError(f'{path}: cannot be read ({exc.strerror or exc})') from exc
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise CheckpointError(f'{path}: not UTF-8 text (byte {exc.start})') from exc


def parse_json(path: Path, text: str) -> Any:
    """``text`` (read from ``path``) as JSON; a duplicated key is an error, not a silent
    choice of the last value."""
    if not text.strip():
        raise CheckpointError(f'{path}: empty file')
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f'{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})'
        ) from exc
    except _DuplicateKey as exc:
        raise CheckpointError(f'{path}: key "{exc}" appears twice in one object') from exc
    except (ValueError, RecursionError) as exc:  # over-long integers, absurd nesting
        raise CheckpointError(f'{path}: not valid JSON ({exc})') from exc


def read_json_object(path: Path, max_bytes: int) -> dict[str, Any]:
    data = parse_json(path, read_text(path, max_bytes))
    if not isinstance(data, dict):
        raise CheckpointError(f'{path}: must hold a JSON object, got {json_kind(data)}')
    return data


def read_config(path: str | Path) -> SmolRGPTConfig:
    """A ``config.json``, every field checked (types, sizes, invariants; see config.py)."""
    path = Path(path)
    data = read_json_object(path, MAX_CONFIG_BYTES)
    try:
        return SmolRGPTConfig.from_dict(data)
    except ValueError as exc:
        raise CheckpointError(f'{path}: {exc}') from exc


# --- safetensors ------------------------------------------------------------------------


def read_safetensors_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """The tensors (name -> dtype, shape) and metadata a safetensors file lists, checked
    against the file's size before any tensor is read: a header that the file cannot back
    (truncation, offsets past the end, overlaps, gaps) is an error here."""
    try:
        if not path.is_file():
            what = 'not a regular file' if path.exists() else 'no such file'
            raise CheckpointError(f'{path}: {what}')
        size = path.stat().st_size
        if size == 0:
            raise CheckpointError(f'{path}: empty file')
        if size < 8:
            raise CheckpointError(
                f'{path}: truncated ({size} bytes; a safetensors file starts with an '
                '8-byte header length)'
            )
        with open(path, 'rb') as f:
            (length,) = struct.unpack('<Q', f.read(8))
            if length > MAX_HEADER_BYTES:
                raise CheckpointError(
                    f'{path}: the header length field says {format_size(length)}, more than '
                    f'the {format_size(MAX_HEADER_BYTES)} a safetensors header may have '
                    '(not a safetensors file?)'
                )
            if 8 + length > size:
                raise CheckpointError(
                    f'{path}: truncated (the header alone is {format_size(length)}, the '
                    f'file has {format_size(size)})'
                )
            raw = f.read(length)
    except OSError as exc:
        raise CheckpointError(f'{path}: cannot be read ({exc.strerror or exc})') from exc
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise CheckpointError(f'{path}: the header is not UTF-8 text (byte {exc.start})') from exc
    header = parse_json(path, text)
    if not isinstance(header, dict):
        raise CheckpointError(f'{path}: the header must be a JSON object, got {json_kind(header)}')
    metadata = header.pop('__metadata__', None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f'{path}: __metadata__ must map names to strings')
    tensors = {name: _tensor_entry(path, name, entry) for name, entry in header.items()}
    _check_layout(path, header, size - 8 - length)
    return tensors, metadata


def _tensor_entry(path: Path, name: str, entry: object) -> TensorInfo:
    where = f'{path}: tensor {name}'
    if not isinstance(entry, dict) or set(entry) != {'dtype', 'shape', 'data_offsets'}:
        raise CheckpointError(f'{where}: the header entry must hold dtype, shape and data_offsets')
    dtype, shape, offsets = entry['dtype'], entry['shape'], entry['data_offsets']
    if dtype not in DTYPE_BYTES:
        raise CheckpointError(f'{where}: unknown dtype {json.dumps(dtype)[:40]}')
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_TENSOR_DIMS
        or not all(_is_size(d) for d in shape)
    ):
        raise CheckpointError(
            f'{where}: shape must be a list of at most {MAX_TENSOR_DIMS} sizes >= 0, '
            f'got {json.dumps(shape)[:60]}'
        )
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(_is_size(o) for o in offsets)
        and offsets[0] <= offsets[1]
    ):
        raise CheckpointError(
            f'{where}: data_offsets must be [begin, end] with 0 <= begin <= end, '
            f'got {json.dumps(offsets)[:60]}'
        )
    nbytes = math.prod(shape) * DTYPE_BYTES[dtype]
    if offsets[1] - offsets[0] != nbytes:
        raise CheckpointError(
            f'{where}: data_offsets span {offsets[1] - offsets[0]} bytes, but a {dtype} '
            f'tensor of shape {shape} has {nbytes}'
        )
    return TensorInfo(dtype, tuple(shape))


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_layout(path: Path, header: dict[str, Any], data_bytes: int) -> None:
    """The tensors must tile the data after the header exactly, as safetensors requires."""
    spans = sorted((e['data_offsets'][0], e['data_offsets'][1], n) for n, e in header.items())
    end = max((stop for _, stop, _ in spans), default=0)
    if end > data_bytes:
        raise CheckpointError(
            f'{path}: truncated (header says {format_size(end)} of tensors, file has '
            f'{format_size(data_bytes)})'
        )
    position, previous = 0, None
    for start, stop, name in spans:
        if start < position:
            raise CheckpointError(f'{path}: tensors {previous} and {name} overlap in the file')
        if start > position:
            raise CheckpointError(
                f'{path}: {start - position} bytes before tensor {name} belong to no tensor'
            )
        position, previous = stop, name
    if position < data_bytes:
        raise CheckpointError(
            f'{path}: {data_bytes - position} bytes after the last tensor belong to no tensor '
            '(not one safetensors file?)'
        )


def format_size(n: int) -> str:
    if n < 1000:
        return f'{n} bytes'
    if n < 1_000_000:
        return f'{n / 1e3:.1f} kB'
    if n < 1_000_000_000:
        return f'{n / 1e6:.1f} MB'
    return f'{n / 1e9:.1f} GB'
