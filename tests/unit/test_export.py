from __future__ import annotations

import json

import joblib
import numpy as np
import onnx
import pandas as pd
import pytest

from devtools.cli import main
from devtools.export import ParityError, QuantizationRejected, check_parity, prepare_frame, table_from_frame
from devtools.sample_model import NUMERIC, TARGET, build_pipeline, load_training_frame
from modelserve.bundle import ModelBundle
from modelserve.schema import infer_feature_specs
from serving.model import ModelRunner


def test_check_parity_passes_within_tolerance_and_names_the_figure_when_not() -> None:
    a = np.array([[0.2, 0.8], [0.5, 0.5]])
    assert check_parity(a, a + 5e-5) == pytest.approx(5e-5)
    with pytest.raises(ParityError, match=r"differs .* by 0\.01"):
        check_parity(a, a + 0.01)
    with pytest.raises(ParityError, match="shapes"):
        check_parity(a, a[:1])


def test_deliberately_broken_onnx_graph_fails_parity(sample_bundle, tmp_path) -> None:
    """Scale the classifier's weights inside the exported graph: the parity check must catch it."""
    model = onnx.load(str(sample_bundle.model_path))
    linear = next(n for n in model.graph.node if n.op_type == "LinearClassifier")
    coefficients = next(a for a in linear.attribute if a.name == "coefficients")
    scaled = [c * 1.5 for c in coefficients.floats]
    del coefficients.floats[:]
    coefficients.floats.extend(scaled)
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))

    df = load_training_frame()
    specs = sample_bundle.manifest.features
    pipeline = build_pipeline().fit(prepare_frame(df, specs), df[TARGET])
    expected = pipeline.predict_proba(prepare_frame(df, specs))
    good = ModelRunner.from_path(sample_bundle.manifest, sample_bundle.model_path).predict(table_from_frame(df, specs))
    bad = ModelRunner.from_path(sample_bundle.manifest, broken).predict(table_from_frame(df, specs))
    assert check_parity(expected, good.probabilities) <= 1e-4
    with pytest.raises(ParityError):
        check_parity(expected, bad.probabilities)


def test_export_cli_bundles_a_joblib_pipeline_and_serves_what_sklearn_predicts(tmp_path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    df = load_training_frame()
    specs = infer_feature_specs({c: df[c] for c in df.columns if c != TARGET})
    pipe = build_pipeline()
    pipe.steps[-1] = ("clf", HistGradientBoostingClassifier(max_iter=20, random_state=0))
    pipe.fit(prepare_frame(df, specs), df[TARGET])
    joblib.dump(pipe, tmp_path / "pipe.joblib")
    df.to_csv(tmp_path / "train.csv", index=False)

    rc = main(
        [
            "export",
            "--pipeline",
            str(tmp_path / "pipe.joblib"),
            "--data",
            str(tmp_path / "train.csv"),
            "--target",
            TARGET,
            "--name",
            "hgb",
            "--out",
            str(tmp_path / "bundle"),
        ]
    )
    assert rc == 0
    bundle = ModelBundle.load(tmp_path / "bundle")
    assert bundle.manifest.model_name == "hgb"
    csv_df = pd.read_csv(tmp_path / "train.csv")
    served = ModelRunner.from_path(bundle.manifest, bundle.model_path).predict(table_from_frame(csv_df, bundle.manifest.features))
    expected = pipe.predict_proba(prepare_frame(csv_df, bundle.manifest.features))
    assert np.abs(served.probabilities - expected).max() <= 1e-4
    assert bundle.manifest.export_metrics["parity_max_abs_diff"] <= 1e-4


def test_export_onnx_cli_bundles_a_ready_model_with_single_tensor_input(tmp_path) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import Ridge

    df = load_training_frame().dropna(subset=NUMERIC)
    x = df[NUMERIC[:3]].to_numpy(np.float32)
    y = df[NUMERIC[3]].to_numpy(np.float64)
    model = Ridge().fit(x, y)
    onx = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, 3]))], target_opset=17)
    (tmp_path / "m.onnx").write_bytes(onx.SerializeToString())
    schema = {
        "model_name": "mass",
        "features": [{"name": n, "kind": "numeric"} for n in NUMERIC[:3]],
        "outputs": {"task": "regression", "label_output": "variable", "probability_output": None},
        "input_layout": "single_tensor",
        "single_input_name": "x",
    }
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    df.to_csv(tmp_path / "ref.csv", index=False)
    assert (
        main(
            [
                "export-onnx",
                "--model",
                str(tmp_path / "m.onnx"),
                "--schema",
                str(tmp_path / "schema.json"),
                "--reference",
                str(tmp_path / "ref.csv"),
                "--target",
                NUMERIC[3],
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 0
    )
    bundle = ModelBundle.load(tmp_path / "b")
    f0 = bundle.manifest.features[0]
    assert f0.min == pytest.approx(df[NUMERIC[0]].min()) and f0.max == pytest.approx(df[NUMERIC[0]].max())
    pred = ModelRunner.from_path(bundle.manifest, bundle.model_path).predict(table_from_frame(df, bundle.manifest.features))
    assert np.abs(pred.labels - model.predict(x)).max() < 1e-2
    assert bundle.manifest.export_metrics["mae"] > 0


def test_quantization_reports_its_cost_and_refuses_past_the_tolerance(tmp_path) -> None:
    from sklearn.neural_network import MLPClassifier

    from devtools.export import export_sklearn

    df = load_training_frame()
    specs = infer_feature_specs({c: df[c] for c in df.columns if c != TARGET})
    pipe = build_pipeline()
    pipe.steps[-1] = ("clf", MLPClassifier(hidden_layer_sizes=(32,), max_iter=400, random_state=0))
    pipe.fit(prepare_frame(df, specs), df[TARGET])
    bundle = export_sklearn(pipe, df, TARGET, "mlp", tmp_path / "q", quantize=True, accuracy_tolerance=1.0)
    q = bundle.manifest.export_metrics["quantization"]
    assert {"bytes_before", "bytes_after", "latency_ms_before", "latency_ms_after", "quality_drop", "labels_changed"} <= set(q)
    assert q["graph_changed"] is True
    # the manifest describes the quantized graph that is served, and how far it is from the float one
    metrics = bundle.manifest.export_metrics
    assert metrics["onnx_bytes"] == q["bytes_after"] == bundle.model_path.stat().st_size != q["float_onnx_bytes"]
    served = ModelRunner.from_path(bundle.manifest, bundle.model_path).predict(table_from_frame(df, bundle.manifest.features))
    source = pipe.predict_proba(prepare_frame(df, bundle.manifest.features))
    assert metrics["parity_max_abs_diff"] == pytest.approx(np.abs(served.probabilities - source).max(), abs=5e-3)
    assert metrics["parity_max_abs_diff"] > q["float_parity_max_abs_diff"]
    assert q["parity_vs_float_max_abs_diff"] > 1e-4
    with pytest.raises(QuantizationRejected, match="tolerance"):
        export_sklearn(pipe, df, TARGET, "mlp", tmp_path / "q2", quantize=True, accuracy_tolerance=-1.0)
    assert not (tmp_path / "q2" / "manifest.json").exists()


def test_a_ready_onnx_classifier_with_zipmap_and_integer_classes_is_served(tmp_path) -> None:
    """What other exporters often produce: ZipMap probabilities (a list of dicts) and int64 labels."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    df = load_training_frame().dropna(subset=NUMERIC)
    y = df[TARGET].map({"Adelie": 0, "Chinstrap": 1, "Gentoo": 2}).to_numpy()
    x = df[NUMERIC].to_numpy(np.float32)
    model = LogisticRegression(max_iter=2000).fit(x, y)
    onx = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, len(NUMERIC)]))], target_opset=17)  # zipmap on
    (tmp_path / "m.onnx").write_bytes(onx.SerializeToString())
    schema = {
        "model_name": "zipmapped",
        "features": [{"name": n, "kind": "numeric"} for n in NUMERIC],
        "outputs": {
            "task": "classification",
            "classes": ["0", "1", "2"],
            "label_output": "output_label",
            "probability_output": "output_probability",
        },
        "input_layout": "single_tensor",
        "single_input_name": "x",
    }
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    df.to_csv(tmp_path / "ref.csv", index=False)
    assert (
        main(
            [
                "export-onnx",
                "--model",
                str(tmp_path / "m.onnx"),
                "--schema",
                str(tmp_path / "schema.json"),
                "--reference",
                str(tmp_path / "ref.csv"),
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 0
    )
    bundle = ModelBundle.load(tmp_path / "b")
    pred = ModelRunner.from_path(bundle.manifest, bundle.model_path).predict(table_from_frame(df, bundle.manifest.features))
    assert list(pred.labels[:5]) == [str(v) for v in model.predict(x[:5])]
    assert np.abs(pred.probabilities - model.predict_proba(x)).max() < 1e-5
