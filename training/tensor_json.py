"""Nested state (optimizer state dicts, RNG states) <-> a JSON skeleton plus flat tensors.

Resuming a run must never unpickle a file (a pickle runs whatever code it names), so the
trainer state is split into what JSON can hold and what a safetensors file can hold. In the
skeleton, strings, numbers, booleans, null, lists and dicts with plain string keys stand for
themselves; everything else is a one-key marker object:

* ``{"__tensor__": name}``: a torch tensor, stored in the safetensors file under ``name``;
* ``{"__ndarray__": name, "dtype": "uint32", "shape": [624]}``: a numpy array (the numpy RNG
  state), stored as its raw bytes in a uint8 tensor;
* ``{"__tuple__": [...]}``: a tuple (``random.getstate()``, AdamW's ``betas``);
* ``{"__items__": [[key, value], ...]}``: a dict whose keys are not all plain strings (the
  optimizer state is keyed by parameter index).

Decoding accepts only these forms, so a file can describe data but never name code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

MARKERS = ('__tensor__', '__ndarray__', '__tuple__', '__items__')
# dtypes a numpy array in the state may have: plain numbers only (never object arrays)
NDARRAY_DTYPES = frozenset(
    {'bool', 'uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'uint64', 'int64'}
    | {'float16', 'float32', 'float64'}
)
_SCALARS = (str, int, float, bool, type(None))


class StateFormatError(ValueError):
    """A skeleton that is not one this module writes."""


def encode(tree: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """-> (JSON-ready skeleton, tensors by name) of ``tree``; raises TypeError on a value it
    cannot store (so nothing is dropped silently)."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            name = str(len(tensors))
            tensors[name] = value.detach().cpu().contiguous()
            return {'__tensor__': name}
        if isinstance(value, np.ndarray):
            if value.dtype.name not in NDARRAY_DTYPES:
                raise TypeError(f'cannot store a numpy array of dtype {value.dtype}')
            name = str(len(tensors))
            raw = np.ascontiguousarray(value).reshape(-1).view(np.uint8)
            tensors[name] = torch.from_numpy(raw.copy())
            return {'__ndarray__': name, 'dtype': value.dtype.name, 'shape': list(value.shape)}
        if isinstance(value, _SCALARS):
            return value
        if isinstance(value, tuple):
            return {'__tuple__': [walk(v) for v in value]}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith('__') for k in value):
                return {k: walk(v) for k, v in value.items()}
            for k in value:
                if not isinstance(k, _SCALARS):
                    raise TypeError(f'cannot store a dict key of type {type(k).__name__}')
            return {'__items__': [[k, walk(v)] for k, v in value.items()]}
        raise TypeError(f'cannot store a value of type {type(value).__name__}')

    return walk(tree), tensors


def decode(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of ``encode``; raises StateFormatError on anything it did not write."""

    def tensor(name: Any) -> torch.Tensor:
        if not isinstance(name, str) or name not in tensors:
            raise StateFormatError(f'the tensor file has no tensor {name!r}')
        return tensors[name]

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        if not isinstance(value, dict):
            if not isinstance(value, _SCALARS):
                raise StateFormatError(f'unexpected JSON value of type {type(value).__name__}')
            return value
        marker = [k for k in value if k.startswith('__')]
        if not marker:
            return {k: walk(v) for k, v in value.items()}
        kind = marker[0]
        if kind == '__tensor__' and len(value) == 1:
            return tensor(value[kind])
        if kind == '__ndarray__' and set(value) == {kind, 'dtype', 'shape'}:
            return _ndarray(tensor(value[kind]), value['dtype'], value['shape'])
        if kind == '__tuple__' and len(value) == 1 and isinstance(value[kind], list):
            return tuple(walk(v) for v in value[kind])
        if kind == '__items__' and len(value) == 1 and isinstance(value[kind], list):
            items = value[kind]
            if not all(isinstance(p, list) and len(p) == 2 for p in items):
                raise StateFormatError('__items__ must hold [key, value] pairs')
            if not all(isinstance(p[0], _SCALARS) for p in items):
                raise StateFormatError('__items__ keys must be strings, numbers or null')
            return {k: walk(v) for k, v in items}
        raise StateFormatError(f'unknown marker object with keys {sorted(value)[:4]}')

    return walk(skeleton)


def _ndarray(raw: torch.Tensor, dtype: Any, shape: Any) -> np.ndarray:
    if dtype not in NDARRAY_DTYPES:
        raise StateFormatError(f'numpy dtype {dtype!r} is not allowed in a trainer state')
    if not (isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise StateFormatError(f'bad numpy shape {shape!r}')
    if raw.dtype != torch.uint8 or raw.dim() != 1:
        raise StateFormatError('a numpy array must be stored as a flat uint8 tensor')
    itemsize = np.dtype(dtype).itemsize
    if raw.numel() != itemsize * int(np.prod(shape, dtype=np.int64)):
        raise StateFormatError(f'{raw.numel()} bytes do not make a {dtype} array of {shape}')
    return np.frombuffer(raw.numpy().tobytes(), dtype=dtype).reshape(shape).copy()
