"""Where a warehouse answer is decided: the characters the official metric reads.

A synthetic answer is some twenty template tokens around one that carries the answer: the
side of a left_right answer, the number word of a count, the metres of a distance, the chosen
``[Region k]`` of an mcq. Once the template is learnt, its tokens' loss is near zero, so the
plain mean over answer tokens mostly measures the deciding one, diluted by the count of the
others. ``TrainConfig.deciding_token_weight`` weights the tokens of this span (see
``training.collate``); this module only finds it, and finds nothing (None) where the answer
does not spell the normalised answer in a form it knows, so such an example trains unweighted.
"""

from __future__ import annotations

import math
import re

from smolrgpt_core.normalize import region_indices
from smolrgpt_core.text_numbers import NUMBER_WORDS

_NUMBER_RE = re.compile(r'(?<![\w.])\d+(?:\.\d+)?(?!\d)')
_WORD_FOR = {n: w for w, n in NUMBER_WORDS.items()}


def deciding_span(answer: str, category: str | None, normalized: object) -> tuple[int, int] | None:
    """(start, end) character span of the part of ``answer`` that decides its score, or None."""
    if category is None or normalized is None:
        return None
    regions = [(start, end) for _, start, end in region_indices(answer)]

    def outside_regions(match: re.Match[str]) -> bool:
        return not any(s <= match.start() < e for s, e in regions)

    if category == 'left_right' and normalized in ('left', 'right'):
        pattern = re.compile(rf'\b{normalized}\b', re.IGNORECASE)
        found = next((m for m in pattern.finditer(answer) if outside_regions(m)), None)
    elif category == 'count' and isinstance(normalized, int) and not isinstance(normalized, bool):
        words = [str(normalized)]
        if normalized in _WORD_FOR:
            words.append(_WORD_FOR[normalized])
        if normalized == 0:
            words += ['no', 'none']
        pattern = re.compile(r'\b(?:' + '|'.join(words) + r')\b', re.IGNORECASE)
        found = next((m for m in pattern.finditer(answer) if outside_regions(m)), None)
    elif category == 'distance' and isinstance(normalized, (int, float)):
        found = next(
            (
                m
                for m in _NUMBER_RE.finditer(answer)
                if outside_regions(m)
                and math.isclose(float(m.group()), float(normalized), rel_tol=1e-6, abs_tol=1e-9)
            ),
            None,
        )
    elif category == 'mcq' and isinstance(normalized, int):
        return next(
            ((s, e) for k, s, e in region_indices(answer) if k == normalized),
            None,
        )
    else:
        return None
    return (found.start(), found.end()) if found else None
