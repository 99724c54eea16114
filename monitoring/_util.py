"""Small shared helpers: column coercion, null masks and JSON cleaning. Pure numpy."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping
from enum import Enum
from typing import Any

import numpy as np

from .types import FeatureKind, FeatureSpec


def table_rows(table: Mapping[str, np.ndarray]) -> int:
    """Number of rows of a table (0 for an empty dict); raises if the columns disagree."""
    lengths = {len(np.asarray(c)) if np.ndim(c) else 0 for c in table.values()}
    if not lengths:
        return 0
    if len(lengths) != 1:
        raise ValueError(f"table columns have different lengths: {sorted(lengths)}")
    return lengths.pop()


def coerce_numeric(col: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(float64 values with NaN for null/invalid, wrong_type_mask)``.

    Already-typed float columns: ``wrong`` marks +-inf (they become NaN in the values, so the
    statistics ignore them). Object columns are converted element-wise: ``None``/NaN are null,
    numbers and bools are accepted, numeric strings are accepted, everything else is wrong.
    """
    arr = np.asarray(col)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.dtype.kind in "fiub":
        values = arr.astype(np.float64)
        wrong = np.isinf(values)
        if wrong.any():
            values = values.copy()
            values[wrong] = np.nan
        return values, wrong
    values = np.full(arr.shape[0], np.nan, dtype=np.float64)
    wrong = np.zeros(arr.shape[0], dtype=bool)
    for i, v in enumerate(arr):
        if v is None:
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            wrong[i] = True
            continue
        if math.isnan(f):
            continue
        if math.isinf(f):
            wrong[i] = True
            continue
        values[i] = f
    return values, wrong


def coerce_boolean(col: Any) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`coerce_numeric` but values other than 0/1 are wrong (and become NaN)."""
    values, wrong = coerce_numeric(col)
    bad = ~np.isnan(values) & (values != 0.0) & (values != 1.0)
    if bad.any():
        values = values.copy()
        values[bad] = np.nan
        wrong = wrong | bad
    return values, wrong


def coerce_categorical(col: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(object array of str with None for null, wrong_type_mask)``.

    ``None`` and float NaN are null; ``str`` is accepted; anything else is stringified and
    flagged as a wrong type.
    """
    arr = np.asarray(col, dtype=object)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    n = arr.shape[0]
    types = set(map(type, arr))
    if types <= {str, type(None)}:  # fast path: the documented representation
        return arr.copy(), np.zeros(n, dtype=bool)
    out = np.empty(n, dtype=object)
    wrong = np.zeros(n, dtype=bool)
    for i, v in enumerate(arr):
        if v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)):
            out[i] = None
        elif isinstance(v, str):
            out[i] = v
        else:
            out[i] = str(v)
            wrong[i] = True
    return out, wrong


def null_mask(values: np.ndarray) -> np.ndarray:
    """Elementwise ``v is None`` for an object array."""
    values = np.asarray(values, dtype=object)
    if values.size == 0:
        return np.zeros(0, dtype=bool)
    # elementwise comparison in C; str/None (the documented representation) compare exactly
    return np.asarray(np.equal(values, np.array(None, dtype=object)), dtype=bool)


def coerce_column(spec: FeatureSpec, col: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, null_mask, wrong_type_mask)`` for a feature column (wrong-typed values are
    *not* counted as null: they are removed from the values and reported separately)."""
    if spec.kind == FeatureKind.CATEGORICAL:
        values, wrong = coerce_categorical(col)
        null = null_mask(values) & ~wrong
        return values, null, wrong
    if spec.kind == FeatureKind.BOOLEAN:
        values, wrong = coerce_boolean(col)
    else:
        values, wrong = coerce_numeric(col)
    null = np.isnan(values) & ~wrong
    return values, null, wrong


BOOLEAN_LEVELS = ("0", "1")


def categorical_levels(spec: FeatureSpec, values: np.ndarray) -> np.ndarray:
    """Object array of string levels (None for null) for categorical or boolean columns.

    Booleans map 0.0 -> "0", 1.0 -> "1" (NaN -> None)."""
    if spec.kind == FeatureKind.BOOLEAN:
        out = np.full(values.shape[0], None, dtype=object)
        out[values == 0.0] = "0"
        out[values == 1.0] = "1"
        return out
    return values


def level_counts(levels: np.ndarray) -> dict[str, int]:
    """Counts of non-null string levels, most frequent first (ties by name)."""
    levels = np.asarray(levels, dtype=object)
    if levels.size == 0:
        return {}
    counter = Counter(levels[~null_mask(levels)].tolist())
    merged: dict[str, int] = {}
    for k, v in counter.items():
        key = k if isinstance(k, str) else str(k)
        merged[key] = merged.get(key, 0) + v
    return dict(sorted(merged.items(), key=lambda kv: (-kv[1], kv[0])))


def label_text(value: Any) -> str | None:
    """A class label in one canonical text form, so that labels of different types compare equal:
    ``1``, ``1.0``, ``np.int64(1)``, ``"1"`` and ``"1.0"`` are all ``"1"``; ``None``/NaN are None;
    other strings are kept (stripped)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isnan(f):
            return None
        return str(int(f)) if f.is_integer() else repr(f)
    text = str(value).strip()
    try:
        f = float(text)
    except ValueError:
        return text
    if not math.isfinite(f):
        return text
    return str(int(f)) if f.is_integer() else repr(f)


def label_texts(values: Any) -> np.ndarray:
    """:func:`label_text` of every element, as an object array."""
    return np.array([label_text(v) for v in np.asarray(values, dtype=object).reshape(-1)], dtype=object)


def finite_or_none(x: Any) -> float | None:
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def json_clean(obj: Any) -> Any:
    """Recursively convert to JSON-ready Python: NaN/inf -> None, numpy -> Python,
    tuples -> lists, Enums -> value, dataclasses -> their ``to_dict()`` (or fields)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return finite_or_none(obj)
    if isinstance(obj, np.ndarray):
        return [json_clean(v) for v in obj.tolist()]
    if isinstance(obj, Mapping):
        return {str(k): json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_clean(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if hasattr(obj, "to_dict"):
            return obj.to_dict()
        return {f.name: json_clean(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    raise TypeError(f"cannot JSON-clean {type(obj).__name__}")
