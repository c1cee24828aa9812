from __future__ import annotations

import pytest

from training.metrics.baselines import constant_baselines, wilson_interval


def test_wilson_interval_brackets_the_rate() -> None:
    lo, hi = wilson_interval(90, 100)
    assert (
        lo < 90 < hi and lo == pytest.approx(82.6, abs=0.2) and hi == pytest.approx(94.5, abs=0.2)
    )
    assert wilson_interval(0, 10)[0] == 0.0


def test_best_constant_distance_beats_the_majority() -> None:
    gt = [{'id': str(i), 'category': 'distance', 'normalized_answer': v}
          for i, v in enumerate(['1.00', '1.00', '5.0', '5.2', '5.4', '4.8'])]  # fmt: skip
    best = constant_baselines(gt)['distance']
    assert best['accuracy'] == pytest.approx(100 * 4 / 6)  # one constant near 5 m wins 4
    lr = [{'id': '1', 'category': 'left_right', 'normalized_answer': 'left'},
          {'id': '2', 'category': 'left_right', 'normalized_answer': 'left'},
          {'id': '3', 'category': 'left_right', 'normalized_answer': 'right'}]  # fmt: skip
    assert constant_baselines(lr)['left_right'] == {'answer': 'left', 'accuracy': 200 / 3, 'n': 3}


def _q(i: int, category: str, question: str, answer: object) -> dict[str, object]:
    return {'id': str(i), 'category': category, 'question': question, 'normalized_answer': answer}


def test_question_prior_reads_the_question_and_backs_off_when_unseen() -> None:
    from training.metrics.baselines import QuestionPrior, strongest_baselines

    stem = 'How many pallets are in the leftmost buffer among <mask> <mask>? Pallets'
    two, three = stem + ' <mask>.', stem + ' <mask> <mask>.'
    train = [_q(i, 'count', two, 1) for i in range(6)]
    train += [_q(10 + i, 'count', three, 2) for i in range(6)]
    train += [_q(20, 'count', three, 2)]
    prior = QuestionPrior(train)
    assert prior.predict('count', '<image>\n' + two) == '1'  # <image> and case do not matter
    assert prior.predict('count', three.upper().replace('<MASK>', '<mask>')) == '2'
    # an unseen question falls back to the category's best answer (2: 7 of 13)
    assert prior.predict('count', 'Count the pallets in <mask>.') == '2'
    heldout = [_q(30, 'count', two, 1), _q(31, 'count', three, 2), _q(32, 'count', two, 1)]
    best = strongest_baselines(train, heldout)['count']
    assert best['question_prior'] == 100.0 and best['name'] == 'question_prior'
    assert best['majority'] == pytest.approx(100 / 3)  # training majority: 2
    assert best['accuracy'] == 100.0 and best['n'] == 3
