"""Every setting of the template, typed and validated in one place.

The CDK app reads them once from ``cdk.json`` context (``Settings.from_context``); the Lambdas read
the subset they need from environment variables the stack sets (``Settings.from_env``). The
environment variable of a field is ``MS_`` + its name in upper case; lists are JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "MS_"
# resource names the stack passes to the functions (not settings: the stack creates them)
ENV_CAPTURE_BUCKET = "MS_CAPTURE_BUCKET"
ENV_FIREHOSE_STREAM = "MS_FIREHOSE_STREAM"
ENV_HASH_SALT_SECRET = "MS_CAPTURE_HASH_SALT_SECRET_ARN"  # the salt the stack generated, when none is set

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


def env_name(setting: str) -> str:
    """The environment variable carrying a setting to the functions."""
    if setting not in Settings.model_fields:
        raise KeyError(setting)
    return ENV_PREFIX + setting.upper()


class SettingsError(ValueError):
    """A setting has a wrong value; the message names the key, the value and what is allowed."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- model and serving ---
    model_bundle_path: str = Field("models/sample", description="Folder of the model bundle to deploy")
    lambda_architecture: Literal["arm64", "x86_64"] = Field(
        "arm64", description="Lambda CPU architecture (x86_64 if onnxruntime's cpuinfo crashes on arm64)"
    )
    python_runtime: Literal["3.11", "3.12", "3.13"] = Field(
        "3.12", description="Lambda Python runtime (3.12+: Amazon Linux 2023; 3.11's glibc 2.26 is too old for the pinned wheels)"
    )
    inference_memory_mb: int = Field(1024, ge=128, le=10240, description="Inference Lambda memory")
    inference_timeout_s: int = Field(10, ge=1, le=29, description="Inference Lambda timeout (API Gateway caps at 29 s)")
    provisioned_concurrency: int = Field(0, ge=0, le=1000, description="Provisioned concurrency on the live alias")
    api_auth: Literal["none", "api_key", "iam"] = Field("api_key", description="API authentication mode")
    stage_name: str = Field("prod", pattern=r"^[A-Za-z0-9_]{1,64}$", description="API Gateway stage name")
    throttle_rate_limit: float = Field(100.0, gt=0, le=10000, description="Steady requests per second, per stage")
    throttle_burst_limit: int = Field(200, gt=0, le=5000, description="Burst requests, per stage")
    max_batch_rows: int = Field(1000, ge=1, le=100_000, description="Most rows in one /predict request")
    max_body_bytes: int = Field(6_000_000, ge=1024, le=6_291_456, description="Largest request body (Lambda's cap)")
    unseen_category_policy: Literal["reject", "model"] = Field(
        "reject", description="Unseen category: 422, or pass it to the model (one-hot all zeros)"
    )
    canary_config: Literal[CANARY_CONFIGS] = Field(  # type: ignore[valid-type]
        "Canary10Percent5Minutes", description="CodeDeploy traffic shifting for a new model version"
    )
    api_p99_latency_ms: float = Field(1000.0, gt=0, description="API p99 latency alarm threshold")
    api_5xx_rate: float = Field(0.01, gt=0, le=1, description="API 5xx share alarm threshold")

    # --- capture ---
    capture_sink: Literal["s3", "firehose"] = Field("s3", description="Where captures go")
    capture_sampling: float = Field(1.0, ge=0.0, le=1.0, description="Share of requests captured")
    redact_features: tuple[str, ...] = Field((), description="Features never written to captures")
    hash_features: tuple[str, ...] = Field((), description="Features written as a salted SHA-256")
    capture_hash_salt: str = Field(
        "", description="Salt for hashed features; empty: the stack generates one in Secrets Manager (recommended)"
    )
    bucket_encryption: Literal["s3", "kms"] = Field("s3", description="SSE-S3 or a customer-managed KMS key")
    capture_expiry_days: int = Field(365, ge=1, le=3650, description="Captured data is deleted after this")
    capture_transition_days: int = Field(30, ge=0, le=3650, description="To S3 Infrequent Access after (0: never)")
    report_expiry_days: int = Field(365, ge=1, le=3650, description="Drift reports are deleted after this")
    log_retention_days: int = Field(30, ge=1, le=3653, description="CloudWatch Logs retention")
    metrics_namespace: str = Field("ModelServing", pattern=r"^[A-Za-z0-9_./#:-]{1,255}$", description="CloudWatch namespace")

    # --- drift check ---
    drift_schedule: str = Field("rate(1 hour)", description="EventBridge schedule expression of the drift check")
    drift_memory_mb: int = Field(2048, ge=512, le=10240, description="Drift-check Lambda memory")
    drift_timeout_s: int = Field(600, ge=30, le=900, description="Drift-check Lambda timeout")
    window_hours: int = Field(24, ge=1, le=24 * 31, description="Target window: the last W hours of captures")
    sample_cap: int = Field(10_000, ge=100, le=1_000_000, description="Most target rows kept (reservoir sample)")
    alpha: float = Field(0.05, gt=0.0, lt=1.0, description="Significance level of the drift tests (family-wise)")
    p_value_correction: Literal["bonferroni", "fdr"] = Field("bonferroni", description="Multiple-testing correction")
    drift_share_threshold: float = Field(
        0.0, ge=0.0, le=1.0, description="Dataset drift when the share of drifted features reaches this (0: any feature)"
    )
    numeric_effect_threshold: float | None = Field(None, ge=0.0, description="Override: normalised Wasserstein")
    categorical_effect_threshold: float | None = Field(None, ge=0.0, description="Override: categorical effect size")
    outlier_rate_threshold: float = Field(0.05, gt=0.0, le=1.0, description="Alarm when outlier rate exceeds")
    missing_rate_threshold: float = Field(
        0.05, ge=0.0, le=1.0, description="Alarm when a feature's missing rate rises this far above the reference"
    )
    out_of_range_threshold: float = Field(0.01, ge=0.0, le=1.0, description="Alarm when out-of-range share exceeds")
    unseen_category_threshold: float = Field(0.01, ge=0.0, le=1.0, description="Alarm when unseen share exceeds")
    alarm_min_window_rows: int = Field(
        100, ge=0, le=1_000_000,
        description="Rate alarms (missing, out-of-range, unseen, outliers) stay OK on windows with fewer rows",
    )
    empty_window_alarm: Literal["breaching", "notBreaching", "ignore", "missing"] = Field(
        "breaching", description="How alarms treat an empty window / no traffic"
    )
    alarm_email: str | None = Field(None, description="E-mail subscribed to the alarm topic")

    @field_validator("redact_features", "hash_features", mode="before")
    @classmethod
    def _split_list(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = json.loads(v) if v.strip().startswith("[") else [s for s in v.split(",") if s.strip()]
        return tuple(str(s).strip() for s in v)

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
    def _cross_checks(self) -> Settings:
        if self.capture_hash_salt and len(self.capture_hash_salt) < 16:
            raise ValueError("capture_hash_salt must be at least 16 characters (or empty: the stack generates one)")
        both = set(self.redact_features) & set(self.hash_features)
        if both:
            raise ValueError(f"features both redacted and hashed: {sorted(both)}")
        if self.capture_transition_days and self.capture_transition_days >= self.capture_expiry_days:
            raise ValueError("capture_transition_days must be below capture_expiry_days")
        return self

    # --- construction ---
    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> Settings:
        """Build from CDK context; unknown keys and bad values raise SettingsError."""
        known = set(cls.model_fields)
        values = {k: v for k, v in context.items() if k in known}
        unknown = sorted(k for k in context if k not in known and not _is_cdk_key(k))
        if unknown:
            raise SettingsError(
                f"unknown setting(s) {unknown} in cdk.json context; allowed: {sorted(known)}"
            )
        return cls._validated(values)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = environ.get(env_name(name))
            if raw is not None:
                values[name] = _decode_env(raw)
        return cls._validated(values)

    @classmethod
    def _validated(cls, values: Mapping[str, Any]) -> Settings:
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingsError(_describe(exc, values)) from None

    def to_env(self, *names: str) -> dict[str, str]:
        """Environment variables carrying the given settings (all when none named)."""
        out = {}
        for name in names or tuple(type(self).model_fields):
            v = getattr(self, name)
            if v is None:
                continue
            out[env_name(name)] = json.dumps(list(v)) if isinstance(v, tuple) else str(v)
        return out

    @classmethod
    def describe(cls) -> list[tuple[str, Any, str]]:
        """(name, default, description) of every setting, for the README table."""
        return [(n, f.default, f.description or "") for n, f in cls.model_fields.items()]


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
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(settings)"
        shown = values.get(key, "<default>") if err["loc"] else "(combination)"
        allowed = err.get("ctx", {}).get("expected") if err.get("ctx") else None
        msg = err["msg"] + (f" (allowed: {allowed})" if allowed and str(allowed) not in err["msg"] else "")
        lines.append(f"setting {key!r} = {shown!r}: {msg}")
    return "invalid settings:\n  " + "\n  ".join(lines)
