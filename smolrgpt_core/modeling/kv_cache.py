"""Key/value caches for the decoder: one attention module, one cache object per way of running it.

``Attention`` calls ``cache.update(k, v, layer_idx)`` with the new (post-RoPE) keys and values
of a chunk and attends over what it returns; where those keys live, and how much of the cache
the queries see, is the cache's business (the transformers ``past_key_value.update`` pattern):

* ``EagerCache``: buffers for one answer, [L, B, Hkv, S_max, Dh]; each call writes its T keys
  at the Python slot ``start`` and attends over the slots filled so far, ``[0, start + T)``.
  What ``generation.EagerSteps`` (the torch backend) and every prefill use.
* ``StaticCache``: buffers zero-filled once and written in place with ``index_copy_`` at a
  slot held in a device tensor; attention spans all ``S_max`` slots, the caller's bias masks
  the unwritten ones. No shape or address ever changes, so a decode step can be captured in a
  CUDA graph (``torch_fast``).
* ``ExportCache``: the exported decoder graph's explicit form: past keys/values [L, B, Hkv, P,
  Dh] come in, each layer concatenates its new ones, and ``present()`` returns [L, B, Hkv,
  P + T, Dh]. No Python branch on data and no ``.item()``, so exporters trace it into one
  static graph; it also asks for the written-out attention (``explicit_attention``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch


class KVCache(Protocol):
    """What ``Attention`` needs from a cache."""

    # True: attention is written out as matmuls with a float32 softmax (ops that ONNX Runtime
    # and TensorRT both parse); False: ``F.scaled_dot_product_attention``
    explicit_attention: ClassVar[bool]

    def update(
        self, k: torch.Tensor, v: torch.Tensor, layer_idx: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store layer ``layer_idx``'s new keys/values [B, Hkv, T, Dh]; -> the keys/values
        the chunk's queries attend over, [B, Hkv, S, Dh] each."""


@dataclass
class EagerCache:
    """Per-answer buffers [L, B, Hkv, S_max, Dh]; a call fills slots ``start .. start+T-1``."""

    k: torch.Tensor
    v: torch.Tensor
    start: int = 0
    explicit_attention: ClassVar[bool] = False

    @classmethod
    def empty(cls, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> EagerCache:
        """Uninitialised buffers: every slot is written before a query can see it."""
        return cls(
            torch.empty(shape, dtype=dtype, device=device),
            torch.empty(shape, dtype=dtype, device=device),
        )

    def at(self, start: int) -> EagerCache:
        """The same buffers, for a chunk whose first token goes into slot ``start``."""
        return EagerCache(self.k, self.v, start)

    def rows(self, stop: int) -> EagerCache:
        """The first ``stop`` rows (a view: writes land in this cache)."""
        return EagerCache(self.k[:, :stop], self.v[:, :stop], self.start)

    def update(
        self, k: torch.Tensor, v: torch.Tensor, layer_idx: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.start + k.shape[2]
        self.k[layer_idx, :, :, self.start : end] = k
        self.v[layer_idx, :, :, self.start : end] = v
        # [B, Hkv, S_max, Dh] -> the filled slots [B, Hkv, start + T, Dh]
        return self.k[layer_idx, :, :, :end], self.v[layer_idx, :, :, :end]


@dataclass
class StaticCache:
    """Fixed buffers [L, B, Hkv, S_max, Dh] plus the write slot ``slot`` ([T] long, on the
    device, usually T = 1): writes go in place, reads always span all S_max slots."""

    k: torch.Tensor
    v: torch.Tensor
    slot: torch.Tensor
    explicit_attention: ClassVar[bool] = False

    @classmethod
    def zeros(
        cls, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> StaticCache:
        """Zeros, not garbage: attention reads the unwritten slots too (at weight 0 under the
        -inf bias), and a NaN left in uninitialised memory would survive 0 * NaN."""
        return cls(
            torch.zeros(shape, dtype=dtype, device=device),
            torch.zeros(shape, dtype=dtype, device=device),
            torch.zeros(1, dtype=torch.long, device=device),
        )

    def update(
        self, k: torch.Tensor, v: torch.Tensor, layer_idx: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        k_cache, v_cache = self.k[layer_idx], self.v[layer_idx]  # [B, Hkv, S_max, Dh] each
        k_cache.index_copy_(2, self.slot, k)  # the slot index lives on the device
        v_cache.index_copy_(2, self.slot, v)
        return k_cache, v_cache


class ExportCache:
    """Past keys/values [L, B, Hkv, P, Dh] in (P may be 0), present [L, B, Hkv, P + T, Dh]
    out; used for one decoder call, layer by layer in order."""

    explicit_attention: ClassVar[bool] = True

    def __init__(self, past_k: torch.Tensor, past_v: torch.Tensor) -> None:
        self.past_k, self.past_v = past_k, past_v
        self._k: list[torch.Tensor] = []
        self._v: list[torch.Tensor] = []

    def update(
        self, k: torch.Tensor, v: torch.Tensor, layer_idx: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if layer_idx != len(self._k):  # a static check on the layer loop, never on data
            raise ValueError(
                f'ExportCache is filled layer by layer: got layer {layer_idx} after '
                f'{len(self._k)} layers'
            )
        k = torch.cat((self.past_k[layer_idx], k), dim=2)  # [B, Hkv, P + T, Dh]
        v = torch.cat((self.past_v[layer_idx], v), dim=2)  # [B, Hkv, P + T, Dh]
        self._k.append(k)
        self._v.append(v)
        return k, v

    def present(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every layer's past and new keys, values: [L, B, Hkv, P + T, Dh] each."""
        return torch.stack(self._k), torch.stack(self._v)
