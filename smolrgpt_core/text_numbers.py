"""Numbers and lengths written in English: digits, number words, units -> metres.

Shared by the warehouse answer normaliser and the SpatialRGPT-Bench rule judge, so that both
read "6.36 meters", "four feet five inches", "150 cm" and "three" the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
import itertools
import re

NUMBER_WORDS: dict[str, int] = {
    'zero': 0, 'one': 1, 'two': 2, 'three': 3, 'four': 4, 'five': 5, 'six': 6, 'seven': 7,
    'eight': 8, 'nine': 9, 'ten': 10, 'eleven': 11, 'twelve': 12, 'thirteen': 13,
    'fourteen': 14, 'fifteen': 15, 'sixteen': 16, 'seventeen': 17, 'eighteen': 18,
    'nineteen': 19, 'twenty': 20, 'thirty': 30, 'forty': 40, 'fifty': 50, 'sixty': 60,
    'seventy': 70, 'eighty': 80, 'ninety': 90,
}  # fmt: skip
_TENS = {'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty', 'ninety'}

# unit spelling -> metres per unit; longest spellings first so 'meters' wins over 'm'
UNIT_TO_METRES: dict[str, float] = {
    'millimeters': 0.001, 'millimetres': 0.001, 'millimeter': 0.001, 'millimetre': 0.001,
    'mm': 0.001,
    'centimeters': 0.01, 'centimetres': 0.01, 'centimeter': 0.01, 'centimetre': 0.01,
    'cm': 0.01, 'cms': 0.01,
    'kilometers': 1000.0, 'kilometres': 1000.0, 'kilometer': 1000.0, 'kilometre': 1000.0,
    'km': 1000.0,
    'meters': 1.0, 'metres': 1.0, 'meter': 1.0, 'metre': 1.0, 'm': 1.0,
    'feet': 0.3048, 'foot': 0.3048, 'ft': 0.3048, "'": 0.3048,
    'inches': 0.0254, 'inch': 0.0254, 'in': 0.0254, '"': 0.0254,
}  # fmt: skip
# dividing by the per-unit count of the base keeps decimal inputs exact ("57 cm" -> 0.57)
_DIVISORS = {0.001: 1000.0, 0.01: 100.0}

_WORD_NUMBER = (
    r'(?:(?:' + '|'.join(sorted(_TENS)) + r')(?:[\s-](?:one|two|three|four|five|six|seven|'
    r'eight|nine))?|' + '|'.join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r')'
)
_NUMBER = rf'(?:[-+]?\d+(?:,\d{{3}})*(?:\.\d+)?|[-+]?\.\d+|\b{_WORD_NUMBER}\b)'
_UNIT = '|'.join(re.escape(u) for u in sorted(UNIT_TO_METRES, key=len, reverse=True))
# a number optionally followed by a unit; "a/an" counts as one ("a meter")
_QUANTITY_RE = re.compile(
    rf'(?P<num>{_NUMBER}|\ban?\b)\s*(?:-\s*)?(?P<unit>(?:{_UNIT})(?![a-z]))?', re.IGNORECASE
)
_NUMBER_RE = re.compile(_NUMBER, re.IGNORECASE)


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str | None  # as written, lower case; None when the text has no unit
    start: int
    end: int

    @property
    def metres(self) -> float:
        """The value in metres; a bare number is taken to be metres."""
        return to_metres(self.value, self.unit or 'm')


def word_to_int(text: str) -> int | None:
    """'three' -> 3, 'twenty-one' -> 21, '7' -> 7; None when it is not a whole number."""
    token = text.strip().lower()
    if re.fullmatch(r'[-+]?\d+', token):
        return int(token)
    if token in NUMBER_WORDS:
        return NUMBER_WORDS[token]
    parts = re.split(r'[\s-]+', token)
    if len(parts) == 2 and parts[0] in _TENS and NUMBER_WORDS.get(parts[1], 10) < 10:
        return NUMBER_WORDS[parts[0]] + NUMBER_WORDS[parts[1]]
    return None


def parse_number(text: str) -> float:
    """One number token ('6.36', '1,200', 'four', 'an') -> float; ValueError otherwise."""
    token = text.strip().lower().replace(',', '')
    if token in ('a', 'an'):
        return 1.0
    as_int = word_to_int(token)
    if as_int is not None:
        return float(as_int)
    return float(token)


def to_metres(value: float, unit: str) -> float:
    factor = UNIT_TO_METRES.get(unit.lower())
    if factor is None:
        raise ValueError(f'unknown length unit {unit!r}')
    if factor in _DIVISORS:
        return value / _DIVISORS[factor]
    return value * factor


def find_quantities(text: str) -> list[Quantity]:
    """Every number in the text with the unit written right after it (if any)."""
    found = []
    for match in _QUANTITY_RE.finditer(text):
        num = match.group('num')
        unit = match.group('unit')
        if num.lower() in ('a', 'an') and unit is None:
            continue  # the article, not a number
        if unit is not None and unit.lower() == 'in' and not _is_inch(text, match.end('unit')):
            unit = None  # "3 in the buffer": the preposition, not inches
        found.append(
            Quantity(parse_number(num), unit.lower() if unit else None, match.start(), match.end())
        )
    return found


def _is_inch(text: str, end: int) -> bool:
    """'in' is inches only at the end of a clause, not before a noun phrase."""
    rest = text[end:].lstrip()
    return not rest or not rest[0].isalpha() or rest.lower().startswith(('height', 'width'))


def length_in_metres(text: str) -> float | None:
    """The first length in the text, in metres, summing compound ones ("3 feet 4 inches").

    A bare number counts as metres (the warehouse convention). None when there is no number.
    """
    quantities = find_quantities(text)
    if not quantities:
        return None
    first = quantities[0]
    total = first.metres
    # "5 feet 3 inches", "1 meter 20 centimeters": a smaller unit right after a larger one
    for prev, nxt in itertools.pairwise(quantities):
        gap = text[prev.end : nxt.start]
        if (
            prev.unit
            and nxt.unit
            and re.fullmatch(r'\s*(?:and\s*)?', gap)
            and (UNIT_TO_METRES[nxt.unit] < UNIT_TO_METRES[prev.unit])
        ):
            total += nxt.metres
        else:
            break
    return total


def first_int(text: str) -> int | None:
    """The first whole number (digits or words) in the text."""
    for match in _NUMBER_RE.finditer(text):
        value = parse_number(match.group(0))
        if value == int(value):
            return int(value)
    return None
