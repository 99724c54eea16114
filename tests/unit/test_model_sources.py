"""Import from where models live: `export --skops FILE` and `export --mlflow DIR` on models saved by the
real skops and mlflow packages. Types skops does not trust and pickled MLflow models are refused in one
line naming the fix; an MLflow model's signature gives the features and its input example is the
reference when no data is given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from devtools.cli import main
from devtools.export import prepare_frame
from modelserve.bundle import ModelBundle
from modelserve.schema import FeatureKind, infer_feature_specs
from serving.model import ModelRunner

N = 250


def _data() -> pd.DataFrame:
    rng = np.random.default_rng(8)
    df = pd.DataFrame({"a": rng.normal(size=N), "b": rng.normal(size=N), "flag": rng.random(N) > 0.5})
    df["y"] = np.where(df["a"] + df["flag"] > 0.5, "yes", "no")
    return df


def _fitted(df: pd.DataFrame, model: Any = None) -> tuple[Any, pd.DataFrame]:
    from sklearn.linear_model import LogisticRegression

    prepared = prepare_frame(df, infer_feature_specs({c: df[c] for c in ("a", "b", "flag")}))
    return (model or LogisticRegression()).fit(prepared, df["y"]), prepared


def _errors(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[str]:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("error: ")]


def _served_labels(bundle: ModelBundle, frame: pd.DataFrame) -> list[Any]:
    from devtools.export import table_from_frame

    return (
        ModelRunner.from_path(bundle.manifest, bundle.model_path).predict(table_from_frame(frame, bundle.manifest.features)).labels.tolist()
    )


def test_a_skops_file_exports_and_serves_what_the_model_predicts(tmp_path, capsys) -> None:
    import skops.io as sio

    df = _data()
    df.to_csv(tmp_path / "d.csv", index=False)
    model, prepared = _fitted(df)
    sio.dump(model, tmp_path / "m.skops")
    argv = [
        "export",
        "--skops",
        str(tmp_path / "m.skops"),
        "--data",
        str(tmp_path / "d.csv"),
        "--target",
        "y",
        "--name",
        "sk",
        "--out",
        str(tmp_path / "b"),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    bundle = ModelBundle.load(tmp_path / "b")
    assert _served_labels(bundle, df) == model.predict(prepared).tolist()


def test_types_skops_does_not_trust_are_refused_unless_named(tmp_path, capsys) -> None:
    import skops.io as sio
    from sklearn.tree import DecisionTreeClassifier

    df = _data()
    df.to_csv(tmp_path / "d.csv", index=False)
    sio.dump(_fitted(df, DecisionTreeClassifier(max_depth=3, random_state=0))[0], tmp_path / "tree.skops")
    argv = [
        "export",
        "--skops",
        str(tmp_path / "tree.skops"),
        "--data",
        str(tmp_path / "d.csv"),
        "--target",
        "y",
        "--name",
        "t",
        "--out",
        str(tmp_path / "b"),
    ]
    assert _errors(capsys, argv) == [
        f"error: --skops {tmp_path / 'tree.skops'}: the file asks to load types skops does not trust by default: "
        "['sklearn.tree._tree.Tree']; if you trust them, name them: --trust sklearn.tree._tree.Tree"
    ]
    assert not (tmp_path / "b").exists()
    assert main([*argv, "--trust", "sklearn.tree._tree.Tree"]) == 0, capsys.readouterr().err


def _save_mlflow(tmp_path: Path, df: pd.DataFrame, **kwargs: Any) -> tuple[Path, Any, pd.DataFrame]:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    model, prepared = _fitted(df)
    features = df[["a", "b", "flag"]]
    mlflow.sklearn.save_model(model, str(tmp_path / "mlm"), signature=infer_signature(features, model.predict(prepared)), **kwargs)
    return tmp_path / "mlm", model, prepared


@pytest.mark.slow  # mlflow's import and save take seconds
def test_an_mlflow_model_without_data_takes_its_signature_and_input_example(tmp_path, capsys) -> None:
    df = _data()
    folder, model, prepared = _save_mlflow(tmp_path, df, input_example=df[["a", "b", "flag"]].head(4))
    assert main(["export", "--mlflow", str(folder), "--name", "ml", "--out", str(tmp_path / "b")]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "flag: boolean (declared in the MLflow signature)" in err and "a: numeric (declared in the MLflow signature;" in err
    bundle = ModelBundle.load(tmp_path / "b")
    assert bundle.manifest.feature_names == ["a", "b", "flag"] and bundle.manifest.feature("flag").kind is FeatureKind.BOOLEAN
    assert len(bundle.reference_rows()) == 4
    assert any("reference performance not measured: no target" in w for w in bundle.manifest.export_metrics["warnings"])
    assert _served_labels(bundle, df) == model.predict(prepared).tolist()


@pytest.mark.slow  # mlflow's import and save take seconds
def test_a_pickled_mlflow_model_is_loaded_only_when_trusted(tmp_path, capsys) -> None:
    df = _data()
    df.to_csv(tmp_path / "d.csv", index=False)
    folder, model, prepared = _save_mlflow(tmp_path, df, serialization_format="cloudpickle")
    argv = [
        "export",
        "--mlflow",
        str(folder),
        "--data",
        str(tmp_path / "d.csv"),
        "--target",
        "y",
        "--name",
        "ml",
        "--out",
        str(tmp_path / "b"),
    ]
    (error,) = _errors(capsys, argv)
    assert error.startswith(f"error: --mlflow {folder}: the model is saved as cloudpickle (model.pkl), which runs code when loaded")
    assert main([*argv, "--trust", "pickle"]) == 0, capsys.readouterr().err
    assert _served_labels(ModelBundle.load(tmp_path / "b"), df) == model.predict(prepared).tolist()


def test_mlflow_folders_that_are_not_sklearn_models_are_refused_in_one_line(tmp_path, capsys) -> None:
    argv = ["export", "--mlflow", str(tmp_path), "--name", "ml", "--out", str(tmp_path / "b")]
    assert _errors(capsys, argv) == [f"error: --mlflow {tmp_path}: not an MLflow model directory (no MLmodel file)"]
    (tmp_path / "MLmodel").write_text(json.dumps({"flavors": {"python_function": {"loader_module": "mlflow.pytorch"}, "pytorch": {}}}))
    (error,) = _errors(capsys, argv)
    assert error == (
        f"error: --mlflow {tmp_path}: flavours ['python_function', 'pytorch'], none a scikit-learn model; "
        "export it to ONNX with its framework's converter and use export-onnx"
    )
