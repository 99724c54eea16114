"""Shared fixtures for the drift-statistics tests (synthetic data from monitoring.synthetic)."""

from __future__ import annotations

import numpy as np
import pytest

from modelserve.schema import Task
from monitoring import synthetic as syn
from monitoring.profile import ReferenceProfile

REFERENCE_ROWS = 10_000
DEFAULT_WINDOW = 10_000  # the drift Lambda reservoir-samples windows to 10,000 rows


def fit_profile(rng: np.random.Generator, n: int = REFERENCE_ROWS, task: Task = Task.CLASSIFICATION) -> ReferenceProfile:
    ref = syn.make_table(n, rng)
    return ReferenceProfile.fit(
        syn.feature_specs(), ref, syn.make_predictions(ref, rng, task), outputs=syn.output_spec(task)
    )


@pytest.fixture(scope="session")
def profile() -> ReferenceProfile:
    return fit_profile(np.random.default_rng(12345))


@pytest.fixture(scope="session")
def regression_profile() -> ReferenceProfile:
    return fit_profile(np.random.default_rng(777), task=Task.REGRESSION)


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(2024)
