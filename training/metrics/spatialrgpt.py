"""SpatialRGPT-Bench scoring with a rule judge (no GPT-4, no local LLM).

The protocol follows SpatialRGPT's GPT-4 evaluation (spatial-benchmarks §1.3):

* qualitative items: the response must agree with the ground truth (yes/no for predicates,
  the chosen region for choices); accuracy per category;
* distances and sizes: both answers converted to metres; success when
  ``0.75 * gt <= pred <= 1.25 * gt``; absolute relative error ``|pred - gt| / gt`` averaged per
  category over the parsable answers;
* direction: clock hours; success when the cyclic error is at most 1 hour; error in degrees;
* a response the rules cannot read is a failure (counted in ``match_fail``) and is left out of
  the error averages; overall accuracies are micro averages over samples.

The judge is rules, not an LLM, so numbers are labelled as such and are not directly
comparable with the paper's GPT-4-judged table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
import logging
import re
from typing import Any

from smolrgpt_core.normalize import region_indices, strip_regions
from smolrgpt_core.text_numbers import length_in_metres, word_to_int

log = logging.getLogger(__name__)

# fine-grained qa_info.category -> reported group
GROUPS: dict[str, str] = {
    'distance_data': 'direct_distance', 'horizontal_distance_data': 'horizontal_distance',
    'vertical_distance_data': 'vertical_distance', 'width_data': 'width',
    'height_data': 'height', 'direction': 'direction',
    'left_predicate': 'left_right', 'right_predicate': 'left_right',
    'left_choice': 'left_right', 'right_choice': 'left_right',
    'above_predicate': 'below_above', 'below_predicate': 'below_above',
    'above_choice': 'below_above', 'below_choice': 'below_above',
    'tall_predicate': 'tall_short', 'short_predicate': 'tall_short',
    'tall_choice': 'tall_short', 'short_choice': 'tall_short',
    'big_predicate': 'big_small', 'small_predicate': 'big_small',
    'wide_predicate': 'wide_thin', 'thin_predicate': 'wide_thin',
    'front_predicate': 'behind_front', 'behind_predicate': 'behind_front',
}  # fmt: skip
QUALITATIVE_GROUPS = ('below_above', 'left_right', 'big_small', 'tall_short', 'wide_thin',
                      'behind_front')  # fmt: skip
QUANTITATIVE_GROUPS = ('direct_distance', 'horizontal_distance', 'vertical_distance', 'width',
                       'height', 'direction')  # fmt: skip

# relation -> (words that state it, words that state its opposite)
_RELATION_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    'left': (('left',), ('right',)),
    'right': (('right',), ('left',)),
    'above': (('above', 'higher', 'over', 'on top', 'up'), ('below', 'lower', 'under',
                                                             'beneath', 'down')),
    'below': (('below', 'lower', 'under', 'beneath', 'down'), ('above', 'higher', 'over',
                                                               'on top', 'up')),
    'tall': (('tall', 'taller', 'tallest', 'higher'), ('short', 'shorter', 'shortest')),
    'short': (('short', 'shorter', 'shortest'), ('tall', 'taller', 'tallest')),
    'big': (('big', 'bigger', 'biggest', 'large', 'larger', 'largest'),
            ('small', 'smaller', 'smallest', 'tiny')),
    'small': (('small', 'smaller', 'smallest', 'tiny'),
              ('big', 'bigger', 'biggest', 'large', 'larger', 'largest')),
    'wide': (('wide', 'wider', 'widest', 'broad', 'broader'),
             ('thin', 'thinner', 'thinnest', 'narrow', 'narrower', 'slim', 'slimmer')),
    'thin': (('thin', 'thinner', 'thinnest', 'narrow', 'narrower', 'slim', 'slimmer'),
             ('wide', 'wider', 'widest', 'broad', 'broader')),
    'behind': (('behind', 'further', 'farther', 'back'), ('front', 'closer', 'nearer')),
    'front': (('front', 'closer', 'nearer'), ('behind', 'further', 'farther', 'back')),
}  # fmt: skip
_YES_RE = re.compile(r'^\W*(?:yes|yeah|yep|correct|indeed|true|affirmative|right,)\b', re.I)
_NO_RE = re.compile(r'^\W*(?:no|nope|incorrect|not|false|wrong)\b', re.I)
_NEGATION_RE = re.compile(r"\b(?:not|isn't|aren't|doesn't|never|neither)\b", re.I)
_CLOCK_RE = re.compile(
    r"\b(\d{1,2}|[a-z]+(?:-[a-z]+)?)\s*(?::00\s*)?o\s*['’`]?\s*clock", re.IGNORECASE
)


def _relation_of(category: str) -> str:
    return category.split('_')[0]


def _mentions(text: str, words: tuple[str, ...]) -> list[int]:
    return [m.start() for w in words for m in re.finditer(rf'\b{re.escape(w)}\b', text, re.I)]


def _negated_before(text: str, pos: int) -> bool:
    clause = re.split(r'[.;!?,]', text[:pos])[-1]
    return bool(_NEGATION_RE.search(clause))


def judge_predicate(text: str, relation: str) -> str | None:
    """'yes' / 'no' for a predicate answer about ``relation``; None when unreadable."""
    if _YES_RE.search(text):
        return 'yes'
    if _NO_RE.search(text):
        return 'no'
    same, opposite = _RELATION_WORDS[relation]
    for pos in sorted(_mentions(text, same) + _mentions(text, opposite)):
        states_same = pos in _mentions(text, same)
        if _negated_before(text, pos):
            states_same = not states_same
        return 'yes' if states_same else 'no'
    return None


def judge_choice(text: str, relation: str) -> int | None:
    """The region index a choice answer picks for ``relation``; None when unreadable."""
    regions = region_indices(text)
    if not regions:
        return None
    index, _, end = regions[0]
    same, opposite = _RELATION_WORDS[relation]
    clause = re.split(r'[.;!?]', text[end:])[0]
    hits = sorted(
        [(p, True) for p in _mentions(clause, same)]
        + [(p, False) for p in _mentions(clause, opposite)]
    )
    if not hits:
        return index
    states_same = hits[0][1] != _negated_before(clause, hits[0][0])
    if states_same:
        return index
    # the first region was said to be the opposite: the answer is the other of the two
    others = [r[0] for r in regions if r[0] != index]
    return others[0] if others else 1 - index if index in (0, 1) else None


def clock_hour(text: str) -> int | None:
    match = _CLOCK_RE.search(text)
    if match is None:
        return None
    hour = word_to_int(match.group(1))
    if hour is None or not 1 <= hour <= 12:
        return None
    return hour


@dataclass
class GroupScore:
    group: str
    total: int = 0
    success: int = 0
    match_fail: int = 0
    errors: list[float] = field(default_factory=list)  # abs-rel, or clock hours for direction

    @property
    def accuracy(self) -> float:
        return 100.0 * self.success / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            'accuracy': self.accuracy,
            'success': self.success,
            'total': self.total,
            'match_fail': self.match_fail,
        }
        if self.group == 'direction':
            entry['mean_error_deg'] = (
                30.0 * sum(self.errors) / len(self.errors) if self.errors else None
            )
        elif self.group in QUANTITATIVE_GROUPS:
            entry['abs_rel'] = sum(self.errors) / len(self.errors) if self.errors else None
        return entry


@dataclass(frozen=True)
class Verdict:
    success: bool
    readable: bool  # False: the rules found no answer of the right kind in the response
    error: float | None = None  # abs-rel, or clock hours for direction; None if not measurable


def judge_item(category: str, gt_text: str, pred_text: str) -> Verdict:
    """Judge one bench item. Raises ValueError when the ground truth itself cannot be read."""
    if category == 'direction':
        gt_hour = clock_hour(strip_regions(gt_text))
        if gt_hour is None:
            raise ValueError(f'no clock hour in the ground truth {gt_text!r:.100}')
        hour = clock_hour(strip_regions(pred_text))
        if hour is None:
            return Verdict(False, False)
        diff = abs(hour - gt_hour)
        err = min(diff, 12 - diff)
        return Verdict(err <= 1, True, float(err))
    if category.endswith('_data'):
        gt_m = length_in_metres(strip_regions(gt_text))
        if gt_m is None:
            raise ValueError(f'no length in the ground truth {gt_text!r:.100}')
        pred_m = length_in_metres(strip_regions(pred_text))
        if pred_m is None:
            return Verdict(False, False)
        error = abs(pred_m - gt_m) / gt_m if gt_m > 0 else None
        return Verdict(0.75 * gt_m <= pred_m <= 1.25 * gt_m, True, error)
    relation = _relation_of(category)
    judge = judge_predicate if category.endswith('_predicate') else judge_choice
    gt_value = judge(gt_text, relation)
    if gt_value is None:
        raise ValueError(f'the rules cannot read the ground truth {gt_text!r:.100}')
    pred_value = judge(pred_text, relation)
    return Verdict(pred_value == gt_value, pred_value is not None)


@dataclass
class BenchScore:
    groups: dict[str, GroupScore]

    def _micro(self, names: tuple[str, ...]) -> float:
        scores = [self.groups[n] for n in names if n in self.groups]
        total = sum(s.total for s in scores)
        return 100.0 * sum(s.success for s in scores) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            'metric': 'SpatialRGPT-Bench (rule judge, SpatialRGPT protocol: ±25%, ±1 clock hour)',
            'qualitative_accuracy': self._micro(QUALITATIVE_GROUPS),
            'quantitative_accuracy': self._micro(QUANTITATIVE_GROUPS),
            'per_category': {n: s.to_dict() for n, s in self.groups.items()},
        }


def score_bench(items: list[Mapping[str, Any]], predictions: Mapping[str, str]) -> BenchScore:
    """Score free-form predictions ``{id: text}`` against bench items.

    Items need ``id``, ``category`` (a ``qa_info.category`` value) and ``answer`` (GT text).
    Items without a prediction count as failures.
    """
    groups: dict[str, GroupScore] = {}
    for item in items:
        category = item['category']
        if category not in GROUPS:
            raise ValueError(f'bench item {item["id"]} has unknown category {category!r}')
        group = GROUPS[category]
        score = groups.setdefault(group, GroupScore(group))
        score.total += 1
        pred = predictions.get(str(item['id']))
        if pred is None:
            score.match_fail += 1
            continue
        try:
            verdict = judge_item(category, item['answer'], pred)
        except ValueError as exc:
            raise ValueError(f'bench item {item["id"]}: {exc}') from exc
        score.success += verdict.success
        score.match_fail += not verdict.readable
        if verdict.error is not None:
            score.errors.append(verdict.error)
    order = [g for g in (*QUALITATIVE_GROUPS, *QUANTITATIVE_GROUPS) if g in groups]
    return BenchScore({g: groups[g] for g in order})
