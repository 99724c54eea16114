"""Every setting of the template, typed and validated in one place, split by who reads them.

- ``DeploySettings``: read by the CDK app only (memory, alarms, lifecycle, ...); never reaches a function.
- ``SharedSettings``: what both functions must agree on: how captures are written (the drift check
  reads them back) and where metrics go. The base of the two function sections.
- ``ServingSettings``: everything the inference function reads (``SharedSettings`` included).
- ``DriftSettings``: everything the drift-check function reads (``SharedSettings`` included).

``Settings`` holds the three sections. ``cdk.json`` keeps flat keys (``Settings.from_context``): each
key goes to every section with a field of that name, in one place (``Settings._sections_of_flat_keys``).
The stack hands each function its whole section (``section.to_env()``: ``MS_`` + the field name in
upper case, lists as JSON) and the function reads it back with ``ServingSettings.from_env()`` /
``DriftSettings.from_env()``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

# the variables' names are pydantic-free, for the functions' init (modelserve/settings_env.py)
from modelserve.settings_env import (  # noqa: F401 - re-exported: the stack and the drift check import them from here
    ENV_ATHENA_WORKGROUP,
    ENV_BUNDLE_PATH,
    ENV_CAPTURE_BUCKET,
    ENV_CAPTURES_TABLE,
    ENV_CHALLENGER_BUNDLE_PATH,
    ENV_CHALLENGER_VERSION,
    ENV_CORS_ORIGINS,
    ENV_FIREHOSE_STREAM,
    ENV_HASH_SALT_SECRET,
    ENV_PREFIX,
    ENV_REQUEST_ID_KEY,
    ENV_SETTINGS_DIGEST,
)

CHALLENGER_MODES = ("off", "shadow", "ab")

CANARY_CONFIGS = (
    "AllAtOnce",
    "Canary10Percent5Minutes",
    "Canary10Percent10Minutes",
    "Canary10Percent15Minutes",
    "Canary10Percent30Minutes",
    "Linear10PercentEvery1Minute",
    "Linear10PercentEvery2Minutes",
    "Linear10PercentEvery3Minutes",
    "Linear10PercentEvery10Minutes",
)


class SettingsError(ValueError):
    """A setting has a wrong value; the message names the key, the value and what is allowed."""


# alarm_subscriptions: the explicit "no subscriber" (a stack whose pages reach no one is refused otherwise)
NO_SUBSCRIBER = "none"
_SUBSCRIPTION_FORMS = {
    "email": re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    "https": re.compile(r"^https://\S+$"),
    "sms": re.compile(r"^\+[1-9]\d{6,14}$"),
    "topic": re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$"),
}


def subscription_protocol(target: str) -> str:
    """The kind of one alarm subscription target: "email", "https", "sms" or "topic" (an existing SNS topic
    the alarms notify too). Raises ValueError naming the forms allowed."""
    for kind, form in _SUBSCRIPTION_FORMS.items():
        if form.match(target):
            return kind
    raise ValueError(
        f"{target!r} is not an e-mail address, an https:// URL, an SMS number (+E.164, e.g. +4915112345678) "
        f"or an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>); {NO_SUBSCRIBER!r} for no subscriber"
    )


SectionT = TypeVar("SectionT", bound="_Section")


class _Section(BaseModel):
    """A group of settings one reader takes whole; built from flat values, carried as ``MS_*`` variables."""

    # built on first use, not at import: a function validates only its own section (its init pays for one)
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @classmethod
    def from_env(cls: type[SectionT], environ: Mapping[str, str] | None = None) -> SectionT:
        """The section from the environment the stack set (``to_env``); unset fields keep their default."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = _decode_env(raw)
        return _validated(cls, values)

    def to_env(self) -> dict[str, str]:
        """Every field as an environment variable (unset optional ones left out); ``from_env`` reads them back."""
        out = {}
        for name in type(self).model_fields:
            v = getattr(self, name)
            if v is None:
                continue
            out[ENV_PREFIX + name.upper()] = json.dumps(list(v)) if isinstance(v, tuple) else str(v)
        return out


class DeploySettings(_Section):
    """Read by the CDK app only: sizes, API, alarms, retention, schedule."""

    model_bundle_path: str = Field("models/sample", description="Folder of the model bundle to deploy")
    lambda_architecture: Literal["arm64", "x86_64"] = Field(
        "arm64", description="Lambda CPU architecture (x86_64 if onnxruntime's cpuinfo crashes on arm64)"
    )
    python_runtime: Literal["3.11", "3.12", "3.13"] = Field(
        "3.12", description="Lambda Python runtime (3.12+: Amazon Linux 2023; 3.11's glibc 2.26 is too old for the pinned wheels)"
    )
    inference_memory_mb: int = Field(1024, ge=128, le=10240, description="Inference Lambda memory")
    inference_size_budget_mib: float = Field(
        250.0,
        gt=0,
        le=250,
        description="Model bundle(s) + inference runtime (about 100 MiB) must fit this: synth refuses a bundle past it, "
        "`export` warns (at most Lambda's 250 MB unzipped limit)",
    )
    inference_timeout_s: int = Field(10, ge=1, le=29, description="Inference Lambda timeout (API Gateway caps at 29 s)")
    provisioned_concurrency: int = Field(0, ge=0, le=1000, description="Provisioned concurrency on the live alias")
    snap_start: bool = Field(
        False,
        description="Lambda SnapStart on published versions (python 3.12+, no provisioned concurrency): "
        "a new environment resumes from a snapshot taken after init",
    )
    api_auth: Literal["none", "api_key", "iam"] = Field("api_key", description="API authentication mode")
    throttle_rate_limit: float = Field(100.0, gt=0, le=10000, description="Steady requests per second, per stage")
    throttle_burst_limit: int = Field(200, gt=0, le=5000, description="Burst requests, per stage")
    canary_config: Literal[CANARY_CONFIGS] = Field(  # type: ignore[valid-type]
        "Canary10Percent5Minutes", description="CodeDeploy traffic shifting for a new model version"
    )
    api_p99_latency_ms: float = Field(1000.0, gt=0, description="API p99 latency alarm threshold")
    api_5xx_rate: float = Field(0.01, gt=0, le=1, description="API 5xx share alarm threshold")
    bucket_encryption: Literal["s3", "kms"] = Field("s3", description="SSE-S3 or a customer-managed KMS key")
    capture_expiry_days: int = Field(365, ge=1, le=3650, description="Captured data is deleted after this")
    capture_transition_days: int = Field(30, ge=0, le=3650, description="To S3 Infrequent Access after (0: never)")
    report_expiry_days: int = Field(365, ge=1, le=3650, description="Drift reports are deleted after this")
    log_retention_days: int = Field(30, ge=1, le=3653, description="CloudWatch Logs retention")
    drift_schedule: str = Field("rate(1 hour)", description="EventBridge schedule expression of the drift check")
    drift_memory_mb: int = Field(2048, ge=512, le=10240, description="Drift-check Lambda memory")
    drift_timeout_s: int = Field(600, ge=30, le=900, description="Drift-check Lambda timeout")
    alarm_min_window_rows: int = Field(
        100,
        ge=0,
        le=1_000_000,
        description="Rate alarms (missing, out-of-range, unseen, outliers) stay OK on windows with fewer rows",
    )
    empty_window_alarm: Literal["breaching", "notBreaching", "ignore", "missing"] = Field(
        "breaching", description="How alarms treat an empty window / no traffic"
    )
    alarm_email: str | None = Field(None, description="E-mail subscribed to the alarm topic")
    web_page: bool = Field(False, description="Deploy the browser page (S3 + CloudFront) that scores the bundle with onnxruntime-web")
    web_site_dir: str = Field(".build/web", description="Folder `python -m devtools web` wrote the page to (read when web_page is on)")
    waf: bool = Field(False, description="AWS WAF web ACL on the stage: AWS managed common rule set + a rate-based rule per IP")
    waf_rate_limit: int = Field(
        1000, ge=10, le=2_000_000_000, description="Requests per client IP in 5 minutes before WAF blocks it (waf on)"
    )
    challenger_bundle_path: str | None = Field(
        None, description="Folder of a second bundle (same model name and features) deployed next to the champion; see docs/versions.md"
    )

    @field_validator("drift_schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        if not (v.startswith("rate(") or v.startswith("cron(")) or not v.endswith(")"):
            raise ValueError("must be an EventBridge expression like 'rate(1 hour)' or 'cron(0 * * * ? *)'")
        return v

    @field_validator("alarm_email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if "@" not in v or v.startswith("@") or v.endswith("@"):
            raise ValueError("must be an e-mail address")
        return v

    @model_validator(mode="after")
    def _transition_before_expiry(self) -> DeploySettings:
        if self.capture_transition_days and self.capture_transition_days >= self.capture_expiry_days:
            raise ValueError("capture_transition_days must be below capture_expiry_days")
        return self

    # --- service coverage alarms, capture versioning, inference concurrency
    api_4xx_rate: float = Field(
        0.25,
        gt=0,
        le=1,
        description="API 4xx share alarm threshold (bodies the gateway refuses: 400, 413, 415; a 403 storm pages as TrafficDrop)",
    )
    alarm_min_requests: int = Field(
        0,
        ge=0,
        le=100_000_000,
        description="Alarm when the API serves fewer requests than this per alarm_min_requests_minutes (refusals for access "
        "not counted; 0: off)",
    )
    alarm_min_requests_minutes: int = Field(
        60, ge=1, le=1440, description="Period of the request-count alarm, independent of the drift schedule"
    )
    firehose_max_data_age_s: int = Field(
        900, ge=60, le=86400, description="capture_sink=firehose: alarm when the oldest undelivered record is older (buffer is 300 s)"
    )
    capture_noncurrent_days: int = Field(
        30, ge=1, le=3650, description="Replaced or expired objects of the capture bucket (versioned) are kept this long"
    )
    athena_bytes_scanned_limit_mb: int = Field(
        10_000, ge=10, le=10_000_000, description="drift_athena=auto|on: Athena cancels a query of the workgroup past this many MB scanned"
    )
    capture_format: Literal["json", "parquet"] = Field(
        "json",
        description="capture_sink=logs: what Firehose writes under the hour partitions: gzip JSON Lines (the drift check reads it), "
        "or Parquet converted with the Glue table's schema (Athena; the drift-check asset has no Parquet reader: docs/capture.md#parquet)",
    )
    inference_reserved_concurrency: int | None = Field(
        None, ge=1, le=10000, description="Reserved concurrency of the inference function (none: the account's unreserved pool)"
    )

    @model_validator(mode="after")
    def _provisioned_within_reserved(self) -> DeploySettings:
        reserved = self.inference_reserved_concurrency
        if reserved is not None and self.provisioned_concurrency > reserved:
            raise ValueError("provisioned_concurrency must not exceed inference_reserved_concurrency")
        return self

    # --- paging: who is paged, what pages, where a page leads
    alarm_subscriptions: tuple[str, ...] | None = Field(
        None,
        description=(
            "Who the paging alarms reach: e-mail addresses, https:// webhooks (pager, chat), SMS numbers (+E.164) or "
            "existing SNS topic ARNs (the alarms notify them too), comma-separated; 'none' deploys without a subscriber "
            "on purpose. Unset (and no alarm_email): synth stops"
        ),
    )
    inform_subscriptions: tuple[str, ...] = Field(
        (), description="Who gets the non-paging notifications (drift without a performance impact): same forms as alarm_subscriptions"
    )
    warning_subscriptions: tuple[str, ...] | None = Field(
        None,
        description=(
            "Who the warning pages reach (a share of clients refused, data quality, latency; docs/runbook.md#severity), "
            "same forms as alarm_subscriptions, on a topic of their own. Unset: warnings go to alarm_subscriptions with the "
            "critical pages"
        ),
    )
    page_on_drift: bool = Field(
        False, description="Feature, multivariate, prediction and target drift page (default: they inform, on the second topic)"
    )
    drift_page_checks: int = Field(
        2, ge=1, le=6, description="Consecutive drift checks a paging drift or performance verdict must hold before it pages"
    )
    runbook_base_url: str | None = Field(
        None,
        pattern=r"^https://\S+$",
        description=(
            "URL of docs/runbook.md as your team reads it (e.g. on your Git host): pages link each alarm's section "
            "under it (none: the repository path docs/runbook.md)"
        ),
    )
    traffic_anomaly_alarm: bool = Field(
        True, description="Page when the API requests served fall below their own recent pattern (anomaly detection, 15 min)"
    )
    traffic_anomaly_band: float = Field(3.0, gt=0, le=10, description="Width of the traffic alarm's anomaly band, in standard deviations")

    @field_validator("alarm_subscriptions", "inform_subscriptions", "warning_subscriptions", mode="before")
    @classmethod
    def _subscription_list(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = json.loads(v) if v.strip().startswith("[") else [s.strip() for s in v.split(",") if s.strip()]
        return v

    @field_validator("alarm_subscriptions", "inform_subscriptions", "warning_subscriptions")
    @classmethod
    def _subscription_targets(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return None
        if NO_SUBSCRIBER in v and len(v) > 1:
            raise ValueError(f"{NO_SUBSCRIBER!r} means no subscriber: it cannot be listed with others")
        for target in v:
            if target != NO_SUBSCRIBER:
                subscription_protocol(target)
        return v


class SharedSettings(_Section):
    """Read by both functions: the inference function writes captures and metrics, the drift check
    reads the captures back (same sink layout, same left-out features) and publishes to the same namespace."""

    capture_sink: Literal["s3", "firehose", "logs"] = Field(
        "logs", description="Where captures go: one S3 object per request, a Firehose stream, or log lines (docs/capture.md#the-logs-sink)"
    )
    redact_features: tuple[str, ...] = Field((), description="Features never written to captures")
    hash_features: tuple[str, ...] = Field((), description="Features written as a salted SHA-256")
    metrics_namespace: str = Field("ModelServing", pattern=r"^[A-Za-z0-9_./#:-]{1,255}$", description="CloudWatch namespace")

    @field_validator("redact_features", "hash_features", mode="before")
    @classmethod
    def _split_list(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = json.loads(v) if v.strip().startswith("[") else [s for s in v.split(",") if s.strip()]
        return tuple(str(s).strip() for s in v)

    # appended last (merge-friendly): the inference function serves both versions, the drift check compares them
    challenger_mode: Literal[CHALLENGER_MODES] = Field(  # type: ignore[valid-type]
        "off", description="off; shadow: both score every request, the champion answers; ab: a share answered by the challenger"
    )

    @property
    def captures_filed_by_arrival(self) -> bool:
        """Whether an hour's captures can sit under a neighbouring hour's prefix: Firehose files by arrival
        (its default prefix, and moto's for the logs sink locally); the S3 sink files each request by its event time."""
        return self.capture_sink != "s3"

    @model_validator(mode="after")
    def _redacted_or_hashed(self) -> SharedSettings:
        both = set(self.redact_features) & set(self.hash_features)
        if both:
            raise ValueError(f"features both redacted and hashed: {sorted(both)}")
        return self


class ServingSettings(SharedSettings):
    """Everything the inference function reads."""

    stage_name: str = Field("prod", pattern=r"^[A-Za-z0-9_]{1,64}$", description="API Gateway stage name")
    max_batch_rows: int = Field(1000, ge=1, le=100_000, description="Most rows in one /predict request")
    # Lambda's invoke payload is 6 MiB and the body is escaped into the event: JSON escaping at most
    # doubles it (a body of quotes), base64 adds a third. 3.1 MB fits whatever the body holds.
    max_body_bytes: int = Field(
        3_100_000,
        ge=1024,
        le=6_291_456,
        description="Largest request body; the default fits Lambda's 6 MiB invoke payload after escaping, whatever the body",
    )
    unseen_category_policy: Literal["reject", "model"] = Field(
        "reject", description="Unseen category: 422, or pass it to the model (one-hot all zeros)"
    )
    capture_sampling: float = Field(1.0, ge=0.0, le=1.0, description="Share of requests captured")
    capture_mode: Literal["auto", "extension", "thread", "sync"] = Field(
        "auto",
        description="When captures are written: after the answer (Lambda internal extension; auto where the Extensions API exists), "
        "on a local server's writer pool (thread), or before the answer (sync)",
    )
    capture_budget_s: float = Field(
        6.0,
        gt=0.0,
        le=25.0,
        description="Longest a capture write may take (2 attempts; sets the S3/Firehose client timeouts); below the function timeout",
    )
    capture_hash_salt: str | None = Field(
        None, description="Salt for hashed features; none: the stack generates one in Secrets Manager (recommended)"
    )
    cors_origins: tuple[str, ...] = Field(
        (),
        description="Browser origins allowed to call the API (CORS: the gateway's preflight and the function's headers), "
        "e.g. https://app.example.com, or * for any; the web page's origin is added when web_page is on",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, v: Any) -> Any:
        if isinstance(v, str):  # -c cors_origins=https://a.example,https://b.example (or the JSON list to_env writes)
            v = json.loads(v) if v.strip().startswith("[") else [s for s in v.split(",") if s.strip()]
        origins = tuple(str(s).strip().rstrip("/") for s in v)
        for o in origins:
            if o == "*":
                if len(origins) > 1:
                    raise ValueError("'*' allows every origin and cannot be combined with other origins")
                continue
            if not re.fullmatch(r"https?://[^/\s?#]+", o):
                raise ValueError(f"{o!r} is not an origin: scheme://host[:port], no path (e.g. https://app.example.com), or *")
        return origins

    @field_validator("capture_hash_salt")
    @classmethod
    def _salt(cls, v: str | None) -> str | None:
        if not v:
            return None
        if len(v) < 16:
            raise ValueError("must be at least 16 characters (or empty: the stack generates one)")
        return v

    # appended last (merge-friendly); see docs/versions.md
    ab_share: float = Field(
        0.0, ge=0.0, le=1.0, description="challenger_mode=ab: share of clients (x-client-id, else requests) the challenger answers"
    )
    # explanations on /predict (docs/api.md#explanations)
    explain_background_rows: int = Field(
        100, ge=1, le=10_000, description="Explanations: N rows of the bundle's reference sample, evenly spaced over it, are the background"
    )
    explain_max_evaluations: int = Field(
        500_000,
        ge=1,
        le=50_000_000,
        description="Explanations: most model evaluations per request (rows x coalitions x background rows); more is refused with 413",
    )
    # feedback naming a request id the server did not sign (docs/api.md#feedback)
    unsigned_feedback_ids: Literal["refuse", "accept"] = Field(
        "refuse",
        description="Feedback for a request id the API did not issue signed (ids of before the upgrade): refuse (422), "
        "or accept it unverified, filed by receipt (for the day after upgrading)",
    )
    # explanations kept with the capture (docs/capture.md#explanations-in-the-capture)
    capture_explanations: bool = Field(
        False, description="Store each explained row's contributions and base value in its capture record (the drift report's attribution)"
    )
    explain_capture_fraction: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="capture_explanations: share of captured rows that did not ask, explained after the answer for the capture (0: none)",
    )

    @model_validator(mode="after")
    def _explained_captures(self) -> ServingSettings:
        if self.explain_capture_fraction > 0 and not self.capture_explanations:
            raise ValueError("explain_capture_fraction explains rows for the capture: it needs capture_explanations=true")
        return self


class DriftSettings(SharedSettings):
    """Everything the drift-check function reads: the window it checks, and the drift thresholds the checks
    declare as deploy settings (generated: each check declares its own, next to its class in ``monitoring``)."""

    window_hours: int = Field(24, ge=1, le=24 * 31, description="Target window: the last W hours of captures")
    sample_cap: int = Field(10_000, ge=100, le=1_000_000, description="Most target rows kept (reservoir sample)")
    audit_sample_rows: int = Field(200, ge=0, le=10_000, description="Rows of the day's manual audit sample written to audit/ (0: none)")
    short_window_hours: int = Field(
        1,
        ge=0,
        le=24 * 31,
        description="Short window checked on every run besides window_hours, so a shift that starts mid-window pages within it (0: off)",
    )
    # drift-thresholds:start (generated by `python -m devtools.settings_table --write docs/deploy.md`; edit the checks' configs)
    alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Significance level of the drift tests (family-wise)",
    )
    p_value_correction: Literal["bonferroni", "fdr"] = Field(
        "bonferroni",
        description="Multiple-testing correction",
    )
    numeric_effect_threshold: float = Field(
        0.03,
        ge=0,
        description="Smallest drift effect of a numeric feature: normalised Wasserstein",
    )
    categorical_effect_threshold: float = Field(
        0.02,
        ge=0,
        le=1,
        description="Smallest drift effect of a categorical feature: Jensen-Shannon distance",
    )
    drift_share_threshold: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Dataset drift when the share of drifted features reaches this (0: any feature)",
    )
    outlier_rate_threshold: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Alarm when the outlier rate exceeds this",
    )
    missing_rate_threshold: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Alarm when a feature's missing rate rises this far above the reference",
    )
    out_of_range_threshold: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Alarm when out-of-range share exceeds",
    )
    unseen_category_threshold: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Alarm when unseen share exceeds",
    )
    min_new_value_rows: int = Field(
        20,
        ge=1,
        le=100000000,
        description="A value never seen in training in at least this many window rows fails the unseen-category check, whatever its share",
    )
    reject_rate_threshold: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="Alarm when more than this share of the window's requests was refused by validation",
    )
    reject_min_requests: int = Field(
        100,
        ge=1,
        le=100000000,
        description="No reject-rate verdict (RejectRate published as 0) on windows of fewer requests",
    )
    performance_min_labels: int = Field(
        200,
        ge=10,
        description="No performance-drop or target-drift verdict on fewer labelled rows in the window",
    )
    performance_alpha: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="Family-wise significance level of the performance-drop test on labels (Bonferroni over the metrics)",
    )
    performance_min_baseline_rows: int = Field(
        50,
        ge=1,
        description="No performance-drop verdict against a reference performance measured on fewer held-out rows",
    )
    estimated_accuracy_drop_threshold: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="The smallest estimated drop (accuracy, F1, AUC; before labels) that breaches; above it the estimate's band decides",
    )
    estimated_band_sd: float = Field(
        3.0,
        gt=0,
        description="An estimate breaches this many of its standard errors at the window's size below the reference's",
    )
    estimated_min_rows: int = Field(
        200,
        ge=1,
        description="No estimated-performance verdict on smaller windows",
    )
    estimated_loss_min_increase: float = Field(
        0.05,
        gt=0,
        description="The smallest estimated rise of a regressor's MAE or RMSE (before labels), relative to the reference's, that breaches",
    )
    # drift-thresholds:end
    # after the generated thresholds (merge-friendly): how a window is read (docs/monitoring.md#past-one-lambda-the-athena-path)
    drift_athena: Literal["off", "auto", "on"] = Field(
        "auto",
        description="How the drift check reads a window: off (from S3), on (through Athena: exact counts, a TABLESAMPLE sample; "
        "S3 when a query fails, counted as AthenaQueryErrors), or auto (Athena only when the S3 read would not fit the read "
        "budget, estimated from the window's listing, or was cut short by it); auto and on create the workgroup (results "
        "under athena-results/, a bytes-scanned limit) with exactly the permissions it takes; left unset with "
        "capture_format=parquet it is on (only Athena reads Parquet)",
    )


# who reads each section, in the order the settings table lists them
READERS = {"deploy": "stack", "serving": "inference", "drift": "drift check"}


@dataclass(frozen=True)
class SettingInfo:
    """One cdk.json key, for the settings table."""

    name: str
    field: FieldInfo
    read_by: tuple[str, ...]  # "stack", or the functions whose environment carries it

    @property
    def default(self) -> Any:
        return self.field.default

    @property
    def description(self) -> str:
        return self.field.description or ""


class Settings(BaseModel):
    """All settings, by section. Built from cdk.json's flat keys (``from_context``, or ``Settings(**flat)``).

    Deploy-time code may read a setting by its flat name (``settings.max_batch_rows``): it is looked
    up in the section that holds it. The functions never see this class, only their section.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    SECTIONS: ClassVar[dict[str, type[_Section]]] = {"deploy": DeploySettings, "serving": ServingSettings, "drift": DriftSettings}

    # each section's defaults, built when a Settings is (not at import: the functions never build this class)
    deploy: DeploySettings = Field(default_factory=lambda: DeploySettings.model_validate({}))
    serving: ServingSettings = Field(default_factory=lambda: ServingSettings.model_validate({}))
    drift: DriftSettings = Field(default_factory=lambda: DriftSettings.model_validate({}))

    @model_validator(mode="before")
    @classmethod
    def _sections_of_flat_keys(cls, data: Any) -> Any:
        """The one mapping from flat keys to sections: a key goes to every section with that field."""
        if not isinstance(data, Mapping) or set(data) & set(cls.SECTIONS):
            return data  # already by section
        nested: dict[str, Any] = {name: {} for name in cls.SECTIONS}
        unknown = {}
        for key, value in data.items():
            owners = [name for name, section in cls.SECTIONS.items() if key in section.model_fields]
            for name in owners:
                nested[name][key] = value
            if not owners:
                unknown[key] = value  # refused by extra="forbid"
        return {**nested, **unknown}

    @model_validator(mode="after")
    def _snap_start_where_it_works(self) -> Settings:
        """SnapStart only where it is supported and proven here (docs/performance.md#snapstart)."""
        if not self.deploy.snap_start:
            return self
        if self.deploy.python_runtime == "3.11":
            raise ValueError("snap_start needs python_runtime 3.12 or later: Lambda offers SnapStart for Python from 3.12")
        if self.deploy.provisioned_concurrency:
            raise ValueError("snap_start and provisioned_concurrency cannot be on the same version (Lambda refuses it): choose one")
        # the capture extension is allowed: registered during init like any extension, it is part of the snapshot
        # and keeps its INVOKE events after a restore (docs/performance.md#snapstart)
        return self

    @model_validator(mode="after")
    def _challenger_has_a_bundle(self) -> Settings:
        if self.serving.challenger_mode != "off" and not self.deploy.challenger_bundle_path:
            raise ValueError(
                f"challenger_mode={self.serving.challenger_mode!r} needs challenger_bundle_path (the challenger's bundle folder)"
            )
        return self

    @model_validator(mode="after")
    def _parquet_is_read_through_athena(self) -> Settings:
        """Parquet captures have no reader in the drift-check asset (docs/capture.md#parquet): only Athena reads them.
        Left unset, ``drift_athena`` follows (on); set to anything else, it is refused."""
        if self.deploy.capture_format != "parquet" or self.drift.drift_athena == "on":
            return self
        if "drift_athena" not in self.drift.model_fields_set:
            object.__setattr__(self, "drift", self.drift.model_copy(update={"drift_athena": "on"}))
            return self
        raise ValueError(
            f"capture_format=parquet with drift_athena={self.drift.drift_athena}: the Lambda path cannot read Parquet (no reader "
            "in the drift-check asset), so windows within the read budget would be unreadable objects; use drift_athena=on"
        )

    def __getattr__(self, name: str) -> Any:
        for section in type(self).SECTIONS:
            values = self.__dict__.get(section)
            if values is not None and name in type(values).model_fields:
                return getattr(values, name)
        return super().__getattr__(name)  # type: ignore[misc]

    @classmethod
    def names(cls) -> list[str]:
        """Every cdk.json key, by section (a shared key once, where it first appears)."""
        return list(dict.fromkeys(n for section in cls.SECTIONS.values() for n in section.model_fields))

    # --- construction ---
    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> Settings:
        """Build from CDK context; unknown keys and bad values raise SettingsError."""
        known = set(cls.names())
        values = {k: v for k, v in context.items() if k in known}
        unknown = sorted(k for k in context if k not in known and not _is_cdk_key(k))
        if unknown:
            raise SettingsError(f"unknown setting(s) {unknown} in cdk.json context; allowed: {sorted(known)}")
        return _validated(cls, values)

    @classmethod
    def describe(cls) -> list[SettingInfo]:
        """Every setting with its field and readers, for the settings table."""
        out = []
        for name in cls.names():
            sections = [s for s, model in cls.SECTIONS.items() if name in model.model_fields]
            field = cls.SECTIONS[sections[0]].model_fields[name]
            out.append(SettingInfo(name, field, tuple(READERS[s] for s in sections)))
        return out


ModelT = TypeVar("ModelT", bound=BaseModel)


def _validated(cls: type[ModelT], values: Mapping[str, Any]) -> ModelT:
    try:
        return cls(**values)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, values)) from None


def _is_cdk_key(key: str) -> bool:
    # CDK's own feature flags and context live in the same dict
    return key.startswith("@") or key.startswith("aws:") or key.startswith("cdk") or ":" in key


def _decode_env(raw: str) -> Any:
    if raw.startswith("["):
        return json.loads(raw)
    if raw == "None":
        return None
    return raw


def _describe(exc: ValidationError, values: Mapping[str, Any]) -> str:
    lines: list[str] = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] in Settings.SECTIONS:
            loc = loc[1:]  # name the cdk.json key, not the section holding it
        key = loc[0] if loc else "(settings)"
        shown = values.get(key, "<default>") if loc else "(combination)"
        allowed = err.get("ctx", {}).get("expected") if err.get("ctx") else None
        msg = err["msg"] + (f" (allowed: {allowed})" if allowed and str(allowed) not in err["msg"] else "")
        line = f"setting {key!r} = {shown!r}: {msg}"
        if line not in lines:  # a shared key is checked in each section holding it
            lines.append(line)
    return "invalid settings:\n  " + "\n  ".join(lines)
