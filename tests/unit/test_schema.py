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
        features=(FeatureSpec("x", FeatureKind.NUMERIC, True, min=0.0, max=1.0), FeatureSpec("c", FeatureKind.CATEGORICAL, False, ("a", "b"))),
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
