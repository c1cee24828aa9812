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

import numpy as np

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
        answer = _best_constant(category, truths)
        hits = _hits(category, answer, truths)
        out[category] = {'answer': answer, 'accuracy': 100 * hits / len(truths), 'n': len(truths)}
    return out


def _best_constant(category: str, truths: Sequence[Any]) -> str:
    """The single answer that is right for the most of ``truths`` (see constant_baselines)."""
    if category != 'distance':
        return Counter(str(t) for t in truths).most_common(1)[0][0]
    g = np.array([float(t) for t in truths])
    # a constant c scores on the truths whose window [0.9 g, 1.1 g] holds it: try the truths
    # and the windows' ends, as the answer text (2 decimals) reads back
    raw = np.concatenate(([0.0], g, 0.9 * g, 1.1 * g))
    candidates = np.unique([float(f'{c:.2f}') for c in raw])
    low, high = np.sort(0.9 * g), np.sort(1.1 * g)
    hits = np.searchsorted(low, candidates, 'right') - np.searchsorted(high, candidates, 'left')
    return f'{candidates[int(np.argmax(hits))]:.2f}'


def question_keys(category: str, question: str) -> tuple[tuple[str, ...], ...]:
    """Finest to coarsest description of a question without its image: the whole question
    text (template, nouns, side, how many regions of each list), then the category and the
    number of regions, then the category alone."""
    text = ' '.join(question.replace('<image>', ' ').lower().split())
    regions = str(text.count('<mask>') + text.count('<mask_rgb>'))
    return (category, text), (category, regions), (category,)


class QuestionPrior:
    """The best answer given the question alone, fitted on training questions: for each key of
    ``question_keys`` seen at least ``min_support`` times, the majority answer (the best
    Acc@10 constant for distance); an unseen question backs off to a coarser key. A model that
    does not beat this has learnt nothing from the image."""

    def __init__(self, train: Sequence[Mapping[str, Any]], min_support: int = 5) -> None:
        groups: dict[tuple[str, ...], list[Any]] = {}
        for record in train:
            for key in question_keys(record['category'], record['question']):
                groups.setdefault(key, []).append(record['normalized_answer'])
        self.answers = {
            key: _best_constant(key[0], truths)
            for key, truths in groups.items()
            if len(truths) >= min_support or len(key) == 1
        }

    def predict(self, category: str, question: str) -> str | None:
        for key in question_keys(category, question):
            if key in self.answers:
                return self.answers[key]
        return None


def strongest_baselines(
    train: Sequence[Mapping[str, Any]], heldout: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """category -> {name, accuracy, n, and per baseline its accuracy}: the majority answer of
    the training questions, the best constant on the held-out questions themselves (an
    oracle: it sees their answers) and the question prior fitted on the training questions;
    ``name``/``accuracy`` are the strongest of the three. Records carry category, question
    and normalized_answer."""
    prior = QuestionPrior(train)
    oracle = constant_baselines(heldout)
    out: dict[str, dict[str, Any]] = {}
    for category in sorted({r['category'] for r in heldout}):
        mine = [r for r in heldout if r['category'] == category]
        truths = [r['normalized_answer'] for r in mine]
        trained = [r['normalized_answer'] for r in train if r['category'] == category]
        majority = Counter(str(t) for t in trained).most_common(1)[0][0] if trained else ''
        guesses = [prior.predict(category, r['question']) for r in mine]
        scores = {
            'majority': 100 * _hits(category, majority, truths) / len(truths),
            'best_constant': oracle[category]['accuracy'],
            'question_prior': 100
            * sum(
                g is not None and bool(CORRECT[category](g, str(t)))
                for g, t in zip(guesses, truths)
            )
            / len(truths),
        }
        name = max(scores, key=lambda k: scores[k])
        out[category] = {'name': name, 'accuracy': scores[name], 'n': len(truths), **scores}
    return out
