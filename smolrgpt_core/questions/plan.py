"""What a question asks, as data: the operation and the role of each region reference.

A plan names references by their place k in the question (0 = the first ``<mask>`` or
``<regionN>``), the same k the answers write as ``[Region k]``. The mcq answer is such a k.
Every index tuple is in question order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Side = Literal['left', 'right']
Which = Literal['leftmost', 'rightmost', 'middle']
Asks = Literal['left', 'right', 'either']
# object classes of the warehouse data (spatial-benchmarks §4.1); a reference's kind is one of
# these, another label the caller gave, or None when neither wording nor label says
KINDS = ('pallet', 'buffer', 'transporter', 'shelf')


@dataclass(frozen=True)
class IsLeft:
    """Where ``a`` is relative to ``b`` seen from the camera; the answer is 'left' | 'right'.
    ``asks``: the side the question names ('either' for "left or right")."""

    a: int
    b: int
    asks: Asks = 'either'


@dataclass(frozen=True)
class Distance:
    """Centre-to-centre metres between ``a`` and ``b`` (0 for a pallet inside a buffer)."""

    a: int
    b: int


@dataclass(frozen=True)
class DistanceExtremes:
    """Metres between the ``which[0]`` and the ``which[1]`` members of ``group``."""

    group: tuple[int, ...]
    which: tuple[Which, Which] = ('leftmost', 'rightmost')


@dataclass(frozen=True)
class CountInBuffer:
    """How many of the listed ``pallets`` lie in the ``side``-most of the listed ``buffers``."""

    side: Side
    buffers: tuple[int, ...]
    pallets: tuple[int, ...]


@dataclass(frozen=True)
class Extreme:
    """The ``which`` member of ``group``; the answer is its reference index."""

    group: tuple[int, ...]
    which: Which


@dataclass(frozen=True)
class Closest:
    """The candidate closest to reference ``to``; ``pick_up`` for the "which pallet should the
    empty transporter pick up" wording.

    The answer is the chosen candidate's reference index: ``candidates[j]``, which is
    ``answer_offset + j`` because the candidates are consecutive references (the dataset lists
    the transporter first or last: offset 1 or 0).
    """

    to: int
    candidates: tuple[int, ...]
    answer_offset: int
    pick_up: bool = False


Operation = IsLeft | Distance | DistanceExtremes | CountInBuffer | Extreme | Closest

_CATEGORY = {
    IsLeft: 'left_right',
    Distance: 'distance',
    DistanceExtremes: 'distance',
    CountInBuffer: 'count',
    Extreme: 'mcq',
    Closest: 'mcq',
}


@dataclass(frozen=True)
class QuestionPlan:
    """A question understood: its operation and, per reference, the object class it names."""

    operation: Operation
    kinds: tuple[str | None, ...]  # len = the question's reference count

    @property
    def category(self) -> str:
        """The warehouse category (one of ``smolrgpt_core.normalize.CATEGORIES``)."""
        return _CATEGORY[type(self.operation)]

    @property
    def refs_count(self) -> int:
        return len(self.kinds)


@dataclass(frozen=True)
class NotUnderstood:
    """A question the rules cannot plan; ``reason`` is a sentence. ``category`` is the
    category its wording suggests, when there is one (for the language-model path)."""

    reason: str
    category: str | None = None
