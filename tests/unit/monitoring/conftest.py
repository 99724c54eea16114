"""Shared fixtures for the drift-statistics tests (synthetic data from devtools.synthetic)."""

from __future__ import annotations

import os

# The checks multiply small matrices; oversubscribed OpenBLAS threads on a shared 2-core machine
# make them 5-10x slower. Only effective if numpy is not imported yet (harmless otherwise).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from devtools import synthetic as syn  # noqa: E402
from monitoring.profile import ReferenceProfile  # noqa: E402
from monitoring.types import Task  # noqa: E402

REFERENCE_ROWS = 10_000
DEFAULT_WINDOW = 10_000  # the drift Lambda reservoir-samples windows to 10,000 rows


def fit_profile(rng: np.random.Generator, n: int = REFERENCE_ROWS, task: Task = Task.CLASSIFICATION) -> ReferenceProfile:
    ref = syn.make_table(n, rng)
    return ReferenceProfile.fit(syn.feature_specs(), ref, syn.make_predictions(ref, rng, task), outputs=syn.output_spec(task))


@pytest.fixture(scope="session")
def profile() -> ReferenceProfile:
    return fit_profile(np.random.default_rng(12345))


@pytest.fixture(scope="session")
def regression_profile() -> ReferenceProfile:
    return fit_profile(np.random.default_rng(777), task=Task.REGRESSION)


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(2024)
