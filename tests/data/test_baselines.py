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
