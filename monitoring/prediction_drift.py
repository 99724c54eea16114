"""Prediction (model output) drift: the univariate tests applied to the model's outputs.

Classifiers: chi-squared homogeneity test on the predicted-class shares (reference label counts
from the profile) plus a KS test on each class-probability column (reference sample). Regression:
KS on the predicted values. The tests of one window are corrected together (Bonferroni or BH);
an output drifts when corrected p < alpha and its effect size >= the threshold (the same
Wasserstein/sd and JS-distance effect sizes as the features). ``is_drift`` = any output drifted
(None when no output could be tested).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import metric_names as M
from ._util import json_clean
from .check_protocol import PRIORITY_OUTPUT_DRIFT, Finding, Metric, ProfileCheck, Verdict, Window, finite_metrics
from .profile import PredictionColumns, ReferenceProfile
from .types import Task
from .univariate import (
    BONFERRONI,
    DEFAULT_ALPHA,
    DEFAULT_CATEGORICAL_EFFECT_THRESHOLD,
    DEFAULT_NUMERIC_EFFECT_THRESHOLD,
    ChiSquareDrift,
    KSDrift,
    UnivariateResult,
    apply_correction,
    drift_findings,
)

LABEL_OUTPUT = "predicted_label"
VALUE_OUTPUT = "predicted_value"


def probability_output(cls: str) -> str:
    return f"probability[{cls}]"


def probability_columns(classes: Sequence[str], probabilities: np.ndarray) -> list[tuple[str, np.ndarray]] | None:
    """The probability columns to test, named by class; None when they do not match the classes.

    A binary model tests one column, the positive (second) class's: the other is its complement
    and would be the same test twice. Its probabilities may come as one column (1-D input), which
    is the positive class's, or as two."""
    k = probabilities.shape[1]
    if len(classes) == 2:
        if k == 1:
            return [(classes[1], probabilities[:, 0])]
        if k == 2:
            return [(classes[1], probabilities[:, 1])]
        return None
    if classes and k != len(classes):
        return None
    return [(classes[j] if j < len(classes) else str(j), probabilities[:, j]) for j in range(k)]


@dataclass(frozen=True)
class PredictionDriftResult:
    task: str | None
    results: tuple[UnivariateResult, ...]
    correction: str
    alpha: float
    is_drift: bool | None
    notes: tuple[str, ...] = ()

    def get(self, output: str) -> UnivariateResult:
        for r in self.results:
            if r.feature == output:
                return r
        raise KeyError(output)

    def to_dict(self) -> dict[str, Any]:
        return json_clean(
            {
                "task": self.task,
                "results": [r.to_dict() for r in self.results],
                "correction": self.correction,
                "alpha": self.alpha,
                "is_drift": self.is_drift,
                "notes": list(self.notes),
            }
        )

    def verdicts(self) -> list[Verdict]:
        overall = Verdict("prediction drift", None, None, self.alpha, self.is_drift, f"{len(self.results)} output tests")
        return [overall] + [r.as_verdict(f"output {r.feature} ({r.test})") for r in self.results]

    def findings(self) -> list[Finding]:
        return drift_findings(self.results, "model output ", PRIORITY_OUTPUT_DRIFT)

    def metrics(self) -> list[Metric]:
        return finite_metrics([(M.PREDICTION_DRIFT, self.is_drift, None)])


def detect_prediction_drift(
    profile: ReferenceProfile,
    predictions: PredictionColumns | None,
    *,
    alpha: float = DEFAULT_ALPHA,
    correction: str = BONFERRONI,
    numeric_effect_threshold: float = DEFAULT_NUMERIC_EFFECT_THRESHOLD,
    categorical_effect_threshold: float = DEFAULT_CATEGORICAL_EFFECT_THRESHOLD,
    adaptive: bool = True,
    seed: int = 0,
    label_counts: Mapping[str, int] | None = None,
    counted_rows: int | None = None,
) -> PredictionDriftResult:
    """``label_counts`` (of ``counted_rows`` in all; the rest null): a classifier's exact predicted-label counts over a window
    whose ``predictions`` are a sample of it; the predicted-label test then runs on them."""
    task = profile.outputs.task
    ref = profile.sample_predictions
    raw: list[UnivariateResult] = []
    notes: list[str] = []
    if predictions is not None and not predictions.is_empty:
        if task == Task.REGRESSION:
            if ref.values is not None and predictions.values is not None:
                det = KSDrift(
                    ref.values, feature=VALUE_OUTPUT, alpha=alpha, effect_threshold=numeric_effect_threshold, adaptive=adaptive, seed=seed
                )
                raw.append(det.predict(predictions.values))
        else:
            if profile.outputs.label_counts and predictions.labels is not None:
                det_c = ChiSquareDrift(
                    profile.outputs.label_counts,
                    profile.outputs.n_missing_labels,
                    feature=LABEL_OUTPUT,
                    alpha=alpha,
                    effect_threshold=categorical_effect_threshold,
                    adaptive=adaptive,
                    seed=seed,
                )
                if label_counts is not None and counted_rows is not None:
                    nulls = counted_rows - sum(label_counts.values())
                    raw.append(det_c.predict_counts(det_c.count_of(label_counts, nulls)))
                else:
                    raw.append(det_c.predict(predictions.labels))
            if ref.probabilities is not None and predictions.probabilities is not None:
                classes = profile.outputs.classes
                ref_cols = probability_columns(classes, ref.probabilities)
                win_cols = probability_columns(classes, predictions.probabilities)
                if ref_cols is None or win_cols is None or len(ref_cols) != len(win_cols):
                    notes.append(
                        f"probabilities not tested: reference has {ref.probabilities.shape[1]} columns, window"
                        f" {predictions.probabilities.shape[1]}, classes {list(classes)}"
                    )
                else:
                    for (cls, ref_col), (_, win_col) in zip(ref_cols, win_cols):
                        det = KSDrift(
                            ref_col,
                            feature=probability_output(cls),
                            alpha=alpha,
                            effect_threshold=numeric_effect_threshold,
                            adaptive=adaptive,
                            seed=seed,
                        )
                        raw.append(det.predict(win_col))
    results = apply_correction(raw, correction) if raw else ()
    tested = [r for r in results if r.tested]
    return PredictionDriftResult(
        task=None if task is None else task.value,
        results=tuple(results),
        correction=correction,
        alpha=alpha,
        is_drift=bool(any(r.is_drift for r in tested)) if tested else None,
        notes=tuple(notes),
    )


class PredictionDriftCheck(ProfileCheck):
    """Drift of the model's outputs (needs the window's predictions)."""

    name = "prediction_drift"
    metric_names = (M.PREDICTION_DRIFT,)

    def run(self, window: Window) -> PredictionDriftResult | None:
        if window.predictions is None or window.predictions.is_empty:
            return None
        arguments = self.config.arguments_for(detect_prediction_drift, adaptive="adaptive_effect_thresholds")
        counts = window.counts
        if counts is not None and counts.predicted_labels is not None:
            arguments.update(label_counts=counts.predicted_labels, counted_rows=counts.rows)
        return detect_prediction_drift(self.profile, window.predictions, **arguments)
