"""The official AI City Challenge 2025 Track 3 (warehouse) metric, reproduced rule for rule.

Rules (spatial-benchmarks §4.2, smolrgpt-reference §6.4):

* the prediction ids must be exactly the ground-truth ids, otherwise nothing is scored;
* ``count``: ``int(float(pred)) == int(float(gt))`` (so "2.7" counts as 2);
* ``distance``: ``0.9 * gt <= pred <= 1.1 * gt`` (Acc@10, inclusive; gt 0 needs exactly 0);
* ``left_right``: lower-cased, stripped, synonyms mapped to left/right, then equal;
* ``mcq``: number words zero..ten replaced by digits as plain substrings, then the first
  integer (or the lower-cased text when there is none), then equal;
* final score = mean of the per-category accuracies (%) of the categories present.

One deliberate difference: the official script crashes on a non-numeric count or distance
prediction; here it is a miss and its id is listed in the report.

It lives in the core (pure Python, no torch) because the robot scores replays with it too
(``smolrgpt replay-eval``); training and the benchmarks import it from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
import logging
import math
import re
from typing import Any

from smolrgpt_core.normalize import CATEGORIES

log = logging.getLogger(__name__)

QUANTITATIVE = ('count', 'distance')
QUALITATIVE = ('left_right', 'mcq')

_LEFT_RIGHT_SYNONYMS = {
    'l': 'left', 'left': 'left', 'left side': 'left', 'left-hand': 'left', 'left hand': 'left',
    'r': 'right', 'right': 'right', 'right side': 'right', 'right-hand': 'right',
    'right hand': 'right',
}  # fmt: skip
# replaced in this order, as plain substrings (so "none" becomes "n1", as in the official code)
_MCQ_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine',
              'ten')  # fmt: skip
_FIRST_INT_RE = re.compile(r'\d+')
_DELTA_BASE = 1.10


class ScoringError(ValueError):
    """The inputs cannot be scored (bad ground truth, id sets differ)."""


class IdSetMismatch(ScoringError):
    def __init__(self, missing: list[str], extra: list[str]) -> None:
        self.missing = missing
        self.extra = extra
        super().__init__(
            f'prediction ids differ from ground-truth ids ({len(missing)} missing, '
            f'{len(extra)} extra; e.g. missing {missing[:3]}, extra {extra[:3]}); '
            'the official rule scores nothing in that case'
        )


class UnparsablePrediction(ValueError):
    """A count/distance prediction that is not a number (the official script would crash)."""


def normalize_left_right(value: Any) -> str:
    text = str(value).lower().strip()
    return _LEFT_RIGHT_SYNONYMS.get(text, text)


def normalize_mcq(value: Any) -> str:
    text = str(value).lower().strip()
    for digit, word in enumerate(_MCQ_WORDS):
        text = text.replace(word, str(digit))
    match = _FIRST_INT_RE.search(text)
    return match.group(0) if match else text


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise UnparsablePrediction(f'{value!r} is not a number')
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise UnparsablePrediction(f'{value!r} is not a number') from exc


def _as_int(value: Any) -> int:
    number = _as_float(value)
    if not math.isfinite(number):
        raise UnparsablePrediction(f'{value!r} is not a finite number')
    return int(number)


def count_correct(pred: Any, gt: Any) -> bool:
    return _as_int(pred) == _as_int(gt)


def distance_correct(pred: Any, gt: Any) -> bool:
    p, g = _as_float(pred), _as_float(gt)
    return 0.9 * g <= p <= 1.1 * g


def left_right_correct(pred: Any, gt: Any) -> bool:
    return normalize_left_right(pred) == normalize_left_right(gt)


def mcq_correct(pred: Any, gt: Any) -> bool:
    return normalize_mcq(pred) == normalize_mcq(gt)


CORRECT = {
    'count': count_correct,
    'distance': distance_correct,
    'left_right': left_right_correct,
    'mcq': mcq_correct,
}


@dataclass
class CategoryScore:
    category: str
    total: int = 0
    correct: int = 0
    unparsable_ids: list[str] = field(default_factory=list)
    pairs: list[tuple[float, float]] = field(default_factory=list)  # (pred, gt) numeric only

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.total if self.total else 0.0

    def numeric_stats(self) -> dict[str, float | int | None]:
        """abs-rel, RMSE, official error rate and δ-accuracies over the parsable predictions."""
        if not self.pairs:
            return {'n': 0, 'abs_rel': None, 'rmse': None, 'error_rate': None}
        pred = [p for p, _ in self.pairs]
        gt = [g for _, g in self.pairs]
        positive = [(p, g) for p, g in self.pairs if g > 0]
        if self.category == 'count':  # the official per-sample error of each category
            errors = [abs(p - g) / max(1.0, g) for p, g in self.pairs]
        else:
            errors = [abs(p - g) / (g + 1e-8) for p, g in self.pairs]
        stats: dict[str, float | int | None] = {
            'n': len(self.pairs),
            'abs_rel': (sum(abs(p - g) / g for p, g in positive) / len(positive))
            if positive
            else None,
            'abs_rel_excluded_gt0': len(self.pairs) - len(positive),
            'rmse': math.sqrt(sum((p - g) ** 2 for p, g in zip(pred, gt, strict=True)) / len(gt)),
            'error_rate': sum(errors) / len(errors),
        }
        both_positive = [(p, g) for p, g in positive if p > 0]
        for k in (1, 2, 3):
            hits = sum(max(p / g, g / p) < _DELTA_BASE**k for p, g in both_positive)
            stats[f'delta_{k}'] = 100.0 * hits / len(self.pairs)
        return stats


@dataclass
class WarehouseScore:
    categories: dict[str, CategoryScore]

    def _micro(self, names: Iterable[str]) -> float:
        scores = [self.categories[n] for n in names if n in self.categories]
        total = sum(s.total for s in scores)
        return 100.0 * sum(s.correct for s in scores) / total if total else 0.0

    @property
    def final_score(self) -> float:
        present = [s.accuracy for s in self.categories.values() if s.total]
        return sum(present) / len(present) if present else 0.0

    def to_dict(self) -> dict[str, Any]:
        per_category = {}
        for name, score in self.categories.items():
            entry: dict[str, Any] = {
                'accuracy': score.accuracy,
                'correct': score.correct,
                'total': score.total,
                'unparsable': len(score.unparsable_ids),
                'unparsable_ids': score.unparsable_ids,
            }
            if name in QUANTITATIVE:
                entry['numeric'] = score.numeric_stats()
            per_category[name] = entry
        return {
            'metric': 'warehouse (AI City Challenge 2025 Track 3, official rules)',
            'final_score': self.final_score,
            'quantitative_accuracy': self._micro(QUANTITATIVE),
            'qualitative_accuracy': self._micro(QUALITATIVE),
            'overall_accuracy': self._micro(CATEGORIES),
            'per_category': per_category,
        }


def check_id_sets(gt_ids: Iterable[str], pred_ids: Iterable[str]) -> None:
    gt_set, pred_set = set(gt_ids), set(pred_ids)
    if gt_set != pred_set:
        raise IdSetMismatch(sorted(gt_set - pred_set), sorted(pred_set - gt_set))


def score_warehouse(gt: list[Mapping[str, Any]], pred: list[Mapping[str, Any]]) -> WarehouseScore:
    """Score predictions ``[{id, normalized_answer}]`` against ground truth records.

    Ground-truth records need ``id``, ``category`` and ``normalized_answer`` (str or number).
    """
    answers: dict[str, Any] = {}
    for record in pred:
        if 'id' not in record or 'normalized_answer' not in record:
            raise ScoringError(f"a prediction lacks 'id' or 'normalized_answer': {record!r:.120}")
        if str(record['id']) in answers:
            log.warning(
                'prediction id %s appears more than once; the last one counts', record['id']
            )
        answers[str(record['id'])] = record['normalized_answer']
    for record in gt:
        for key in ('id', 'category', 'normalized_answer'):
            if key not in record:
                raise ScoringError(
                    f'ground-truth record {record.get("id", "?")} has no {key!r} '
                    '(test.json carries no answers; score against val.json)'
                )
        if not isinstance(record['category'], str) or record['category'] not in CORRECT:
            raise ScoringError(
                f'ground-truth record {record["id"]} has unknown category {record["category"]!r}'
            )
    check_id_sets((str(r['id']) for r in gt), answers)

    # the report lists the categories alphabetically (count, distance, left_right, mcq)
    categories = {name: CategoryScore(name) for name in sorted(CATEGORIES)}
    for record in gt:
        record_id, name = str(record['id']), record['category']
        score = categories[name]
        score.total += 1
        pred_value, gt_value = answers[record_id], record['normalized_answer']
        if name in QUANTITATIVE:
            try:
                _as_float(gt_value)
            except UnparsablePrediction as exc:
                raise ScoringError(f'ground-truth record {record_id}: {exc}') from exc
        try:
            hit = CORRECT[name](pred_value, gt_value)
        except UnparsablePrediction:
            score.unparsable_ids.append(record_id)
            continue
        score.correct += hit
        if name in QUANTITATIVE:
            p, g = _as_float(pred_value), _as_float(gt_value)
            if math.isfinite(p):
                score.pairs.append((p, g))
    return WarehouseScore({n: s for n, s in categories.items() if s.total})
