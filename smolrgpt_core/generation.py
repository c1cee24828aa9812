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
"""

from __future__ import annotations

from collections.abc import Sequence
import logging

import torch

from smolrgpt_core.modeling.decoder import Decoder, KVCache, attention_bias, linear
from smolrgpt_core.sampling import SamplingParams, select_next

logger = logging.getLogger(__name__)


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


@torch.inference_mode()
def generate(
    decoder: Decoder,
    embeds: Sequence[torch.Tensor],
    *,
    eos_token_id: int,
    max_new_tokens: int = 120,
    sampling: SamplingParams | None = None,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Decode from B prompt embeddings [T_i, D]; returns each row's new tokens before EOS."""
    if not embeds:
        return []
    if max_new_tokens < 1:
        raise ValueError(f'max_new_tokens must be >= 1, got {max_new_tokens}')
    if min(e.shape[0] for e in embeds) < 1:
        raise ValueError('every prompt needs at least one token')
    sampling = sampling or SamplingParams()
    weight = decoder.token_embedding.weight
    dtype, device = weight.dtype, weight.device
    cfg_blocks = len(decoder.blocks)
    attn = decoder.blocks[0].attn
    B = len(embeds)
    P = shared_prefix_length(embeds)
    suffix_lens = [e.shape[0] - P for e in embeds]
    S_max = max(suffix_lens)
    total = P + S_max + max_new_tokens
    shape = (cfg_blocks, B, attn.n_kv_heads, total, attn.head_dim)
    cache = KVCache(torch.empty(shape, dtype=dtype, device=device),
                    torch.empty(shape, dtype=dtype, device=device))
    key_valid = torch.zeros(B, total, dtype=torch.bool, device=device)

    if P > 0:
        # the shared prefix once, into row 0, then copied to the other rows
        row0 = KVCache(cache.k[:, :1], cache.v[:, :1])
        prefix = embeds[0][:P][None].to(dtype)  # [1, P, D]
        positions = torch.arange(P, device=device)[None]  # [1, P]
        bias = attention_bias(key_valid.new_ones(1, P), 0, P, dtype)
        decoder(prefix, positions, bias, row0, start=0)
        cache.k[:, 1:, :, :P] = cache.k[:, :1, :, :P]
        cache.v[:, 1:, :, :P] = cache.v[:, :1, :, :P]
        key_valid[:, :P] = True

    x = torch.zeros(B, S_max, weight.shape[1], dtype=dtype, device=device)  # [B, Smax, D]
    for i, (e, n) in enumerate(zip(embeds, suffix_lens)):
        x[i, S_max - n:] = e[P:].to(dtype)
        key_valid[i, P + S_max - n:P + S_max] = True
    suffix_valid = key_valid[:, P:P + S_max]  # [B, Smax]
    positions = P + (suffix_valid.long().cumsum(-1) - 1).clamp(min=0)  # [B, Smax]
    bias = attention_bias(key_valid[:, :P + S_max], P, S_max, dtype)
    hidden = decoder(x, positions, bias, cache, start=P)  # [B, Smax, D]
    logits = linear(decoder.head, hidden[:, -1])  # [B, V]
    next_pos = positions[:, -1] + 1  # [B]

    out = torch.full((B, max_new_tokens), eos_token_id, dtype=torch.long, device=device)
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    slot = P + S_max
    steps = 0
    for step in range(max_new_tokens):
        token = select_next(logits, sampling, generator)  # [B]
        token = token.masked_fill(finished, eos_token_id)
        out[:, step] = token
        steps = step + 1
        finished |= token == eos_token_id
        if step == max_new_tokens - 1 or bool(finished.all()):
            break
        key_valid[:, slot] = True
        keys = key_valid[:, :slot + 1]
        # with no padded key left, a single query needs no mask at all
        bias = None if bool(keys.all()) else attention_bias(keys, slot, 1, dtype)
        x = decoder.token_embedding(token)[:, None]  # [B, 1, D]
        hidden = decoder(x, next_pos[:, None], bias, cache, start=slot)  # [B, 1, D]
        logits = linear(decoder.head, hidden[:, -1])  # [B, V]
        next_pos = next_pos + 1
        slot += 1
    logger.debug('generated %d steps for %d rows (shared prefix %d)', steps, B, P)

    results = []
    for row in out[:, :steps].tolist():
        results.append(row[:row.index(eos_token_id)] if eos_token_id in row else row)
    return results
