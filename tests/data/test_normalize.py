"""The rule normaliser on real phrasings (spatial-benchmarks §4-5) and on generator output."""

from __future__ import annotations

import numpy as np
import pytest

from smolrgpt_core.normalize import NormalizationError, canonical, infer_category, normalize_answer
from training.synth import templates


@pytest.mark.parametrize(
    ('answer', 'category', 'expected'),
    [
        # the NVIDIA card example and train[0]
        ('The pallet [Region 0] is 6.36 meters from the pallet [Region 1].', 'distance', 6.36),
        (
            'The distance of the pallet [Region 0] from the pallet [Region 1] is 2.32 meters.',
            'distance',
            2.32,
        ),
        ('The pallet [Region 0] is 150 cm from the pallet [Region 1].', 'distance', 1.5),
        ('about 3 feet 4 inches', 'distance', 1.016),
        ('The pallet [Region 0] is inside the buffer region [Region 1].', 'distance', 0.0),
        (
            'The leftmost buffer region [Region 0] has three pallets: [Region 1], [Region 4] and '
            '[Region 7].',
            'count',
            3,
        ),
        ('The rightmost buffer [Region 2] contains no pallets.', 'count', 0),
        ('There are 4 pallets in the buffer zone Region [3].', 'count', 4),
        ('The pallet [Region 0] is to the left of the pallet [Region 1].', 'left_right', 'left'),
        ('Left Hand', 'left_right', 'left'),
        (
            'The pallet [Region 0] is not on the left of the pallet [Region 1].',
            'left_right',
            'right',
        ),
        ('From this viewpoint it appears on the right-hand side.', 'left_right', 'right'),
        ('The leftmost pallet is [Region 2].', 'mcq', 2),
        ('The transporter [Region 0] should pick up the pallet [Region 3].', 'mcq', 3),
        ('Region [1] is the rightmost one.', 'mcq', 1),
        ('three', 'mcq', 3),
    ],
)
def test_real_phrasings(answer: str, category: str, expected: object) -> None:
    assert normalize_answer(answer, category) == expected


@pytest.mark.parametrize(
    ('question', 'category'),
    [
        (
            '<image>\nWhat is the distance between the pallet <mask> and the pallet <mask>?',
            'distance',
        ),
        (
            'How many pallets are in the leftmost buffer region among buffer masks <mask> <mask>?',
            'count',
        ),
        ('Is the pallet <mask> to the left or to the right of the pallet <mask>?', 'left_right'),
        (
            'From this viewpoint, does the pallet <mask> appear on the left-hand side of the '
            'pallet <mask>?',
            'left_right',
        ),
        ('Among the pallets <mask> <mask> <mask>, which one is the leftmost?', 'mcq'),
        ('Which of the pallets <mask> <mask> should the empty transporter <mask> pick up?', 'mcq'),
    ],
)
def test_infer_category(question: str, category: str) -> None:
    assert infer_category(question) == category


def test_yes_no_needs_the_question() -> None:
    question = 'Is the pallet <mask> to the left of the pallet <mask>?'
    assert normalize_answer('Yes.', 'left_right', question) == 'left'
    assert normalize_answer('No, it is not.', 'left_right', question) == 'right'
    with pytest.raises(NormalizationError):
        normalize_answer('Yes.', 'left_right')


def test_unreadable_answers_raise() -> None:
    with pytest.raises(NormalizationError):
        normalize_answer('I cannot tell.', 'distance')
    with pytest.raises(NormalizationError):
        normalize_answer('Some pallets.', 'count')


def test_canonical_accepts_the_mixed_types_of_the_real_files() -> None:
    assert canonical('distance', '6.36') == canonical('distance', 6.36) == 6.36
    assert canonical('mcq', '5') == canonical('mcq', 5) == 5
    assert canonical('count', 3) == 3
    assert canonical('left_right', 'Left ') == 'left'


def _random_template_answer(rng: np.random.Generator) -> tuple[str, str, str, object]:
    """One (category, question, answer, truth) drawn from every template family."""
    kind = int(rng.integers(6))
    nouns = ('pallet', 'transporter', 'buffer region')
    if kind == 0:
        metres = 0.0 if rng.random() < 0.1 else float(f'{rng.uniform(0.3, 18.4):.2f}')
        a, b = rng.choice(nouns[:2]), rng.choice(nouns)
        q, ans = templates.distance_pair(rng, str(a), str(b), metres, inside=metres == 0.0)
        return 'distance', q, ans, metres
    if kind == 1:
        metres = float(f'{rng.uniform(0.5, 18.4):.2f}')
        left, right = (int(v) for v in rng.permutation(3)[:2])
        q, ans = templates.distance_extremes(rng, 3, left, right, metres)
        return 'distance', q, ans, metres
    if kind == 2:
        n_buffers, n_pallets = int(rng.integers(2, 5)), int(rng.integers(1, 10))
        members = sorted(
            int(v) + n_buffers
            for v in rng.permutation(n_pallets)[: int(rng.integers(0, n_pallets + 1))]
        )
        side = str(rng.choice(['left', 'right']))
        q, ans = templates.count_in_buffer(
            rng, side, n_buffers, n_pallets, int(rng.integers(n_buffers)), members
        )
        return 'count', q, ans, len(members)
    if kind == 3:
        side = str(rng.choice(['left', 'right']))
        q, ans = templates.left_right(rng, str(rng.choice(nouns[:2])), 'pallet', side)
        return 'left_right', q, ans, side
    if kind == 4:
        which = str(rng.choice(['leftmost', 'rightmost', 'middle']))
        chosen = int(rng.integers(3))
        q, ans = templates.mcq_extreme(rng, which, 3, chosen)
        return 'mcq', q, ans, chosen
    first = bool(rng.random() < 0.5)
    chosen = int(rng.integers(3)) + (1 if first else 0)
    q, ans = templates.mcq_pick_up(rng, 3, first, chosen, 0 if first else 3)
    return 'mcq', q, ans, chosen


def test_round_trip_5000_template_answers() -> None:
    """Generator free-form -> normaliser -> the generator's normalized answer, exactly."""
    rng = np.random.default_rng(0)
    for _ in range(5000):
        category, question, answer, truth = _random_template_answer(rng)
        assert normalize_answer(answer, category) == truth, answer
        # without the category, the question's wording must give the same result
        assert normalize_answer(answer, question=question) == truth, (question, answer)


def _scene_answers(n_answers: int, width: int, height: int) -> list[tuple[str, str, object]]:
    from training.synth.generate import scene_rng
    from training.synth.questions import make_questions
    from training.synth.render import render
    from training.synth.scene import make_scene

    out: list[tuple[str, str, object]] = []
    index = 0
    while len(out) < n_answers:
        rng = scene_rng(11, index)
        scene = make_scene(rng, width, height)
        qas = make_questions(scene, render(scene, rng).instances, rng)
        out.extend((qa.category, qa.answer, qa.normalized) for qa in qas)
        index += 1
    return out[:n_answers]


def test_round_trip_on_generated_scenes() -> None:
    for category, answer, truth in _scene_answers(200, 192, 108):
        assert normalize_answer(answer, category) == truth, answer


@pytest.mark.slow
def test_round_trip_5000_generated_scene_answers() -> None:
    for category, answer, truth in _scene_answers(5000, 320, 180):
        assert normalize_answer(answer, category) == truth, answer
