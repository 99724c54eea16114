"""The export warns when the held-out baseline is too small for the windows it will be compared with."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from devtools.export.performance import SmallBaselineWarning, warn_if_small_baseline
from monitoring.performance_drop import measure_performance


def _measured(rows: int) -> dict:
    rng = np.random.default_rng(rows)
    y = rng.choice(["a", "b"], rows)
    pred = np.where(rng.random(rows) < 0.85, y, np.where(y == "a", "b", "a"))
    return measure_performance("classification", y, pred, classes=("a", "b"), source="holdout", n_boot=200)


def test_a_baseline_smaller_than_a_window_warns_with_its_interval_and_a_large_one_does_not() -> None:
    with pytest.warns(SmallBaselineWarning, match=r"rests on 300 held-out rows, fewer than the 1000 .*\(accuracy ±0\.\d+"):
        message = warn_if_small_baseline(_measured(300))
    assert message is not None and "pages only on drops beyond its interval" in message
    with pytest.warns(SmallBaselineWarning, match="no performance-drop verdict at all"):
        warn_if_small_baseline(_measured(30))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_small_baseline(_measured(2000)) is None


def test_the_refit_holdout_export_warns_on_a_small_dataset() -> None:
    import pandas as pd  # a pinned dev dependency: a missing install fails, never skips
    from sklearn.linear_model import LogisticRegression

    from devtools.export.performance import refit_holdout_performance
    from modelserve.schema import FeatureKind, FeatureSpec, OutputSpec, Task

    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    data = pd.DataFrame({"x": x, "y": np.where(x + rng.normal(0, 0.5, 400) > 0, "p", "n")})
    specs = [FeatureSpec("x", FeatureKind.NUMERIC)]
    outputs = OutputSpec(task=Task.CLASSIFICATION, classes=("n", "p"))
    with pytest.warns(SmallBaselineWarning, match="rests on 80 held-out rows"):
        refit_holdout_performance(LogisticRegression(), data, specs, "y", outputs, 0.2, 0)
