"""The official warehouse metric's edge cases (spatial-benchmarks §4.2, §5.3)."""

from __future__ import annotations

import pytest

from smolrgpt_core.warehouse_metric import (
    IdSetMismatch,
    count_correct,
    distance_correct,
    left_right_correct,
    mcq_correct,
    normalize_mcq,
    score_warehouse,
)


def test_distance_acc_at_10_is_inclusive() -> None:
    assert distance_correct(6.36 * 1.10, 6.36)
    assert distance_correct(6.36 * 0.90, 6.36)
    assert not distance_correct(6.36 * 1.1001, 6.36)
    assert not distance_correct(6.36 * 0.8999, 6.36)
    assert distance_correct('2.2', 2)  # strings and ints, as the real files mix them


def test_distance_gt_zero_needs_exactly_zero() -> None:
    assert distance_correct(0, 0.0)
    assert distance_correct('0.0', '0')
    assert not distance_correct(0.01, 0.0)


def test_count_truncates_like_int_float() -> None:
    assert count_correct('2.7', 2)
    assert count_correct(3.0, '3')
    assert not count_correct('3.9', 4)


def test_left_right_synonyms() -> None:
    for text in ('Left Hand', ' left-hand ', 'L', 'left side', 'LEFT'):
        assert left_right_correct(text, 'left')
    assert left_right_correct('right hand', 'right')
    assert not left_right_correct('on the left', 'left')  # not in the synonym set


def test_mcq_number_words_and_first_integer() -> None:
    assert mcq_correct('three', '3')
    assert mcq_correct('Region 2 is the leftmost', 2)
    assert normalize_mcq('none') == '1'  # naive substring replacement ('n1'), kept on purpose
    assert normalize_mcq('no digits') == 'no digits'


def _gt() -> list[dict]:
    return [
        {'id': 'a', 'category': 'count', 'normalized_answer': 3},
        {'id': 'b', 'category': 'distance', 'normalized_answer': 6.36},
        {'id': 'c', 'category': 'left_right', 'normalized_answer': 'left'},
        {'id': 'd', 'category': 'mcq', 'normalized_answer': '2'},
        {'id': 'e', 'category': 'distance', 'normalized_answer': 0},
    ]


def test_perfect_predictions_score_100() -> None:
    pred = [{'id': r['id'], 'normalized_answer': r['normalized_answer']} for r in _gt()]
    assert score_warehouse(_gt(), pred).final_score == 100.0


def test_final_score_is_the_mean_of_category_accuracies() -> None:
    pred = [
        {'id': 'a', 'normalized_answer': '2.7'},  # 2 != 3: miss
        {'id': 'b', 'normalized_answer': 6.36 * 1.10},  # hit
        {'id': 'c', 'normalized_answer': 'Left Hand'},  # hit
        {'id': 'd', 'normalized_answer': 'two'},  # hit
        {'id': 'e', 'normalized_answer': 0.05},  # miss
    ]
    score = score_warehouse(_gt(), pred)
    assert score.categories['count'].accuracy == 0.0
    assert score.categories['distance'].accuracy == 50.0
    assert score.final_score == pytest.approx((0 + 50 + 100 + 100) / 4)


def test_non_numeric_prediction_is_a_reported_miss_not_a_crash() -> None:
    pred = [{'id': r['id'], 'normalized_answer': r['normalized_answer']} for r in _gt()]
    pred[0]['normalized_answer'] = 'three'
    pred[1]['normalized_answer'] = 'far away'
    report = score_warehouse(_gt(), pred).to_dict()
    assert report['per_category']['count']['unparsable_ids'] == ['a']
    assert report['per_category']['distance']['unparsable_ids'] == ['b']
    assert report['per_category']['distance']['accuracy'] == 50.0


def test_id_set_mismatch_scores_nothing() -> None:
    pred = [{'id': r['id'], 'normalized_answer': r['normalized_answer']} for r in _gt()[:-1]]
    with pytest.raises(IdSetMismatch, match='1 missing'):
        score_warehouse(_gt(), pred)
    pred.append({'id': 'zzz', 'normalized_answer': 1})
    with pytest.raises(IdSetMismatch, match='1 extra'):
        score_warehouse(_gt(), pred)


def test_numeric_stats() -> None:
    gt = [
        {'id': 'x', 'category': 'distance', 'normalized_answer': 4.0},
        {'id': 'y', 'category': 'distance', 'normalized_answer': 2.0},
    ]
    pred = [{'id': 'x', 'normalized_answer': 5.0}, {'id': 'y', 'normalized_answer': 2.0}]
    stats = score_warehouse(gt, pred).to_dict()['per_category']['distance']['numeric']
    assert stats['abs_rel'] == pytest.approx(0.125)
    assert stats['rmse'] == pytest.approx((0.5) ** 0.5)


def test_one_category_list_and_an_alphabetical_report() -> None:
    from smolrgpt_core.normalize import CATEGORIES
    from smolrgpt_core.warehouse_metric import CORRECT

    assert set(CORRECT) == set(CATEGORIES)
    answers = {'left_right': 'left', 'count': '2', 'distance': '1.5', 'mcq': '1'}
    gt = [
        {'id': str(i), 'category': c, 'normalized_answer': answers[c]}
        for i, c in enumerate(CATEGORIES)
    ]
    pred = [{'id': r['id'], 'normalized_answer': r['normalized_answer']} for r in gt]
    report = score_warehouse(gt, pred).to_dict()
    assert list(report['per_category']) == sorted(CATEGORIES)
    assert report['final_score'] == 100.0
