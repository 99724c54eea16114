"""Shared by the web page tests: what they need installed, and a bundle with a boolean and a nullable feature."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devtools.web import NODE_MODULES, ORT_PACKAGE
from modelserve.bundle import ModelBundle

CHROMIUM = Path("/usr/bin/chromium")

needs_node_ort = pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_MODULES / ORT_PACKAGE / "package.json").exists(),
    reason=f"Node.js and {ORT_PACKAGE} (npm ci, run by make setup) are needed for the browser-runtime checks",
)


def export_bool_nullable_bundle(out: Path) -> ModelBundle:
    """Penguins with a nullable boolean feature (heavy: body mass over 4 kg, null where the mass is) and
    gradient-boosted trees: other operators (TreeEnsemble) than the sample's linear model."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from devtools.export import export_sklearn, prepare_frame
    from devtools.sample_model import CATEGORICAL, NUMERIC, TARGET, load_training_frame
    from modelserve.schema import infer_feature_specs

    df = load_training_frame()
    df["heavy"] = (df["body_mass_g"] > 4000).astype("boolean").where(df["body_mass_g"].notna(), pd.NA)
    features = [*NUMERIC, "heavy", *CATEGORICAL]
    specs = infer_feature_specs({n: df[n] for n in features})
    pre = ColumnTransformer(
        [
            ("num", "passthrough", [*NUMERIC, "heavy"]),  # the trees take NaN for null themselves
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
        ]
    )
    pipe = Pipeline([("pre", pre), ("clf", HistGradientBoostingClassifier(max_iter=15, random_state=0))])
    pipe.fit(prepare_frame(df, specs), df[TARGET])
    return export_sklearn(pipe, df, TARGET, "penguins-trees", out, feature_names=features)
