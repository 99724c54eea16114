"""The model's quality on labelled rows: on the reference (the export's own figures), and the
reference performance the drift check compares a window's labels with, measured on rows the model
did not learn from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modelserve.schema import FeatureSpec, OutputSpec, Task
from serving.model import ModelRunner

from .frames import class_name, prepare_frame, table_from_frame

# share of the export data held out (stratified) to measure the reference performance
HOLDOUT_SHARE = 0.2


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
        return measure_performance(Task.CLASSIFICATION, named, list(pred.labels), pred.probabilities, outputs.classes, source=source)
    return measure_performance(Task.REGRESSION, [float(v) for v in y], list(pred.labels), source=source)


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
        return {**measure_performance(Task.CLASSIFICATION, named, labels, aligned, outputs.classes, source="holdout_refit", seed=seed), **extra}
    values = np.asarray(model.predict(x_held), dtype=np.float64).reshape(-1)
    return {**measure_performance(Task.REGRESSION, held[target].astype(float).tolist(), values.tolist(), source="holdout_refit", seed=seed), **extra}
