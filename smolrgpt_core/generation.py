"""Autoregressive decoding with a preallocated KV cache, for a batch of prompt embeddings.

Cache layout for B prompts (one row each)::

    slots [0, P)            shared prefix: prefilled once at batch 1, copied to every row
    slots [P, P + Smax)     each prompt's remaining suffix, left-padded to Smax
    slots [P + Smax, ...)   generated tokens

P is the longest prefix on which all prompts' embeddings agree (for questions about one
frame: the chat header and the 64 image tokens). Padded slots are masked as keys and skipped
by the position ids, so a row's positions are 0, 1, 2, ... over its real tokens, exactly as if
it ran alone; batched answers therefore equal one-by-one answers. Decoding stops as soon as
every row has produced EOS (the reference always runs the full budget and truncates after
EOS, which gives the same text).

A caller may follow the tokens as they come (streaming, cancel): ``on_token(step, tokens)``
is called after every step with each row's new token, and may return one flag per row to end
those rows there. Backends call ``decode`` without it; ``token_hook`` installs one for the
calls made on this thread (the engine uses it), so no backend signature carries it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
import logging
from typing import Protocol

import torch

from smolrgpt_core.modeling.decoder import Decoder, attention_bias, linear
from smolrgpt_core.modeling.kv_cache import EagerCache
from smolrgpt_core.sampling import SamplingParams, select_next

logger = logging.getLogger(__name__)

# (step, one new token id per row) -> None, or one flag per row: True ends that row now
TokenHook = Callable[[int, list[int]], 'Sequence[bool] | None']
_token_hook: ContextVar[TokenHook | None] = ContextVar('token_hook', default=None)


@contextmanager
def token_hook(hook: TokenHook | None) -> Iterator[None]:
    """``decode`` calls made on this thread inside the block report to ``hook``."""
    reset = _token_hook.set(hook)
    try:
        yield
    finally:
        _token_hook.reset(reset)


def shared_prefix_length(embeds: Sequence[torch.Tensor]) -> int:
    """Length of the prefix on which all [T_i, D] embeddings are equal, leaving >= 1 token
    per prompt for the batched step (it yields the first logits)."""
    limit = min(e.shape[0] for e in embeds) - 1
    if len(embeds) == 1:
        return limit
    first = embeds[0][:limit]
    same = torch.ones(limit, dtype=torch.bool, device=first.device)
    for e in embeds[1:]:
        same &= (e[:limit] == first).all(-1)  # [limit]
    differs = (~same).nonzero()
    return int(differs[0, 0]) if len(differs) else limit


class DecodeSteps(Protocol):
    """The three kinds of forward pass ``decode`` needs from a decoder and its KV cache. The
    torch decoder (``EagerSteps``), the exported graphs and the static CUDA-graph decoder each
    implement them; slots, masks, positions, sampling and EOS stay in ``decode``."""

    dtype: torch.dtype  # of the input embeddings and attention bias
    device: torch.device
    width: int  # D

    def begin(self, rows: int, total: int) -> None:
        """Start an empty cache of ``rows`` rows and ``total`` slots."""

    def prefix(self, x: torch.Tensor, positions: torch.Tensor, bias: torch.Tensor) -> None:
        """[1, P, D] into row 0's slots [0, P), then copied to every row."""

    def suffix(
        self, x: torch.Tensor, positions: torch.Tensor, keys: torch.Tensor, start: int
    ) -> torch.Tensor:
        """[B, S, D] into slots [start, start + S); keys [B, start + S] flags valid slots;
        -> logits of the last position [B, V]."""

    def token(
        self, token: torch.Tensor, positions: torch.Tensor, keys: torch.Tensor, slot: int
    ) -> torch.Tensor:
        """One token id per row [B] at positions [B, 1] into ``slot``; keys [B, slot + 1];
        -> logits [B, V]."""


class EagerSteps:
    """``DecodeSteps`` over the torch ``Decoder`` with an ``EagerCache`` allocated per answer."""

    def __init__(self, decoder: Decoder) -> None:
        weight = decoder.token_embedding.weight
        self.decoder = decoder
        self.dtype, self.device, self.width = weight.dtype, weight.device, weight.shape[1]
        self.cache: EagerCache | None = None

    def begin(self, rows: int, total: int) -> None:
        self.cache = EagerCache.empty(
            self.decoder.cache_shape(rows, total), self.dtype, self.device
        )

    def prefix(self, x: torch.Tensor, positions: torch.Tensor, bias: torch.Tensor) -> None:
        cache, P = self.cache, x.shape[1]
        self.decoder(x, positions, bias, cache.rows(1).at(0))
        cache.k[:, 1:, :, :P] = cache.k[:, :1, :, :P]
        cache.v[:, 1:, :, :P] = cache.v[:, :1, :, :P]

    def suffix(
        self, x: torch.Tensor, positions: torch.Tensor, keys: torch.Tensor, start: int
    ) -> torch.Tensor:
        bias = attention_bias(keys, start, x.shape[1], self.dtype)
        hidden = self.decoder(x, positions, bias, self.cache.at(start))  # [B, S, D]
        return linear(self.decoder.head, hidden[:, -1])  # [B, V]

    def token(
        self, token: torch.Tensor, positions: torch.Tensor, keys: torch.Tensor, slot: int
    ) -> torch.Tensor:
        # with no padded key left, a single query needs no mask at all
        bias = None if bool(keys.all()) else attention_bias(keys, slot, 1, self.dtype)
        x = self.decoder.token_embedding(token)[:, None]  # [B, 1, D]
        hidden = self.decoder(x, positions, bias, self.cache.at(slot))  # [B, 1, D]
        return linear(self.decoder.head, hidden[:, -1])  # [B, V]


@torch.inference_mode()
def decode(
    steps: DecodeSteps,
    embeds: Sequence[torch.Tensor],
    *,
    eos_token_id: int,
    max_new_tokens: int = 120,
    sampling: SamplingParams | None = None,
    generator: torch.Generator | None = None,
    on_token: TokenHook | None = None,
) -> list[list[int]]:
    """Decode from B prompt embeddings [T_i, D]; returns each row's new tokens before EOS.
    ``on_token``: see the module docstring (default: the hook of ``token_hook``, if any)."""
    if not embeds:
        return []
    on_token = on_token or _token_hook.get()
    if max_new_tokens < 1:
        raise ValueError(f'max_new_tokens must be >= 1, got {max_new_tokens}')
    if min(e.shape[0] for e in embeds) < 1:
        raise ValueError('every prompt needs at least one token')
    sampling = sampling or SamplingParams()
    dtype, device = steps.dtype, steps.device
    B = len(embeds)
    P = shared_prefix_length(embeds)
    suffix_lens = [e.shape[0] - P for e in embeds]
    S_max = max(suffix_lens)
    total = P + S_max + max_new_tokens
    steps.begin(B, total)
    key_valid = torch.zeros(B, total, dtype=torch.bool, device=device)

    if P > 0:
        # the shared prefix once, at batch 1
        prefix = embeds[0][:P][None].to(device=device, dtype=dtype)  # [1, P, D]
        positions = torch.arange(P, device=device)[None]  # [1, P]
        steps.prefix(prefix, positions, attention_bias(key_valid.new_ones(1, P), 0, P, dtype))
        key_valid[:, :P] = True

    x = torch.zeros(B, S_max, steps.width, dtype=dtype, device=device)  # [B, Smax, D]
    for i, (e, n) in enumerate(zip(embeds, suffix_lens)):
        x[i, S_max - n :] = e[P:].to(device=device, dtype=dtype)
        key_valid[i, P + S_max - n : P + S_max] = True
    suffix_valid = key_valid[:, P : P + S_max]  # [B, Smax]
    positions = P + (suffix_valid.long().cumsum(-1) - 1).clamp(min=0)  # [B, Smax]
    logits = steps.suffix(x, positions, key_valid[:, : P + S_max], P)  # [B, V]
    next_pos = positions[:, -1] + 1  # [B]

    out = torch.full((B, max_new_tokens), eos_token_id, dtype=torch.long, device=device)
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    slot = P + S_max
    steps_done = 0
    for step in range(max_new_tokens):
        token = select_next(logits, sampling, generator)  # [B]
        token = token.masked_fill(finished, eos_token_id)
        out[:, step] = token
        steps_done = step + 1
        finished |= token == eos_token_id
        if on_token is not None:
            stop = on_token(step, token.tolist())
            if stop is not None:
                finished |= torch.as_tensor(stop, dtype=torch.bool, device=device)
        if step == max_new_tokens - 1 or bool(finished.all()):
            break
        key_valid[:, slot] = True
        logits = steps.token(token, next_pos[:, None], key_valid[:, : slot + 1], slot)
        next_pos = next_pos + 1
        slot += 1
    logger.debug('generated %d steps for %d rows (shared prefix %d)', steps_done, B, P)

    results = []
    for row in out[:, :steps_done].tolist():
        results.append(row[: row.index(eos_token_id)] if eos_token_id in row else row)
    return results


def generate(
    decoder: Decoder,
    embeds: Sequence[torch.Tensor],
    *,
    eos_token_id: int,
    max_new_tokens: int = 120,
    sampling: SamplingParams | None = None,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """``decode`` with the torch decoder."""
    return decode(
        EagerSteps(decoder),
        embeds,
        eos_token_id=eos_token_id,
        max_new_tokens=max_new_tokens,
        sampling=sampling,
        generator=generator,
    )
