"""Next-token selection: greedy, or temperature / top-k / top-p sampling.

Sampling follows the reference's order, which differs from Hugging Face's: top-k and top-p
filter the *untempered* logits, the token whose cumulative probability crosses ``top_p`` is
dropped (the most likely token always survives), and the temperature is applied afterwards.
Greedy decoding is the argmax (first index on ties) and is what every reference script uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    greedy: bool = True
    temperature: float = 0.5
    top_k: int = 50
    top_p: float = 0.9

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {self.temperature}')
        if self.top_k < 0:
            raise ValueError(f'top_k must be >= 0 (0 disables it), got {self.top_k}')
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f'top_p must be in (0, 1], got {self.top_p}')


def filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep logits >= the k-th largest per row ([B, V]); others become -inf."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]  # [B, 1]
    return logits.masked_fill(logits < kth, float('-inf'))


def filter_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Drop tokens once the sorted cumulative probability exceeds p ([B, V])."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)  # [B, V]
    cumulative = sorted_logits.softmax(-1).cumsum(-1)  # [B, V]
    drop_sorted = cumulative > p
    drop_sorted[:, 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # back to vocab order
    return logits.masked_fill(drop, float('-inf'))


def select_next(
    logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None = None
) -> torch.Tensor:
    """[B, V] logits -> [B] token ids."""
    if params.greedy:
        return logits.argmax(-1)
    logits = filter_top_p(filter_top_k(logits.float(), params.top_k), params.top_p)
    probs = (logits / params.temperature).softmax(-1)  # [B, V]
    return torch.multinomial(probs, 1, generator=generator)[:, 0]
