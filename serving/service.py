"""The inference service: pure request -> answer logic, shared by Lambda and the local server.

It is handed what it needs (model runner, validator, capturer, feedback writer, metric hook); the
AWS clients, the hash salt and the environment are wired in ``wiring.py``. The codecs (``codecs/``)
translate each request format to these calls; ``api.py`` wires them to routes.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from modelserve import metric_catalogue as mn
from modelserve.records import (
    AUDIT_SOURCE,
    FeedbackRecord,
    RejectedField,
    encode_jsonl_gz,
    feedback_key,
    feedback_prediction_key,
    parse_utc,
    utc_iso,
)
from modelserve.schema import BundleManifest, Task

from . import feedback
from .capture import Capturer, rows_of
from .explain import EXPLAIN_UNAVAILABLE, Explainer, ExplainRequest, Explanations, explain_request
from .feedback import LABEL_CONFLICT, ROW_OUT_OF_RANGE, UNKNOWN_REQUEST_ID, FeedbackStore
from .model import ModelRunner, Prediction
from .request_ids import IdCheck, IssuedId, RequestIds
from .validation import BAD_SHAPE, BATCH_TOO_LARGE, EMPTY_BATCH, WRONG_TYPE, FieldError, RequestError, Validator

logger = logging.getLogger(__name__)

# refusal reason of /feedback when labels cannot be stored (the API answers 503)
FEEDBACK_UNAVAILABLE = "feedback_unavailable"

MetricHook = Callable[[str, float, dict[str, str]], None]  # (name, value, extra dimensions)
MAX_REASON = 500  # characters of a correction's reason


def no_metric(name: str, value: float, dims: dict[str, str]) -> None:
    return None


@dataclass
class Answer:
    body: dict[str, Any]
    request_id: str


@dataclass(eq=False)  # a service is itself, not its parts
class InferenceService:
    """Request -> answer for one bundle: validate, score, capture (after the answer, by the capturer's
    executor), feedback. Takes what it needs; clients and settings are wired in serving/wiring.py."""

    manifest: BundleManifest
    runner: ModelRunner
    validator: Validator
    capturer: Capturer
    feedback_store: FeedbackStore | None = None
    metric: MetricHook = no_metric
    explainer: Explainer | None = None  # explanations on request (serving/explain.py); None: refused
    request_ids: RequestIds = field(default_factory=lambda: RequestIds(None))  # issues the ids feedback names

    def __post_init__(self) -> None:
        self.max_batch_rows = self.validator.max_rows
        self.is_classifier = self.manifest.outputs.task is Task.CLASSIFICATION
        outputs = self.manifest.outputs
        # answers carry labels in their own type (JSON integers or booleans when the model was trained on them)
        self.classes = [outputs.label_value(c) for c in outputs.classes]
        self._typed_labels = outputs.label_type is not None

    # --- endpoints ---
    def predict(
        self,
        payload: Any,
        request_id: str | None = None,
        event_time: datetime | None = None,
        client_id: str | None = None,
        explain: Mapping[str, Any] | None = None,
    ) -> Answer:
        """Score a request. ``event_time``: when the request arrived (API Gateway's request time);
        it dates the capture records and their S3 partition. Defaults to now. ``client_id``: the
        caller's ``x-client-id``, read by the A/B router (serving/variants.py) only. ``explain``: the
        request's ``explain`` / ``explain_class`` options, as sent (docs/api.md#explanations)."""
        request_id = request_id or new_request_id()
        asked = explain_request(explain)
        table = self.validator.validate(payload)  # a refusal's bookkeeping: ``reject``, called by the codecs' pipeline
        if asked is not None:
            self._explainer().check(len(next(iter(table.values()))))
        started = time.perf_counter()
        pred = self.runner.predict(table)
        latency_ms = (time.perf_counter() - started) * 1000.0
        n = len(pred.labels)
        event_time = event_time or datetime.now(UTC)
        request_id = self.request_ids.issue(request_id, n, event_time)  # what feedback is checked against
        self.metric(mn.ROWS_SCORED, n, {})
        self.metric(mn.PREDICTION_LATENCY_MS, latency_ms, {})
        body: dict[str, Any] = {
            "model_name": self.manifest.model_name,
            "model_version": self.manifest.version,
            "request_id": request_id,
            "predictions": self._answer_labels(pred.labels),
        }
        if self.is_classifier and pred.probabilities is not None:
            body["classes"] = self.classes
            body["probabilities"] = pred.probabilities
        answered = None
        if asked is not None:
            answered = self._explanations(table, pred, asked)
            body["explanations"] = self._explainer().answer(answered)
        # after scoring, never raising: a capture failure is counted (CaptureErrors), not answered; the answer's
        # explanations are kept with it when capture_explanations is on
        self.capturer.capture(request_id, event_time, table, pred.labels, pred.probabilities, answered)
        return Answer(body=body, request_id=request_id)

    def _answer_labels(self, labels: np.ndarray) -> Any:
        """The answer's predictions: a regressor's values as their float64 array (the codecs write arrays as they
        are: orjson's numpy option, Arrow and OIP buffers), class labels as a list of the classes' values."""
        if labels.dtype.kind == "f":
            return labels
        if not self._typed_labels:
            return labels.tolist()
        typed = dict(zip(self.manifest.outputs.classes, self.classes))
        return [typed[c] for c in labels.tolist()]

    def _explainer(self) -> Explainer:
        if self.explainer is None:
            raise RequestError(EXPLAIN_UNAVAILABLE, "explanations are not available for this model")
        return self.explainer

    def _explanations(self, table: dict[str, np.ndarray], pred: Prediction, asked: ExplainRequest) -> Explanations:
        explainer = self._explainer()
        classes = explainer.explained_classes(pred.labels, asked)
        started = time.perf_counter()
        explanations = explainer.explain(table, classes)
        self.metric(mn.EXPLAIN_LATENCY_MS, (time.perf_counter() - started) * 1000.0, {})
        self.metric(mn.ROWS_EXPLAINED, len(explanations.output), {})
        return explanations

    def reject(
        self,
        refusal: RequestError,
        request_id: str,
        status: int,
        payload: Any = None,
        route: str = "predict",
        event_time: datetime | None = None,
    ) -> None:
        """A refused scoring request's bookkeeping, whatever its format: counted (ValidationRejects by
        Reason) and written to the rejects capture (docs/capture.md#rejected-requests), after the answer
        where the executor allows. ``payload``: what was decoded before the refusal (its rows are
        recorded), None when the body could not be read. Never raises: the refusal is answered regardless."""
        self.metric(mn.VALIDATION_REJECTS, 1, {mn.DIM_REASON: refusal.reason})
        try:
            errors = [RejectedField(e.reason, e.row, e.field, e.message) for e in refusal.details]
            errors = errors or [RejectedField(refusal.reason, message=refusal.message)]
            when = event_time or datetime.now(UTC)
            self.capturer.capture_reject(request_id, when, refusal.reason, status, errors, rows_of(payload), route)
        except Exception:  # noqa: BLE001 - a failure is counted by the capturer (CaptureErrors) or logged here
            logger.exception("reject capture failed")

    def feedback(self, payload: Any, batch_id: str | None = None, caller: str | None = None) -> Answer:
        """Store labels (docs/capture.md#feedback-ground-truth), each checked against the label its row
        holds (serving/feedback.py). ``caller``: who sent them (API key id or IAM ARN)."""
        batch_id = batch_id or new_request_id()
        items = payload if isinstance(payload, list) else [payload]
        if not items:
            raise RequestError(EMPTY_BATCH, "no feedback items")
        if len(items) > self.max_batch_rows:
            raise RequestError(BATCH_TOO_LARGE, f"{len(items)} feedback items; at most {self.max_batch_rows}")
        received = utc_iso(now := datetime.now(UTC))
        records, replacing, errors = [], [], []
        for i, it in enumerate(items):
            err = self._feedback_error(it)
            issued = None
            if err is None:
                issued, err = self._issued(it["request_id"], int(it.get("row", 0)))
            if err:
                # row: the item's index in the batch (the item's own "row" key is named by field="row")
                errors.append(FieldError(err[0], f"item {i}: {err[1]}", row=i, field=err[2]))
                continue
            # classes by meaning, as predictions are: 1, "1" and 1.0 all name class "1"
            label = self.manifest.outputs.class_for(it["label"]) if self.is_classifier else float(it["label"])
            # "row" is optional (default 0, the single-row case): it was validated with the same default
            records.append(
                FeedbackRecord(
                    it["request_id"],
                    int(it.get("row", 0)),
                    label,
                    received,
                    self.manifest.model_name,
                    it.get("source"),
                    caller,
                    reason=it.get("reason"),
                    verified=issued is not None,
                    predicted_at=None if issued is None else utc_iso(issued.predicted_at),
                )
            )
            replacing.append(it.get("replace") is True)
        if errors:
            raise RequestError(errors[0].reason, f"{len(errors)} invalid feedback item(s); first: {errors[0].message}", errors[:50])
        records, replacing = _one_label_per_row(records, replacing)
        if self.feedback_store is None:
            raise RequestError(FEEDBACK_UNAVAILABLE, "feedback storage is not configured for this deployment")
        try:
            outcome = feedback.settle(self.feedback_store, self.manifest.model_name, records, replacing)
            _refuse_unsettled(outcome)
            for key, filed in self._feedback_objects(outcome.records, now, batch_id).items():
                self.feedback_store.write(key, encode_jsonl_gz(filed))
            feedback.hold(self.feedback_store, self.manifest.model_name, outcome.records)
        except RequestError:
            raise
        except Exception as exc:  # noqa: BLE001 - the client must know its labels were not stored
            logger.error("feedback write failed: %s", exc)
            self.metric(mn.FEEDBACK_ERRORS, 1, {})
            raise RequestError(FEEDBACK_UNAVAILABLE, "feedback could not be stored; retry later") from None
        self.metric(mn.FEEDBACK_ROWS, len(outcome.records), {})
        return Answer(body={"accepted": len(records), "feedback_id": batch_id}, request_id=batch_id)

    def _issued(self, request_id: str, row: int) -> tuple[IssuedId | None, tuple[str, str, str | None] | None]:
        """What the request id says of its request (None: unverified, accepted), or why it is refused."""
        found = self.request_ids.read(request_id)
        if isinstance(found, IssuedId):
            if row >= found.rows:
                return None, (ROW_OUT_OF_RANGE, f"row {row} is not a row of request {request_id!r}: it held {found.rows}", "row")
            return found, None
        if not self.request_ids.signing or (found is IdCheck.NOT_ISSUED_FORM and self.request_ids.accept_unsigned):
            return None, None
        why = "altered or mistyped" if found is IdCheck.FORGED else "not of the form this API issues"
        message = f"request_id {request_id!r} is no id this API issued ({why}): send the request_id of the prediction's answer"
        return None, (UNKNOWN_REQUEST_ID, message, "request_id")

    def _feedback_objects(self, records: list[FeedbackRecord], received: datetime, batch_id: str) -> dict[str, list[FeedbackRecord]]:
        """Where a batch's records go: verified ones by the hour of their prediction (the drift check of that
        hour reads them, and nothing else), the others by receipt."""
        by_key: dict[str, list[FeedbackRecord]] = {}
        name = self.manifest.model_name
        for r in records:
            if r.predicted_at is not None:
                key = feedback_prediction_key(name, parse_utc(r.predicted_at), received, batch_id)
            else:
                key = feedback_key(name, received, batch_id)
            by_key.setdefault(key, []).append(r)
        return by_key

    def _feedback_error(self, it: Any) -> tuple[str, str, str | None] | None:
        if not isinstance(it, dict):
            return BAD_SHAPE, 'each item must be an object {"request_id", "row", "label"}', None
        extra = set(it) - {"request_id", "row", "label", "source", "replace", "reason"}
        if extra:
            return BAD_SHAPE, f"unknown keys {sorted(map(str, extra))}", None
        if "source" in it and it["source"] != AUDIT_SOURCE:
            return WRONG_TYPE, f'source, when given, must be "{AUDIT_SOURCE}" (a label of the audit sample)', "source"
        rid, row, label = it.get("request_id"), it.get("row", 0), it.get("label")
        if not isinstance(rid, str) or not (1 <= len(rid) <= 128) or not _is_printable_unicode(rid):
            return WRONG_TYPE, "request_id must be a string of 1..128 printable characters (as answered by /predict)", "request_id"
        # a whole number, as JSON Schema's "integer" means it (2.0 too); booleans are not numbers here
        if not (type(row) is int or (type(row) is float and row.is_integer())) or not 0 <= row < self.max_batch_rows:
            return WRONG_TYPE, f"row must be an integer in 0..{self.max_batch_rows - 1} (a row of the request)", "row"
        if "label" not in it or label is None:
            return WRONG_TYPE, "label is required", "label"
        if self.is_classifier:
            if self.manifest.outputs.class_for(label) is None:
                return WRONG_TYPE, f"label must be one of the model's classes {self.classes}", "label"
        elif type(label) not in (int, float) or not np.isfinite(label):
            return WRONG_TYPE, "label must be a finite number", "label"
        return _correction_error(it)

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "model_name": self.manifest.model_name, "model_version": self.manifest.version}

    def model_info(self) -> dict[str, Any]:
        d = self.manifest.to_dict()
        d["max_batch_rows"] = self.max_batch_rows
        d["unseen_category_policy"] = "reject" if self.validator.reject_unseen else "model"
        if self.explainer is not None:
            d["explain"] = self.explainer.info()
        return d


def new_request_id() -> str:
    return uuid.uuid4().hex


def _correction_error(it: dict[str, Any]) -> tuple[str, str, str | None] | None:
    if "replace" in it and type(it["replace"]) is not bool:
        return WRONG_TYPE, "replace, when given, must be true or false", "replace"
    reason = it.get("reason")
    if it.get("replace") is True and not (isinstance(reason, str) and 1 <= len(reason) <= MAX_REASON and _is_printable_unicode(reason)):
        return WRONG_TYPE, f'"replace": true needs a "reason" (1..{MAX_REASON} characters): it is kept with the old label', "reason"
    if "reason" in it and it.get("replace") is not True:
        return BAD_SHAPE, 'reason is only read with "replace": true', "reason"
    return None


def _is_printable_unicode(s: str) -> bool:
    """No control characters (NUL included) and no lone surrogates: text a report and a key can carry."""
    return not any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in s)


def _one_label_per_row(records: list[FeedbackRecord], replacing: list[bool]) -> tuple[list[FeedbackRecord], list[bool]]:
    """A row labelled twice in one batch: once if the labels agree, else a 409 naming both items."""
    first: dict[tuple[str, int], int] = {}
    kept, kept_replacing, errors = [], [], []
    for i, r in enumerate(records):
        j = first.setdefault(r.key, i)
        if j == i:
            kept.append(r)
            kept_replacing.append(replacing[i])
        elif records[j].label != r.label:
            errors.append(
                FieldError(
                    LABEL_CONFLICT,
                    f"item {i} labels request {r.request_id!r} row {r.row} {r.label!r}, item {j} {records[j].label!r}",
                    i,
                    "label",
                )
            )
    if errors:
        raise RequestError(
            LABEL_CONFLICT,
            f"{len(errors)} row(s) labelled twice with different labels in one batch; first: {errors[0].message}",
            errors[:50],
        )
    return kept, kept_replacing


def _refuse_unsettled(outcome: feedback.Outcome) -> None:
    """Nothing is stored when an item would replace a label silently."""
    if outcome.conflicts:
        errors = [
            FieldError(
                LABEL_CONFLICT,
                f'item {i}: the row already holds label {held!r}; send "replace": true with a "reason" to correct it',
                i,
                "label",
            )
            for i, held in outcome.conflicts
        ]
        raise RequestError(LABEL_CONFLICT, f"{len(errors)} item(s) would replace a label; first: {errors[0].message}", errors[:50])
