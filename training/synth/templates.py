"""Question and answer wording of the four warehouse categories.

Phrasings follow the real data (spatial-benchmarks §4.1, §5): ``<mask>`` after a class noun in
questions, ``[Region k]`` in answers (k = position of the mask in the question), distances
with two decimals in metres, counts spelled as words with the member regions listed. Each
builder returns ``(question, answer)``; the caller owns the ground truth and the region order.
"""

from __future__ import annotations

import numpy as np

_WORDS = ('no', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten',
          'eleven', 'twelve')  # fmt: skip


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def number_word(n: int) -> str:
    """How the answers spell a count: 'no', 'one', ... 'twelve', then digits."""
    return _WORDS[n] if n < len(_WORDS) else str(n)


def masks(n: int) -> str:
    return ' '.join(['<mask>'] * n)


def region(k: int) -> str:
    return f'[Region {k}]'


def region_list(indices: list[int]) -> str:
    names = [region(k) for k in indices]
    return names[0] if len(names) == 1 else ', '.join(names[:-1]) + ' and ' + names[-1]


def metres_text(value: float) -> str:
    return f'{value:.2f}'


def distance_pair(
    rng: np.random.Generator, noun_a: str, noun_b: str, metres: float, inside: bool
) -> tuple[str, str]:
    """Masks: [a, b]. ``inside``: a pallet inside a buffer, whose distance is 0 by convention."""
    question = _pick(
        rng,
        (
            'What is the distance between the {a} <mask> and the {b} <mask>?',
            'How far is the {a} <mask> from the {b} <mask>?',
            'Could you tell me how far apart the {a} <mask> and the {b} <mask> are, in meters?',
            'What is the distance in meters from the {a} <mask> to the {b} <mask>?',
        ),
    ).format(a=noun_a, b=noun_b)
    d = metres_text(metres)
    if inside and rng.random() < 0.5:
        answer = _pick(
            rng,
            (
                'The {a} [Region 0] is inside the {b} [Region 1], so the distance is 0 meters.',
                'The {a} [Region 0] sits within the {b} [Region 1]; the distance is {d} meters.',
            ),
        )
    else:
        answer = _pick(
            rng,
            (
                'The {a} [Region 0] is {d} meters from the {b} [Region 1].',
                'The distance of the {a} [Region 0] from the {b} [Region 1] is {d} meters.',
                'The {a} [Region 0] and the {b} [Region 1] are {d} meters apart.',
                'The {a} [Region 0] is {d} meters away from the {b} [Region 1].',
            ),
        )
    return question, answer.format(a=noun_a, b=noun_b, d=d)


def distance_extremes(
    rng: np.random.Generator, n_masks: int, left: int, right: int, metres: float
) -> tuple[str, str]:
    """Masks: n pallets; the distance between the leftmost and the rightmost of them."""
    question = _pick(
        rng,
        (
            'Among the pallets {m}, what is the distance between the leftmost pallet and the '
            'rightmost pallet?',
            'How far is the leftmost pallet from the rightmost pallet, considering the pallets '
            '{m}?',
        ),
    ).format(m=masks(n_masks))
    answer = _pick(
        rng,
        (
            'The leftmost pallet {l} is {d} meters from the rightmost pallet {r}.',
            'The distance between the leftmost pallet {l} and the rightmost pallet {r} is {d} '
            'meters.',
        ),
    ).format(l=region(left), r=region(right), d=metres_text(metres))
    return question, answer


def count_in_buffer(
    rng: np.random.Generator,
    side: str,
    n_buffers: int,
    n_pallets: int,
    buffer_index: int,
    members: list[int],
) -> tuple[str, str]:
    """Masks: n_buffers buffers, then n_pallets pallets; ``members`` are the pallets inside."""
    b, p = masks(n_buffers), masks(n_pallets)
    question = _pick(
        rng,
        (
            'Given the buffer regions {b} and the pallets {p}, how many pallets are in the '
            '{s}most buffer region?',
            'Considering the buffer masks {b}, how many of the pallets {p} sit inside the {s}most '
            'buffer zone?',
            'How many pallets are there in the {s}most buffer region among {b}? The pallets '
            'are {p}.',
        ),
    ).format(b=b, p=p, s=side)
    # Every phrasing serves every count and puts the number word right after a prefix that all
    # counts share, so a greedy decoder picks the count by its probability, not by how many
    # phrasings lead to it. (With phrasings that differed by count, "contains" began every 0/1
    # answer but only a third of the others, and the embedded model almost never said "three".)
    n = len(members)
    how_many = f'{number_word(n)} pallet{"" if n == 1 else "s"}'
    phrasing = _pick(rng, ('contains {h}: {m}', 'has {h}, namely {m}', 'holds {h}: {m}'))
    verb, rest = phrasing.split(' ', 1)
    listed = rest.format(h=how_many, m=region_list(members)) if members else how_many
    answer = f'The {side}most buffer region {region(buffer_index)} {verb} {listed}.'
    return question, answer


def left_right(rng: np.random.Generator, noun_a: str, noun_b: str, side: str) -> tuple[str, str]:
    """Masks: [a, b]; ``side`` is where a is relative to b, seen from the camera."""
    question = _pick(
        rng,
        (
            'Is the {a} <mask> to the left or to the right of the {b} <mask>?',
            "From the camera's viewpoint, is the {a} <mask> on the left or right side of the "
            '{b} <mask>?',
            'Is the {a} <mask> positioned left or right of the {b} <mask>?',
            'Tell me whether the {a} <mask> is to the left or the right of the {b} <mask>.',
        ),
    ).format(a=noun_a, b=noun_b)
    answer = _pick(
        rng,
        (
            'The {a} [Region 0] is to the {s} of the {b} [Region 1].',
            'The {a} [Region 0] is on the {s} side of the {b} [Region 1].',
            'From this viewpoint, the {a} [Region 0] appears on the {s}-hand side of the {b} '
            '[Region 1].',
        ),
    ).format(a=noun_a, b=noun_b, s=side)
    return question, answer


def mcq_extreme(
    rng: np.random.Generator, which: str, n_masks: int, chosen: int
) -> tuple[str, str]:
    """Masks: n pallets; ``which`` in leftmost | rightmost | middle."""
    if which == 'middle':
        question = _pick(
            rng,
            (
                'Which of the pallets {m} is in the middle?',
                'Among the pallets {m}, which one lies between the other two?',
            ),
        ).format(m=masks(n_masks))
        answer = _pick(
            rng, ('The pallet in the middle is {k}.', 'The pallet {k} is in the middle.')
        )
    else:
        question = _pick(
            rng,
            (
                'Among the pallets {m}, which one is the {w}?',
                'Which of the pallets {m} is the {w} one?',
                'Which pallet is the {w} among {m}?',
            ),
        ).format(m=masks(n_masks), w=which)
        answer = _pick(rng, ('The {w} pallet is {k}.', 'The pallet {k} is the {w} one.'))
    return question, answer.format(w=which, k=region(chosen))


def mcq_pick_up(
    rng: np.random.Generator,
    n_pallets: int,
    transporter_first: bool,
    chosen: int,
    transporter: int,
) -> tuple[str, str]:
    """Masks: pallets then the transporter, or the transporter first; the closest pallet."""
    if transporter_first:
        question = 'The transporter <mask> is empty. Which of the pallets {m} should it pick up?'
    else:
        question = _pick(
            rng,
            (
                'Which of the pallets {m} should the empty transporter <mask> pick up?',
                'Which pallet among {m} is the best choice for the empty transporter <mask> to '
                'pick up?',
            ),
        )
    answer = _pick(
        rng,
        (
            'The empty transporter {t} should pick up the pallet {k}, which is the closest.',
            'The pallet {k} is the closest, so the transporter {t} should pick it up.',
            'The transporter {t} should pick up the pallet {k}.',
        ),
    )
    return (
        question.format(m=masks(n_pallets)),
        answer.format(t=region(transporter), k=region(chosen)),
    )
