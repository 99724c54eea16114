"""Serving a champion and a challenger from one function (docs/versions.md).

- shadow: the champion answers every request, unchanged. The challenger scores the same validated
  columns inside the champion's capture work, so it runs where the capture runs: after the answer
  (capture_mode auto/extension/thread), never on the path the client waits on. Both captures carry
  their variant and are filed under their own version.
- ab: the challenger answers a share of clients. The key is the ``x-client-id`` header, else the
  request id; the assignment is ``modelserve.versions.ab_variant`` (sha256 of the challenger's
  version + key, mod 10,000), so a client stays on its variant.

Every answer names the variant and the version that served it (body and ``x-model-version``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from modelserve import metric_catalogue as mn
from modelserve.schema import Table
from modelserve.versions import CHALLENGER, CHAMPION, ab_variant

from .capture import CaptureExecutor, Capturer
from .explain_capture import DeferredExplanations
from .model import ModelRunner
from .service import Answer, InferenceService, MetricHook, new_request_id

logger = logging.getLogger(__name__)

MODES = ("shadow", "ab")


@dataclass
class ShadowCapturer(Capturer):
    """The champion's capturer in shadow mode: the capture work of a request also scores the challenger
    on the same validated columns and writes the challenger's capture (``challenger_capturer``, run
    synchronously inside that work). Requests not captured are not shadowed: shadow output is only
    ever read from captures, and the pairs stay complete."""

    challenger_runner: ModelRunner | None = None
    challenger_capturer: Capturer | None = None

    def write_after_answer(
        self,
        request_id: str,
        event_time: datetime,
        table: Table,
        labels: np.ndarray,
        probabilities: np.ndarray | None,
        explanations: DeferredExplanations | None = None,
    ) -> bool:
        stored = self.write(request_id, event_time, table, labels, probabilities, explanations)
        self.shadow(request_id, event_time, table)
        return stored

    def shadow(self, request_id: str, event_time: datetime, table: Table) -> bool:
        """Score the challenger and store its capture; never raises (a failure is a CaptureError)."""
        assert self.challenger_runner is not None and self.challenger_capturer is not None
        try:
            pred = self.challenger_runner.predict(table)
        except Exception as exc:  # noqa: BLE001 - the champion's answer is out already; count, go on
            logger.exception("shadow scoring failed for request %s", request_id)
            self.challenger_capturer.on_error(exc)
            return False
        # the challenger's own share of explained rows (explain_capture_fraction), computed here: already after the answer
        explanations = self.challenger_capturer.explanations_for(table, pred.labels, None)
        return self.challenger_capturer.write(request_id, event_time, table, pred.labels, pred.probabilities, explanations)


class RoutedService(InferenceService):
    """The champion's service (feedback, health, schema are the champion's) with a challenger next to it.

    In ``ab`` mode ``predict`` hands the request to the variant the client is assigned to; in
    ``shadow`` mode the champion always answers (the shadow scoring is in its ``ShadowCapturer``).
    """

    def __init__(self, champion: InferenceService, challenger: InferenceService, mode: str, ab_share: float = 0.0) -> None:
        if mode not in MODES:
            raise ValueError(f"challenger mode {mode!r}: one of {MODES}")
        super().__init__(
            champion.manifest,
            champion.runner,
            champion.validator,
            champion.capturer,
            champion.feedback_store,
            champion.metric,
            champion.explainer,
            champion.request_ids,
        )
        self.challenger = challenger
        self.mode = mode
        self.ab_share = ab_share if mode == "ab" else 0.0
        self.salt = challenger.manifest.version  # documented: a new challenger reshuffles the assignment

    def variant_for(self, client_id: str | None, request_id: str) -> str:
        if self.mode != "ab":
            return CHAMPION
        return ab_variant(client_id or request_id, self.ab_share, self.salt)

    def predict(
        self,
        payload: Any,
        request_id: str | None = None,
        event_time: datetime | None = None,
        client_id: str | None = None,
        explain: Mapping[str, Any] | None = None,
    ) -> Answer:
        request_id = request_id or new_request_id()
        variant = self.variant_for(client_id, request_id)
        if variant == CHALLENGER:
            answer = self.challenger.predict(payload, request_id, event_time, explain=explain)
        else:
            answer = super().predict(payload, request_id, event_time, explain=explain)
        answer.body["variant"] = variant
        return answer

    def health(self) -> dict[str, Any]:
        d = super().health()
        d["challenger"] = {"model_version": self.challenger.manifest.version, "mode": self.mode, "ab_share": self.ab_share}
        return d

    def set_capture_executor(self, executor: CaptureExecutor) -> None:
        """Where captures run: the champion's capture work (which carries the shadow), and in ab mode the
        challenger's own captures. In shadow mode the challenger's capture runs inside the champion's work."""
        self.capturer.executor = executor
        if self.mode == "ab":
            self.challenger.capturer.executor = executor


def version_metric(metric: MetricHook, model_version: str) -> MetricHook:
    """The function's metric hook with the challenger's version as the breakdown's ModelVersion."""

    def hook(name: str, value: float, dims: dict[str, str]) -> None:
        metric(name, value, {mn.DIM_MODEL_VERSION: model_version, **dims})

    return hook


def set_capture_executor(service: InferenceService, executor: CaptureExecutor) -> None:
    """The handler's one call: every capturer of the function writes through ``executor``."""
    if isinstance(service, RoutedService):
        service.set_capture_executor(executor)
    else:
        service.capturer.executor = executor
