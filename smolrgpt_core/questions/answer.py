"""Answer sentences in the warehouse dataset's style, from a plan and a measured value.

The sentences follow the dataset's answers (spatial-benchmarks §4.1, §5): regions named
``[Region k]`` after their class noun, distances with two decimals in metres (and the "inside"
wording for a pallet 0 m from its buffer), counts as words with the member regions listed. Each
one reads back through ``normalize.normalize_answer`` as exactly the value it was made from;
the tests hold that round trip for every plan type.
"""

from __future__ import annotations

from collections.abc import Sequence
import math
import numbers
import operator

from smolrgpt_core.questions.plan import (
    KINDS,
    Closest,
    CountInBuffer,
    Distance,
    DistanceExtremes,
    Extreme,
    IsLeft,
    QuestionPlan,
)
from smolrgpt_core.text_numbers import NUMBER_WORDS

_NOUNS = {'buffer': 'buffer region'}  # how the answers call a kind
# 'one' .. 'twelve' as the answers spell counts, digits above (and 'no' for zero)
_COUNT_WORDS = {v: k for k, v in NUMBER_WORDS.items() if 1 <= v <= 12}


def region(k: int) -> str:
    return f'[Region {k}]'


def metres_text(value: float) -> str:
    """Two decimals, as the answers (and the normalized answers) write metres."""
    return f'{value:.2f}'


def count_text(n: int) -> str:
    return 'no' if n == 0 else _COUNT_WORDS.get(n, str(n))


def render_answer(
    plan: QuestionPlan,
    value: str | int | float,
    *,
    refs_count: int,
    members: Sequence[int] | None = None,
    buffer: int | None = None,
    ends: tuple[int, int] | None = None,
) -> str:
    """The answer sentence of ``plan`` for its normalized ``value``.

    ``value``: 'left' | 'right' (where IsLeft's ``a`` is relative to ``b``), metres (a distance,
    written to two decimals), the count, or the chosen reference index (mcq). Optional detail the
    dataset's answers carry: ``members`` (the reference indices of the counted pallets) and
    ``buffer`` (the side-most buffer) for a count, ``ends`` (the references that are
    ``which[0]`` and ``which[1]``) for a distance between extremes. ``refs_count`` is the
    question's reference count; it must be the plan's. Bad values raise ValueError.
    """
    if refs_count != plan.refs_count:
        raise ValueError(f'the plan is for {plan.refs_count} region references, not {refs_count}')
    _check_references(plan)
    op = plan.operation
    extra = {'members': members, 'buffer': buffer, 'ends': ends}
    allowed = {CountInBuffer: ('members', 'buffer'), DistanceExtremes: ('ends',)}.get(type(op), ())
    stray = [name for name, given in extra.items() if given is not None and name not in allowed]
    if stray:
        raise ValueError(f'{", ".join(stray)} do not apply to a {type(op).__name__} plan')
    if isinstance(op, IsLeft):
        if value not in ('left', 'right'):
            raise ValueError(f"a left/right answer is 'left' or 'right', got {value!r}")
        return f'{_named(plan, op.a, True)} is to the {value} of {_named(plan, op.b)}.'
    if isinstance(op, Distance):
        metres = _metres(value)
        kinds = (plan.kinds[op.a], plan.kinds[op.b])
        if metres == 0.0 and 'buffer' in kinds and kinds[0] != kinds[1]:
            inner, outer = (op.a, op.b) if kinds[1] == 'buffer' else (op.b, op.a)
            return (
                f'{_named(plan, inner, True)} is inside {_named(plan, outer)}, so the distance '
                'is 0 meters.'
            )
        distance = f'{metres_text(metres)} meters'
        return f'{_named(plan, op.a, True)} is {distance} from {_named(plan, op.b)}.'
    if isinstance(op, DistanceExtremes):
        return _extremes_sentence(plan, op, _metres(value), ends)
    if isinstance(op, CountInBuffer):
        return _count_sentence(plan, op, value, members, buffer)
    if isinstance(op, Extreme | Closest):
        return _choice_sentence(plan, op, value)
    raise ValueError(f'unknown plan operation {type(op).__name__}')


def _noun(plan: QuestionPlan, k: int) -> str:
    # only the known classes: a caller's label ("box 3", "left rack") could hold the very
    # numbers or sides the normaliser reads
    kind = plan.kinds[k]
    return _NOUNS.get(kind, kind) if kind in KINDS else 'region'


def _named(plan: QuestionPlan, k: int, first: bool = False) -> str:
    """'the pallet [Region 2]' ('[Region 2]' when the class is not a known one)."""
    if plan.kinds[k] not in KINDS:
        return region(k)
    return f'{"The" if first else "the"} {_noun(plan, k)} {region(k)}'


def _check_references(plan: QuestionPlan) -> None:
    op = plan.operation
    used: list[int] = []
    for name in ('a', 'b', 'to', 'group', 'buffers', 'pallets', 'candidates'):
        value = getattr(op, name, ())
        used.extend(value if isinstance(value, tuple) else (value,))
    bad = [k for k in used if not 0 <= k < plan.refs_count]
    if bad or len(set(used)) != len(used):
        raise ValueError(
            f'the {type(op).__name__} plan uses references {used}: each once, all below '
            f'{plan.refs_count}'
        )


def _metres(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f'a distance is a finite number of metres, got {value!r}')
    metres = float(value)
    if not math.isfinite(metres):
        raise ValueError(f'a distance is a finite number of metres, got {value!r}')
    if metres < 0:
        raise ValueError(f'a distance cannot be negative, got {metres}')
    return float(metres_text(metres))


def _whole(value: object) -> int | None:
    """An integer (numpy's too) as int; None for anything else, bools included."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _index(value: object, choices: tuple[int, ...], what: str) -> int:
    k = _whole(value)
    if k is None or k not in choices:
        raise ValueError(
            f'{what} must be one of the region references {list(choices)}, got {value!r}'
        )
    return k


def _extremes_sentence(
    plan: QuestionPlan, op: DistanceExtremes, metres: float, ends: tuple[int, int] | None
) -> str:
    first, second = (f'the {w} {_noun(plan, op.group[0])}' for w in op.which)
    if ends is not None:
        if len(ends) != 2 or ends[0] == ends[1]:
            raise ValueError(f'ends must be two different references, got {ends!r}')
        first += ' ' + region(_index(ends[0], op.group, 'ends[0]'))
        second += ' ' + region(_index(ends[1], op.group, 'ends[1]'))
    return f'{first[0].upper()}{first[1:]} is {metres_text(metres)} meters from {second}.'


def _count_sentence(
    plan: QuestionPlan,
    op: CountInBuffer,
    value: object,
    members: Sequence[int] | None,
    buffer: int | None,
) -> str:
    n = _whole(value)
    if n is None or not 0 <= n <= len(op.pallets):
        raise ValueError(
            f'the count must be a whole number from 0 to the {len(op.pallets)} listed pallets, '
            f'got {value!r}'
        )
    subject = f'The {op.side}most buffer region'
    if buffer is not None:
        subject += ' ' + region(_index(buffer, op.buffers, 'buffer'))
    counted = f'{count_text(n)} pallet{"" if n == 1 else "s"}'
    if members is None or n == 0:
        if members:
            raise ValueError(f'a count of 0 lists no members, got {list(members)}')
        return f'{subject} contains {counted}.'
    listed = [_index(k, op.pallets, 'a member') for k in members]
    if len(set(listed)) != len(listed) or len(listed) != n:
        raise ValueError(f'members {listed} must be {n} different pallets')
    names = [region(k) for k in sorted(listed)]
    joined = names[0] if len(names) == 1 else ', '.join(names[:-1]) + ' and ' + names[-1]
    return f'{subject} contains {counted}: {joined}.'


def _choice_sentence(plan: QuestionPlan, op: Extreme | Closest, value: object) -> str:
    if isinstance(op, Extreme):
        k = _index(value, op.group, 'the answer')
        noun = _noun(plan, k)
        if op.which == 'middle':
            return f'The {noun} in the middle is {region(k)}.'
        return f'The {op.which} {noun} is {region(k)}.'
    k = _index(value, op.candidates, 'the answer')
    # the chosen region comes first: the normaliser takes the first non-transporter region
    if op.pick_up:
        return (
            f'{_named(plan, k, True)} is the closest, so {_named(plan, op.to)} should pick it up.'
        )
    return f'{_named(plan, k, True)} is the closest to {_named(plan, op.to)}.'
