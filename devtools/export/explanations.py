"""The reference's explanations, written at export: the drift report's baseline of what drives the predictions.

Some rows of the reference sample (``REFERENCE_EXPLAINED_ROWS``, evenly spaced, fewer when a row costs more
than ``EVALUATION_BUDGET`` allows) get their explanation, computed exactly as the inference function computes
one (``serving.explain.Explainer``: the same model, the same background, the first ``explain_background_rows``
default rows of this sample evenly spaced, the predicted class), and stored in the row in the capture record's
form (``modelserve.records.RowExplanation``). The drift check has no model runtime; it compares the window's
captured explanations (``capture_explanations``) with these (docs/monitoring.md#what-moved-the-predictions).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from modelserve.schema import Table
from modelserve.settings import ServingSettings
from serving.explain import Explainer
from serving.explain_capture import row_explanations
from serving.model import ModelRunner
from serving.validation import RequestError

logger = logging.getLogger(__name__)

REFERENCE_EXPLAINED_ROWS = 100  # enough for a mean |contribution| per feature; about 1.5 s for the sample model
EVALUATION_BUDGET = 1_000_000  # model evaluations the export spends on them at most (at least one row is explained)
# the background the function uses unless the deployment sets another (the report compares like with like then)
BACKGROUND_ROWS: int = ServingSettings.model_fields["explain_background_rows"].default


def explained_positions(rows: int, per_row: int, wanted: int = REFERENCE_EXPLAINED_ROWS, budget: int = EVALUATION_BUDGET) -> np.ndarray:
    """Which reference rows get an explanation: ``wanted`` evenly spaced, fewer when the budget is short (at least one)."""
    n = min(rows, wanted, max(budget // max(per_row, 1), 1))
    return np.floor(np.arange(n) * (rows / n)).astype(np.intp) if n else np.arange(0)


def add_reference_explanations(runner: ModelRunner, table: Table, rows: Sequence[dict[str, Any]], labels: np.ndarray) -> int:
    """Writes an ``"explanation"`` into some of ``rows`` (the reference rows of ``table``, scored ``labels``);
    returns how many. None are written when the model has nothing to explain (a classifier without
    probabilities): the drift report then says the reference has no attribution."""
    names = runner.manifest.feature_names
    explainer = Explainer(runner.manifest, runner, lambda: table, BACKGROUND_ROWS, max_evaluations=2**62)
    try:
        explainer.check(1)
    except RequestError as exc:
        logger.warning("reference rows not explained: %s", exc.message)
        return 0
    chosen = explained_positions(len(rows), explainer.evaluations(1))
    chunk = max(1, EVALUATION_BUDGET // 4 // explainer.evaluations(1))  # bounds the mixed rows held at once
    for start in range(0, len(chosen), chunk):
        index = chosen[start : start + chunk]
        part = {name: table[name][index] for name in names}
        classes = [str(v) for v in labels[index].tolist()] if explainer.is_classifier else None
        for i, explanation in zip(index.tolist(), row_explanations(explainer, explainer.explain(part, classes))):
            rows[i]["explanation"] = explanation.to_dict()
    return len(chosen)
