"""The inference service: pure request -> answer logic, shared by Lambda and the local server.

Built once per process (``InferenceService.from_settings``): bundle, ONNX session, validator,
capturer and metrics. The FastAPI app in ``api.py`` only adapts HTTP to these calls.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from modelserve import metric_names as mn
from modelserve.bundle import ModelBundle
from modelserve.records import FeedbackRecord, encode_jsonl_gz, feedback_key, utc_iso
from modelserve.schema import Task
from modelserve.settings import ENV_CAPTURE_BUCKET, ENV_FIREHOSE_STREAM, ENV_HASH_SALT_SECRET, Settings

from .capture import Capturer, CaptureSink, FirehoseCaptureSink, Redactor, S3CaptureSink
from .model import ModelRunner
from .validation import BAD_SHAPE, BATCH_TOO_LARGE, EMPTY_BATCH, WRONG_TYPE, FieldError, RequestError, Validator

logger = logging.getLogger(__name__)


MetricHook = Callable[[str, float, dict[str, str]], None]  # (name, value, extra dimensions)


def _no_metric(name: str, value: float, dims: dict[str, str]) -> None:
    return None


@dataclass
class Answer:
    body: dict[str, Any]
    request_id: str


class InferenceService:
    def __init__(
        self,
        bundle: ModelBundle,
        settings: Settings,
        capturer: Capturer,
        feedback_writer: Callable[[str, bytes], None] | None = None,
        metric: MetricHook = _no_metric,
        threads: int = 1,
    ) -> None:
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.settings = settings
        self.runner = ModelRunner.from_path(self.manifest, bundle.model_path, threads=threads)
        self.validator = Validator(
            self.manifest, settings.max_batch_rows, reject_unseen_categories=settings.unseen_category_policy == "reject"
        )
        self.capturer = capturer
        self.feedback_writer = feedback_writer
        self.metric = metric
        self.is_classifier = self.manifest.outputs.task is Task.CLASSIFICATION
        self.classes = list(self.manifest.outputs.classes)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        environ: dict[str, str] | Any,
        boto_session: Any = None,
        metric: MetricHook = _no_metric,
        bundle: ModelBundle | None = None,
    ) -> InferenceService:
        """Wire real AWS clients from the environment the stack sets (bucket / stream names)."""
        bundle = bundle or ModelBundle.load(settings.model_bundle_path)
        bucket = environ.get(ENV_CAPTURE_BUCKET)
        stream = environ.get(ENV_FIREHOSE_STREAM)
        sink: CaptureSink | None = None
        feedback_writer = None
        session = None
        if bucket or stream:
            import boto3

            from .post_response import capture_budget_s, capture_client_config

            session = boto_session or boto3.session.Session()
            # timeouts from the capture budget (default 2 x (1 s + 2 s), under the function's 10 s
            # timeout): a hung S3 or Firehose holds an answer, or an environment after it, no longer
            cfg = capture_client_config(capture_budget_s(environ))
            if bucket:
                s3 = session.client("s3", config=cfg)
                feedback_writer = _s3_writer(s3, bucket)
            if settings.capture_sink == "firehose" and stream:
                sink = FirehoseCaptureSink(session.client("firehose", config=cfg), stream)
            elif bucket:
                if settings.capture_sink == "firehose":
                    logger.warning("capture_sink is firehose but %s is not set: capturing to S3 bucket %s", ENV_FIREHOSE_STREAM, bucket)
                sink = S3CaptureSink(s3, bucket)
        if sink is None and settings.capture_sampling > 0:
            logger.warning("capture is off: no %s (or %s with capture_sink=firehose) in the environment", ENV_CAPTURE_BUCKET, ENV_FIREHOSE_STREAM)
        dims: dict[str, str] = {}
        capturer = Capturer(
            manifest=bundle.manifest,
            sink=sink,
            stage=settings.stage_name,
            sampling=settings.capture_sampling,
            redactor=redactor_for(settings, environ, session),
            on_error=lambda exc: metric(mn.CAPTURE_ERRORS, 1, dims),
            on_captured=lambda n: metric(mn.CAPTURED_ROWS, n, dims),
        )
        return cls(bundle, settings, capturer, feedback_writer, metric)

    # --- endpoints ---
    def predict(self, payload: Any, request_id: str | None = None, event_time: datetime | None = None) -> Answer:
        """Score a request. ``event_time``: when the request arrived (API Gateway's request time);
        it dates the capture records and their S3 partition. Defaults to now."""
        request_id = request_id or new_request_id()
        try:
            table = self.validator.validate(payload)
        except RequestError as exc:
            self.metric(mn.VALIDATION_REJECTS, 1, {mn.DIM_REASON: exc.reason})
            raise
        started = time.perf_counter()
        pred = self.runner.predict(table)
        latency_ms = (time.perf_counter() - started) * 1000.0
        n = len(pred.labels)
        self.metric(mn.ROWS_SCORED, n, {})
        self.metric(mn.PREDICTION_LATENCY_MS, latency_ms, {})
        body: dict[str, Any] = {
            "model_name": self.manifest.model_name,
            "model_version": self.manifest.version,
            "request_id": request_id,
            "predictions": pred.labels.tolist(),
        }
        if self.is_classifier and pred.probabilities is not None:
            body["classes"] = self.classes
            body["probabilities"] = pred.probabilities
        # after scoring, never raising: a capture failure is counted (CaptureErrors), not answered
        self.capturer.capture(request_id, event_time or datetime.now(UTC), table, pred.labels, pred.probabilities)
        return Answer(body=body, request_id=request_id)

    def feedback(self, payload: Any, batch_id: str | None = None) -> Answer:
        batch_id = batch_id or new_request_id()
        items = payload if isinstance(payload, list) else [payload]
        if not items:
            raise RequestError(422, EMPTY_BATCH, "no feedback items")
        if len(items) > self.settings.max_batch_rows:
            raise RequestError(422, BATCH_TOO_LARGE, f"{len(items)} feedback items; at most {self.settings.max_batch_rows}")
        now = datetime.now(UTC)
        received = utc_iso(now)
        records, errors = [], []
        for i, it in enumerate(items):
            err = self._feedback_error(it)
            if err:
                # row: the item's index in the batch (the item's own "row" key is named by field="row")
                errors.append(FieldError(err[0], f"item {i}: {err[1]}", row=i, field=err[2]))
                continue
            label = it["label"] if self.is_classifier else float(it["label"])
            # "row" is optional (default 0, the single-row case): it was validated with the same default
            records.append(FeedbackRecord(it["request_id"], it.get("row", 0), label, received, self.manifest.model_name))
        if errors:
            raise RequestError(422, errors[0].reason, f"{len(errors)} invalid feedback item(s); first: {errors[0].message}", errors[:50])
        if self.feedback_writer is None:
            raise RequestError(503, "feedback_unavailable", "feedback storage is not configured for this deployment")
        try:
            self.feedback_writer(feedback_key(self.manifest.model_name, now, batch_id), encode_jsonl_gz(records))
        except Exception as exc:  # noqa: BLE001 - the client must know its labels were not stored
            logger.error("feedback write failed: %s", exc)
            self.metric(mn.FEEDBACK_ERRORS, 1, {})
            raise RequestError(503, "feedback_unavailable", "feedback could not be stored; retry later") from None
        self.metric(mn.FEEDBACK_ROWS, len(records), {})
        return Answer(body={"accepted": len(records), "feedback_id": batch_id}, request_id=batch_id)

    def _feedback_error(self, it: Any) -> tuple[str, str, str | None] | None:
        if not isinstance(it, dict):
            return BAD_SHAPE, 'each item must be an object {"request_id", "row", "label"}', None
        extra = set(it) - {"request_id", "row", "label"}
        if extra:
            return BAD_SHAPE, f"unknown keys {sorted(map(str, extra))}", None
        rid, row, label = it.get("request_id"), it.get("row", 0), it.get("label")
        if not isinstance(rid, str) or not (1 <= len(rid) <= 128):
            return WRONG_TYPE, "request_id must be a string of 1..128 characters", "request_id"
        if type(row) is not int or row < 0:
            return WRONG_TYPE, "row must be a non-negative integer", "row"
        if "label" not in it or label is None:
            return WRONG_TYPE, "label is required", "label"
        if self.is_classifier:
            if not isinstance(label, str) or label not in self.classes:
                return WRONG_TYPE, f"label must be one of the model's classes {self.classes}", "label"
        elif type(label) not in (int, float) or not np.isfinite(label):
            return WRONG_TYPE, "label must be a finite number", "label"
        return None

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "model_name": self.manifest.model_name, "model_version": self.manifest.version}

    def model_info(self) -> dict[str, Any]:
        d = self.manifest.to_dict()
        d["max_batch_rows"] = self.settings.max_batch_rows
        d["unseen_category_policy"] = self.settings.unseen_category_policy
        return d


def redactor_for(settings: Settings, environ: Any, session: Any) -> Redactor:
    """The capture redactor; the hash salt is the setting, or the secret the stack generated.

    When hashed features are configured but no salt can be had, those features are redacted
    instead: a value is never written unhashed.
    """
    redact, hashed = set(settings.redact_features), set(settings.hash_features)
    salt = settings.capture_hash_salt
    if hashed and not salt:
        arn = environ.get(ENV_HASH_SALT_SECRET)
        try:
            if not arn or session is None:
                raise LookupError(f"no capture_hash_salt setting and no {ENV_HASH_SALT_SECRET}")
            salt = session.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
            if len(salt) < 16:
                raise ValueError("the salt secret is shorter than 16 characters")
        except Exception as exc:  # noqa: BLE001 - capture must go on, without the hashed features
            logger.error("hash salt unavailable (%s): redacting %s instead of hashing them", exc, sorted(hashed))
            redact, hashed, salt = redact | hashed, set(), ""
    return Redactor(frozenset(redact), frozenset(hashed), salt)


def _s3_writer(client: Any, bucket: str) -> Callable[[str, bytes], None]:
    def write(key: str, body: bytes) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson")

    return write


def new_request_id() -> str:
    return uuid.uuid4().hex
