"""Inference backends behind one interface (the ``Backend`` protocol).

A backend is anything with the model's config and its two inference halves:

* ``encode_frame(image [3, S, S], depth [3, S, S], masks [M, Hi, Wi]) -> EncodedFrame``;
* ``answer(frame, prompts, *, eos_token_id, max_new_tokens, sampling) -> list[list[int]]``.

``SmolRGPT`` itself is the torch backend. Others (ONNX Runtime, TensorRT) run exported graphs
and are imported only when selected, so a missing optional package costs nothing until then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import importlib
from pathlib import Path
from typing import Protocol

import torch

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.inference.types import EncodedFrame, Prompt
from smolrgpt_core.sampling import SamplingParams

DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}


class BackendError(RuntimeError):
    """A backend that cannot be used here (missing package, missing engine, bad option)."""


class Backend(Protocol):
    cfg: SmolRGPTConfig

    def encode_frame(
        self, image: torch.Tensor, depth: torch.Tensor, masks: torch.Tensor | None = None
    ) -> EncodedFrame: ...

    def answer(
        self,
        frame: EncodedFrame,
        prompts: Sequence[Prompt],
        *,
        eos_token_id: int,
        max_new_tokens: int = 120,
        sampling: SamplingParams | None = None,
        generator: torch.Generator | None = None,
    ) -> list[list[int]]: ...


def load_torch(checkpoint: Path, *, device: str, dtype: str, engine_dir: Path | None) -> Backend:
    from smolrgpt_core.modeling.smolrgpt import SmolRGPT

    if dtype == 'int8':  # opt-in CPU path: int8 weights for the decoder's linear layers
        from smolrgpt_core.inference.backends.torch_fast import load_torch_int8

        return load_torch_int8(checkpoint, device=device)
    if dtype not in DTYPES:
        raise BackendError(
            f'torch dtype must be one of {", ".join(DTYPES)}, int8 (CPU), got {dtype!r}'
        )
    return SmolRGPT.from_pretrained(checkpoint, dtype=DTYPES[dtype], device=device).eval()


# backend name -> 'module:function' loading it (imported lazily)
LOADERS: dict[str, str] = {
    'torch': 'smolrgpt_core.inference.backends:load_torch',
    'onnxruntime': 'smolrgpt_core.inference.backends.onnxruntime_backend:load_onnxruntime',
    'tensorrt': 'smolrgpt_core.inference.backends.tensorrt_backend:load_tensorrt',
    'torch-fast': 'smolrgpt_core.inference.backends.torch_fast:load_torch_fast',
}


def load_backend(
    name: str,
    checkpoint: str | Path,
    *,
    device: str = 'cpu',
    dtype: str = 'float32',
    engine_dir: str | Path | None = None,
) -> Backend:
    if name not in LOADERS:
        raise BackendError(f'unknown backend {name!r}; available: {", ".join(LOADERS)}')
    module_name, func_name = LOADERS[name].split(':')
    loader: Callable[..., Backend] = getattr(importlib.import_module(module_name), func_name)
    return loader(
        Path(checkpoint),
        device=device,
        dtype=dtype,
        engine_dir=Path(engine_dir) if engine_dir else None,
    )
