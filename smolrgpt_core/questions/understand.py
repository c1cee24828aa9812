"""Question understanding by rules: a warehouse question -> a plan, or a reason it is not one.

The category comes from ``normalize.infer_category`` (one owner for that decision); the roles
come from the wording around the region references, which ``tokens.parse_references`` has
already split out. References listed together ("the pallets <mask> <mask> and <mask>") form a
group named by the class noun before it; what each group is (the compared pair, the candidate
list, the buffers, the pallets) follows from the category's phrasing. Anything the rules do not
recognise is ``NotUnderstood``: the caller then asks the language model, which is better than a
confident wrong measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import re
from typing import TYPE_CHECKING

from smolrgpt_core.normalize import NormalizationError, infer_category
from smolrgpt_core.questions.plan import (
    KINDS,
    Asks,
    Closest,
    CountInBuffer,
    Distance,
    DistanceExtremes,
    Extreme,
    IsLeft,
    NotUnderstood,
    Operation,
    QuestionPlan,
    Which,
)

if TYPE_CHECKING:  # tokens pulls in torch; the plan only reads the parsed pieces and tags
    from smolrgpt_core.tokens import RegionReferences

# what may stand between two references of one list: "<mask> <mask>", "<mask>, and <mask>"
_LIST_SEPARATOR_RE = re.compile(r'[\s,]*(?:(?:and|or)\b[\s,]*)?')
_CLAUSE_END_RE = re.compile(r'[.?!;]')
_NOUN_RE = re.compile(
    r'\b(?:(buffer)\s+)?(pallets?|buffers?|transporters?|shel(?:f|ves)|regions?|zones?|areas?'
    r'|masks?|objects?|items?)\b'
)
_SIDE_RE = re.compile(r'\b(left|right)(?![a-z])')  # not 'leftmost'
# the end of the text before the compared object: "... left of the buffer region <mask>"
_NOUN_TAIL = r"\s+(?:the\s+|a\s+|an\s+)?(?:[a-z'-]+\s+){0,3}$"
_RELATION_TAIL_RE = re.compile(r'\b(?:of|to|from|than|with|versus|vs\.?|by|near)' + _NOUN_TAIL)
_RELATIVE_TO_RE = re.compile(
    r'\b(?:relative to|compared (?:to|with)|with respect to|in relation to|with reference to)'
    + _NOUN_TAIL
)
_CLOSEST_TO_RE = re.compile(r'\b(?:closest|nearest)(?:\s+one)?\s+(?:to|from)' + _NOUN_TAIL)
_VIEW_RE = re.compile(
    r'\b(?:perspective|viewpoint|vantage point|point of view|view|standpoint)\b'
    r'|\b(?:seen|viewed|looking|observed|looked at)\s+(?:from|by)\b'
)
_CAMERA_OWNERS = {
    'camera', "camera's", 'viewer', "viewer's", 'image', "image's", 'picture', 'photo',
    'this', 'that', 'our', 'my', 'your', 'observer', "observer's", 'current', 'given', 'same',
}  # fmt: skip
_OWN_SIDE_RE = re.compile(r"\b(?:its|their|own|it's)\s+(?:own\s+)?(?:left|right)\b")
_EXTREME_RES: dict[Which, re.Pattern[str]] = {
    # no word end after 'most': the rephrasing glues words ("leftmostthe")
    'leftmost': re.compile(
        r'\bleft[\s-]?most|\b(?:furthest|farthest|most)\s+(?:to\s+the\s+)?left\b'
    ),
    'rightmost': re.compile(
        r'\bright[\s-]?most|\b(?:furthest|farthest|most)\s+(?:to\s+the\s+)?right\b'
    ),
    'middle': re.compile(r'\bmiddle\b|\bcent(?:er|re)\b|\bbetween the other\b'),
}
_BUFFER_SIDE_RE = re.compile(r'\b(left|right)[\s-]?most(?:\s+[a-z-]+){0,2}?\s+(?:buffer|zone)')
_COUNTED_RE = re.compile(
    r'\b(?:how many|number of|count)\s+(?:of\s+)?(?:the\s+|these\s+|those\s+)?([a-z]+)'
)
_PICK_UP_RE = re.compile(r'\bpick(?:\s+[a-z]+)?\s+up\b|\bpick-?up\b')
_CLOSEST_RE = re.compile(r'\b(?:closest|nearest)\b')
_FARTHEST_RE = re.compile(r'\b(?:farthest|furthest)\b(?!\s+(?:to\s+the\s+)?(?:left|right)\b)')
_NEGATION_RE = re.compile(r"\b(?:not|isn't|aren't|outside|except|without|empty buffer)\b")
_ORDINAL_RE = re.compile(r'\b(?:second|third|fourth|fifth|2nd|3rd|4th|5th)\b')
_DISTANCE_QUALIFIER_RE = re.compile(
    r'\b(?:horizontal(?:ly)?|vertical(?:ly)?|height|tall(?:er)?|width|wide|wider|depth'
    r'|elevation|gap|clearance|edges?|closest|nearest|farthest|furthest|average|total|sum'
    r'|difference)\b'
)
_OTHER_UNIT_RE = re.compile(
    r'\b(?:feet|foot|ft|inch(?:es)?|yards?|miles?|(?:centi|milli|kilo)met(?:er|re)s?|cm|mm|km)\b'
)
_LABEL_SYNONYMS = {
    'pallets': 'pallet', 'buffers': 'buffer', 'buffer region': 'buffer',
    'buffer regions': 'buffer', 'buffer zone': 'buffer', 'buffer zones': 'buffer',
    'buffer area': 'buffer', 'transporters': 'transporter', 'shelves': 'shelf',
}  # fmt: skip
_GENERIC_LABELS = {'', 'object', 'objects', 'region', 'regions', 'mask', 'item', 'thing'}


_Kinds = tuple[str | None, ...]


@dataclass(frozen=True)
class _Group:
    refs: tuple[int, ...]  # consecutive reference indices
    kind: str | None  # the class noun before the group
    before: str  # lower-cased text between the previous reference and this group


def plan_question(
    refs: RegionReferences, labels: Sequence[str] | None = None
) -> QuestionPlan | NotUnderstood:
    """The plan of a parsed question, or ``NotUnderstood`` with the reason.

    ``labels[k]``, when given, is the object class of the question's k-th reference (e.g.
    from the segmenter, 'pallet', 'buffer_region', ...): it fills in where the wording names no
    class, and one naming another class than the wording makes the question ``NotUnderstood``.
    A wrong number of labels, or one that is not text, is the caller's error (ValueError).
    """
    if labels is not None and len(labels) != refs.count:
        raise ValueError(
            f'{len(labels)} labels given for the {refs.count} region references of the question'
        )
    if refs.count == 0:
        return NotUnderstood('the question has no region references to measure')
    tags = [t for t in refs.tags if t is not None]
    if len(set(tags)) != len(tags):
        return NotUnderstood('the question names the same <regionN> more than once')
    text = ' '.join(refs.plain.lower().split())
    try:
        category = infer_category(text)
    except NormalizationError:
        return NotUnderstood('the wording matches none of the warehouse question types')
    pieces = tuple(p.lower() for p in refs.pieces)
    groups = _groups(pieces)
    kinds = _kinds(groups, labels, refs.count)
    if isinstance(kinds, str):
        return NotUnderstood(kinds, category)
    view = _foreign_viewpoint(text)
    if view:
        return NotUnderstood(view, category)
    parse = {'left_right': _left_right, 'distance': _distance, 'count': _count, 'mcq': _mcq}
    operation = parse[category](text, pieces, groups, kinds)
    if isinstance(operation, str):
        return NotUnderstood(operation, category)
    return QuestionPlan(operation, kinds)


def _groups(pieces: tuple[str, ...]) -> list[_Group]:
    groups: list[_Group] = []
    for k, before in enumerate(pieces[:-1]):
        if groups and _LIST_SEPARATOR_RE.fullmatch(before):
            last = groups[-1]
            groups[-1] = _Group((*last.refs, k), last.kind, last.before)
        else:
            groups.append(_Group((k,), _noun_kind(before), before))
    return groups


def _noun_kind(before: str) -> str | None:
    """The class named by the last class noun of the clause before a reference."""
    clause = _CLAUSE_END_RE.split(before)[-1]
    nouns = list(_NOUN_RE.finditer(clause))
    if not nouns:
        return None
    qualifier, noun = nouns[-1].groups()
    for kind in KINDS:
        if noun.startswith(kind[:4]):  # 'shel' covers shelf and shelves
            return kind
    return 'buffer' if qualifier or noun.startswith('zone') else None


def _label_kind(label: str) -> str | None:
    text = ' '.join(label.strip().lower().replace('_', ' ').split())
    if text in _GENERIC_LABELS:
        return None
    return _LABEL_SYNONYMS.get(text, text)


def _kinds(groups: list[_Group], labels: Sequence[str] | None, count: int) -> _Kinds | str:
    """Per reference, the wording's class else the label's; a sentence on a contradiction."""
    worded: list[str | None] = [None] * count
    for group in groups:
        for k in group.refs:
            worded[k] = group.kind
    if labels is None:
        return tuple(worded)
    out: list[str | None] = []
    for k, (word, label) in enumerate(zip(worded, labels)):
        if not isinstance(label, str):
            raise ValueError(f'label {k} must be text, got {type(label).__name__}')
        given = _label_kind(label)
        if word and given and word != given:
            return f'the question calls region reference {k} a {word} but its label says {label!r}'
        out.append(word or given)
    return tuple(out)


def _foreign_viewpoint(text: str) -> str | None:
    """Left/right seen by an object, not the camera, is not what the camera measures."""
    if _OWN_SIDE_RE.search(text):
        return "the question asks about an object's own left or right, not the camera's"
    for match in _VIEW_RE.finditer(text):
        before = text[: match.start()].split()[-2:]
        after = [w.strip(',.?!') for w in text[match.end() :].split()[:3]]
        if match.group(0).endswith(('from', 'by')):
            owners = after[:2]  # "seen from the transporter"
            quoted = [match.group(0), *owners]
        elif after[:1] == ['of']:
            owners = before + after[1:]  # "the perspective of the camera"
            quoted = [match.group(0), *after]
        else:
            owners = before
            quoted = [*before, match.group(0)]
        if not _CAMERA_OWNERS.intersection(owners):
            return (
                f'the question takes a viewpoint ("{" ".join(quoted)}") other than the camera\'s'
            )
    return None


def _refs(n: int) -> str:
    return f'{n} region reference{"" if n == 1 else "s"}'


def _sides(text: str) -> set[str]:
    return {m.group(1) for m in _SIDE_RE.finditer(text)}


def _asks(sides: set[str]) -> Asks:
    if len(sides) == 2:
        return 'either'
    return 'left' if 'left' in sides else 'right'


def _left_right(
    text: str, pieces: tuple[str, ...], groups: list[_Group], kinds: _Kinds
) -> Operation | str:
    if len(pieces) != 3 or len(groups) != 2:
        return (
            'a left/right question compares two separately named regions; this one has '
            f'{_refs(len(pieces) - 1)} in {len(groups)} list(s)'
        )
    before, between, after = pieces
    if _sides(before):
        return 'the question names a side before the regions it compares'
    if _RELATION_TAIL_RE.search(between) and (_sides(between) or _sides(after)):
        return IsLeft(0, 1, _asks(_sides(between) | _sides(after)))
    if _RELATIVE_TO_RE.search(before) and not _sides(between) and _sides(after):
        # "Relative to the pallet <B>, is the pallet <A> on the left or the right?"
        return IsLeft(1, 0, _asks(_sides(after)))
    return 'the left/right wording is not one of the known phrasings'


def _extremes(text: str) -> list[Which]:
    """The extreme words of the text in reading order, each once."""
    found = sorted(
        (m.start(), which) for which, rx in _EXTREME_RES.items() for m in rx.finditer(text)
    )
    out: list[Which] = []
    for _, which in found:
        if which not in out:
            out.append(which)
    return out


def _distance(
    text: str, pieces: tuple[str, ...], groups: list[_Group], kinds: _Kinds
) -> Operation | str:
    n = len(pieces) - 1
    qualifier = _DISTANCE_QUALIFIER_RE.search(text) or _OTHER_UNIT_RE.search(text)
    if qualifier:
        return f'the question asks for "{qualifier.group(0)}", not centre-to-centre metres'
    if _NEGATION_RE.search(text) or _ORDINAL_RE.search(text):
        return 'the distance question has a condition the rules do not measure'
    extremes = _extremes(text)
    if extremes:
        if len(extremes) != 2 or len(groups) != 1 or n < 2:
            return (
                'a distance between extremes needs two of leftmost/rightmost/middle and one list '
                'of regions'
            )
        if 'middle' in extremes and (n < 3 or n % 2 == 0):
            return f'{n} regions have no single middle one'
        return DistanceExtremes(tuple(range(n)), (extremes[0], extremes[1]))
    if n != 2:
        return f'a distance question measures between two regions; this one has {_refs(n)}'
    return Distance(0, 1)


def _count(
    text: str, pieces: tuple[str, ...], groups: list[_Group], kinds: _Kinds
) -> Operation | str:
    counted = _COUNTED_RE.search(text)
    if counted is None or not counted.group(1).startswith('pallet'):
        return 'the count question does not count pallets'
    if _NEGATION_RE.search(text) or _ORDINAL_RE.search(text):
        return 'the count question has a condition the rules do not measure'
    sides = {m.group(1) for m in re.finditer(r'\b(left|right)[\s-]?most', text)}
    if len(sides) != 1 or not _BUFFER_SIDE_RE.search(text) or _sides(text):
        return 'the count question does not name one leftmost or rightmost buffer region'
    buffers = tuple(k for k, kind in enumerate(kinds) if kind == 'buffer')
    pallets = tuple(k for k, kind in enumerate(kinds) if kind == 'pallet')
    if len(buffers) + len(pallets) != len(kinds):
        unknown = [k for k, kind in enumerate(kinds) if kind not in ('buffer', 'pallet')]
        return f'cannot tell whether region references {unknown} are buffers or pallets'
    if not buffers or not pallets:
        return 'the count question must list both buffer regions and pallets'
    return CountInBuffer('left' if 'left' in sides else 'right', buffers, pallets)


def _mcq(
    text: str, pieces: tuple[str, ...], groups: list[_Group], kinds: _Kinds
) -> Operation | str:
    n = len(pieces) - 1
    if _NEGATION_RE.search(text) or _ORDINAL_RE.search(text) or _FARTHEST_RE.search(text):
        return 'the multiple-choice question has a condition the rules do not measure'
    extremes = _extremes(text)
    pick_up = bool(_PICK_UP_RE.search(text))
    if pick_up or _CLOSEST_RE.search(text):
        if extremes:
            return 'the question mixes "closest" with leftmost/rightmost/middle'
        return _closest(groups, kinds, pick_up)
    if len(extremes) != 1:
        return 'the multiple-choice question asks for none or several of leftmost/rightmost/middle'
    if n < 2:
        return f'choosing the {extremes[0]} needs at least two regions; this one has {_refs(n)}'
    if extremes[0] == 'middle' and n % 2 == 0:
        return f'{n} regions have no single middle one'
    if any(_RELATION_TAIL_RE.search(g.before) for g in groups[1:]):
        # "... the leftmost among <mask> <mask> relative to the transporter <mask>": a reference
        # region, not a candidate
        return 'a region of the question is a reference point, not one of the candidates'
    return Extreme(tuple(range(n)), extremes[0])


def _closest(groups: list[_Group], kinds: _Kinds, pick_up: bool) -> Operation | str:
    n = len(kinds)
    targets = [g for g in groups if _CLOSEST_TO_RE.search(g.before)]
    transporters = [k for k, kind in enumerate(kinds) if kind == 'transporter']
    if targets and not pick_up:
        if len(targets) != 1 or len(targets[0].refs) != 1:
            return 'the question names more than one region to be closest to'
        to = targets[0].refs[0]
    elif len(transporters) == 1:
        to = transporters[0]
    else:
        return (
            'cannot tell which region the others should be closest to '
            f'({len(transporters)} transporters named)'
        )
    candidates = tuple(k for k in range(n) if k != to)
    if len(candidates) < 2:
        return 'choosing the closest needs at least two candidate regions'
    if to not in (0, n - 1):
        return 'the candidates are not listed together before or after the reference region'
    if pick_up and any(kinds[k] == 'transporter' for k in candidates):
        return 'a transporter cannot pick up another transporter'
    return Closest(to, candidates, candidates[0], pick_up)
