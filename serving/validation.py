"""Request parsing and validation, column by column with numpy (no per-row pydantic models).

Accepts ``{"instances": [{feature: value}, ...]}`` and MLflow's split form
``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``. Every problem becomes a
``RequestError`` with a reason code and details naming the row and field; the API layer maps
reasons to HTTP statuses.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from modelserve.schema import BundleManifest, FeatureKind, FeatureSpec, InputDtype, Table

MAX_REPORTED_ERRORS = 50
NUMPY_FROM_ROWS = 16  # measured: below it numpy's per-call cost exceeds the per-value loop's (benchmarks/bench_inference.py)
FLOAT32_MAX = float(np.finfo(np.float32).max)  # beyond it a float32 input would read infinity
MAX_EXACT_INTEGER = 2**53  # integers pass through the float64 columns; beyond this they would be rounded

# rejection reasons: also the "Reason" dimension of the ValidationRejects metric
MALFORMED_JSON = "malformed_json"
BAD_SHAPE = "bad_shape"
EMPTY_BATCH = "empty_batch"
BATCH_TOO_LARGE = "batch_too_large"
BODY_TOO_LARGE = "body_too_large"
MISSING_FEATURE = "missing_feature"
UNKNOWN_FEATURE = "unknown_feature"
WRONG_TYPE = "wrong_type"
NOT_FINITE = "not_finite"
NULL_NOT_ALLOWED = "null_not_allowed"
UNSEEN_CATEGORY = "unseen_category"
DUPLICATE_KEY = "duplicate_key"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
NESTING_TOO_DEEP = "nesting_too_deep"

# JSON bodies nest at most this deep (arrays and objects, the outermost counting 1): the deepest valid
# request is 4 ({"dataframe_split": {"data": [[...]]}}); orjson would parse 1,024 levels but writes only 254
MAX_JSON_DEPTH = 64

# echoed names and values are cut: an error answer stays small whatever the request held
MAX_ECHOED_NAME = 128
MAX_DETAIL_MESSAGE = 300
MAX_MESSAGE = 600


def echo(text: Any, limit: int = MAX_ECHOED_NAME) -> str:
    """``text`` as it may appear in an answer: at most ``limit`` characters (then "…"), and lone
    surrogates (legal in JSON strings, not in UTF-8) written as ``\\udXXX`` escapes."""
    s = text if isinstance(text, str) else str(text)
    if len(s) > limit:
        s = s[:limit] + "…"
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass
class FieldError:
    reason: str
    message: str
    row: int | None = None
    field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        field_name = None if self.field is None else echo(self.field)
        return {"row": self.row, "field": field_name, "reason": self.reason, "message": echo(self.message, MAX_DETAIL_MESSAGE)}


@dataclass
class RequestError(Exception):
    """A request the service refuses. ``reason`` says why (the API maps it to an HTTP status);
    ``status``: the HTTP status when the reason alone does not say it (a codec's unreadable body: 400)."""

    reason: str
    message: str
    details: list[FieldError] = field(default_factory=list)
    status: int | None = None

    def body(self) -> dict[str, Any]:
        details = [d.to_dict() for d in self.details[:MAX_REPORTED_ERRORS]]
        return {"error": self.reason, "message": echo(self.message, MAX_MESSAGE), "details": details}


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return obj


_STRUCTURE = b'[]{}"'
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in _STRUCTURE)
_ESCAPE = re.compile(rb"\\.", re.DOTALL)


def json_depth(body: bytes) -> int:
    """How deep the JSON text nests arrays and objects (brackets inside strings do not count), read
    from the bytes before any parser recurses; -1 when its brackets do not balance (not JSON).
    Vectorised: only brackets and quotes are kept (escapes dropped first), a bracket counts where an
    even number of quotes precede it; about 1 ms per MB."""
    if b"\\" in body:
        body = _ESCAPE.sub(b"", body)
    marks = np.frombuffer(body.translate(None, _NOT_STRUCTURE), dtype=np.uint8)
    quotes = marks == ord('"')
    brackets = marks[((np.cumsum(quotes, dtype=np.int64) & 1) == 0) & ~quotes]
    if not len(brackets):
        return 0
    # "[" 0x5B and "{" 0x7B have bit 1 set, "]" 0x5D and "}" 0x7D do not: +1 opens, -1 closes
    levels = np.cumsum(((brackets >> 1) & 1).astype(np.int64) * 2 - 1)
    return int(levels.max()) if levels[-1] == 0 and levels.min() >= 0 else -1


def check_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse a JSON text nesting deeper than ``limit`` (400 nesting_too_deep; malformed_json when its
    brackets do not balance); a body with at most ``limit`` brackets is not scanned."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return
    depth = json_depth(body)
    if depth < 0:
        raise RequestError(MALFORMED_JSON, "request body is not valid JSON: its brackets do not balance")
    if depth > limit:
        raise RequestError(NESTING_TOO_DEEP, f"the JSON nests {depth} levels deep; at most {limit} are read")


def parse_json(body: bytes) -> Any:
    """The parsed body; an object repeating a key is refused (422 duplicate_key), never last-one-wins;
    nesting deeper than ``MAX_JSON_DEPTH`` is refused before parsing (400 nesting_too_deep).

    Fast path (orjson, C): without escapes in the body every colon is a key's or a string's, and the
    same strings come back from ``orjson.dumps`` unchanged, so the colons of the parsed value equal
    the body's exactly when no key was dropped as a duplicate. Otherwise (escapes, NaN/Infinity
    literals orjson refuses, invalid input) the stdlib parser checks each object as it is built;
    NaN/Infinity reach validation (422 not_finite, not 400).
    """
    check_depth(body)
    if b"\\" not in body:
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
        else:
            if orjson.dumps(value).count(b":") == body.count(b":"):
                return value
    try:
        return json.loads(body, object_pairs_hook=_object_without_duplicates)
    except _DuplicateKey as dup:
        raise RequestError(
            DUPLICATE_KEY, "an object repeats a key", [FieldError(DUPLICATE_KEY, "key appears more than once", field=dup.key)]
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise RequestError(MALFORMED_JSON, f"request body is not valid JSON: {exc}") from None


@dataclass(frozen=True)
class TypedColumn:
    """A column decoded from a binary body (OIP binary tensor, Arrow buffer) as one typed numpy array:
    numbers (any int/uint/float dtype) or booleans, with ``nulls`` marking the missing values.

    ``to_list`` is the column as the JSON path would hold it (Python values, ``None`` for null): the
    validator falls back to it, and to its per-value checks, whenever the vectorised check refuses,
    so errors and their messages are those of a JSON request with the same values."""

    values: np.ndarray
    nulls: np.ndarray | None = None  # bool per row, True where the value is missing

    def __len__(self) -> int:
        return len(self.values)

    def to_list(self) -> list[Any]:
        out: list[Any] = self.values.tolist()
        if self.nulls is not None:
            for i in np.flatnonzero(self.nulls).tolist():
                out[i] = None
        return out


Column = TypedColumn | list[Any]  # a list: Python values (strings, or values of a JSON tensor)


@dataclass(frozen=True)
class ColumnBatch:
    """A request decoded column by column (OIP tensors, Arrow record batches), validated without
    building rows: ``names`` as the body named its columns (in its order, duplicates and unknown
    names included, checked like ``dataframe_split.columns``), ``columns`` one per name."""

    names: list[str]
    columns: list[Column]


class Validator:
    """Turns a parsed request into validated columns for one bundle's schema."""

    def __init__(
        self, manifest: BundleManifest, max_rows: int, reject_unseen_categories: bool = True, numpy_from_rows: int | None = NUMPY_FROM_ROWS
    ) -> None:
        """``numpy_from_rows``: JSON columns of at least this many values are checked with numpy first (below
        it the per-value loop is faster); None: every value through the per-value checks, the reference the
        numpy paths are tested against (they must give the same table, or the same refusal byte for byte)."""
        self.features = manifest.features
        self.names = manifest.feature_names
        self.name_set = frozenset(self.names)
        self.max_rows = max_rows
        self.reject_unseen = reject_unseen_categories
        self._categories = {f.name: frozenset(f.categories) for f in self.features if f.kind is FeatureKind.CATEGORICAL}
        self.vectorised = numpy_from_rows is not None
        self.numpy_from_rows = numpy_from_rows or 0

    def validate(self, payload: Any) -> Table:
        if isinstance(payload, ColumnBatch):
            return self.validate_columns(payload)
        columns = self._columns(payload)
        errors: list[FieldError] = []
        table: Table = {}
        for spec in self.features:
            col = self._column(spec, columns[spec.name], errors)
            if col is not None:
                table[spec.name] = col
        if errors:
            raise _unprocessable(errors)
        return table

    def validate_columns(self, batch: ColumnBatch) -> Table:
        """The columnar entry (binary bodies): the checks of ``dataframe_split`` (names, row count) and of
        each value, vectorised over typed columns; the same table, the same errors, the same messages."""
        self._check_split_names(batch.names)
        lengths = {len(c) for c in batch.columns}
        if len(lengths) != 1:  # the decoders refuse this first (their own 400): a bug if it gets here
            raise ValueError(f"columns of different lengths {sorted(lengths)}")
        self._check_count(lengths.pop())
        by_name = dict(zip(batch.names, batch.columns, strict=True))
        errors: list[FieldError] = []
        table: Table = {}
        for spec in self.features:
            values = by_name[spec.name]
            arr = None
            if self.vectorised:
                arr = self._typed(spec, values) if isinstance(values, TypedColumn) else self._typed_strings(spec, values)
            if arr is None:  # refused (or not a fast case): the per-value checks name every problem
                arr = self._column(spec, values.to_list() if isinstance(values, TypedColumn) else values, errors)
            if arr is not None:
                table[spec.name] = arr
        if errors:
            raise _unprocessable(errors)
        return table

    def _typed(self, spec: FeatureSpec, col: TypedColumn) -> np.ndarray | None:
        """The validated float64 column of a typed numeric or boolean column, or None when a value is
        refused (or the dtype does not fit the feature): the caller then runs the per-value checks."""
        kind = col.values.dtype.kind
        if not ((spec.kind is FeatureKind.NUMERIC and kind in "iuf") or (spec.kind is FeatureKind.BOOLEAN and kind == "b")):
            return None
        out = col.values.astype(np.float64)  # ints round as float(int) does; float16/32 exactly
        nulls = col.nulls if col.nulls is not None and col.nulls.any() else None
        if nulls is not None and not spec.nullable:
            return None
        if spec.kind is FeatureKind.NUMERIC:
            present = out if nulls is None else out[~nulls]
            if not (np.isfinite(present).all() and _fits(spec.input_dtype, present).all()):
                return None
        if nulls is not None:
            out[nulls] = np.nan
        return out

    def _typed_strings(self, spec: FeatureSpec, values: list[Any]) -> np.ndarray | None:
        """A categorical column of strings and nulls checked on its distinct values (the per-value
        loop only runs to name the problems); None when it is not that case or a value is refused."""
        if spec.kind is not FeatureKind.CATEGORICAL or not set(map(type, values)) <= {str, type(None)}:
            return None
        distinct = set(values)
        if None in distinct:
            if not spec.nullable:
                return None
            distinct.discard(None)
        if not (self._categories[spec.name].issuperset(distinct) or (not self.reject_unseen and all(map(_is_unicode, distinct)))):
            return None
        return np.array(values, dtype=object)

    # --- shape ---
    def _columns(self, payload: Any) -> dict[str, list[Any]]:
        if not isinstance(payload, dict):
            raise RequestError(BAD_SHAPE, 'body must be an object with "instances" or "dataframe_split"')
        if "instances" in payload and len(payload) == 1:
            return self._from_instances(payload["instances"])
        if "dataframe_split" in payload and len(payload) == 1:
            return self._from_split(payload["dataframe_split"])
        raise RequestError(BAD_SHAPE, 'body must have exactly one key: "instances" or "dataframe_split"')

    def _check_count(self, n: int) -> None:
        if n == 0:
            raise RequestError(EMPTY_BATCH, "the batch is empty: send at least one row")
        if n > self.max_rows:
            raise RequestError(BATCH_TOO_LARGE, f"the batch has {n} rows; at most {self.max_rows} per request")

    def _from_instances(self, rows: Any) -> dict[str, list[Any]]:
        if not isinstance(rows, list):
            raise RequestError(BAD_SHAPE, '"instances" must be a list of objects')
        self._check_count(len(rows))
        n_features = len(self.names)
        # the common case checked without a Python loop per row: objects, each holding exactly the features
        if set(map(type, rows)) == {dict} and set(map(len, rows)) == {n_features} and all(map(self.name_set.issuperset, rows)):
            return {name: list(map(itemgetter(name), rows)) for name in self.names}
        errors: list[FieldError] = []
        for i, r in enumerate(rows):
            if not isinstance(r, dict):
                errors.append(FieldError(BAD_SHAPE, "row must be an object of feature: value", row=i))
            elif len(r) != n_features or not self.name_set.issuperset(r):
                for name in self.names:
                    if name not in r:
                        errors.append(FieldError(MISSING_FEATURE, "feature is missing", row=i, field=name))
                for name in r:
                    if name not in self.name_set:
                        errors.append(FieldError(UNKNOWN_FEATURE, "unknown feature", row=i, field=str(name)))
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
        if errors:
            raise _unprocessable(errors)
        return {name: [r[name] for r in rows] for name in self.names}

    def _from_split(self, split: Any) -> dict[str, list[Any]]:
        if not isinstance(split, dict) or not isinstance(split.get("columns"), list) or not isinstance(split.get("data"), list):
            raise RequestError(BAD_SHAPE, '"dataframe_split" must have "columns" (list) and "data" (list of lists)')
        cols, data = split["columns"], split["data"]
        extra = set(split) - {"columns", "data", "index"}
        if extra:
            raise RequestError(BAD_SHAPE, f'unexpected keys in "dataframe_split": {sorted(map(str, extra))}')
        if "index" in split and not isinstance(split["index"], list):
            raise RequestError(BAD_SHAPE, '"dataframe_split.index" must be a list (it is ignored: answers follow the order of "data")')
        self._check_split_names(cols)
        self._check_count(len(data))
        width = len(cols)
        for i, r in enumerate(data):
            if not isinstance(r, list) or len(r) != width:
                raise _unprocessable([FieldError(BAD_SHAPE, f"row must be a list of {width} values", row=i)])
        pos = {c: j for j, c in enumerate(cols)}
        return {name: [r[pos[name]] for r in data] for name in self.names}

    def _check_split_names(self, cols: list[Any]) -> None:
        bad_names = [
            FieldError(BAD_SHAPE, f"column names must be strings, got {_type_name(c)}", field=None) for c in cols if type(c) is not str
        ]
        if bad_names:
            raise _unprocessable(bad_names)
        errors = [FieldError(MISSING_FEATURE, "feature is missing", field=n) for n in self.names if n not in cols]
        errors += [FieldError(UNKNOWN_FEATURE, "unknown feature", field=str(c)) for c in cols if c not in self.name_set]
        if len(set(map(str, cols))) != len(cols):
            errors.append(FieldError(BAD_SHAPE, "duplicate column names"))
        if errors:
            raise _unprocessable(errors)

    # --- values ---
    def _column(self, spec: FeatureSpec, values: list[Any], errors: list[FieldError]) -> np.ndarray | None:
        if self.vectorised and len(values) >= self.numpy_from_rows:
            fast = self._vectorised(spec, values)
            if fast is not None:
                return fast
        if spec.kind is FeatureKind.NUMERIC:
            return self._numeric(spec, values, errors)
        if spec.kind is FeatureKind.BOOLEAN:
            return self._boolean(spec, values, errors)
        return self._categorical(spec, values, errors)

    def _vectorised(self, spec: FeatureSpec, values: list[Any]) -> np.ndarray | None:
        """The column checked with numpy (nulls as a mask, not a reason to go row by row), or None when it
        is not a fast case or a value is refused: the per-value checks then decide and name every problem."""
        if spec.kind is FeatureKind.CATEGORICAL:
            return self._typed_strings(spec, values)
        types = set(map(type, values))
        has_null = type(None) in types
        if not types <= (_NUMBERS_OR_NULL if spec.kind is FeatureKind.NUMERIC else _BOOLS_OR_NULL) or (has_null and not spec.nullable):
            return None  # bool is its own type: never taken as a number
        try:
            arr = np.array(values, dtype=np.float64)  # None -> NaN
        except OverflowError:  # an integer beyond float64: refused per value
            return None
        if spec.kind is FeatureKind.BOOLEAN:
            return arr
        present = arr
        if has_null:
            missing = np.isnan(arr)
            if int(np.count_nonzero(missing)) != values.count(None):  # a NaN sent as a value (not null): refused
                return None
            present = arr[~missing]
        return arr if np.isfinite(present).all() and _fits(spec.input_dtype, present).all() else None

    def _numeric(self, spec: FeatureSpec, values: list[Any], errors: list[FieldError]) -> np.ndarray | None:
        out = np.empty(len(values), dtype=np.float64)
        start = len(errors)
        dtype = spec.input_dtype
        for i, v in enumerate(values):
            t = type(v)
            if v is None:
                if not spec.nullable:
                    errors.append(FieldError(NULL_NOT_ALLOWED, "null is not allowed for this feature", i, spec.name))
                out[i] = np.nan
            elif t is bool or t not in (int, float):
                errors.append(FieldError(WRONG_TYPE, f"expected a number, got {_type_name(v)}", i, spec.name))
            else:
                try:
                    fv = float(v)
                except OverflowError:
                    fv = math.inf
                if dtype is InputDtype.INT64 and not (math.isfinite(fv) and fv.is_integer() and abs(fv) <= MAX_EXACT_INTEGER):
                    errors.append(
                        FieldError(WRONG_TYPE, f"expected a whole number within ±2**53 (the model takes int64), got {v!r}", i, spec.name)
                    )
                elif not math.isfinite(fv):
                    errors.append(FieldError(NOT_FINITE, "NaN and Infinity are not accepted; send null if missing", i, spec.name))
                elif dtype is InputDtype.FLOAT32 and abs(fv) > FLOAT32_MAX:
                    errors.append(
                        FieldError(NOT_FINITE, f"{v!r} is beyond the float32 range the model takes (±{FLOAT32_MAX:.4g})", i, spec.name)
                    )
                out[i] = fv
            if len(errors) - start >= MAX_REPORTED_ERRORS:
                break
        return None if len(errors) > start else out

    def _boolean(self, spec: FeatureSpec, values: list[Any], errors: list[FieldError]) -> np.ndarray | None:
        out = np.empty(len(values), dtype=np.float64)
        start = len(errors)
        for i, v in enumerate(values):
            if v is None:
                if not spec.nullable:
                    errors.append(FieldError(NULL_NOT_ALLOWED, "null is not allowed for this feature", i, spec.name))
                out[i] = np.nan
            elif type(v) is not bool:
                errors.append(FieldError(WRONG_TYPE, f"expected true or false, got {_type_name(v)}", i, spec.name))
            else:
                out[i] = float(v)
            if len(errors) - start >= MAX_REPORTED_ERRORS:
                break
        return None if len(errors) > start else out

    def _categorical(self, spec: FeatureSpec, values: list[Any], errors: list[FieldError]) -> np.ndarray | None:
        cats = self._categories[spec.name]
        start = len(errors)
        for i, v in enumerate(values):
            if v is None:
                if not spec.nullable:
                    errors.append(FieldError(NULL_NOT_ALLOWED, "null is not allowed for this feature", i, spec.name))
            elif type(v) is not str:
                errors.append(FieldError(WRONG_TYPE, f"expected a string category, got {_type_name(v)}", i, spec.name))
            elif not _is_unicode(v):
                errors.append(
                    FieldError(WRONG_TYPE, "the string holds a lone surrogate (\\ud800-\\udfff): not valid Unicode", i, spec.name)
                )
            elif self.reject_unseen and v not in cats:
                shown = sorted(cats)[:20]
                errors.append(FieldError(UNSEEN_CATEGORY, f"unseen category {v[:100]!r}; known: {shown}", i, spec.name))
            if len(errors) - start >= MAX_REPORTED_ERRORS:
                break
        if len(errors) > start:
            return None
        return np.array(values, dtype=object)


_NUMBERS_OR_NULL = frozenset({int, float, type(None)})
_BOOLS_OR_NULL = frozenset({bool, type(None)})


def _is_unicode(s: str) -> bool:
    """Whether a string is valid Unicode: JSON's \\u escapes can spell a lone surrogate, which no model takes."""
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fits(dtype: InputDtype, arr: np.ndarray) -> np.ndarray:
    """Per value: whether the finite float64 value is carried exactly enough by the model's input type."""
    if dtype is InputDtype.FLOAT32:
        return np.abs(arr) <= FLOAT32_MAX
    if dtype is InputDtype.INT64:
        return (arr == np.trunc(arr)) & (np.abs(arr) <= MAX_EXACT_INTEGER)
    return np.ones(arr.shape, dtype=bool)


def _unprocessable(errors: list[FieldError]) -> RequestError:
    errors = errors[:MAX_REPORTED_ERRORS]
    first = errors[0]
    where = f" (row {first.row}, field {first.field!r})" if first.row is not None or first.field else ""
    return RequestError(first.reason, f"{len(errors)} invalid value(s); first: {first.message}{where}", errors)


def _type_name(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(type(v), type(v).__name__)
