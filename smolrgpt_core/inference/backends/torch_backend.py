"""The PyTorch backend: ``SmolRGPT`` itself (eager), or its int8-decoder CPU variant.

The decoder's q/k/v and gate/up projections are fused at load (``Decoder.fuse_projections``:
one weight tensor each, the parameters are views of it, so the state dict and
``save_pretrained`` are unchanged)."""

from __future__ import annotations

from pathlib import Path

import torch

from smolrgpt_core.inference.backends import Backend, BackendError

DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}


def load_torch(checkpoint: Path, *, device: str, dtype: str, engine_dir: Path | None) -> Backend:
    from smolrgpt_core.modeling.smolrgpt import SmolRGPT

    if dtype == 'int8':  # opt-in CPU path: int8 weights for the decoder's linear layers
        from smolrgpt_core.inference.backends.torch_fast import load_torch_int8

        return load_torch_int8(checkpoint, device=device)
    if dtype not in DTYPES:
        raise BackendError(f'torch dtype must be one of {", ".join(DTYPES)}, int8 (CPU)')
    model = SmolRGPT.from_pretrained(checkpoint, dtype=DTYPES[dtype], device=device).eval()
    model.decoder.fuse_projections()
    return model
