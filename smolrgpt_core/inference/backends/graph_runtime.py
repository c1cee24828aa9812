"""Host side shared by the exported-graph backends (ONNX Runtime, TensorRT).

The graphs hold the networks; the host keeps what is cheap and must match the torch backend
bit for bit, and runs the torch backend's own code for it: the mask resize, the token
embedding lookup with image/region splicing (``modeling.splice.prompt_embeddings`` on the
exported table), the attention bias and position ids, and the generation loop with its
shared-prefix batching and EOS stop (``smolrgpt_core.generation.decode``, driven through a
``KVRunner`` instead of the torch ``Decoder``). Greedy answers therefore equal the torch
backend's whenever the graphs' logits pick the same argmax.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
import logging
from typing import Protocol

import torch

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.generation import decode
from smolrgpt_core.inference.types import EncodedFrame, Prompt
from smolrgpt_core.modeling.decoder import attention_bias
from smolrgpt_core.modeling.region import resize_masks
from smolrgpt_core.modeling.splice import prompt_embeddings
from smolrgpt_core.sampling import SamplingParams

logger = logging.getLogger(__name__)


class KVRunner(Protocol):
    """A decoder graph plus the keys/values it has seen so far."""

    dtype: torch.dtype  # of inputs_embeds and attention_bias
    device: torch.device

    def begin(self, rows: int, max_len: int) -> None:
        """Start a generation of at most ``rows`` rows and ``max_len`` slots (empty past)."""

    def step(
        self, embeds: torch.Tensor, positions: torch.Tensor, bias: torch.Tensor
    ) -> torch.Tensor:
        """embeds [b, T, D], positions [b, T], bias [b, 1, T, P + T] -> logits [b, V] (fp32);
        the past grows by T slots."""

    def broadcast(self, rows: int) -> None:
        """Copy the past of row 0 (a batch-1 prefill) to ``rows`` rows."""


class PingPongKV(ABC):
    """``KVRunner`` skeleton: keys/values in two preallocated pairs of flat buffers.

    The current past is a contiguous [L, b, Hkv, P, Dh] view at the start of one pair; a
    step writes the present [L, b, Hkv, P + T, Dh] into the other pair and the two swap.
    Subclasses run the graph in ``_execute`` with those views as inputs and outputs.
    """

    def __init__(self, cfg: SmolRGPTConfig, dtype: torch.dtype, device: torch.device) -> None:
        self.dtype, self.device = dtype, device
        self._kv_dims = (cfg.lm_n_blocks, cfg.lm_n_kv_heads, cfg.lm_head_dim)
        self._vocab = cfg.lm_vocab_size
        self._buffers: list[torch.Tensor] = []
        self.rows = 1
        self.past = 0

    def begin(self, rows: int, max_len: int) -> None:
        L, Hkv, Dh = self._kv_dims
        need = max(L * rows * Hkv * max_len * Dh, 1)
        if not self._buffers or self._buffers[0].numel() < need:
            # k, v of the current past, then k, v of the next present (reused across answers)
            self._buffers = [
                torch.empty(need, dtype=self.dtype, device=self.device) for _ in range(4)
            ]
        self.rows, self.past = rows, 0

    def _view(self, index: int, rows: int, length: int) -> torch.Tensor:
        L, Hkv, Dh = self._kv_dims
        return self._buffers[index][: L * rows * Hkv * length * Dh].view(L, rows, Hkv, length, Dh)

    @abstractmethod
    def _execute(self, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]) -> None:
        """Run the decoder graph on bound inputs into preallocated outputs."""

    def step(
        self, embeds: torch.Tensor, positions: torch.Tensor, bias: torch.Tensor
    ) -> torch.Tensor:
        rows, T = embeds.shape[:2]
        inputs = {
            'inputs_embeds': embeds.to(self.device, self.dtype).contiguous(),
            'position_ids': positions.to(self.device, torch.long).contiguous(),
            'attention_bias': bias.to(self.device, self.dtype).contiguous(),
            'past_key': self._view(0, rows, self.past),
            'past_value': self._view(1, rows, self.past),
        }
        logits = torch.empty(rows, self._vocab, dtype=torch.float32, device=self.device)
        outputs = {
            'logits': logits,
            'present_key': self._view(2, rows, self.past + T),
            'present_value': self._view(3, rows, self.past + T),
        }
        self._execute(inputs, outputs)
        self._buffers = self._buffers[2:] + self._buffers[:2]
        self.rows, self.past = rows, self.past + T
        return logits

    def broadcast(self, rows: int) -> None:
        if self.past:
            for src, dst in ((0, 2), (1, 3)):
                self._view(dst, rows, self.past).copy_(self._view(src, 1, self.past))
            self._buffers = self._buffers[2:] + self._buffers[:2]
        self.rows = rows


def mask_grid_weights(masks: torch.Tensor | None, cfg: SmolRGPTConfig) -> torch.Tensor:
    """Camera-size masks [M, Hi, Wi] -> the vision graph's [M, G, G] input (float32)."""
    G = cfg.mask_grid
    if masks is None or masks.shape[0] == 0:
        return torch.zeros(0, G, G)
    return resize_masks(torch.as_tensor(masks).cpu(), G).view(-1, G, G)  # [M, G*G] -> [M, G, G]


class GraphSteps:
    """``DecodeSteps`` over a ``KVRunner``: the attention bias is always an explicit input,
    and token embeddings come from the host table."""

    def __init__(self, runner: KVRunner, table: torch.Tensor) -> None:
        self.runner, self.table = runner, table
        self.dtype, self.device, self.width = runner.dtype, runner.device, table.shape[1]
        self.rows = 1

    def begin(self, rows: int, total: int) -> None:
        self.runner.begin(rows, total)
        self.rows = rows

    def prefix(self, x: torch.Tensor, positions: torch.Tensor, bias: torch.Tensor) -> None:
        self.runner.step(x, positions, bias)

    def suffix(
        self, x: torch.Tensor, positions: torch.Tensor, keys: torch.Tensor, start: int
    ) -> torch.Tensor:
        self.runner.broadcast(self.rows)  # row 0's prefix (if any) to every row
        bias = attention_bias(keys, start, x.shape[1], self.dtype)  # [B, 1, S, start+S]
        return self.runner.step(x, positions, bias)

    def token(
        self, token: torch.Tensor, positions: torch.Tensor, keys: torch.Tensor, slot: int
    ) -> torch.Tensor:
        bias = attention_bias(keys, slot, 1, self.dtype)  # [B, 1, 1, slot+1], zeros if all valid
        x = self.table[token.to(self.table.device)][:, None]  # [B, 1, D]
        return self.runner.step(x.to(device=self.device, dtype=self.dtype), positions, bias)


class GraphBackend(ABC):
    """``Backend`` over a vision graph and a decoder graph; subclasses provide the runners."""

    cfg: SmolRGPTConfig
    table: torch.Tensor  # [V, D] token embeddings (host), in the decoder's input dtype

    @abstractmethod
    def _run_vision(
        self, image: torch.Tensor, depth: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """image embeddings [n, D], rgb and depth region vectors [M, D]."""

    @abstractmethod
    def _runner(self) -> KVRunner:
        """A KV-cache runner of the decoder graph."""

    @torch.inference_mode()
    def encode_frame(
        self, image: torch.Tensor, depth: torch.Tensor, masks: torch.Tensor | None = None
    ) -> EncodedFrame:
        S = self.cfg.vit_img_size
        image = image if image.dim() == 4 else image[None]
        depth = depth if depth.dim() == 4 else depth[None]
        if image.shape != (1, 3, S, S) or depth.shape != (1, 3, S, S):
            raise ValueError(
                f'encode_frame takes one frame [3, {S}, {S}]; got image '
                f'{list(image.shape)}, depth {list(depth.shape)}'
            )
        weights = mask_grid_weights(masks, self.cfg)  # [M, G, G]
        M = weights.shape[0]
        if M == 0:  # the graph's region dim starts at 1: pool one empty mask, drop it
            weights = torch.zeros(1, *weights.shape[1:])
        image_embeds, rgb, depth_regions = self._run_vision(image.float(), depth.float(), weights)
        return EncodedFrame(image_embeds, rgb[:M], depth_regions[:M])

    def answer(
        self,
        frame: EncodedFrame,
        prompts: Sequence[Prompt],
        *,
        eos_token_id: int,
        max_new_tokens: int = 120,
        sampling: SamplingParams | None = None,
        generator: torch.Generator | None = None,
    ) -> list[list[int]]:
        embeds = prompt_embeddings(self.table, self.cfg, frame, prompts)  # [T, D] each
        return decode(
            GraphSteps(self._runner(), self.table),
            embeds,
            eos_token_id=eos_token_id,
            max_new_tokens=max_new_tokens,
            sampling=sampling,
            generator=generator,
        )
