"""The data side of an export: the frame a pipeline is trained on, the table the graph is fed, the
reference sample and its capture-shaped rows, and the data files the command line reads."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelserve.schema import CATEGORICAL_NULL_TOKEN, MAX_REFERENCE_ROWS, FeatureKind, FeatureSpec, Task, category_text, json_value
from serving.model import ModelRunner

from .explanations import add_reference_explanations
from .problems import ExportProblems, first_line

# fewer reference rows make every drift test on them meaningless (too little to compare a window with)
MIN_REFERENCE_ROWS = 200


def class_name(value: Any) -> str:
    """A class's name in the manifest: integral floats read as integers (1.0 -> "1")."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    return str(value)


def prepare_frame(df: Any, features: Sequence[FeatureSpec]) -> Any:
    """The frame a pipeline is trained and checked on: the same representation the ONNX graph gets.

    numeric/boolean -> float32 (NaN for null), categorical -> str with nulls as CATEGORICAL_NULL_TOKEN.
    Train your pipeline on ``prepare_frame(df, infer_feature_specs(df[features]))``.
    """
    import pandas as pd

    out = pd.DataFrame(index=df.index)
    for f in features:
        col = df[f.name]
        if f.kind is FeatureKind.CATEGORICAL:
            out[f.name] = [CATEGORICAL_NULL_TOKEN if v is None or v != v else category_text(v) for v in col.to_numpy(dtype=object)]
        else:
            out[f.name] = pd.to_numeric(col.astype(object).where(col.notna(), np.nan), errors="raise").astype(np.float32)
    return out


def table_from_frame(df: Any, features: Sequence[FeatureSpec]) -> dict[str, np.ndarray]:
    import pandas as pd

    table = {}
    for f in features:
        col = df[f.name]
        if f.kind is FeatureKind.CATEGORICAL:
            table[f.name] = np.array(
                [None if (v is None or v != v) else category_text(v) for v in col.to_numpy(dtype=object)], dtype=object
            )
        else:
            table[f.name] = pd.to_numeric(col.astype(object).where(col.notna(), np.nan)).to_numpy(dtype=np.float64, na_value=np.nan)
    return table


def sample_reference(df: Any, max_rows: int = MAX_REFERENCE_ROWS, seed: int = 0) -> Any:
    if len(df) <= max_rows:
        return df
    return df.sample(n=max_rows, random_state=seed).sort_index()


def reference_rows_from_frame(
    df: Any, features: Sequence[FeatureSpec], runner: ModelRunner, target: Any | None = None
) -> list[dict[str, Any]]:
    """Capture-shaped reference rows: inputs, the served model's prediction and probabilities (and target); some
    with their explanation (``explanations.add_reference_explanations``)."""
    table = table_from_frame(df, features)
    pred = runner.predict(table)
    classes = runner.manifest.outputs.classes
    rows = []
    labels = pred.labels.tolist()
    probs = pred.probabilities.tolist() if pred.probabilities is not None else None
    targets = None if target is None else list(target)
    for i in range(len(df)):
        r: dict[str, Any] = {
            "inputs": {f.name: json_value(f, table[f.name][i]) for f in features},
            "prediction": labels[i],
            "probabilities": dict(zip(classes, probs[i])) if probs is not None else None,
        }
        if targets is not None:
            t = targets[i]
            outputs = runner.manifest.outputs
            r["target"] = (outputs.class_for(t) or class_name(t)) if outputs.task is Task.CLASSIFICATION else float(t)
        rows.append(r)
    add_reference_explanations(runner, table, rows, pred.labels)  # some rows: the drift report's attribution baseline
    return rows


def check_reference_size(rows: int, allow_small: bool, minimum: int = MIN_REFERENCE_ROWS) -> str | None:
    """Refuse an empty reference, and one below ``minimum`` rows unless allowed (then a warning to keep)."""
    if rows == 0:
        raise ValueError("the reference data has no rows: the drift check needs the training data (or a sample of it)")
    if rows >= minimum:
        return None
    message = f"the reference has {rows} rows (< {minimum}): drift checks against it have little power"
    if not allow_small:
        raise ValueError(f"{message}; give more rows, or --allow-small-reference to export anyway")
    return message


def load_frame(path: str | Path, option: str = "--reference") -> Any:
    """A .csv or .parquet file as a DataFrame; ExportProblems naming the option and the file otherwise."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ExportProblems([f"{option}: no such file: {path}"])
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ExportProblems([f"{option} {path.name}: a .csv or .parquet file expected"])
    try:
        return pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise ExportProblems([f"{option} {path}: the file is empty (no header, no rows)"]) from None
    except Exception as exc:  # noqa: BLE001 - whatever the parser says, the person needs the file named
        raise ExportProblems([f"{option} {path}: cannot be read: {first_line(exc)}"]) from None
