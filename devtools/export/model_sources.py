"""Where fitted scikit-learn models live, read for ``python -m devtools export``: a joblib file, a
``.skops`` file (loaded with skops' trusted-types check: nothing is unpickled), or an MLflow model
directory (the sklearn flavour, or a python_function flavour that wraps sklearn), whose signature
gives the features and their kinds and whose input example is a reference when no data is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelserve.schema import FeatureKind

from .problems import ExportProblems, first_line

# MLflow's column types (mlflow.types.DataType) -> the feature's kind
_MLFLOW_KINDS = {
    "string": FeatureKind.CATEGORICAL,
    "boolean": FeatureKind.BOOLEAN,
    "integer": FeatureKind.NUMERIC,
    "long": FeatureKind.NUMERIC,
    "float": FeatureKind.NUMERIC,
    "double": FeatureKind.NUMERIC,
}


@dataclass
class LoadedModel:
    """A fitted estimator and what its source says about the features (MLflow: signature, input example)."""

    estimator: Any
    features: list[str] | None = None  # in the signature's order
    kinds: dict[str, FeatureKind] = field(default_factory=dict)
    input_example: Any | None = None  # a DataFrame


def load_skops(path: str | Path, option: str = "--skops", trusted: list[str] | None = None) -> Any:
    """A .skops file, refusing types skops does not trust by default unless named in ``trusted``."""
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise ExportProblems([f"{option}: no such file: {path}"])
    try:
        untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in (trusted or [])]
    except Exception as exc:  # noqa: BLE001 - a file skops cannot read: say so in one line
        raise ExportProblems([f"{option} {path}: not a skops file ({first_line(exc)})"]) from None
    if untrusted:
        raise ExportProblems(
            [
                f"{option} {path}: the file asks to load types skops does not trust by default: {untrusted}; "
                f"if you trust them, name them: --trust {','.join(untrusted)}"
            ]
        )
    return sio.load(path, trusted=trusted or None)


def load_mlflow(directory: str | Path, trusted: list[str] | None = None) -> LoadedModel:
    """An MLflow model directory saved by ``mlflow.sklearn`` (skops, pickle or cloudpickle format)."""
    import yaml

    root = Path(directory)
    mlmodel = root / "MLmodel"
    if not mlmodel.is_file():
        raise ExportProblems([f"--mlflow {root}: not an MLflow model directory (no MLmodel file)"])
    spec = yaml.safe_load(mlmodel.read_text()) or {}
    flavors = spec.get("flavors", {})
    model_file, serialization = _sklearn_model_file(root, flavors)
    if serialization == "skops":
        # the types the model's saver declared trusted (save_model(skops_trusted_types=...)), as mlflow itself loads it
        declared = list((flavors.get("sklearn") or {}).get("skops_trusted_types") or [])
        estimator = load_skops(root / model_file, "--mlflow", [*declared, *(trusted or [])])
    elif trusted is not None and "pickle" in trusted:
        import cloudpickle

        with open(root / model_file, "rb") as f:
            estimator = cloudpickle.load(f)
    else:
        raise ExportProblems(
            [
                f"--mlflow {root}: the model is saved as {serialization} ({model_file}), which runs code when loaded; "
                "if you trust the directory, pass --trust pickle (or save it with serialization_format='skops')"
            ]
        )
    features, kinds = _signature_features(spec.get("signature") or {})
    return LoadedModel(estimator, features, kinds, _input_example(root, spec))


def _sklearn_model_file(root: Path, flavors: dict[str, Any]) -> tuple[str, str]:
    """The sklearn model's file and format: from the sklearn flavour, or a python_function flavour over mlflow.sklearn."""
    if "sklearn" in flavors:
        flavor = flavors["sklearn"]
        return str(flavor.get("pickled_model", "model.pkl")), str(flavor.get("serialization_format", "cloudpickle"))
    pyfunc = flavors.get("python_function", {})
    if pyfunc.get("loader_module") == "mlflow.sklearn":
        model_path = str(pyfunc.get("model_path", "model.pkl"))
        return model_path, "skops" if model_path.endswith(".skops") else "cloudpickle"
    found = sorted(flavors) or ["none"]
    raise ExportProblems(
        [
            f"--mlflow {root}: flavours {found}, none a scikit-learn model; export it to ONNX with its framework's converter "
            "and use export-onnx"
        ]
    )


def _signature_features(signature: dict[str, Any]) -> tuple[list[str] | None, dict[str, FeatureKind]]:
    import json

    inputs = signature.get("inputs")
    if not inputs:
        return None, {}
    columns = json.loads(inputs) if isinstance(inputs, str) else inputs
    named = [c for c in columns if isinstance(c, dict) and c.get("name")]
    if not named:  # a tensor signature names no columns
        return None, {}
    kinds = {str(c["name"]): _MLFLOW_KINDS[c["type"]] for c in named if c.get("type") in _MLFLOW_KINDS}
    return [str(c["name"]) for c in named], kinds


def _input_example(root: Path, spec: dict[str, Any]) -> Any | None:
    import json

    import pandas as pd

    info = spec.get("saved_input_example_info") or {}
    path = root / str(info.get("artifact_path", "input_example.json"))
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "columns" in data and "data" in data:  # pandas "split" orient
        return pd.DataFrame(data["data"], columns=data["columns"])
    if isinstance(data, list) and data and isinstance(data[0], dict):  # "records" orient
        return pd.DataFrame(data)
    return None
