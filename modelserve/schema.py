"""The model bundle's contract: feature schema, model outputs and manifest.

One definition, used by the exporter, the inference function, the capture writer
and the drift check. Pure Python + numpy: no onnxruntime, no AWS.

Column representation used everywhere downstream (a "table" is ``dict[str, np.ndarray]``):
- numeric:     float64, NaN for null
- boolean:     float64 0.0/1.0, NaN for null
- categorical: object array of ``str``, ``None`` for null
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import numpy as np

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
REFERENCE_FILE = "reference.jsonl.gz"
MAX_REFERENCE_ROWS = 10_000
# Null categoricals reach the ONNX graph as this token; the exporter trains with the same
# token so "missing" is a category the model has seen (missing-as-category imputation).
CATEGORICAL_NULL_TOKEN = ""

Table = dict[str, np.ndarray]


class FeatureKind(str, Enum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"


class Task(str, Enum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class LabelType(str, Enum):
    """The type of a classifier's labels as the model was trained on them: answers and feedback carry
    labels in this type (JSON strings, integers or booleans); the manifest's class names are text."""

    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"


class InputLayout(str, Enum):
    """How rows are fed to the ONNX graph."""

    # one graph input per feature, shape [N, 1]: float32 for numeric/boolean, string for categorical
    PER_COLUMN = "per_column"
    # one float32 input [N, F] in feature order (numeric/boolean features only)
    SINGLE_TENSOR = "single_tensor"


class InputDtype(str, Enum):
    """The element type of a feature's ONNX input, as the model declares it."""

    FLOAT32 = "float32"
    FLOAT64 = "float64"
    INT64 = "int64"
    BOOL = "bool"
    STRING = "string"

    @property
    def has_null(self) -> bool:
        """Whether the type can carry a missing value (NaN for floats, the null token for strings)."""
        return self in (InputDtype.FLOAT32, InputDtype.FLOAT64, InputDtype.STRING)


# the element types each kind of feature may be fed as
ALLOWED_DTYPES: dict[FeatureKind, tuple[InputDtype, ...]] = {
    FeatureKind.NUMERIC: (InputDtype.FLOAT32, InputDtype.FLOAT64, InputDtype.INT64),
    FeatureKind.BOOLEAN: (InputDtype.FLOAT32, InputDtype.FLOAT64, InputDtype.INT64, InputDtype.BOOL),
    FeatureKind.CATEGORICAL: (InputDtype.STRING, InputDtype.INT64),  # int64: integer-coded categories
}


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: FeatureKind
    nullable: bool = False
    categories: tuple[str, ...] = ()  # categories seen in training (categorical only)
    min: float | None = None  # reference range (numeric only)
    max: float | None = None
    dtype: InputDtype | None = None  # the model input's type; None: string for categorical, float32 otherwise

    def __post_init__(self) -> None:
        dtype = self.input_dtype
        if dtype not in ALLOWED_DTYPES[self.kind]:
            allowed = [d.value for d in ALLOWED_DTYPES[self.kind]]
            raise ValueError(f"feature {self.name!r}: a {self.kind.value} feature cannot be fed as {dtype.value} (allowed: {allowed})")
        if self.nullable and not dtype.has_null:
            raise ValueError(
                f"feature {self.name!r}: the model takes {dtype.value}, which has no missing value, but the feature is nullable"
            )
        if self.kind is FeatureKind.CATEGORICAL and dtype is InputDtype.INT64:
            bad = [c for c in self.categories if not _INTEGER_TEXT.match(c)]
            if bad:
                raise ValueError(f"feature {self.name!r}: the model takes int64 codes, but categories {bad[:5]} are not integers")

    @property
    def input_dtype(self) -> InputDtype:
        if self.dtype is not None:
            return self.dtype
        return InputDtype.STRING if self.kind is FeatureKind.CATEGORICAL else InputDtype.FLOAT32

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = self.kind.value
        d["categories"] = list(self.categories)
        if self.dtype is None:  # only when known: manifests without it keep their version
            del d["dtype"]
        else:
            d["dtype"] = self.dtype.value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureSpec:
        return cls(
            name=str(d["name"]),
            kind=FeatureKind(d["kind"]),
            nullable=bool(d.get("nullable", False)),
            categories=tuple(str(c) for c in d.get("categories", ()) or ()),
            min=None if d.get("min") is None else float(d["min"]),
            max=None if d.get("max") is None else float(d["max"]),
            dtype=None if d.get("dtype") is None else InputDtype(d["dtype"]),
        )


_INTEGER_TEXT = re.compile(r"^[+-]?[0-9]+$")


def class_key(value: Any) -> str:
    """The normalised name of a class label, so that a label means the same class in whatever type it comes.

    int 1, numpy int64 1, float 1.0, "1" and "1.0" -> "1"; True/"true"/"True" -> "true"; other strings as
    they are. Labels are compared by this key, never by position.
    """
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(value, bytes):
        value = value.decode()
    text = str(value)
    if text.lower() in ("true", "false"):
        return text.lower()
    if _INTEGRAL_TEXT.match(text):
        return str(int(float(text)))
    return text


# "1", "-3", "1.0", "2.00": integers written as text (not "01": codes with leading zeros stay as they are)
_INTEGRAL_TEXT = re.compile(r"^[+-]?(0|[1-9][0-9]*)(\.0*)?$")


@dataclass(frozen=True)
class OutputSpec:
    """What the model answers.

    Classifiers: ``classes`` name the probability columns in order; the served label is always one of
    them. ``label_output`` (an ONNX output) gives the label by value (int, string or bool, matched to
    ``classes`` by :func:`class_key`); without one (``None``), the label is the most probable class,
    or for binary models with ``threshold`` set, ``classes[1]`` when its probability >= threshold.
    """

    task: Task
    classes: tuple[str, ...] = ()  # classifier labels, in probability column order
    label_output: str | None = "label"  # ONNX output name of the predicted label / value
    probability_output: str | None = "probabilities"  # ONNX output name, classifiers only
    threshold: float | None = None  # binary classifiers: P(classes[1]) >= threshold -> classes[1]
    label_type: LabelType | None = None  # classifiers: the labels' own type; None: strings

    def __post_init__(self) -> None:
        if self.task is Task.REGRESSION:
            if not self.label_output:
                raise ValueError("a regression model needs label_output: the ONNX output with the predicted value")
            if self.threshold is not None:
                raise ValueError("threshold applies to binary classifiers only")
            if self.label_type is not None:
                raise ValueError("label_type applies to classifiers only")
            return
        if len(self.classes) < 2:
            raise ValueError(f"a classifier needs at least two classes, got {list(self.classes)}")
        keys = [class_key(c) for c in self.classes]
        if len(set(keys)) != len(keys):
            raise ValueError(f"classes name the same class twice (1, '1' and 1.0 are one class): {list(self.classes)}")
        if not self.label_output and not self.probability_output:
            raise ValueError("a classifier needs label_output or probability_output (or both)")
        if self.threshold is not None:
            if len(self.classes) != 2:
                raise ValueError(f"threshold applies to binary classifiers only; this one has {len(self.classes)} classes")
            if not self.probability_output:
                raise ValueError("threshold needs probability_output")
            if not 0.0 < self.threshold < 1.0:
                raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        if self.label_type is LabelType.INTEGER and not all(_INTEGRAL_TEXT.match(k) for k in keys):
            raise ValueError(
                f"label_type integer: classes {[c for c, k in zip(self.classes, keys) if not _INTEGRAL_TEXT.match(k)][:5]} are not integers"
            )
        if self.label_type is LabelType.BOOLEAN and sorted(keys) != ["false", "true"]:
            raise ValueError(f"label_type boolean: the classes must be false and true, got {list(self.classes)}")

    @property
    def labels_from_probabilities(self) -> bool:
        """Whether the served label is derived from the probabilities (no label output, or a threshold)."""
        return self.task is Task.CLASSIFICATION and (not self.label_output or self.threshold is not None)

    def class_for(self, value: Any) -> str | None:
        """The class a label value names (1, "1" and 1.0 all name class "1"); None if it names none."""
        if value is None or isinstance(value, (dict, list)):
            return None
        if isinstance(value, float) and not np.isfinite(value):
            return None
        return _class_index(self.classes).get(class_key(value))

    def label_value(self, class_name: str) -> Any:
        """A class as answers carry it: in the labels' own type (``"1"`` -> 1, ``"True"`` -> True)."""
        if self.label_type is LabelType.INTEGER:
            return int(class_key(class_name))
        if self.label_type is LabelType.BOOLEAN:
            return class_key(class_name) == "true"
        return class_name

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "task": self.task.value,
            "classes": list(self.classes),
            "label_output": self.label_output,
            "probability_output": self.probability_output,
        }
        if self.threshold is not None:  # only when set: manifests without it keep their version
            d["threshold"] = self.threshold
        if self.label_type is not None:  # likewise
            d["label_type"] = self.label_type.value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OutputSpec:
        return cls(
            task=Task(d["task"]),
            classes=tuple(str(c) for c in d.get("classes", ()) or ()),
            label_output=None if d.get("label_output", "label") is None else str(d.get("label_output", "label")),
            probability_output=d.get("probability_output"),
            threshold=None if d.get("threshold") is None else float(d["threshold"]),
            label_type=None if d.get("label_type") is None else LabelType(d["label_type"]),
        )


@functools.lru_cache(maxsize=64)
def _class_index(classes: tuple[str, ...]) -> dict[str, str]:
    return {class_key(c): c for c in classes}


@dataclass(frozen=True)
class BundleManifest:
    model_name: str
    version: str  # derived from the content hash of model.onnx + schema
    features: tuple[FeatureSpec, ...]
    outputs: OutputSpec
    input_layout: InputLayout = InputLayout.PER_COLUMN
    single_input_name: str | None = None  # SINGLE_TENSOR layout only
    export_metrics: dict[str, Any] = field(default_factory=dict)
    created_by: str = "modelserve"

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "version": self.version,
            "features": [f.to_dict() for f in self.features],
            "outputs": self.outputs.to_dict(),
            "input_layout": self.input_layout.value,
            "single_input_name": self.single_input_name,
            "export_metrics": self.export_metrics,
            "created_by": self.created_by,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BundleManifest:
        features = tuple(FeatureSpec.from_dict(f) for f in d["features"])
        if not features:
            raise ValueError("manifest has no features")
        names = [f.name for f in features]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate feature names in manifest: {names}")
        layout = InputLayout(d.get("input_layout", InputLayout.PER_COLUMN.value))
        if layout is InputLayout.SINGLE_TENSOR and any(f.kind is FeatureKind.CATEGORICAL for f in features):
            raise ValueError("single_tensor layout takes numeric and boolean features only")
        if layout is InputLayout.SINGLE_TENSOR and len({f.input_dtype for f in features}) > 1:
            raise ValueError(f"single_tensor layout: one input tensor has one type, got {sorted({f.input_dtype.value for f in features})}")
        return cls(
            model_name=str(d["model_name"]),
            version=str(d["version"]),
            features=features,
            outputs=OutputSpec.from_dict(d["outputs"]),
            input_layout=layout,
            single_input_name=d.get("single_input_name"),
            export_metrics=dict(d.get("export_metrics", {}) or {}),
            created_by=str(d.get("created_by", "modelserve")),
        )


def infer_feature_specs(columns: Mapping[str, Any], categorical_max_levels: int = 50) -> tuple[FeatureSpec, ...]:
    """Infer a schema from training columns (pandas Series or numpy arrays), in the given order.

    bool dtype -> boolean; numeric dtype -> numeric (range from the data); anything else ->
    categorical (categories = sorted distinct non-null strings). Nullable iff the column has nulls.
    """
    return tuple(infer_feature_spec(name, col, None, categorical_max_levels)[0] for name, col in columns.items())


# integer columns with at most this many distinct values may be codes: the export says so
FEW_INTEGER_LEVELS = 20


def infer_feature_spec(name: str, col: Any, kind: FeatureKind | None = None, categorical_max_levels: int = 50) -> tuple[FeatureSpec, str]:
    """One feature's spec from its training column, and why it has that kind.

    ``kind``: declared by the user (then the values must fit it); None infers it from the values.
    ValueError names the row and value that do not fit.
    """
    values = np.asarray(col, dtype=object) if not hasattr(col, "to_numpy") else col.to_numpy(dtype=object)
    index = list(col.index) if hasattr(col, "index") else list(range(len(values)))
    nulls = np.array([_is_null(v) for v in values], dtype=bool)
    present = values[~nulls]
    nullable = bool(nulls.any())
    dtype_kind = getattr(getattr(col, "dtype", None), "kind", None) or np.asarray(col).dtype.kind
    all_bool = dtype_kind == "b" or (len(present) > 0 and all(isinstance(v, (bool, np.bool_)) for v in present))
    if kind is None:
        if all_bool:
            kind, why = FeatureKind.BOOLEAN, "true/false values"
        elif dtype_kind in "iuf":
            kind, why = FeatureKind.NUMERIC, "a column of numbers"
        else:
            not_numbers = [i for i, v in enumerate(values) if not nulls[i] and _number_or_none(v) is None]
            if present.size and len(not_numbers) <= 0.1 * present.size and not_numbers:
                i = not_numbers[0]
                raise ValueError(
                    f"feature {name!r}: a column of numbers with text in it: row {index[i]} has {values[i]!r} "
                    f"({len(not_numbers)} of {present.size} values are not numbers); fix the data, or declare it categorical"
                )
            kind, why = FeatureKind.CATEGORICAL, "text values"
    else:
        why = "declared"
    if kind is FeatureKind.BOOLEAN:
        bad = [i for i, v in enumerate(values) if not nulls[i] and not (isinstance(v, (bool, np.bool_)) or v in (0, 1))]
        if bad:
            raise ValueError(f"feature {name!r} is boolean, but row {index[bad[0]]} has {values[bad[0]]!r} (not true/false or 0/1)")
        return FeatureSpec(name=name, kind=kind, nullable=nullable), f"boolean ({why})"
    if kind is FeatureKind.NUMERIC:
        numbers = [_number_or_none(v) for v in present]
        if any(x is None for x in numbers):
            positions = np.flatnonzero(~nulls)
            i = int(positions[next(k for k, x in enumerate(numbers) if x is None)])
            raise ValueError(f"feature {name!r} is numeric, but row {index[i]} has {values[i]!r}, which is not a number")
        arr = np.array(numbers, dtype=np.float64)
        spec = FeatureSpec(
            name=name, kind=kind, nullable=nullable, min=float(arr.min()) if arr.size else None, max=float(arr.max()) if arr.size else None
        )
        levels = len(np.unique(arr))
        reason = (
            f"numeric ({why}; {levels} distinct values from {spec.min:g} to {spec.max:g})" if arr.size else f"numeric ({why}; no values)"
        )
        if why != "declared" and arr.size and 2 < levels <= FEW_INTEGER_LEVELS and bool(np.all(arr == np.trunc(arr))):
            reason += f"; if these are codes rather than quantities, declare it categorical (--categorical {name})"
        return spec, reason
    cats = sorted({category_text(v) for v in present})
    if why != "declared" and len(cats) > categorical_max_levels:
        raise ValueError(
            f"feature {name!r} looks categorical with {len(cats)} levels "
            f"(> {categorical_max_levels}); encode it numerically, or declare its kind"
        )
    return FeatureSpec(name=name, kind=kind, nullable=nullable, categories=tuple(cats)), f"categorical ({why}; {len(cats)} levels)"


def category_text(value: Any) -> str:
    """A category as text; codes read as floats (a number column with gaps) keep their integer form: 16.0 -> "16"."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    return str(value)


def _number_or_none(v: Any) -> float | None:
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    try:
        return float(str(v))
    except ValueError:
        return None


def _is_null(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, (float, np.floating)):
        return bool(np.isnan(v))
    # pandas.NA / NaT without importing pandas at run time
    return type(v).__name__ in ("NAType", "NaTType")


def rows_to_table(features: tuple[FeatureSpec, ...], rows: list[Mapping[str, Any]]) -> Table:
    """Convert already-validated JSON-like rows (dicts) into the column representation."""
    table: Table = {}
    for f in features:
        vals = [r.get(f.name) for r in rows]
        table[f.name] = column_from_values(f, vals)
    return table


def column_from_values(spec: FeatureSpec, values: list[Any]) -> np.ndarray:
    if spec.kind is FeatureKind.CATEGORICAL:
        return np.array([None if v is None else category_text(v) for v in values], dtype=object)
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def table_to_rows(features: tuple[FeatureSpec, ...], table: Table) -> list[dict[str, Any]]:
    """Inverse of rows_to_table: JSON-ready dicts (None for null, bool for booleans)."""
    n = len(next(iter(table.values()))) if table else 0
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for f in features:
        col = table[f.name]
        for i in range(n):
            out[i][f.name] = json_value(f, col[i])
    return out


def json_value(spec: FeatureSpec, v: Any) -> Any:
    if spec.kind is FeatureKind.CATEGORICAL:
        return None if v is None else str(v)
    fv = float(v)
    if np.isnan(fv):
        return None
    if spec.kind is FeatureKind.BOOLEAN:
        return bool(fv)
    return fv
