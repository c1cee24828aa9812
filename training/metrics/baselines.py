"""Baselines an accuracy claim must beat, and the interval around an accuracy.

The strongest *constant* answer per category under the official rules: the most frequent
answer for left_right / count / mcq, and for distance the constant that lands within 10 % of
the most ground truths (a search over the observed values and their neighbourhood), which is
far stronger than the majority value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
import math
from typing import Any

from smolrgpt_core.warehouse_metric import CORRECT


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion, in percent."""
    if total == 0:
        return math.nan, math.nan
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def _hits(category: str, answer: Any, truths: Sequence[Any]) -> int:
    return sum(bool(CORRECT[category](str(answer), str(t))) for t in truths)


def constant_baselines(gt: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """category -> {answer, accuracy, n}: the best single answer for every question."""
    by_category: dict[str, list[Any]] = {}
    for record in gt:
        by_category.setdefault(record['category'], []).append(record['normalized_answer'])
    out = {}
    for category, truths in sorted(by_category.items()):
        if category == 'distance':
            values = sorted({float(t) for t in truths})
            # a constant c scores on truths within [c/1.1, c/0.9]: try each truth scaled to the
            # window's ends as well as the truths themselves
            candidates = {0.0, *values, *(v * 1.1 for v in values), *(v * 0.9 for v in values)}
            best = max(sorted(candidates), key=lambda c: _hits(category, f'{c:.2f}', truths))
            answer: Any = f'{best:.2f}'
        else:
            answer = Counter(str(t) for t in truths).most_common(1)[0][0]
        hits = _hits(category, answer, truths)
        out[category] = {'answer': answer, 'accuracy': 100 * hits / len(truths), 'n': len(truths)}
    return out
