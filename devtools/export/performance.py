"""The model's quality on labelled rows: on the reference (the export's own figures), and the
reference performance the drift check compares a window's labels with, measured on rows the model
did not learn from."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modelserve.schema import FeatureSpec, OutputSpec, Task
from serving.model import ModelRunner

from .frames import class_name, prepare_frame, table_from_frame

# share of the export data held out (stratified) to measure the reference performance
HOLDOUT_SHARE = 0.2
# the labelled rows a drift-check window is expected to hold: a baseline measured on fewer rows is
# less certain than the window it is compared with, and its interval then sets what can page
EXPECTED_WINDOW_LABELS = 1000
# the drift check's performance_min_baseline_rows default: no verdict at all against fewer rows
MIN_BASELINE_ROWS = 50


class SmallBaselineWarning(UserWarning):
    """The held-out rows the reference performance was measured on are too few for the expected windows."""


def warn_if_small_baseline(performance: Mapping[str, Any], expected_window_labels: int = EXPECTED_WINDOW_LABELS) -> str | None:
    """Warn (and return the message) when the reference performance rests on fewer held-out rows than
    a window's expected labels: the drift check tests a window against the conservative end of the
    baseline's 95% interval, so a small baseline only pages on large drops (and none under
    ``MIN_BASELINE_ROWS`` rows)."""
    rows = int(performance.get("rows") or 0)
    if rows >= expected_window_labels:
        return None
    widths = {
        k: (v.get("value", 0) - v.get("low", 0)) if k in ("accuracy", "f1_macro", "auc") else (v.get("high", 0) - v.get("value", 0))
        for k, v in (performance.get("metrics") or {}).items()
        if isinstance(v, Mapping)
    }
    shown = ", ".join(f"{k} ±{w:.3g}" for k, w in widths.items() if w == w)
    verdict = (
        "no performance-drop verdict at all"
        if rows < MIN_BASELINE_ROWS
        else "the performance alarm pages only on drops beyond its interval"
    )
    message = (
        f"the reference performance rests on {rows} held-out rows, fewer than the {expected_window_labels} labelled rows a "
        f"drift-check window may hold; its 95% interval ({shown}) is wider than such a window's: {verdict}. "
        "Hold out more rows (holdout_share, or holdout=) for a sharper baseline."
    )
    warnings.warn(message, SmallBaselineWarning, stacklevel=2)
    return message


def quality(outputs: OutputSpec, pred: Any, target: Any) -> dict[str, Any]:
    y = np.asarray(list(target))
    if outputs.task is Task.CLASSIFICATION:
        if not len(y):
            raise ValueError("no target values to score the model on")
        named = [outputs.class_for(v) for v in y.tolist()]
        unknown = sorted({str(v) for v, c in zip(y.tolist(), named) if c is None})
        if unknown:
            raise ValueError(f"target values {unknown[:10]} are not among the model's classes {list(outputs.classes)}")
        acc = float(np.mean(pred.labels == np.array(named, dtype=object)))
        return {"accuracy": acc}
    err = pred.labels - y.astype(np.float64)
    mae = float(np.mean(np.abs(err)))
    return {"mae": mae, "neg_mae": -mae, "rmse": float(np.sqrt(np.mean(err**2)))}


def served_performance(runner: ModelRunner, frame: Any, specs: Sequence[FeatureSpec], target: Any, source: str) -> dict[str, Any]:
    """The served graph's accuracy / macro F1 / AUC (MAE / RMSE) on ``frame`` with bootstrap intervals."""
    from monitoring.performance_drop import measure_performance

    outputs = runner.manifest.outputs
    pred = runner.predict(table_from_frame(frame, specs))
    y = list(target)
    if outputs.task is Task.CLASSIFICATION:
        named = [outputs.class_for(v) or class_name(v) for v in y]
        measured = measure_performance(Task.CLASSIFICATION, named, list(pred.labels), pred.probabilities, outputs.classes, source=source)
    else:
        measured = measure_performance(Task.REGRESSION, [float(v) for v in y], list(pred.labels), source=source)
        measured = with_loss_model(measured, table_from_frame(frame, specs), specs, pred.labels, y)
    warn_if_small_baseline(measured)
    return measured


def with_loss_model(measured: dict[str, Any], table: Any, specs: Sequence[FeatureSpec], predicted: Any, target: Any) -> dict[str, Any]:
    """A regressor's reference performance with the loss model of the same held-out rows (direct loss
    estimation: the drift check's MAE / RMSE before labels, ``monitoring.estimated_loss``)."""
    from monitoring.estimated_loss import LossModel

    model = LossModel.fit(table, specs, np.asarray(predicted, dtype=np.float64), np.asarray([float(v) for v in target]))
    return measured if model is None else {**measured, "loss_model": model.to_dict()}


def refit_holdout_performance(
    pipeline: Any, data: Any, specs: Sequence[FeatureSpec], target: str, outputs: OutputSpec, share: float, seed: int
) -> dict[str, Any]:
    """Performance of the pipeline's training procedure on rows it did not see: a clone refitted on
    the data minus a held-out share (stratified by class for classifiers), scored on that share. It
    estimates the served model's performance (trained on all rows) slightly pessimistically."""
    from sklearn.base import clone
    from sklearn.model_selection import train_test_split

    from monitoring.performance_drop import measure_performance

    y = data[target]
    classifier = outputs.task is Task.CLASSIFICATION
    stratify = y if classifier and y.value_counts().min() >= 2 else None
    train, held = train_test_split(data, test_size=share, random_state=seed, stratify=stratify)
    model = clone(pipeline).fit(prepare_frame(train, specs), train[target])
    x_held = prepare_frame(held, specs)
    extra = {"holdout_share": share}
    if classifier:
        probs = np.asarray(model.predict_proba(x_held), dtype=np.float64)
        # the refitted clone's columns follow its own classes_; the manifest's order is the served model's
        order = [list(map(class_name, model.classes_)).index(c) if c in map(class_name, model.classes_) else None for c in outputs.classes]
        aligned = np.column_stack([probs[:, i] if i is not None else np.zeros(len(held)) for i in order])
        labels = [class_name(v) for v in model.predict(x_held)]
        named = [outputs.class_for(v) or class_name(v) for v in held[target]]
        measured = measure_performance(Task.CLASSIFICATION, named, labels, aligned, outputs.classes, source="holdout_refit", seed=seed)
    else:
        values = np.asarray(model.predict(x_held), dtype=np.float64).reshape(-1)
        truth = held[target].astype(float).tolist()
        measured = measure_performance(Task.REGRESSION, truth, values.tolist(), source="holdout_refit", seed=seed)
        measured = with_loss_model(measured, table_from_frame(held, specs), specs, values, truth)
    warn_if_small_baseline(measured)
    return {**measured, **extra}
