"""Rule-based answer normaliser for the warehouse task (no LLM).

Turns a free-form answer ("The pallet [Region 0] is 6.36 meters from the pallet [Region 1].")
into the value the official scorer compares (6.36). SmolRGPT does this step with a 14B LLM plus
two classifiers (smolrgpt-reference §6.2); the warehouse answers are templated, so rules do the
same job deterministically and in microseconds.

Output types follow the real ``train.json``: ``left_right`` -> 'left' | 'right',
``count`` and ``mcq`` -> int, ``distance`` -> float metres.
"""

from __future__ import annotations

import re

from smolrgpt_core.text_numbers import NUMBER_WORDS, first_int, length_in_metres

CATEGORIES = ('left_right', 'count', 'distance', 'mcq')

Answer = str | int | float


class NormalizationError(ValueError):
    """The text does not contain an answer of the requested kind."""


# "[Region 3]", "Region [3]", "region 3", "<region3>", "<region_3>"
REGION_RE = re.compile(
    r'\[\s*region\s*(\d+)\s*\]|\bregion\s*\[\s*(\d+)\s*\]|<region_?(\d+)>|\bregion\s+(\d+)\b',
    re.IGNORECASE,
)
_LEFT_RE = re.compile(r'\bleft(?:[\s-]?hand)?(?![a-z])', re.IGNORECASE)
_RIGHT_RE = re.compile(r'\bright(?:[\s-]?hand)?(?![a-z])', re.IGNORECASE)
_NEGATION_RE = re.compile(r"\b(?:not|isn't|isnt|never)\b(?:\s+\w+){0,3}\s*$", re.IGNORECASE)
_YES_RE = re.compile(r'^\W*(?:yes|yeah|correct|indeed|true|that is right)\b', re.IGNORECASE)
_NO_RE = re.compile(r'^\W*(?:no|nope|incorrect|false|not really)\b', re.IGNORECASE)
_INSIDE_RE = re.compile(
    r'\b(?:inside|within|in the middle of|located in|placed in|sits in|is in)\b', re.IGNORECASE
)
# the noun right before a region reference, e.g. "transporter [Region 0]"
_NOUN_BEFORE_RE = re.compile(r'([a-z]+)\W*$', re.IGNORECASE)


def region_indices(text: str) -> list[tuple[int, int, int]]:
    """(index, start, end) of every region reference in the text, in order."""
    out = []
    for match in REGION_RE.finditer(text):
        index = next(g for g in match.groups() if g is not None)
        out.append((int(index), match.start(), match.end()))
    return out


def strip_regions(text: str) -> str:
    return REGION_RE.sub(' ', text)


def infer_category(question: str) -> str:
    """Warehouse category of a question, from its wording (the question classifier's job)."""
    q = question.lower()
    if re.search(r'\bhow many\b|\bnumber of\b|\bcount\b', q):
        return 'count'
    if re.search(r'\bdistance\b|\bdistant\b|\bhow far\b|\bapart\b|\bmeters?\b|\bmetres?\b', q):
        return 'distance'
    if re.search(
        r'\b(?:left|right)(?:[\s-]hand)?\s+(?:of|or|side)\b|\bleft or (?:the )?right\b', q
    ):
        return 'left_right'
    if re.search(r'\bwhich\b|\bleftmost\b|\brightmost\b|\bmiddle\b|\bclosest\b|\bpick up\b', q):
        return 'mcq'
    if _LEFT_RE.search(q) or _RIGHT_RE.search(q):
        return 'left_right'
    raise NormalizationError(f'cannot tell the category of the question {question!r:.120}')


def _infer_category_from_answer(answer: str) -> str:
    a = answer.lower()
    if re.search(r'\bmet(?:er|re)s?\b|\bapart\b|\bdistance\b|\binside\b', a):
        return 'distance'
    if re.search(r'\bleftmost\b|\brightmost\b|\bmiddle\b|\bclosest\b|\bpick\b', a):
        return 'mcq'
    if re.search(r'\bpallets?\b.*\b(?:contains?|has|have|there (?:is|are))\b|\bcontains?\b', a):
        return 'count'
    if _LEFT_RE.search(a) or _RIGHT_RE.search(a):
        return 'left_right'
    raise NormalizationError(f'cannot tell the category of the answer {answer!r:.120}')


def normalize_left_right(answer: str, question: str | None = None) -> str:
    text = strip_regions(answer)
    mentions = []  # (position, side as written, negated?)
    for side, pattern in (('left', _LEFT_RE), ('right', _RIGHT_RE)):
        for match in pattern.finditer(text):
            clause = re.split(r'[.;!?]', text[: match.start()])[-1]
            mentions.append((match.start(), side, bool(_NEGATION_RE.search(clause))))
    if mentions:
        mentions.sort()
        # the first plain statement decides ("not on the left but on the right" -> right);
        # with only negated ones, the opposite of the first
        plain = [side for _, side, negated in mentions if not negated]
        return plain[0] if plain else _opposite(mentions[0][1])
    # a bare yes/no only has a meaning against a question naming one side
    if question is not None:
        asked = _asked_side(question)
        if asked and _YES_RE.search(answer):
            return asked
        if asked and _NO_RE.search(answer):
            return _opposite(asked)
    raise NormalizationError(f'no left/right in the answer {answer!r:.120}')


def _asked_side(question: str) -> str | None:
    left = bool(_LEFT_RE.search(question))
    right = bool(_RIGHT_RE.search(question))
    if left != right:
        return 'left' if left else 'right'
    return None


def _opposite(side: str) -> str:
    return 'right' if side == 'left' else 'left'


def normalize_count(answer: str) -> int:
    text = strip_regions(answer)
    if re.search(r'\bno pallets?\b|\bnone\b|\bempty\b|\bnot any\b|\bzero\b', text, re.IGNORECASE):
        return 0
    if re.search(r'\ba single\b|\bonly one\b', text, re.IGNORECASE):
        return 1
    value = first_int(text)
    if value is None:
        raise NormalizationError(f'no count in the answer {answer!r:.120}')
    return value


def normalize_distance(answer: str) -> float:
    value = length_in_metres(strip_regions(answer))
    if value is not None:
        return float(value)
    if _INSIDE_RE.search(answer):
        return 0.0  # the dataset's convention: a pallet inside a buffer is 0 m from it
    raise NormalizationError(f'no distance in the answer {answer!r:.120}')


def normalize_mcq(answer: str) -> int:
    regions = region_indices(answer)
    if regions:
        # "the transporter [Region 0] should pick up the pallet [Region 2]": the transporter is
        # context, the chosen object is the other region
        chosen = [r for r in regions if not _is_transporter(answer, r[1])]
        return (chosen or regions)[0][0]
    value = first_int(answer)
    if value is None:
        raise NormalizationError(f'no region in the answer {answer!r:.120}')
    return value


def _is_transporter(text: str, start: int) -> bool:
    noun = _NOUN_BEFORE_RE.search(text[:start])
    return noun is not None and noun.group(1).lower() in ('transporter', 'transporters')


_BY_CATEGORY = {
    'count': normalize_count,
    'distance': normalize_distance,
    'mcq': normalize_mcq,
}


def normalize_answer(
    answer: str, category: str | None = None, question: str | None = None
) -> Answer:
    """Free-form answer -> normalized answer of the warehouse category.

    The category comes from ``category``, else from the question's wording, else from the
    answer's. Raises NormalizationError when the answer holds nothing of that kind.
    """
    if not isinstance(answer, str):
        raise NormalizationError(f'the answer must be text, got {type(answer).__name__}')
    if category is None:
        category = infer_category(question) if question else _infer_category_from_answer(answer)
    if category == 'left_right':
        return normalize_left_right(answer, question)
    if category not in _BY_CATEGORY:
        raise NormalizationError(f'unknown category {category!r}; expected one of {CATEGORIES}')
    return _BY_CATEGORY[category](answer)


def canonical(category: str, value: Answer) -> Answer:
    """A stored normalized answer (str or number, as the real files mix them) -> typed value."""
    if category == 'left_right':
        return str(value).strip().lower()
    if category in ('count', 'mcq'):
        text = str(value).strip().lower()
        if text in NUMBER_WORDS:
            return NUMBER_WORDS[text]
        return int(float(text))
    if category == 'distance':
        return float(value)
    raise NormalizationError(f'unknown category {category!r}; expected one of {CATEGORIES}')
