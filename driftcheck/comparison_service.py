"""The version comparison's AWS edge (docs/versions.md): both versions' captures of the window in from
S3, the labels joined by request id, the pure ``monitoring.comparison`` statistics, metrics and a
report next to the drift report.

Each version's captures are read with the drift check's window reader (its own ``CaptureLocation``,
so its own hour samples). Shadow rows are paired by (request id, row): both captures of a request
carry the same request id and event time. When the window holds more rows than ``sample_cap``, the
two samples are drawn independently, so with the S3 sink the champion's partner of each sampled
challenger row is fetched by its key (``capture_key`` of the champion's version, the same request
id and event time); with Firehose it can only be found in the champion's sample.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from modelserve import metric_catalogue as mn
from modelserve.records import CaptureRecord, RowKey, capture_key, comparison_report_key, decode_jsonl, parse_utc, utc_iso
from modelserve.schema import BundleManifest, Task
from modelserve.settings import DriftSettings
from monitoring.comparison import (
    CHALLENGER,
    CHAMPION,
    ComparisonReport,
    VariantOutputs,
    compare_ab,
    compare_shadow,
)
from monitoring.html_report import render_comparison_html

from .drift_service import resolve_window
from .feedback_reader import read_feedback
from .store import CaptureLocation, fetch_parallel
from .window_reader import ReadOptions, WindowRead, read_window

logger = logging.getLogger(__name__)


@dataclass
class ComparisonRun:
    start: datetime
    end: datetime
    windows: dict[str, WindowRead]
    report: ComparisonReport
    json_key: str
    html_key: str
    paired_rows: int
    labeled_rows: int

    def summary(self, bucket: str) -> dict[str, Any]:
        return {
            "mode": self.report.mode,
            "versions": self.report.versions,
            "rows": self.report.rows,
            "paired_rows": self.paired_rows,
            "labeled_rows": self.labeled_rows,
            "challenger_worse": self.report.challenger_worse,
            "report_json": f"s3://{bucket}/{self.json_key}",
            "report_html": f"s3://{bucket}/{self.html_key}",
        }


class ComparisonService:
    """Champion ``manifest`` against the challenger ``challenger_version`` of the same model, as deployed in ``mode``."""

    def __init__(
        self,
        manifest: BundleManifest,
        challenger_version: str,
        mode: str,
        settings: DriftSettings,
        s3: Any,
        cloudwatch: Any,
        bucket: str,
        deployment: str | None = None,
    ) -> None:
        if mode not in ("shadow", "ab"):
            raise ValueError(f"challenger mode {mode!r}: shadow or ab")
        self.manifest = manifest
        self.mode = mode
        self.settings = settings
        self.s3 = s3
        self.cloudwatch = cloudwatch
        self.bucket = bucket
        self.deployment = deployment
        firehose = settings.captures_filed_by_arrival
        self.versions = {CHAMPION: manifest.version, CHALLENGER: challenger_version}
        self.locations = {
            v: CaptureLocation(bucket, manifest.model_name, version, neighbours=firehose) for v, version in self.versions.items()
        }

    def run(
        self,
        event: dict[str, Any] | None,
        now: datetime | None = None,
        read_budget_s: float | None = None,
        windows: Mapping[str, WindowRead] | None = None,
    ) -> ComparisonRun:
        """``windows``: variant -> its window as the drift checks of this run read it (same event, same
        sample cap); the variants not in it are read here."""
        started = time.perf_counter()
        start, end = resolve_window(event, self.settings.window_hours, now)
        deadline = None if read_budget_s is None else time.monotonic() + read_budget_s
        options = ReadOptions(self.settings.sample_cap, deadline=deadline)
        given = windows or {}
        windows = {v: given[v] if v in given else read_window(self.s3, where, start, end, options) for v, where in self.locations.items()}
        # only rows the experiment produced (rows from before it have no variant)
        rows = {v: [r for r in w.rows if r.variant == v] for v, w in windows.items()}
        if self.mode == "shadow":
            champion_rows, challenger_rows = self._pairs(rows[CHAMPION], rows[CHALLENGER])
        else:
            champion_rows, challenger_rows = rows[CHAMPION], rows[CHALLENGER]
        wanted = {r.key for r in champion_rows} | {r.key for r in challenger_rows}
        feedback = read_feedback(self.s3, self.locations[CHAMPION], start, end, wanted) if wanted else {}
        labels = {key: record.label for key, record in feedback.items()}
        classes = self.manifest.outputs.classes
        champion, challenger = self._outputs(CHAMPION, champion_rows, labels), self._outputs(CHALLENGER, challenger_rows, labels)
        compare = compare_shadow if self.mode == "shadow" else compare_ab
        report = compare(champion, challenger, classes, alpha=self.settings.alpha)
        self.publish(report, end)
        json_key = comparison_report_key(self.manifest.model_name, end, "json")
        html_key = comparison_report_key(self.manifest.model_name, end, "html")
        paired = len(champion_rows) if self.mode == "shadow" else 0
        document = {
            "model_name": self.manifest.model_name,
            "window": {"start": utc_iso(start), "end": utc_iso(end)},
            "rows_seen": {v: w.rows_seen for v, w in windows.items()},
            "partial_window": any(w.partial for w in windows.values()),
            "paired_rows": paired,
            "labeled_rows": len(labels),
            "seconds": round(time.perf_counter() - started, 3),
            "comparison": report.to_dict(),
        }
        title = f"Version comparison: {self.manifest.model_name}, {utc_iso(start)} to {utc_iso(end)}"
        self._put(json_key, json.dumps(document, allow_nan=False, indent=1).encode(), "application/json")
        self._put(html_key, render_comparison_html(report, title).encode(), "text/html; charset=utf-8")
        run = ComparisonRun(start, end, windows, report, json_key, html_key, paired, len(labels))
        logger.info("version comparison done", extra=run.summary(self.bucket))
        return run

    def _pairs(
        self, champion: Sequence[CaptureRecord], challenger: Sequence[CaptureRecord]
    ) -> tuple[list[CaptureRecord], list[CaptureRecord]]:
        """Rows both versions scored, in the same order."""
        by_key = {r.key: r for r in champion}
        missing = [r for r in challenger if r.key not in by_key]
        if missing and self.settings.capture_sink == "s3":
            by_key.update(self._fetch_partners(missing))
        pairs = [(by_key[r.key], r) for r in challenger if r.key in by_key]
        if missing:
            logger.info("shadow pairs: %d of %d sampled challenger rows", len(pairs), len(challenger))
        return [a for a, _ in pairs], [b for _, b in pairs]

    def _fetch_partners(self, rows: Sequence[CaptureRecord]) -> dict[RowKey, CaptureRecord]:
        """The champion's capture of the same requests, by key (S3 sink: one object per request)."""
        m = self.manifest
        keys = {capture_key(m.model_name, m.version, parse_utc(r.event_time), r.request_id) for r in rows}
        wanted = {r.key for r in rows}
        found: dict[RowKey, CaptureRecord] = {}
        for key, data in fetch_parallel(self.s3, self.bucket, sorted(keys), workers=16):
            if isinstance(data, Exception):
                continue  # not captured (sampling, a failed write): that row stays unpaired
            try:
                for d in decode_jsonl(data):
                    record = CaptureRecord.from_dict(d)
                    if record.key in wanted and record.variant == CHAMPION:
                        found[record.key] = record
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("champion capture %s skipped: %s", key, exc)
        return found

    def _outputs(self, variant: str, rows: Sequence[CaptureRecord], labels: Mapping[RowKey, Any]) -> VariantOutputs:
        y = np.array([labels.get(r.key) for r in rows], dtype=object)
        version = self.versions[variant]
        if self.manifest.outputs.task is Task.REGRESSION:
            values = np.array([np.nan if r.prediction is None else float(r.prediction) for r in rows], dtype=np.float64)
            y = np.array([None if v is None else float(v) for v in y], dtype=object)
            return VariantOutputs(version, y, values=values)
        classes = self.manifest.outputs.classes
        probabilities = None
        if rows and all(r.probabilities for r in rows):
            probabilities = np.array([[float((r.probabilities or {}).get(c, np.nan)) for c in classes] for r in rows])
        predicted = np.array([str(r.prediction) for r in rows], dtype=object)
        y = np.array([None if v is None else str(v) for v in y], dtype=object)
        return VariantOutputs(version, y, labels=predicted, probabilities=probabilities)

    def publish(self, report: ComparisonReport, timestamp: datetime) -> None:
        data = []
        for name, value, variant in report.metrics():
            dims = [
                {"Name": mn.DIM_MODEL_NAME, "Value": self.manifest.model_name},
                {"Name": mn.DIM_MODEL_VERSION, "Value": self.versions[variant]},
            ]
            if self.deployment:
                dims.append({"Name": mn.DIM_DEPLOYMENT, "Value": self.deployment})
            data.append(
                {"MetricName": name, "Dimensions": dims, "Value": float(value), "Timestamp": timestamp, "Unit": mn.CATALOGUE.unit(name)}
            )
        if data:
            self.cloudwatch.put_metric_data(Namespace=self.settings.metrics_namespace, MetricData=data)

    def _put(self, key: str, body: bytes, content_type: str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)


def comparison_service_from_env(
    manifest: BundleManifest,
    settings: DriftSettings,
    environ: Mapping[str, str],
    s3: Any,
    cloudwatch: Any,
    bucket: str,
    deployment: str | None = None,
) -> ComparisonService | None:
    """The comparison the stack asked for (``MS_CHALLENGER_VERSION`` and challenger_mode), or None."""
    from modelserve.settings import ENV_CHALLENGER_VERSION

    version = environ.get(ENV_CHALLENGER_VERSION)
    if not version or settings.challenger_mode == "off":
        return None
    return ComparisonService(manifest, version, settings.challenger_mode, settings, s3, cloudwatch, bucket, deployment)
