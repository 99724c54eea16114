"""Explanations kept with the capture (``capture_explanations``): which rows' explanations a capture record
holds, decided in the request and computed with the capture's write, after the answer.

- A row that asked (``"explain": true``) keeps the explanation it was answered with: nothing is computed again.
- With ``explain_capture_fraction`` > 0, each captured row that did not ask is explained with that
  probability (its predicted class, as a row that asks without ``explain_class``), at most as many rows per
  request as ``explain_max_evaluations`` allows. The drift report compares these rows' mean |contribution|
  per feature with the reference's (docs/monitoring.md#what-moved-the-predictions): sampled rows are a
  uniform sample of the traffic, rows that asked need not be.

An explanation that fails is counted (``on_error``: the ExplainCaptureErrors metric) and its rows are
captured without one; a prediction or its capture never fails for it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from modelserve.records import RowExplanation
from modelserve.schema import Table

from .explain import Explainer, Explanations

logger = logging.getLogger(__name__)

# per row of a request: its explanation, or None when it has none
RowExplanations = Sequence[RowExplanation | None]
DeferredExplanations = Callable[[], RowExplanations | None]


def row_explanations(explainer: Explainer, explanations: Explanations, sampled: bool = False) -> list[RowExplanation]:
    """The explanations of ``Explainer.explain`` as capture records keep them."""
    values = explanations.values.tolist()
    classes = explanations.classes
    return [
        RowExplanation(
            output=float(explanations.output[r]),
            base_value=float(explanations.base_value[r]),
            values=dict(zip(explainer.names, values[r])),
            explained_class=None if classes is None else classes[r],
            method=explainer.method,
            sampled=sampled,
        )
        for r in range(len(values))
    ]


@dataclass
class CaptureExplanations:
    """What a capturer asks of the explainer for its records (see the module docstring)."""

    explainer: Explainer
    fraction: float = 0.0  # explain_capture_fraction
    on_error: Callable[[Exception], None] = lambda exc: None  # ExplainCaptureErrors
    on_explained: Callable[[int, float], None] = lambda rows, ms: None  # RowsExplained, ExplainLatencyMs

    def plan(self, table: Table, labels: np.ndarray, answered: Explanations | None, rng: random.Random) -> DeferredExplanations | None:
        """Taken in the request (the sampling decision, with the capturer's generator); the returned call
        computes after the answer. None: no row of this request gets an explanation."""
        n = len(labels)
        if answered is not None:
            return lambda: row_explanations(self.explainer, answered)
        if self.fraction <= 0.0 or n == 0:
            return None
        chosen = [i for i in range(n) if self.fraction >= 1.0 or rng.random() < self.fraction]
        if not chosen:
            return None
        return lambda: self.sampled(table, labels, chosen)

    def sampled(self, table: Table, labels: np.ndarray, chosen: list[int]) -> RowExplanations | None:
        """Explanations of the chosen rows (None elsewhere); never raises: a failure is counted, None returned."""
        try:
            explainer = self.explainer
            per_row = explainer.evaluations(1)
            kept = chosen[: max(explainer.max_evaluations // per_row, 0)] if per_row else []
            if not kept:
                raise ValueError(f"one row takes {per_row:,} model evaluations, over explain_max_evaluations")
            explainer.check(len(kept))
            index = np.asarray(kept, dtype=np.intp)
            started = time.perf_counter()
            explained = explainer.explain({name: column[index] for name, column in table.items()}, self._classes(labels[index]))
            self.on_explained(len(kept), (time.perf_counter() - started) * 1000.0)
        except Exception as exc:  # noqa: BLE001 - the answer is out and the rows are captured without it
            logger.exception("explanation for the capture failed")
            _call(self.on_error, exc)
            return None
        out: list[RowExplanation | None] = [None] * len(labels)
        for i, e in zip(kept, row_explanations(explainer, explained, sampled=True)):
            out[i] = e
        return out

    def _classes(self, labels: np.ndarray) -> list[str] | None:
        return [str(v) for v in labels.tolist()] if self.explainer.is_classifier else None


def resolve(deferred: DeferredExplanations | None, on_error: Callable[[Exception], None]) -> RowExplanations | None:
    """The deferred explanations, computed now; never raises (a failure is counted, None returned)."""
    if deferred is None:
        return None
    try:
        return deferred()
    except Exception as exc:  # noqa: BLE001 - a capture goes on without its explanations
        logger.exception("explanations for the capture failed")
        _call(on_error, exc)
        return None


def _call(hook: Callable[[Exception], None], exc: Exception) -> None:
    try:
        hook(exc)
    except Exception:  # noqa: BLE001 - a metric must not fail the capture
        logger.exception("explanation error hook failed")
