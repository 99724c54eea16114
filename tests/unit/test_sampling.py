"""The pure sampling functions the window reader is built on (driftcheck/sampling.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import stats

from driftcheck.sampling import Reservoir, allocate, merge_samples


def _merge(samples: list[list[dict]], counts: list[int], sample_cap: int, seed: int = 0) -> list[dict]:
    return merge_samples(counts, lambda i: samples[i], sample_cap, seed)


def test_reservoir_keeps_everything_below_its_capacity() -> None:
    r = Reservoir[int](10)
    for i in range(7):
        r.add(i)
    assert r.items == list(range(7)) and r.seen == 7


def test_reservoir_is_a_uniform_sample_of_the_stream() -> None:
    hits = Counter()
    runs, n, cap = 2000, 50, 5
    for seed in range(runs):
        r = Reservoir[int](cap, seed)
        for i in range(n):
            r.add(i)
        assert r.seen == n and len(r.items) == cap and len(set(r.items)) == cap
        hits.update(r.items)
    # every item kept with probability cap / n, whatever its place in the stream
    counts = [hits[i] for i in range(n)]
    assert stats.chisquare(counts).pvalue > 0.001


def test_allocate_draws_the_multivariate_hypergeometric() -> None:
    rng = np.random.default_rng(0)
    draws = np.array([allocate([9000, 10, 990], 100, rng) for _ in range(2000)])
    assert (draws.sum(axis=1) == 100).all() and (draws[:, 1] <= 10).all()
    assert np.allclose(draws.mean(axis=0), [90, 0.1, 9.9], atol=0.3)
    assert allocate([42], 7, rng) == [7]


def test_merged_sample_takes_from_each_hour_in_proportion_to_its_rows() -> None:
    big = [{"h": "big", "i": i} for i in range(100)]  # 9000 rows sampled down to 100
    small = [{"h": "small", "i": i} for i in range(10)]
    mid = [{"h": "mid", "i": i} for i in range(100)]
    shares: Counter = Counter()
    runs = 300
    for seed in range(runs):
        rows = _merge([big, small, mid], [9000, 10, 990], sample_cap=100, seed=seed)
        assert len(rows) == 100
        assert len({(r["h"], r["i"]) for r in rows}) == 100  # without replacement
        shares.update(r["h"] for r in rows)
    total = 100 * runs
    # expected 90% / 0.1% / 9.9% of the rows
    assert abs(shares["big"] / total - 0.9) < 0.01
    assert abs(shares["mid"] / total - 0.099) < 0.01
    assert shares["small"] / total < 0.004


def test_merge_of_small_windows_keeps_every_row() -> None:
    samples = [[{"i": i}] for i in range(5)] + [[]]
    assert sorted(r["i"] for r in _merge(samples, [1, 1, 1, 1, 1, 0], sample_cap=100)) == [0, 1, 2, 3, 4]
    assert _merge([[]], [0], sample_cap=10) == []


def test_merge_fetches_only_the_samples_it_takes_from() -> None:
    asked: list[int] = []

    def sample_of(i: int) -> list[int]:
        asked.append(i)
        return [i]

    assert merge_samples([1, 0, 1], sample_of, sample_cap=10) == [0, 2]
    assert asked == [0, 2]


def test_merge_of_a_short_sample_gives_what_it_has() -> None:
    # a partial read counted 50 rows but kept 3: the merge cannot take more than those
    assert sorted(_merge([[1, 2, 3]], [50], sample_cap=10)) == [1, 2, 3]


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_merge_is_reproducible_for_a_seed(seed: int) -> None:
    samples = [list(range(100)), list(range(100, 200))]
    assert _merge(samples, [1000, 500], 50, seed) == _merge(samples, [1000, 500], 50, seed)


def test_rows_of_a_partial_window_are_estimated_from_the_objects_read() -> None:
    from datetime import UTC, datetime

    from driftcheck.window_reader import WindowRead

    t = datetime(2026, 11, 25, tzinfo=UTC)
    whole = WindowRead(t, t, [], rows_seen=1000, objects_read=100, corrupt_objects=0, objects_listed=100, cached_rows=400)
    assert whole.rows_estimated == 1000
    # 600 rows from 30 of 90 listed objects, plus 400 rows of stored hours (exact)
    cut = WindowRead(t, t, [], rows_seen=1000, objects_read=30, corrupt_objects=0, objects_listed=90, partial=True, cached_rows=400)
    assert cut.rows_estimated == 400 + 600 * 3
    nothing_read = WindowRead(t, t, [], rows_seen=400, objects_read=0, corrupt_objects=0, objects_listed=90, partial=True, cached_rows=400)
    assert nothing_read.rows_estimated == 400  # a lower bound: no object says how many rows the rest hold
