"""Synthetic tabular data for evaluating the drift statistics (tests, benchmark, calibration).

Eight features: five numeric (``num_a`` normal; ``num_b`` correlated (0.6) with ``num_a`` and 10%
null; ``num_skew`` log-normal; ``num_heavy`` Student-t(3); ``num_count`` Poisson(3), i.e.
with ties), two categorical (``cat_color`` 5 levels, 2% null; ``cat_region`` 12 levels incl.
a rare one) and one boolean (``flag``, 5% null). A fixed logistic model gives classifier
outputs, a fixed linear model regression outputs. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from monitoring.profile import PredictionColumns
from monitoring.types import FeatureKind, FeatureSpec, Outputs, Table, Task

COLORS = ("red", "green", "blue", "black", "white")
COLOR_P = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
REGIONS = tuple(f"r{i:02d}" for i in range(12))
_REGION_W = np.array([20, 15, 12, 10, 9, 8, 7, 6, 5, 4, 3.7, 0.3])
REGION_P = _REGION_W / _REGION_W.sum()
CLASSES = ("no", "yes")

NUMERIC = ("num_a", "num_b", "num_skew", "num_heavy", "num_count")
CATEGORICAL = ("cat_color", "cat_region")
BOOLEAN = ("flag",)

# population sds (used to express shifts in sd units)
SD = {
    "num_a": 1.0,
    "num_b": 1.0,
    "num_skew": float(np.sqrt((np.exp(0.25) - 1) * np.exp(0.25))),
    "num_heavy": float(2.0 * np.sqrt(3.0)),
    "num_count": float(np.sqrt(3.0)),
}


def feature_specs() -> tuple[FeatureSpec, ...]:
    return (
        FeatureSpec("num_a", FeatureKind.NUMERIC),
        FeatureSpec("num_b", FeatureKind.NUMERIC, nullable=True),
        FeatureSpec("num_skew", FeatureKind.NUMERIC),
        FeatureSpec("num_heavy", FeatureKind.NUMERIC),
        FeatureSpec("num_count", FeatureKind.NUMERIC),
        FeatureSpec("cat_color", FeatureKind.CATEGORICAL, nullable=True, categories=tuple(sorted(COLORS))),
        FeatureSpec("cat_region", FeatureKind.CATEGORICAL, categories=REGIONS),
        FeatureSpec("flag", FeatureKind.BOOLEAN, nullable=True),
    )


def output_spec(task: Task = Task.CLASSIFICATION) -> Outputs:
    if task is Task.CLASSIFICATION:
        return Outputs(task=task, classes=CLASSES)
    return Outputs(task=task)


def make_table(
    n: int,
    rng: np.random.Generator,
    *,
    mean_shift: Mapping[str, float] | None = None,
    joint_shift: float = 0.0,
    new_category: tuple[str, str, float] | None = None,
    missing: Mapping[str, float] | None = None,
    correlation: float = 0.6,
) -> Table:
    """Draw ``n`` rows.

    mean_shift: feature -> shift in population sds (numeric features);
    joint_shift: shift every numeric feature by this many sds;
    new_category: (feature, category, share) replaces a random ``share`` of rows by a new level;
    missing: feature -> null rate (overrides the default rate);
    correlation: correlation of ``num_b`` with ``num_a`` (both stay N(0, 1) marginally, so a
    change is invisible to univariate tests).
    """
    a = rng.standard_normal(n)
    b = correlation * a + np.sqrt(1.0 - correlation**2) * rng.standard_normal(n)
    t: Table = {
        "num_a": a,
        "num_b": b,
        "num_skew": rng.lognormal(0.0, 0.5, n),
        "num_heavy": 10.0 + 2.0 * rng.standard_t(3, n),
        "num_count": rng.poisson(3.0, n).astype(np.float64),
        "cat_color": np.array(COLORS, dtype=object)[rng.choice(len(COLORS), n, p=COLOR_P)],
        "cat_region": np.array(REGIONS, dtype=object)[rng.choice(len(REGIONS), n, p=REGION_P)],
        "flag": (rng.random(n) < 0.3).astype(np.float64),
    }
    for name in NUMERIC:
        shift = joint_shift + (mean_shift or {}).get(name, 0.0)
        if shift:
            t[name] = t[name] + shift * SD[name]
    if new_category is not None:
        feat, cat, share = new_category
        hit = rng.random(n) < share
        col = t[feat].copy()
        col[hit] = cat
        t[feat] = col
    rates = {"num_b": 0.10, "cat_color": 0.02, "flag": 0.05}
    rates.update(missing or {})
    for name, rate in rates.items():
        hit = rng.random(n) < rate
        col = t[name].copy()
        col[hit] = None if col.dtype == object else np.nan
        t[name] = col
    return t


def make_predictions(table: Table, rng: np.random.Generator, task: Task = Task.CLASSIFICATION) -> PredictionColumns:
    a = np.nan_to_num(table["num_a"])
    b = np.nan_to_num(table["num_b"])
    skew = np.nan_to_num(table["num_skew"], nan=1.0)
    red = np.array([v == "red" for v in table["cat_color"]], dtype=np.float64)
    flag = np.nan_to_num(table["flag"])
    z = 0.9 * a - 0.5 * b + 0.4 * (skew - 1.1) + 0.7 * red + 0.5 * flag - 0.6
    if task is Task.REGRESSION:
        return PredictionColumns(values=3.0 * z + 0.3 * rng.standard_normal(len(z)))
    p1 = 1.0 / (1.0 + np.exp(-z))
    probs = np.column_stack([1.0 - p1, p1])
    labels = np.array(CLASSES, dtype=object)[(p1 >= 0.5).astype(int)]
    return PredictionColumns(labels=labels, probabilities=probs)


def make_ground_truth(predictions: PredictionColumns, rng: np.random.Generator) -> np.ndarray:
    """Labels drawn from the model's own probabilities (a calibrated model), or values + noise."""
    if predictions.values is not None:
        return predictions.values + rng.standard_normal(len(predictions.values))
    p1 = predictions.probabilities[:, 1]
    return np.array(CLASSES, dtype=object)[(rng.random(len(p1)) < p1).astype(int)]
