"""The reference the explanation tests compare with: the ``shap`` package's exact explainer
(``shap.explainers.Exact``) with an ``Independent`` masker on the same background rows, calling the same
ONNX model. shap's tabular maskers take numbers only, so categories travel to it as integer codes and
back to their strings before the model sees them."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelserve.schema import BundleManifest, FeatureKind, Table
from serving.model import ModelRunner


class ShapReference:
    """shap's exact interventional Shapley values of one output column of a model, on ``background``."""

    def __init__(self, manifest: BundleManifest, runner: ModelRunner, background: Table) -> None:
        self.manifest, self.runner = manifest, runner
        self.names = manifest.feature_names
        self.codes: dict[str, list[Any]] = {
            f.name: sorted({v for v in background[f.name].tolist() if v is not None}) + [None]
            for f in manifest.features
            if f.kind is FeatureKind.CATEGORICAL
        }
        self.background = self.encode(background)

    def encode(self, table: Table) -> np.ndarray:
        """Rows as shap's masker takes them: one float column per feature, categories as their codes."""
        cols = []
        for name in self.names:
            if name in self.codes:
                index = {v: i for i, v in enumerate(self.codes[name])}
                cols.append(np.array([index[v] for v in table[name].tolist()], dtype=np.float64))
            else:
                cols.append(np.asarray(table[name], dtype=np.float64))
        return np.column_stack(cols)

    def decode(self, rows: np.ndarray) -> Table:
        table: Table = {}
        for i, name in enumerate(self.names):
            if name in self.codes:
                table[name] = np.array([self.codes[name][int(c)] for c in rows[:, i]], dtype=object)
            else:
                table[name] = rows[:, i].astype(np.float64)
        return table

    def values(self, table: Table, column: int) -> tuple[np.ndarray, np.ndarray]:
        """(Shapley values [R, M], base values [R]) of output ``column`` (a class's probability, or 0: the prediction)."""
        import shap

        def model(rows: np.ndarray) -> np.ndarray:
            return self.runner.explained_outputs(self.decode(np.asarray(rows)))[:, column]

        masker = shap.maskers.Independent(self.background, max_samples=len(self.background))
        explanation = shap.explainers.Exact(model, masker)(self.encode(table))
        return np.asarray(explanation.values), np.asarray(explanation.base_values)
