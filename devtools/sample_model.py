"""The sample model: a penguin species classifier on the Palmer Penguins data (shipped in the
``palmerpenguins`` package, so nothing is downloaded at run time).

Numeric features (some null), categorical features (``sex`` nullable): imputation, scaling and
one-hot encoding live inside the ONNX graph. Deterministic: the same bundle version every build.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from modelserve.bundle import ModelBundle

MODEL_NAME = "penguins"
TARGET = "species"
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]
DEFAULT_BUNDLE_DIR = Path("models/sample")


def load_training_frame() -> Any:
    import palmerpenguins

    df = palmerpenguins.load_penguins()
    return df[NUMERIC + CATEGORICAL + [TARGET]].reset_index(drop=True)


def build_pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=2000, C=1.0))])


def build_sample_bundle(out_dir: str | Path = DEFAULT_BUNDLE_DIR) -> ModelBundle:
    from modelserve.schema import infer_feature_specs

    from .export import export_sklearn, prepare_frame

    df = load_training_frame()
    features = NUMERIC + CATEGORICAL
    specs = infer_feature_specs({n: df[n] for n in features})
    pipeline = build_pipeline().fit(prepare_frame(df, specs), df[TARGET])
    return export_sklearn(pipeline, df, TARGET, MODEL_NAME, out_dir, feature_names=features)


def ensure_sample_bundle(out_dir: str | Path = DEFAULT_BUNDLE_DIR) -> ModelBundle:
    try:
        return ModelBundle.load(out_dir)
    except FileNotFoundError:
        return build_sample_bundle(out_dir)


def checkout_or_temporary_sample_bundle() -> ModelBundle:
    """The checkout's ``models/sample`` when it is built, else the sample built once under the system's
    temporary folder: a benchmark measures the sample without writing into the tree."""
    try:
        return ModelBundle.load(Path(__file__).resolve().parent.parent / DEFAULT_BUNDLE_DIR)
    except FileNotFoundError:
        return ensure_sample_bundle(Path(tempfile.gettempdir()) / "modelserve-bench" / "sample")


def resolve_bundle(bundle: str | None) -> Path:
    if bundle:
        return ModelBundle.load(bundle).root.resolve()
    root = Path.cwd() / DEFAULT_BUNDLE_DIR
    b = ensure_sample_bundle(root)
    return b.root.resolve()


DEFAULT_CHALLENGER_DIR = Path("models/challenger")


def build_challenger_pipeline() -> Any:
    """A second model for the version comparison: the same features, trained differently (a deliberately
    small random forest instead of a logistic regression: it disagrees with the sample model on about
    4% of the penguins, and is less accurate, so the comparison has something to show)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    pre = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="mean"), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
        ]
    )
    return Pipeline([("pre", pre), ("clf", RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0))])


def build_challenger_bundle(out_dir: str | Path = DEFAULT_CHALLENGER_DIR) -> ModelBundle:
    """The challenger of the sample model: same name and schema, another version (the version is a
    content hash of the graph, so a different model is always a different version)."""
    from modelserve.schema import infer_feature_specs

    from .export import export_sklearn, prepare_frame

    df = load_training_frame()
    features = NUMERIC + CATEGORICAL
    specs = infer_feature_specs({n: df[n] for n in features})
    pipeline = build_challenger_pipeline().fit(prepare_frame(df, specs), df[TARGET])
    return export_sklearn(pipeline, df, TARGET, MODEL_NAME, out_dir, feature_names=features)
