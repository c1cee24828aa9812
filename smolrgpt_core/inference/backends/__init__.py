"""Inference backends behind one interface (the ``Backend`` protocol), and their registry.

A backend is anything with the model's config and its two inference halves:

* ``encode_frame(image [3, S, S], depth [3, S, S], masks [M, Hi, Wi]) -> EncodedFrame``;
* ``answer(frame, prompts, *, eos_token_id, max_new_tokens, sampling) -> list[list[int]]``.

``SmolRGPT`` itself is the torch backend. Others (ONNX Runtime, TensorRT) run exported graphs
and are imported only when selected, so a missing optional package costs nothing until then.

``BACKENDS`` is the one list of backends, their dtypes and devices: settings validation, the
CLI's ``--backend``/``--dtype`` choices, the node's parameter descriptions and the launch file
all read it. This module imports no torch, so reading the registry stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

    from smolrgpt_core.config import SmolRGPTConfig
    from smolrgpt_core.inference.types import EncodedFrame, Prompt
    from smolrgpt_core.sampling import SamplingParams


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


@dataclass(frozen=True)
class BackendInfo:
    """What a backend accepts. ``devices``: 'cpu' and/or 'cuda' (which covers cuda:N)."""

    loader: str  # 'module:function', imported when the backend is selected
    dtypes: tuple[str, ...]
    devices: tuple[str, ...]
    summary: str
    cpu_only_dtypes: tuple[str, ...] = ()


BACKENDS: dict[str, BackendInfo] = {
    'torch': BackendInfo(
        'smolrgpt_core.inference.backends.torch_backend:load_torch',
        ('float32', 'float16', 'bfloat16', 'int8'),
        ('cpu', 'cuda'),
        'PyTorch eager (int8: int8 decoder weights, CPU only)',
        cpu_only_dtypes=('int8',),
    ),
    'torch-fast': BackendInfo(
        'smolrgpt_core.inference.backends.torch_fast:load_torch_fast',
        ('float32', 'float16', 'bfloat16'),
        ('cpu', 'cuda'),
        'PyTorch with a static KV cache, CUDA graphs on a GPU',
    ),
    'onnxruntime': BackendInfo(
        'smolrgpt_core.inference.backends.onnxruntime_backend:load_onnxruntime',
        ('float32', 'float16', 'int8'),
        ('cpu', 'cuda'),
        'exported ONNX graphs on ONNX Runtime (smolrgpt export onnx; int8: CPU only)',
        cpu_only_dtypes=('int8',),
    ),
    'tensorrt': BackendInfo(
        'smolrgpt_core.inference.backends.tensorrt_backend:load_tensorrt',
        ('float32', 'float16'),
        ('cuda',),
        'TensorRT engines built from the ONNX graphs (GPU)',
    ),
}
DTYPE_CHOICES: tuple[str, ...] = tuple(
    dict.fromkeys(d for b in BACKENDS.values() for d in b.dtypes)
)


class ChoiceError(ValueError):
    """An impossible backend/device/dtype combination; ``field`` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


def check_choice(backend: str, device: str, dtype: str) -> None:
    """ChoiceError when this backend/device/dtype combination is unusable by construction
    (whatever the machine). Device syntax: cpu, cuda or cuda:N."""
    if backend not in BACKENDS:
        raise ChoiceError(
            'backend', f'unknown backend {backend!r}; available: {", ".join(BACKENDS)}'
        )
    info = BACKENDS[backend]
    kind = 'cuda' if device == 'cuda' or (device[:5] == 'cuda:' and device[5:].isdigit()) else ''
    kind = device if device in ('cpu', 'auto') else kind
    if not kind:
        raise ChoiceError('device', f'{device!r} is not auto, cpu, cuda or cuda:N')
    if kind == 'auto':
        return  # resolved by resolve_device when the backend is loaded
    if kind not in info.devices:
        raise ChoiceError('device', f'the {backend} backend runs on {" or ".join(info.devices)}')
    if dtype not in info.dtypes:
        raise ChoiceError(
            'dtype', f'the {backend} backend takes {" | ".join(info.dtypes)}, not {dtype!r}'
        )
    if dtype in info.cpu_only_dtypes and kind != 'cpu':
        raise ChoiceError('dtype', f'{dtype} on the {backend} backend runs on the cpu only')


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; other names unchanged."""
    if device != 'auto':
        return device
    import torch

    return 'cuda' if torch.cuda.is_available() else 'cpu'


def check_device_present(device: str) -> None:
    """BackendError when a CUDA device is asked for and this machine has none (or fewer)."""
    if device == 'cpu':
        return
    import torch

    if not torch.cuda.is_available():
        raise BackendError(f'device {device} was asked for, but torch sees no CUDA GPU here')
    index = int(device[5:]) if device.startswith('cuda:') else 0
    if index >= torch.cuda.device_count():
        raise BackendError(
            f'device {device} was asked for, but torch sees only '
            f'{torch.cuda.device_count()} CUDA device(s)'
        )


def load_backend(
    name: str,
    checkpoint: str | Path,
    *,
    device: str = 'cpu',
    dtype: str = 'float32',
    engine_dir: str | Path | None = None,
) -> Backend:
    device = resolve_device(device)
    try:
        check_choice(name, device, dtype)
    except ValueError as exc:
        raise BackendError(str(exc)) from exc
    check_device_present(device)
    module_name, func_name = BACKENDS[name].loader.split(':')
    loader: Callable[..., Backend] = getattr(importlib.import_module(module_name), func_name)
    return loader(
        Path(checkpoint),
        device=device,
        dtype=dtype,
        engine_dir=Path(engine_dir) if engine_dir else None,
    )


def __getattr__(name: str) -> Any:
    # the torch dtype table lives with the torch backend; resolved lazily so that reading the
    # registry never imports torch
    if name == 'DTYPES':
        from smolrgpt_core.inference.backends.torch_backend import DTYPES

        return DTYPES
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
