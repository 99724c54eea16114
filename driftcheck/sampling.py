"""Uniform samples in bounded memory, as pure functions (no I/O): a reservoir over a stream of
unknown length, and the merge of per-slice samples into one uniform sample of their union."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class Reservoir(Generic[T]):
    """Uniform sample of at most ``capacity`` items from a stream of unknown length (Algorithm R)."""

    def __init__(self, capacity: int, seed: int = 0) -> None:
        self.capacity = capacity
        self.items: list[T] = []
        self.seen = 0
        self._rng = random.Random(seed)

    def add(self, item: T) -> None:
        self.seen += 1
        if len(self.items) < self.capacity:
            self.items.append(item)
            return
        j = self._rng.randrange(self.seen)
        if j < self.capacity:
            self.items[j] = item


def allocate(counts: Sequence[int], n: int, rng: np.random.Generator) -> list[int]:
    """How many of ``n`` rows drawn uniformly without replacement from the union of slices of
    ``counts`` rows fall in each slice: one draw of the multivariate hypergeometric."""
    if len(counts) == 1:
        return [n]
    return [int(k) for k in rng.multivariate_hypergeometric(np.array(counts, dtype=np.int64), n)]


def merge_samples(
    counts: Sequence[int],
    sample_of: Callable[[int], Sequence[T]],
    sample_cap: int,
    seed: int = 0,
) -> list[T]:
    """A uniform sample of at most ``sample_cap`` rows of the union of slices, from their own
    uniform samples.

    ``counts[i]``: the rows slice i had; ``sample_of(i)``: its uniform sample (called once per
    slice the draw takes rows from, one slice at a time, so memory holds one slice's sample plus
    the result). Slice i gets k_i rows, the k_i drawn from the multivariate hypergeometric over
    the counts (what a uniform sample of the union would take from it), then k_i of its sampled
    rows at random. k_i never exceeds the slice's sample when that holds min(sample_cap, counts[i])
    rows; a shorter sample (a partial read) gives what it has.
    """
    total = sum(counts)
    if total == 0:
        return []
    rng = np.random.default_rng(seed)
    out: list[T] = []
    for i, k in enumerate(allocate(counts, min(sample_cap, total), rng)):
        if not k:
            continue
        rows = sample_of(i)
        k = min(k, len(rows))
        if k:
            idx = rng.choice(len(rows), size=k, replace=False)
            out.extend(rows[j] for j in sorted(idx))
    return out
