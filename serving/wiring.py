"""Wires the inference function: its settings and resources from the environment, boto3 clients,
the hash salt from Secrets Manager, and the service built from them. Called once by the handler.

The one place of the inference side that reads the environment or talks to AWS at init; the
service itself only gets what it needs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelserve import metric_catalogue as mn
from modelserve.bundle import ASSET_ROOT, ModelBundle, function_bundle_dir
from modelserve.metric_catalogue import ENV_DEPLOYMENT
from modelserve.observability import EmfMetricHook
from modelserve.schema import Table, rows_to_table
from modelserve.settings_env import (
    ENV_CAPTURE_BUCKET,
    ENV_CHALLENGER_BUNDLE_PATH,
    ENV_FIREHOSE_STREAM,
    ENV_HASH_SALT_SECRET,
    ENV_REQUEST_ID_KEY,
)
from modelserve.versions import CHALLENGER, CHAMPION, check_compatible

from .aws_clients import ClientFactory
from .capture import Capturer, CaptureSink, FirehoseCaptureSink, Redactor, S3CaptureSink
from .capture_logs import LogsCaptureSink
from .explain import Explainer
from .explain_capture import CaptureExplanations
from .feedback import FeedbackStore, S3FeedbackStore
from .function_settings import function_settings
from .model import ModelRunner
from .request_ids import RequestIds
from .service import InferenceService, MetricHook, no_metric
from .validation import Validator
from .variants import RoutedService, ShadowCapturer, version_metric

if TYPE_CHECKING:
    from .function_settings import FunctionSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceFunction:
    """What the handler serves: the settings it runs with, the bundle, the metric hook and the service."""

    settings: FunctionSettings
    bundle: ModelBundle
    metrics: EmfMetricHook
    service: InferenceService
    deployment: str | None  # the stack name: a dimension of every metric, so two stacks never mix
    challenger: ModelBundle | None = None  # loaded when challenger_mode is shadow or ab (docs/versions.md)
    clients: ClientFactory | None = None  # the AWS clients, built on first use; reset on a SnapStart restore


def inference_function(environ: Mapping[str, str] | None = None) -> InferenceFunction:
    """The function as the stack configured it: its settings and resource names from the environment."""
    environ = os.environ if environ is None else environ
    settings = function_settings(environ)  # validated at synth (digest), else here
    bundle = ModelBundle.load(function_bundle_dir(environ))
    challenger = ModelBundle.load(challenger_bundle_dir(environ)) if settings.challenger_mode != "off" else None
    m = bundle.manifest
    deployment = environ.get(ENV_DEPLOYMENT)
    metrics = EmfMetricHook(settings.metrics_namespace, "inference", m.model_name, m.version, deployment)
    clients = ClientFactory()
    service = inference_service(bundle, settings, environ, metric=metrics, challenger=challenger, clients=clients)
    return InferenceFunction(settings, bundle, metrics, service, deployment, challenger, clients)


def challenger_bundle_dir(environ: Mapping[str, str]) -> Path:
    """The challenger's bundle folder (``MS_CHALLENGER_BUNDLE_PATH``), resolved as the champion's is."""
    folder = environ.get(ENV_CHALLENGER_BUNDLE_PATH)
    if not folder:
        raise KeyError(
            f"challenger_mode is on but {ENV_CHALLENGER_BUNDLE_PATH} is not set: the stack sets it to the challenger's folder in the asset"
        )
    return Path(environ.get("LAMBDA_TASK_ROOT") or str(ASSET_ROOT), folder)


@dataclass(frozen=True)
class CaptureTargets:
    """Where captures and feedback go, as the stack named them (both None: capture off)."""

    bucket: str | None
    stream: str | None
    hash_salt_secret_arn: str | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> CaptureTargets:
        return cls(environ.get(ENV_CAPTURE_BUCKET), environ.get(ENV_FIREHOSE_STREAM), environ.get(ENV_HASH_SALT_SECRET))


def inference_service(
    bundle: ModelBundle,
    settings: FunctionSettings,
    environ: Mapping[str, str],
    metric: MetricHook = no_metric,
    boto_session: Any = None,
    threads: int = 1,
    challenger: ModelBundle | None = None,
    clients: ClientFactory | None = None,
) -> InferenceService:
    """The service with real AWS clients for the bucket / stream / salt secret named in ``environ``
    (built on first use by ``clients``, else from ``boto_session``); with ``challenger`` (and
    challenger_mode shadow or ab), both versions behind a ``RoutedService``."""
    m = bundle.manifest
    targets = CaptureTargets.from_env(environ)
    factory = None
    if targets.bucket or targets.stream:  # capture off: no clients, no salt to fetch
        factory = clients or ClientFactory(boto_session)
    sink, feedback_store = capture_clients(settings, targets, factory)
    if isinstance(sink, LogsCaptureSink):  # rows too large for a log line: lost, and counted as failed captures
        sink.on_lost = lambda n: metric(mn.CAPTURE_ERRORS, n, {})
        sink.on_explanation_dropped = lambda n: metric(mn.EXPLAIN_CAPTURE_ERRORS, n, {})
    reject_sink = reject_sink_for(settings, sink, targets, factory)
    if sink is None and settings.capture_sampling > 0:
        logger.warning(
            "capture is off: no %s (or %s with capture_sink=firehose) in the environment", ENV_CAPTURE_BUCKET, ENV_FIREHOSE_STREAM
        )
    redactor = redactor_for(settings, targets.hash_salt_secret_arn, factory)
    # the stack's key, in the environment (resolved at deploy): the first answer waits on no secret fetch
    request_ids = RequestIds.from_text(environ.get(ENV_REQUEST_ID_KEY), accept_unsigned=settings.unsigned_feedback_ids == "accept")

    def service(b: ModelBundle, hook: MetricHook, capturer_type: type[Capturer] = Capturer, **capturer_extra: Any) -> InferenceService:
        dims: dict[str, str] = {}
        capturer = capturer_type(
            manifest=b.manifest,
            sink=sink,
            stage=settings.stage_name,
            sampling=settings.capture_sampling,
            redactor=redactor,
            on_error=lambda exc: hook(mn.CAPTURE_ERRORS, 1, dims),
            on_captured=lambda n: hook(mn.CAPTURED_ROWS, n, dims),
            reject_sink=reject_sink,
            **capturer_extra,
        )
        runner = ModelRunner.from_path(b.manifest, b.model_path, threads=threads)
        explainer = explainer_for(b, runner, settings)
        if settings.capture_explanations:
            capturer.explain = capture_explanations(explainer, settings, hook, dims)
        return InferenceService(
            manifest=b.manifest,
            runner=runner,
            validator=Validator(b.manifest, settings.max_batch_rows, reject_unseen_categories=settings.unseen_category_policy == "reject"),
            capturer=capturer,
            feedback_store=feedback_store,
            metric=hook,
            explainer=explainer,
            request_ids=request_ids,
        )

    if challenger is None or settings.challenger_mode == "off":
        return service(bundle, metric)
    check_compatible(m, challenger.manifest)  # refuse at init, naming every difference
    contender = service(challenger, version_metric(metric, challenger.manifest.version), variant=CHALLENGER)
    if settings.challenger_mode == "shadow":
        champion = service(
            bundle, metric, ShadowCapturer, variant=CHAMPION, challenger_runner=contender.runner, challenger_capturer=contender.capturer
        )
    else:
        champion = service(bundle, metric, variant=CHAMPION)
    return RoutedService(champion, contender, settings.challenger_mode, settings.ab_share)


def explainer_for(bundle: ModelBundle, runner: ModelRunner, settings: FunctionSettings) -> Explainer:
    """Explanations against the bundle's reference sample; its rows are read on the first explanation, not at init."""

    def background() -> Table:
        return rows_to_table(bundle.manifest.features, [r["inputs"] for r in bundle.reference_rows()])

    return Explainer(bundle.manifest, runner, background, settings.explain_background_rows, settings.explain_max_evaluations)


def capture_explanations(explainer: Explainer, settings: FunctionSettings, hook: MetricHook, dims: dict[str, str]) -> CaptureExplanations:
    """capture_explanations: the answers' explanations kept in the records, and a share of the other rows explained
    after the answer (``explain_capture_fraction``), counted as the asked ones are; failures as ExplainCaptureErrors."""

    def explained(rows: int, ms: float) -> None:
        hook(mn.ROWS_EXPLAINED, rows, dims)
        hook(mn.EXPLAIN_LATENCY_MS, ms, dims)

    return CaptureExplanations(
        explainer,
        settings.explain_capture_fraction,
        on_error=lambda exc: hook(mn.EXPLAIN_CAPTURE_ERRORS, 1, dims),
        on_explained=explained,
    )


def capture_clients(
    settings: FunctionSettings, targets: CaptureTargets, clients: ClientFactory | None
) -> tuple[CaptureSink | None, FeedbackStore | None]:
    """The capture sink and the feedback writer for the configured targets (None where there is none)."""
    if clients is None or not (targets.bucket or targets.stream):
        return None, None
    # timeouts from the capture budget (default 2 x (1 s + 2 s), under the function's 10 s timeout):
    # a hung S3 or Firehose holds an answer, or an environment after it, no longer than the budget
    budget = settings.capture_budget_s
    s3 = clients.client("s3", budget) if targets.bucket else None
    feedback_store = S3FeedbackStore(s3, targets.bucket) if s3 is not None and targets.bucket else None
    sink: CaptureSink | None = None
    if settings.capture_sink == "logs":  # log lines; feedback and refused requests still go to S3 (docs/capture.md)
        sink = LogsCaptureSink()
    elif settings.capture_sink == "firehose" and targets.stream:
        sink = FirehoseCaptureSink(clients.client("firehose", budget), targets.stream)
    elif s3 is not None and targets.bucket:
        if settings.capture_sink == "firehose":
            logger.warning("capture_sink is firehose but %s is not set: capturing to S3 bucket %s", ENV_FIREHOSE_STREAM, targets.bucket)
        sink = S3CaptureSink(s3, targets.bucket)
    return sink, feedback_store


def reject_sink_for(
    settings: FunctionSettings, sink: CaptureSink | None, targets: CaptureTargets, clients: ClientFactory | None
) -> S3CaptureSink | None:
    """Where refused requests go: S3 under rejects/ whenever captures are on (with the Firehose sink too:
    its stream files every record under captures/)."""
    if isinstance(sink, S3CaptureSink):
        return sink
    if sink is None or not targets.bucket or clients is None:
        return None
    return S3CaptureSink(clients.client("s3", settings.capture_budget_s), targets.bucket)


def redactor_for(settings: FunctionSettings, salt_secret_arn: str | None, clients: ClientFactory | None) -> Redactor:
    """The capture redactor; the hash salt is the setting, or the secret the stack generated.

    When hashed features are configured but no salt can be had, those features are redacted
    instead: a value is never written unhashed.
    """
    redact, hashed = set(settings.redact_features), set(settings.hash_features)
    salt = settings.capture_hash_salt or ""
    if hashed and not salt:
        try:
            if not salt_secret_arn or clients is None:
                raise LookupError(f"no capture_hash_salt setting and no {ENV_HASH_SALT_SECRET}")
            # at init: a value is never captured unhashed, so the salt is there before the first capture
            salt = clients.client("secretsmanager").get_secret_value(SecretId=salt_secret_arn)["SecretString"]
            if len(salt) < 16:
                raise ValueError("the salt secret is shorter than 16 characters")
        except Exception as exc:  # noqa: BLE001 - capture must go on, without the hashed features
            logger.error("hash salt unavailable (%s): redacting %s instead of hashing them", exc, sorted(hashed))
            redact, hashed, salt = redact | hashed, set(), ""
    return Redactor(frozenset(redact), frozenset(hashed), salt)
