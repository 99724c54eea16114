"""Why a converted graph disagrees with its scikit-learn source, named per cause in one line each.

The parity check only sees that the graph's answers differ; the person needs to know why and what to
change. Each cause here is looked for in the source model itself (never in the graph's text):

- float32 rounding: the graph computes in float32, scikit-learn in float64. Rows whose source answer
  moves when one input is nudged by a couple of float32 steps sit on a tree split (trees behind a
  scaler flip there) or use more digits of a large value than float32 keeps;
- isotonic calibration, which skl2onnx computes otherwise than scikit-learn;
- a classifier whose own ``predict`` is not its most probable class (SVC's ``probability=True``:
  Platt scaling fitted apart from the decision function), which no bundle can serve as one answer;
- categories the source's encoder never saw (a category new in the data, or null sent as the graph's
  null category "" to an encoder that learned NaN), which scikit-learn refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelserve.schema import CATEGORICAL_NULL_TOKEN, FeatureKind, FeatureSpec

from .estimator import first_step, steps

# how far each input is nudged: the rounding a float32 graph's arithmetic adds is a step or two
FLOAT32_STEPS = 2
# the rows that differ most, looked at one by one (each costs one source call per numeric feature)
ROWS_EXAMINED = 20


@dataclass(frozen=True)
class RoundingSensitivity:
    """A row whose source answer moves when one feature moves by float32 rounding."""

    row: int
    feature: str
    value: float
    moved: float  # the largest change of the source's own answer (the parity check's measure)


def differing_rows(expected: np.ndarray, actual: np.ndarray, tolerance: float, relative: bool) -> np.ndarray:
    """The rows whose difference is above tolerance, the largest first."""
    expected = np.asarray(expected, dtype=np.float64).reshape(len(expected), -1)
    actual = np.asarray(actual, dtype=np.float64).reshape(len(actual), -1)
    diff = np.abs(expected - actual)
    if relative:
        diff = diff / np.maximum(1.0, np.abs(expected))
    per_row = np.where(np.isnan(diff), np.inf, diff).max(axis=1)
    bad = np.flatnonzero(per_row > tolerance)
    return bad[np.argsort(-per_row[bad], kind="stable")]


def rounding_sensitivity(
    answer: Callable[[Any], np.ndarray],
    prepared: Any,
    rows: Sequence[int],
    specs: Sequence[FeatureSpec],
    relative: bool,
    threshold: float,
) -> list[RoundingSensitivity]:
    """For each row, the numeric feature whose float32 nudge (up and down by ``FLOAT32_STEPS`` steps)
    moves the source's answer most, when it moves it by more than ``threshold`` (the check's tolerance)."""
    numeric = [f.name for f in specs if f.kind is FeatureKind.NUMERIC and f.name in prepared.columns]
    if not numeric or not len(rows):
        return []
    picked = prepared.iloc[list(rows)].reset_index(drop=True)
    base = np.asarray(answer(picked), dtype=np.float64).reshape(len(picked), -1)
    scale = np.maximum(1.0, np.abs(base)) if relative else 1.0
    best: dict[int, RoundingSensitivity] = {}
    for name in numeric:
        values = picked[name].to_numpy(dtype=np.float32)
        for direction in (np.inf, -np.inf):
            nudged = values.copy()
            for _ in range(FLOAT32_STEPS):
                nudged = np.nextafter(nudged, np.float32(direction))
            moved = np.abs(np.asarray(answer(picked.assign(**{name: nudged})), dtype=np.float64).reshape(len(picked), -1) - base)
            moved = np.nan_to_num(moved / scale, nan=0.0).max(axis=1)
            for i in np.flatnonzero(moved > threshold):
                row = int(rows[i])
                if row not in best or moved[i] > best[row].moved:
                    best[row] = RoundingSensitivity(row, name, float(values[i]), float(moved[i]))
    return [best[r] for r in rows if r in best]


def _has_trees(estimator: Any) -> bool:
    return any("Tree" in type(s).__name__ or "Forest" in type(s).__name__ or "Boosting" in type(s).__name__ for s in steps(estimator))


def _transforms_before_trees(estimator: Any) -> list[str]:
    """The numeric transformers the data passes before the model (scalers and the like)."""
    names = []
    for step in steps(estimator):
        name = type(step).__name__
        if name.endswith(("Scaler", "Transformer", "PCA")) and name not in ("ColumnTransformer", "FunctionTransformer"):
            names.append(name)
    return sorted(set(names))


def rounding_cause(
    found: Sequence[RoundingSensitivity], differing: int, total: int, largest: float | None, estimator: Any, prepared: Any
) -> str | None:
    """One line naming float32 rounding as the cause of ``differing`` rows (by up to ``largest``, when known)."""
    if not found:
        return None
    rows = f"{differing} of {total} reference rows differ" + ("" if largest is None else f" (by up to {largest:.3g})")
    worst = max(found, key=lambda s: s.moved)
    features = sorted({s.feature for s in found})
    where = (
        f"row {worst.row}: moving {worst.feature!r} = {worst.value:.7g} by {FLOAT32_STEPS} float32 steps changes scikit-learn's own "
        f"answer by {worst.moved:.3g}"
    )
    if _has_trees(estimator):
        before = _transforms_before_trees(estimator)
        fix = (
            f"trees need no scaling: drop {before} in front of them, so that they split on the float32 values the graph is fed"
            if before
            else "fit the model on prepare_frame's float32 columns, so that its splits fall between float32 values"
        )
        return (
            f"float32 rounding at tree splits: {rows} because they sit "
            f"on a split of {features[:5]} within float32 rounding, and the graph computes in float32 ({where}); {fix}"
        )
    column = prepared[worst.feature].to_numpy(dtype=np.float64)
    column = column[np.isfinite(column)]
    spread = float(np.std(column)) if column.size else 0.0
    magnitude = float(np.max(np.abs(column))) if column.size else 0.0
    step = float(np.spacing(np.float32(magnitude)))
    return (
        f"float32 precision: {rows} because the model uses more digits "
        f"of {features[:5]} than float32 keeps ({worst.feature!r} reaches {magnitude:.4g} and varies by {spread:.3g}; a float32 step "
        f"there is {step:.3g}; {where}); subtract an offset or rescale {worst.feature!r} in the data before training "
        "(e.g. days since a date instead of a timestamp)"
    )


def calibration_cause(estimator: Any, differing: int, total: int, largest: float) -> str | None:
    """One line when the model's probabilities go through isotonic calibration, which skl2onnx's converter
    does not reproduce (its answers move by up to a few hundredths on many rows)."""
    isotonic = [s for s in steps(estimator) if type(s).__name__ == "CalibratedClassifierCV" and getattr(s, "method", "") == "isotonic"]
    if not isotonic:
        return None
    return (
        f"isotonic calibration: {differing} of {total} reference rows differ (by up to {largest:.3g}) because skl2onnx's converter "
        "does not reproduce CalibratedClassifierCV(method='isotonic'); calibrate with method='sigmoid'"
    )


def predict_disagrees_with_probabilities(estimator: Any, labels: Any, probabilities: np.ndarray, tolerance: float) -> str | None:
    """scikit-learn's own ``predict`` is not the most probable class on some rows (clear margins only):
    a bundle serves a label with its probabilities, and they must agree."""
    classes = np.asarray(estimator.classes_)
    top2 = np.sort(probabilities, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * tolerance
    most_probable = classes[np.argmax(probabilities, axis=1)]
    wrong = np.flatnonzero((np.asarray(labels) != most_probable) & clear)
    if not len(wrong):
        return None
    i = int(wrong[0])
    svc = [type(s).__name__ for s in steps(estimator) if getattr(s, "probability", False) is True and hasattr(s, "probA_")]
    if svc:
        why = f"{svc[0]}(probability=True) fits its probabilities by a Platt scaling apart from the decision function its predict uses"
        fix = f"replace it by CalibratedClassifierCV({svc[0]}(), ensemble=False) as the pipeline's last step"
    else:
        why = "its predict is not the most probable class"
        fix = "calibrate the pipeline's last step with CalibratedClassifierCV(model, ensemble=False)"
    return (
        f"the model's own predict and predict_proba disagree on {len(wrong)} of {len(labels)} reference rows (row {i}: predict "
        f"{np.asarray(labels)[i]!r}, most probable {most_probable[i]!r} at p={top2[i, 1]:.3f}): {why}; a bundle serves a label "
        f"with its probabilities, so they must agree: {fix} (its predict is the most probable class)"
    )


def unseen_categories(estimator: Any, prepared: Any, specs: Sequence[FeatureSpec]) -> list[str]:
    """Text features whose values the pipeline's encoder cannot take as the graph sends them, one line per
    feature: categories new in the data when it refuses unknown ones (``handle_unknown='error'``), or null
    learned as NaN (trained on raw data) while the graph sends null as "" (it would be an unknown category,
    refused or silently encoded as no category)."""
    kinds = {f.name: f.kind for f in specs}
    problems = []
    for _, branch, columns in getattr(first_step(estimator), "transformers_", []) or []:
        if isinstance(branch, str) or callable(columns):
            continue
        names = [columns] if isinstance(columns, str) else [str(c) for c in np.asarray(columns, dtype=object).reshape(-1)]
        imputes = any(type(s).__name__.endswith("Imputer") for s in steps(branch))
        for step in steps(branch):
            learned = getattr(step, "categories_", None)
            if not isinstance(learned, list) or len(learned) != len(names):
                continue  # not an encoder of these very columns
            refuses = getattr(step, "handle_unknown", "error") == "error"
            for name, categories in zip(names, learned):
                if kinds.get(name) is FeatureKind.CATEGORICAL and name in prepared.columns:
                    column = prepared[name]
                    if imputes:  # nulls never reach the encoder
                        column = column[column.notna() & (column != CATEGORICAL_NULL_TOKEN)]
                    problems += _unseen_in(name, type(step).__name__, list(categories), column, refuses)
    return problems


def _unseen_in(name: str, encoder: str, categories: list[Any], column: Any, refuses: bool) -> list[str]:
    known = {c for c in categories if isinstance(c, str)}
    out = []
    if any(c is None or (isinstance(c, float) and np.isnan(c)) for c in categories):
        out.append(
            f"feature {name!r}: the pipeline's {encoder} learned null as NaN (it was trained on raw data), but the graph sends null "
            "as '' (its null category), which that encoder never saw: train it on prepare_frame(data, specs), whose null category is ''"
        )
    unseen = [v for v in (str(v) for v in dict.fromkeys(column.tolist())) if v not in known and not (out and v == CATEGORICAL_NULL_TOKEN)]
    if unseen and refuses:
        shown = ["null" if v == CATEGORICAL_NULL_TOKEN else v for v in unseen]
        out.append(
            f"feature {name!r}: the data holds categories {shown[:5]} the pipeline's {encoder} never saw in training "
            f"(it learned {sorted(known)[:5]}) and it refuses unknown ones: fit it on every category, or set handle_unknown='ignore'"
        )
    return out
