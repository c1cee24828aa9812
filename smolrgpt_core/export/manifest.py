"""``manifest.json``: what an export directory holds and what it was made from.

Written next to ``vision.onnx`` / ``decoder.onnx`` by ``smolrgpt export onnx`` and read by the
ONNX Runtime and TensorRT backends before they trust the graphs::

    {"format": "smolrgpt-onnx", "format_version": 1, "dtype": "float32", "opset": 20,
     "config": {...checkpoint config.json...},
     "checkpoint": {"path", "sha256", "size", "mtime_ns"},
     "versions": {"smolrgpt", "torch", "onnx", "onnxscript"},
     "embedding": {"file": "token_embedding.npy", "dtype", "shape"},
     "graphs": {"vision": {"file", "files", "sha256", "inputs": [{"name", "shape", "dtype"}],
                           "outputs": [...]},
                "decoder": {...}},
     "verification": {...max abs differences against torch at export time...}}

Shapes list integers for fixed dimensions and names for dynamic ones (``"batch"``,
``"seq"``, ``"past"``, ``"total"``, ``"regions"``). ``checkpoint`` is null only for an
export of an in-memory model (the benchmarks' random weights). Hashes of big files are
trusted while size and mtime are unchanged, so loading a 1.5 GB decoder does not re-hash it
every start.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

FORMAT = 'smolrgpt-onnx'
FORMAT_VERSION = 1
MANIFEST_NAME = 'manifest.json'
GRAPH_NAMES = ('vision', 'decoder')


class ManifestError(ValueError):
    """An export directory that is missing, incomplete or made from something else."""


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {
        'path': str(path.resolve()),
        'sha256': sha256_file(path),
        'size': stat.st_size,
        'mtime_ns': stat.st_mtime_ns,
    }


def record_matches(path: Path, record: dict[str, Any]) -> bool:
    """True when ``path`` still holds the bytes ``record`` describes (hash only if touched)."""
    if not path.is_file():
        return False
    stat = path.stat()
    if stat.st_size != record.get('size'):
        return False
    if stat.st_mtime_ns == record.get('mtime_ns'):
        return True
    return sha256_file(path) == record.get('sha256')


def graph_files(directory: Path, filename: str) -> list[Path]:
    """The graph file and its external-data file, if any (hashing must cover both)."""
    files = [directory / filename]
    data = directory / (filename + '.data')
    if data.is_file():
        files.append(data)
    return files


def graph_sha256(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    path = directory / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2) + '\n', encoding='utf-8')
    return path


def read_manifest(directory: Path) -> dict[str, Any]:
    """Load and check an export directory's manifest; every listed file must exist."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(
            f'{directory} holds no {MANIFEST_NAME}; export the graphs with '
            '`smolrgpt export onnx --checkpoint DIR --out DIR`'
        )
    try:
        manifest = json.loads(path.read_text(encoding='utf-8'))
    except json.JSONDecodeError as exc:
        raise ManifestError(f'{path} is not valid JSON ({exc})') from exc
    if manifest.get('format') != FORMAT:
        raise ManifestError(f'{path} is not a SmolRGPT ONNX manifest')
    if manifest.get('format_version') != FORMAT_VERSION:
        raise ManifestError(
            f'{path} has format_version {manifest.get("format_version")}, '
            f'this code reads {FORMAT_VERSION}; export again'
        )
    graphs = manifest.get('graphs', {})
    for name in GRAPH_NAMES:
        if name not in graphs:
            raise ManifestError(f'{path} lists no {name} graph')
        for file in graphs[name]['files']:
            if not (path.parent / file).is_file():
                raise ManifestError(f'{path.parent / file} is missing (listed in {path.name})')
    embedding = manifest.get('embedding', {}).get('file')
    if not embedding or not (path.parent / embedding).is_file():
        raise ManifestError(f'{path.parent} lacks the token embedding table {embedding!r}')
    return manifest


def check_checkpoint(
    manifest: dict[str, Any], config: dict[str, Any], weights: Path | None
) -> None:
    """The graphs must come from this checkpoint: same config, same weights file."""
    if manifest['config'] != config:
        changed = sorted(
            k
            for k in set(config) | set(manifest['config'])
            if config.get(k) != manifest['config'].get(k)
        )
        raise ManifestError(
            'the exported graphs were made from a checkpoint with another '
            f'config (differs in {", ".join(changed)}); export again'
        )
    if manifest.get('checkpoint') is None:  # exported from an in-memory model (benchmarks)
        return
    if weights is not None and not record_matches(weights, manifest['checkpoint']):
        raise ManifestError(
            f'{weights} is not the file the graphs were exported from '
            f'(sha256 {manifest["checkpoint"]["sha256"][:12]}...); export again'
        )


def io_spec(manifest: dict[str, Any], graph: str, kind: str) -> dict[str, dict[str, Any]]:
    """name -> {'shape', 'dtype'} for a graph's 'inputs' or 'outputs'."""
    return {t['name']: t for t in manifest['graphs'][graph][kind]}
