from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modelserve.schema import (
    BundleManifest,
    FeatureKind,
    FeatureSpec,
    InputLayout,
    OutputSpec,
    Task,
    infer_feature_specs,
    rows_to_table,
    table_to_rows,
)


def test_infer_feature_specs_types_nullability_and_ranges() -> None:
    df = pd.DataFrame(
        {
            "age": [30, 40, None, 50],
            "income": [1.5, 2.5, 3.5, 4.5],
            "city": ["a", "b", None, "a"],
            "member": [True, False, True, False],
        }
    )
    specs = {s.name: s for s in infer_feature_specs({c: df[c] for c in df.columns})}
    assert [s for s in specs] == ["age", "income", "city", "member"]
    assert specs["age"].kind is FeatureKind.NUMERIC and specs["age"].nullable
    assert (specs["age"].min, specs["age"].max) == (30.0, 50.0)
    assert specs["income"].kind is FeatureKind.NUMERIC and not specs["income"].nullable
    assert specs["city"].kind is FeatureKind.CATEGORICAL and specs["city"].nullable
    assert specs["city"].categories == ("a", "b")
    assert specs["member"].kind is FeatureKind.BOOLEAN and not specs["member"].nullable


def test_infer_feature_specs_refuses_high_cardinality_text() -> None:
    col = pd.Series([f"id-{i}" for i in range(100)])
    with pytest.raises(ValueError, match="100 levels"):
        infer_feature_specs({"user_id": col})


def _manifest(**kw: object) -> BundleManifest:
    base = dict(
        model_name="m",
        version="v1",
        features=(
            FeatureSpec("x", FeatureKind.NUMERIC, True, min=0.0, max=1.0),
            FeatureSpec("c", FeatureKind.CATEGORICAL, False, ("a", "b")),
        ),
        outputs=OutputSpec(Task.CLASSIFICATION, ("no", "yes")),
    )
    base.update(kw)
    return BundleManifest(**base)  # type: ignore[arg-type]


def test_manifest_json_round_trip() -> None:
    m = _manifest(export_metrics={"accuracy": 0.9})
    again = BundleManifest.from_dict(json.loads(m.to_json()))
    assert again == m


def test_manifest_rejects_duplicate_features_and_categorical_single_tensor() -> None:
    d = _manifest().to_dict()
    d["features"].append(d["features"][0])
    with pytest.raises(ValueError, match="duplicate"):
        BundleManifest.from_dict(d)
    d = _manifest().to_dict()
    d["input_layout"] = InputLayout.SINGLE_TENSOR.value
    with pytest.raises(ValueError, match="single_tensor"):
        BundleManifest.from_dict(d)


def test_rows_table_round_trip_keeps_nulls_and_booleans() -> None:
    feats = (
        FeatureSpec("x", FeatureKind.NUMERIC, True),
        FeatureSpec("b", FeatureKind.BOOLEAN, True),
        FeatureSpec("c", FeatureKind.CATEGORICAL, True, ("a",)),
    )
    rows = [{"x": 1.5, "b": True, "c": "a"}, {"x": None, "b": None, "c": None}]
    table = rows_to_table(feats, rows)
    assert np.isnan(table["x"][1]) and table["b"][0] == 1.0 and table["c"][1] is None
    assert table_to_rows(feats, table) == rows


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (1, "1"),
        ("1", "1"),
        (1.0, "1"),
        ("1.0", "1"),
        (np.int64(1), "1"),
        (np.float32(1.0), "1"),
        (True, "true"),
        ("True", "true"),
        (2.5, "2.5"),
        ("01", "01"),
        ("Adelie", "Adelie"),
    ],
)
def test_class_key_names_a_class_the_same_in_every_type(value, key) -> None:
    from modelserve.schema import class_key

    assert class_key(value) == key


def test_output_spec_maps_labels_by_value_and_refuses_ambiguous_or_incomplete_outputs() -> None:
    spec = OutputSpec(Task.CLASSIFICATION, ("1", "2", "3"))
    assert [spec.class_for(v) for v in (1, "2", 3.0, 0, 4, 1.5, True, None, float("nan"))] == [
        "1",
        "2",
        "3",
        None,
        None,
        None,
        None,
        None,
        None,
    ]
    with pytest.raises(ValueError, match="same class twice"):
        OutputSpec(Task.CLASSIFICATION, ("1", "1.0"))
    with pytest.raises(ValueError, match="at least two classes"):
        OutputSpec(Task.CLASSIFICATION, ())
    with pytest.raises(ValueError, match="label_output or probability_output"):
        OutputSpec(Task.CLASSIFICATION, ("a", "b"), label_output=None, probability_output=None)
    with pytest.raises(ValueError, match="binary classifiers only"):
        OutputSpec(Task.CLASSIFICATION, ("a", "b", "c"), threshold=0.5)
    assert OutputSpec.from_dict(OutputSpec(Task.CLASSIFICATION, ("a", "b"), None, "p", 0.3).to_dict()).threshold == 0.3
    assert "threshold" not in OutputSpec(Task.CLASSIFICATION, ("a", "b")).to_dict()  # versions of existing bundles unchanged


def test_the_bundle_schema_and_monitoring_name_the_same_feature_kinds_and_tasks() -> None:
    """monitoring stands alone (it imports nothing of the project), so it declares these values itself;
    the bundle schema's enums must keep meaning the same thing to it."""
    from modelserve import schema
    from monitoring import types

    assert {k.value for k in schema.FeatureKind} == {k.value for k in types.FeatureKind}
    assert {t.value for t in schema.Task} == {t.value for t in types.Task}
    for kind in schema.FeatureKind:
        assert (
            types.FeatureSpec.of(
                schema.FeatureSpec(name="x", kind=kind, nullable=True, categories=("a",) if kind is schema.FeatureKind.CATEGORICAL else ())
            ).kind.value
            == kind.value
        )
