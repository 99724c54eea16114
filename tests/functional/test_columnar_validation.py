"""The columnar entry of validation (binary bodies: OIP binary tensors, Arrow buffers) decides exactly
as the JSON path does for the same values: the same table, or the same refusal with the same body.

Typed columns of every numeric width, with NaN, infinities, values beyond float32 and beyond 2**53,
nulls where the feature allows them or not, booleans where numbers are due, strings that are unseen
categories or lone surrogates: ``validate(ColumnBatch)`` against ``validate({"dataframe_split"})`` of the
same values as Python values (what the protocols sent before the fast path, and what JSON sends).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.validation import ColumnBatch, RequestError, TypedColumn, Validator
from tests.functional.test_input_dtypes import mixed_bundle  # noqa: F401 - the fixture: f32, f64, i64, bool inputs

NUMBERS = [0.0, 1.5, -3.0, 7.0, 2.0**53, 2.0**53 + 2, 2.0**60, 3.4e38, 3.5e38, 1e39, -1e39, np.inf, -np.inf, np.nan, 255.0, -1.0]
DTYPES = ["<f2", "<f4", "<f8", "<i1", "<i2", "<i4", "<i8", "<u1", "<u8", "?"]
STRINGS = ["Biscoe", "Dream", "Torgersen", "male", "female", "Atlantis", "", "\ud800", None, 3, True]


def _typed(draw: Any, n: int) -> TypedColumn:
    dtype = draw(st.sampled_from(DTYPES))
    values = np.array(draw(st.lists(st.sampled_from(NUMBERS), min_size=n, max_size=n)), dtype=np.float64)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        typed = values.astype(dtype)
    nulls = draw(st.one_of(st.none(), st.lists(st.booleans(), min_size=n, max_size=n).map(np.array)))
    return TypedColumn(typed, nulls)


@st.composite
def batches(draw: Any, manifest: Any) -> ColumnBatch:
    n = draw(st.integers(1, 6))
    names = list(manifest.feature_names)
    draw(st.randoms()).shuffle(names)
    columns: list[Any] = []
    for name in names:
        if manifest.feature(name).kind.value == "categorical" and draw(st.booleans()):
            columns.append(draw(st.lists(st.sampled_from(STRINGS), min_size=n, max_size=n)))
        else:
            columns.append(_typed(draw, n))
    return ColumnBatch(names, columns)


def _outcome(validator: Validator, payload: Any) -> Any:
    try:
        return validator.validate(payload)
    except RequestError as exc:
        return exc.body()


def _as_split(batch: ColumnBatch) -> dict[str, Any]:
    lists = [c.to_list() if isinstance(c, TypedColumn) else c for c in batch.columns]
    return {"dataframe_split": {"columns": batch.names, "data": [list(r) for r in zip(*lists, strict=True)]}}


def _assert_same(columnar: Any, split: Any) -> None:
    if isinstance(split, dict) and "error" in split:
        assert columnar == split
        return
    assert isinstance(columnar, dict) and columnar.keys() == split.keys()
    for name, expected in split.items():
        got = columnar[name]
        assert got.dtype == expected.dtype, name
        if expected.dtype == object:
            assert got.tolist() == expected.tolist(), name
        else:
            np.testing.assert_array_equal(got, expected, err_msg=name)  # NaN (null) where NaN


@pytest.mark.parametrize("bundle", ["sample_bundle", "mixed_bundle"])
@pytest.mark.parametrize("reject_unseen", [True, False], ids=["reject-unseen", "unseen-to-model"])
def test_columns_are_validated_as_the_same_values_sent_as_json(request: pytest.FixtureRequest, bundle: str, reject_unseen: bool) -> None:
    manifest = request.getfixturevalue(bundle).manifest
    validator = Validator(manifest, max_rows=5, reject_unseen_categories=reject_unseen)

    per_value = Validator(manifest, max_rows=5, reject_unseen_categories=reject_unseen, numpy_from_rows=None)

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(batches(manifest))
    def check(batch: ColumnBatch) -> None:
        columnar = _outcome(validator, batch)
        _assert_same(columnar, _outcome(validator, _as_split(batch)))
        _assert_same(columnar, _outcome(per_value, _as_split(batch)))

    check()


# what a JSON body can put in a column (NaN and Infinity: the stdlib parser's literals), nulls often
JSON_VALUES = st.one_of(
    st.none(),
    st.sampled_from(NUMBERS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**400, -(10**400), 2**53 + 1, True, False, "1.5", "Dream", "\ud800", [], {}]),
    st.floats(allow_nan=True, allow_infinity=True),
)


@st.composite
def json_columns(draw: Any, manifest: Any) -> dict[str, Any]:
    """A dataframe_split body whose columns mix nulls with good values most of the time, and sometimes a bad one."""
    n = draw(st.integers(1, 8))
    columns: list[list[Any]] = []
    for f in manifest.features:
        if f.kind.value == "categorical":
            good = st.sampled_from([*f.categories, None])
        elif f.kind.value == "boolean":
            good = st.sampled_from([True, False, None])
        else:
            good = st.one_of(st.none(), st.floats(-1e6, 1e6), st.integers(-1000, 1000))
        columns.append(draw(st.lists(st.one_of(good, good, good, JSON_VALUES), min_size=n, max_size=n)))
    return {"dataframe_split": {"columns": manifest.feature_names, "data": [list(r) for r in zip(*columns, strict=True)]}}


@pytest.mark.parametrize("bundle", ["sample_bundle", "mixed_bundle"])
@pytest.mark.parametrize("reject_unseen", [True, False], ids=["reject-unseen", "unseen-to-model"])
def test_json_columns_with_nulls_are_validated_by_numpy_as_by_the_per_value_checks(
    request: pytest.FixtureRequest, bundle: str, reject_unseen: bool
) -> None:
    """The numpy path (nulls as a mask) gives the per-value path's table, or its refusal byte for byte."""
    manifest = request.getfixturevalue(bundle).manifest
    fast = Validator(manifest, max_rows=8, reject_unseen_categories=reject_unseen, numpy_from_rows=1)
    per_value = Validator(manifest, max_rows=8, reject_unseen_categories=reject_unseen, numpy_from_rows=None)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(json_columns(manifest))
    def check(body: dict[str, Any]) -> None:
        _assert_same(_outcome(fast, body), _outcome(per_value, body))

    check()


def test_a_null_keeps_a_numeric_column_on_the_numpy_path(sample_bundle: Any) -> None:
    """Nulls in a nullable numeric column: NaN where null, the values as sent elsewhere; a NaN sent as a
    value (not null) is still refused as not_finite, naming its row."""
    m = sample_bundle.manifest
    numeric = next(f for f in m.features if f.kind.value == "numeric" and f.nullable)
    rows = [{f.name: (f.categories[0] if f.kind.value == "categorical" else 1.0) for f in m.features} for _ in range(4)]
    rows[1][numeric.name], rows[3][numeric.name] = None, 7
    table = Validator(m, max_rows=10, numpy_from_rows=1).validate({"instances": rows})
    np.testing.assert_array_equal(table[numeric.name], [1.0, np.nan, 1.0, 7.0])
    rows[2][numeric.name] = float("nan")
    with pytest.raises(RequestError) as refused:
        Validator(m, max_rows=10, numpy_from_rows=1).validate({"instances": rows})
    assert refused.value.body()["details"] == [
        {"row": 2, "field": numeric.name, "reason": "not_finite", "message": "NaN and Infinity are not accepted; send null if missing"}
    ]


def test_column_names_and_counts_are_checked_as_dataframe_split_columns(sample_bundle: Any) -> None:
    m = sample_bundle.manifest
    validator = Validator(m, max_rows=3)
    one = [TypedColumn(np.array([1.0])) if f.kind.value == "numeric" else [f.categories[0]] for f in m.features]
    cases = [
        ColumnBatch(m.feature_names[1:], one[1:]),  # a feature missing
        ColumnBatch([*m.feature_names, "extra"], [*one, [1.0]]),  # an unknown column
        ColumnBatch([*m.feature_names, m.feature_names[0]], [*one, one[0]]),  # a column twice
        ColumnBatch(
            m.feature_names, [TypedColumn(np.array([], dtype="<f4")) if isinstance(c, TypedColumn) else [] for c in one]
        ),  # no rows
        ColumnBatch(
            m.feature_names, [TypedColumn(np.repeat(c.values, 4)) if isinstance(c, TypedColumn) else c * 4 for c in one]
        ),  # too many
    ]
    reasons = []
    for batch in cases:
        columnar = _outcome(validator, batch)
        assert columnar == _outcome(validator, _as_split(batch))
        reasons.append(columnar["error"])
    assert reasons == ["missing_feature", "unknown_feature", "bad_shape", "empty_batch", "batch_too_large"]
