"""Drift-check Lambda: an EventBridge scheduled event (or {"window": {"start", "end"}}) -> metrics + reports.

The reference profile and detectors are fitted once at init; each invocation checks the main window
(``window_hours``) and the short one (``short_window_hours``) ending at the same time.
"""

from __future__ import annotations

import os
from typing import Any

# single-threaded BLAS: measured 0.34 s vs 2.4 s per check with threads on a small shared CPU
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import boto3  # noqa: E402

from driftcheck.athena_window import AthenaQueries  # noqa: E402
from driftcheck.comparison_service import comparison_service_from_env  # noqa: E402
from driftcheck.drift_service import DriftService, s3_client  # noqa: E402
from driftcheck.live_versions import LiveVersionChecks, challenger_drift_service  # noqa: E402
from modelserve.bundle import ModelBundle, function_bundle_dir  # noqa: E402
from modelserve.metric_catalogue import ENV_DEPLOYMENT  # noqa: E402
from modelserve.observability import make_logger  # noqa: E402
from modelserve.settings import ENV_ATHENA_WORKGROUP, ENV_CAPTURE_BUCKET, ENV_CAPTURES_TABLE, DriftSettings  # noqa: E402

drift = DriftSettings.from_env()
bundle = ModelBundle.load(function_bundle_dir())
deployment = os.environ.get(ENV_DEPLOYMENT)  # the stack name
logger = make_logger("drift_check", bundle.manifest.model_name, bundle.manifest.version, deployment)
bucket = os.environ[ENV_CAPTURE_BUCKET]
# drift_athena=auto|on: the stack's workgroup and captures table; a window is then read through Athena (always, or past the budget)
workgroup = os.environ.get(ENV_ATHENA_WORKGROUP)
athena = AthenaQueries(boto3.client("athena"), workgroup) if workgroup else None
service = DriftService(
    bundle,
    drift,
    s3_client(),
    boto3.client("cloudwatch"),
    bucket,
    deployment=deployment,
    events=boto3.client("events"),
    athena=athena,
    captures_table=os.environ.get(ENV_CAPTURES_TABLE),
)
# a challenger deployed next to the champion (docs/versions.md): its own drift check, and the comparison; None otherwise
challenger = challenger_drift_service(
    drift, os.environ, service.s3, service.cloudwatch, bucket, deployment, athena=athena, captures_table=os.environ.get(ENV_CAPTURES_TABLE)
)
comparison = comparison_service_from_env(bundle.manifest, drift, os.environ, service.s3, service.cloudwatch, bucket, deployment)
checks = LiveVersionChecks(service, challenger, comparison)


# what the check, the metrics and the reports need after the window is read
CHECK_RESERVE_S = 60.0


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    summary = checks.run(event, remaining_s=lambda: context.get_remaining_time_in_millis() / 1000.0 - CHECK_RESERVE_S)
    logger.info("drift report written", extra={"report_html": summary["report_html"], "report_json": summary["report_json"]})
    return summary
