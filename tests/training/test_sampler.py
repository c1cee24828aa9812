"""EpochSampler: a seeded permutation per epoch; image-grouped runs; resume; rank shards."""

from __future__ import annotations

import pytest

from training.sampler import EpochSampler

KEYS = [f'image-{i // 8}' for i in range(48)]  # 6 images, 8 examples each


def _batches(sampler: EpochSampler, epoch: int, start: int = 0) -> list[list[int]]:
    sampler.set_epoch(epoch, start)
    order = list(sampler)
    b = sampler.batch_size
    return [order[i : i + b] for i in range(0, len(order), b)]


@pytest.mark.parametrize('group_size', [1, 4])
def test_every_example_once_per_epoch_and_a_new_order_each_epoch(group_size: int) -> None:
    sampler = EpochSampler(48, 8, 0, 1, seed=5, groups=KEYS, group_size=group_size)
    first, second = _batches(sampler, 0), _batches(sampler, 1)
    assert sorted(i for b in first for i in b) == list(range(48))
    assert sorted(i for b in second for i in b) == list(range(48))
    assert first != second
    assert first == _batches(sampler, 0)  # seeded


def test_grouped_batches_hold_runs_of_one_image() -> None:
    grouped = EpochSampler(48, 8, 0, 1, seed=5, groups=KEYS, group_size=4)
    plain = EpochSampler(48, 8, 0, 1, seed=5, groups=KEYS, group_size=1)
    for batch in _batches(grouped, 0) + _batches(grouped, 1):
        runs = [{KEYS[i] for i in batch[:4]}, {KEYS[i] for i in batch[4:]}]
        assert all(len(r) == 1 for r in runs), batch  # 8 per image, runs of 4 line up
    distinct = [len({KEYS[i] for i in b}) for b in _batches(plain, 0)]
    assert max(distinct) > 2  # a plain shuffle mixes images


def test_resume_continues_the_same_epoch_order() -> None:
    sampler = EpochSampler(48, 8, 0, 1, seed=5, groups=KEYS, group_size=4)
    whole = _batches(sampler, 2)
    assert _batches(sampler, 2, start=3) == whole[3:]
    assert len(sampler) == 48 - 3 * 8


def test_ranks_split_each_global_batch_and_keep_its_runs() -> None:
    single = EpochSampler(48, 8, 0, 1, seed=5, groups=KEYS, group_size=4)
    ranks = [EpochSampler(48, 4, r, 2, seed=5, groups=KEYS, group_size=4) for r in (0, 1)]
    per_rank = [_batches(s, 0) for s in ranks]
    joined = [a + b for a, b in zip(*per_rank, strict=True)]
    assert joined == _batches(single, 0)
    assert all(len({KEYS[i] for i in b}) == 1 for r in per_rank for b in r)


def test_group_keys_must_match_the_examples() -> None:
    with pytest.raises(ValueError, match='3 group keys for 4 examples'):
        EpochSampler(4, 2, 0, 1, seed=0, groups=['a', 'b', 'c'], group_size=2)
