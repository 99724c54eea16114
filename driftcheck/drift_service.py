"""The drift check's AWS edge: window in from S3, the pure ``monitoring`` check, metrics and reports out.

Built once per process (reference profile and detectors are fitted at init, not per run).

Each run checks the main window (``window_hours``, default 24 h) and, when on, the short window
(``short_window_hours``, default 1 h) ending at the same time: a shift that starts mid-window is
diluted in 24 h but fills the last hour. Each window gets its own report (the short one's key names
it: ``window_report_key``), its own metrics (dimension ``Window``: "24h", "1h") and its own verdict
event; the alarms watch the larger of the two series (``cdk.alarms``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from modelserve import metric_catalogue as mn
from modelserve.bundle import ModelBundle, reference_sample_from_rows, scored_sample
from modelserve.records import (
    ATHENA_FEEDBACK_TABLE,
    ATHENA_REJECTS_TABLE,
    AUDIT_SOURCE,
    CaptureRecord,
    FeedbackRecord,
    RowKey,
    audit_key,
    report_key,
    utc_iso,
    version_report_key,
    window_report_key,
)
from modelserve.schema import BundleManifest, FeatureKind, Task
from modelserve.settings import DriftSettings, SharedSettings
from monitoring import DriftChecker, DriftConfig, DriftReport, RejectCounts
from monitoring.html_report import render_html
from monitoring.performance import LabeledPredictions
from monitoring.profile import PredictionColumns, ReferenceProfile, label_texts

from . import athena_sql
from .athena_window import AthenaQueries, AthenaQueryError, AthenaWindowRead, WindowPlan, read_window_athena
from .audit import audit_agreement, audit_files, select_audit_rows
from .feedback_reader import Labels, read_feedback
from .read_path import AUTO_ATHENA_SHARE, choose_by_estimate, read_seconds
from .reject_reader import RejectWindow, read_rejects
from .store import CaptureLocation
from .verdict_events import VerdictEvent
from .verdict_events import publish as publish_event
from .window_reader import ReadOptions, WindowRead, estimate_read, read_window

logger = logging.getLogger(__name__)

CLOUDWATCH_BATCH = 500  # PutMetricData takes up to 1,000 values per call
# also published without ModelVersion: the NoTraffic alarm reads the deployment's series, which a
# deploy (a new version with no check yet) does not interrupt
DEPLOYMENT_WIDE_METRICS = (mn.WINDOW_ROWS,)


# drift_athena=on: the share of a window's remaining read budget its Athena queries may take (S3 has the rest if they fail)
ATHENA_BUDGET_SHARE = 0.5

# the window reader's parallel GETs; the S3 client's connection pool holds at least that many
# (botocore's default of 10 would make the extra threads wait for a connection)
READER_WORKERS: int = ReadOptions(sample_cap=1).workers


def s3_client(session: Any = None, workers: int = READER_WORKERS) -> Any:
    """The drift check's S3 client: a connection per reader thread, and a few for the reports."""
    import boto3
    from botocore.config import Config

    return (session or boto3).client("s3", config=Config(max_pool_connections=workers + 2))


def drift_config(settings: DriftSettings) -> DriftConfig:
    """The one mapping from deploy settings to the library's thresholds: each threshold a check declares
    with a deploy setting (``Threshold.setting``, the field ``devtools.settings_table`` generated from it)
    takes that setting's value; the others keep their declared default."""
    return DriftConfig(**{spec.name: getattr(settings, spec.setting) for spec in DriftConfig.thresholds() if spec.setting})


def reject_counts(window: WindowRead, rejected: RejectWindow) -> RejectCounts:
    """The window's refused requests next to its scored ones. Scored requests: each request's rows
    include exactly one row 0, so requests = rows seen x the share of row-0 rows in the window's
    uniform sample (exact when the sample holds every row, or requests are single rows), or the
    exact count when the read counted them (Athena)."""
    rows = window.rows
    if window.requests is not None:
        scored = window.requests
    else:
        scored = round(window.rows_seen * sum(1 for r in rows if r.row == 0) / len(rows)) if rows else 0
    return RejectCounts(
        rejected_requests=rejected.rejected_requests,
        scored_requests=scored,
        by_reason=rejected.by_reason,
        by_field=rejected.by_field,
        rejected_rows=rejected.rejected_rows,
        estimated=rejected.estimated,
    )


def athena_section(read: AthenaWindowRead) -> dict[str, Any]:
    """The report's account of a window read through Athena: the exact counts the checks took, what it cost."""
    counts = read.counts
    return {
        "queries": read.queries,
        "bytes_scanned": read.bytes_scanned,
        "sample_rows": len(read.rows),
        "exact": {
            "rows": read.rows_seen,
            "nulls": dict(counts.nulls) if counts else {},
            "out_of_range": dict(counts.out_of_range) if counts else {},
            "categories": {f: dict(c) for f, c in counts.categories.items()} if counts else {},
            "histograms": {f: list(c) for f, c in counts.histograms.items()} if counts else {},
            "predictions": read.predictions,
            "labelled_rows": None if read.labelled is None else len(read.labelled),
        },
        "labels_truncated": read.labels_truncated,
    }


def _labelled_rows(read: WindowRead) -> list[CaptureRecord]:
    """Every labelled row of a window read through Athena (the join with the feedback table); none otherwise."""
    return (read.labelled or []) if isinstance(read, AthenaWindowRead) else []


def checked_manifest(manifest: BundleManifest, settings: SharedSettings) -> BundleManifest:
    """Redacted features are not in captures and hashed ones are not comparable: leave both out."""
    from dataclasses import replace

    excluded = set(settings.redact_features) | set(settings.hash_features)
    return replace(manifest, features=tuple(f for f in manifest.features if f.name not in excluded))


def resolve_window(event: dict[str, Any] | None, window_hours: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """EventBridge scheduled event -> the W hours ending at its time; or an explicit {"window": {"start", "end"}}."""
    event = event or {}
    explicit = event.get("window")
    if isinstance(explicit, dict) and explicit.get("start") and explicit.get("end"):
        start, end = _parse_time(explicit["start"]), _parse_time(explicit["end"])
        if not start < end:
            raise ValueError(f"window start {start} is not before end {end}")
        return start, end
    end = _parse_time(event["time"]) if event.get("time") else (now or datetime.now(UTC))
    return end - timedelta(hours=window_hours), end


def _parse_time(s: str) -> datetime:
    t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass
class DriftRun:
    start: datetime
    end: datetime
    window: WindowRead
    report: DriftReport
    json_key: str
    html_key: str
    metrics: list[tuple[str, float, str | None]] = field(default_factory=list)
    labeled_rows: int = 0  # rows with a feedback label: the sampled ones, or every one of the window through Athena
    conflicting_labels: int = 0  # of its rows: sent different labels without a correction (the first is used)
    unmatched_labels: int = 0  # labels received in the window joining no row read in it (feedback_reader.Labels)
    window_label: str = ""  # the Window dimension of its metrics: "24h", "1h"
    others: list[DriftRun] = field(default_factory=list)  # the other windows of the same run (the short one)
    rejects: RejectCounts | None = None  # the window's requests refused by validation

    def summary(self, bucket: str) -> dict[str, Any]:
        out = self._summary(bucket)
        if self.others:
            # each window's headline, so the log line and the handler's answer name a short-window page too
            out["windows"] = {r.window_label: r._summary(bucket) for r in [self, *self.others]}
        return out

    def _summary(self, bucket: str) -> dict[str, Any]:
        return {
            "window": {"start": utc_iso(self.start), "end": utc_iso(self.end), "label": self.window_label},
            "rows_seen": self.window.rows_seen,
            "rows_checked": self.report.window_rows,
            "objects_read": self.window.objects_read,
            "corrupt_objects": self.window.corrupt_objects,
            "partial_window": self.window.partial,
            "rows_estimated": round(self.window.rows_estimated),
            "read_errors": self.window.read_errors,
            "read_by": "athena" if isinstance(self.window, AthenaWindowRead) else "s3",
            "read_reason": self.window.read_reason,
            "athena_error": self.window.athena_error,
            "labeled_rows": self.labeled_rows,
            "conflicting_labels": self.conflicting_labels,
            "unmatched_labels": self.unmatched_labels,
            "rejected_requests": self.rejects.rejected_requests if self.rejects else 0,
            "reject_share": self.rejects.share if self.rejects else None,
            # the line the on-call engineer acts on first, and the values never seen in training by name
            "root_cause": self.report.summary,
            "drifted_features": self.report.drifted_features,
            "new_values": self.report.new_values,
            "dataset_drift": self.report.dataset_drift,
            "drift_share": self.report.drift_share,
            "report_json": f"s3://{bucket}/{self.json_key}",
            "report_html": f"s3://{bucket}/{self.html_key}",
        }


class DriftService:
    def __init__(
        self,
        bundle: ModelBundle,
        settings: DriftSettings,
        s3: Any,
        cloudwatch: Any,
        bucket: str,
        write_local: Callable[[str, bytes], None] | None = None,
        deployment: str | None = None,
        events: Any = None,
        challenger: bool = False,
        athena: AthenaQueries | None = None,
        captures_table: str | None = None,
    ) -> None:
        """``deployment``: the stack name (``ENV_DEPLOYMENT``), a dimension of every metric when set.
        ``events``: an EventBridge client; each run then puts its verdict on the default bus.
        ``challenger``: the check of a challenger deployed next to the champion (docs/versions.md): its
        reports under keys naming its version, no deployment-wide series (NoTraffic reads the champion's
        traffic, and an A/B challenger with a small share may see none), no audit sample (the day's
        audit file is the champion's).
        ``athena``, ``captures_table`` (``database.table``): the stack's workgroup and table (drift_athena=auto|on);
        a window is then read through Athena (``athena_window``) always (on) or past the read budget (auto:
        ``read_path``), and from S3 when a query fails or outlives the read budget."""
        if athena is not None and not captures_table:
            raise ValueError("athena needs captures_table (database.table)")
        self.athena = athena
        self.captures_table = captures_table or ""
        self.challenger = challenger
        self.bundle = bundle
        self.events = events
        self.deployment = deployment or ""
        self.manifest = bundle.manifest
        self.settings = settings
        self.s3 = s3
        self.cloudwatch = cloudwatch
        self.bucket = bucket
        self.write_local = write_local
        self.captures = CaptureLocation(
            bucket, self.manifest.model_name, self.manifest.version, neighbours=settings.captures_filed_by_arrival
        )
        self.checked = checked_manifest(bundle.manifest, settings)
        ref = reference_sample_from_rows(self.checked, bundle.reference_rows())
        self.profile = ReferenceProfile.fit(
            self.checked.features,
            ref.table,
            PredictionColumns(labels=ref.labels, probabilities=ref.probabilities, values=ref.values),
            outputs=self.checked.outputs,
            targets=ref.targets,
            reference_performance=self.manifest.export_metrics.get("reference_performance"),
            contributions=ref.contributions,  # the explained reference rows (written at export)
        )
        self.config = drift_config(settings)
        self.checker = DriftChecker(self.profile, self.config)
        self.dimensions = [
            {"Name": mn.DIM_MODEL_NAME, "Value": self.manifest.model_name},
            {"Name": mn.DIM_MODEL_VERSION, "Value": self.manifest.version},
        ]
        if deployment:
            self.dimensions.append({"Name": mn.DIM_DEPLOYMENT, "Value": deployment})

    def run(self, event: dict[str, Any] | None, now: datetime | None = None, read_budget_s: float | None = None) -> DriftRun:
        """``read_budget_s``: seconds the window reads may take (the handler passes what the
        Lambda timeout leaves after the checks themselves); past it the check runs on a partial window.
        Returns the main window's run; the short window's is in its ``others``."""
        start, end = resolve_window(event, self.settings.window_hours, now)
        deadline = None if read_budget_s is None else time.monotonic() + read_budget_s
        windows = self.windows(start, end)
        # the short window first: it is small (mostly cut from stored hour samples) and the fast page
        # should not wait on, or be starved by, the main window's read
        shared: dict[Any, Any] = {}  # the slice both windows end with is read once
        reads = {label: self._read(lo, end, deadline, shared) for label, lo in reversed(windows)}
        # one read of the labels for every window: the short window's label span lies in the main one's
        # the Athena path's labelled rows too: a label joining one of them is matched, whether sampled or not
        wanted = {r.key for read in reads.values() for r in [*read.rows, *_labelled_rows(read)]}
        feedback = read_feedback(self.s3, self.captures, start, end, wanted) if wanted else {}
        runs = [self._check(label, reads[label], feedback, main=i == 0) for i, (label, _) in enumerate(windows)]
        main = runs[0]
        main.others = runs[1:]
        if not self.challenger:  # the day's audit file is the champion's
            self._write_audit_sample(main.window.rows, end)
        if self.events is not None:
            # after the reports: the event points at them; a failure is counted, never fails the check
            published = [publish_event(self.events, self.verdict_event(r)) for r in runs]
            self.publish([(mn.VERDICT_EVENT_ERRORS, 0.0 if all(published) else 1.0, None)], end)
        logger.info("drift check done", extra=main.summary(self.bucket))
        return main

    def athena_plan(self, start: datetime, end: datetime) -> WindowPlan:
        """The queries of one window through Athena: the checked features, the numeric ones' reference ranges."""
        features = tuple(self.checked.features)
        ranges = {f.name: self.profile[f.name].range for f in features if f.kind is FeatureKind.NUMERIC}
        window = athena_sql.CaptureWindow(self.captures_table, self.manifest.model_name, self.manifest.version, start, end)
        classifier = self.manifest.outputs.task is Task.CLASSIFICATION
        edges = {f.name: self.profile[f.name].histogram.edges for f in features if f.kind is FeatureKind.NUMERIC}
        feedback, rejects = self.sibling_table(ATHENA_FEEDBACK_TABLE), self.sibling_table(ATHENA_REJECTS_TABLE)
        cap = self.settings.sample_cap
        return WindowPlan(window, features, ranges, cap, classifier, edges, feedback_table=feedback, rejects_table=rejects)

    def sibling_table(self, name: str) -> str:
        """A table next to the captures table (same Glue database): the feedback labels, the refused requests."""
        return f"{self.captures_table.rsplit('.', 1)[0]}.{name}"

    @property
    def athena_mode(self) -> str:
        """``drift_athena`` as it applies: off without an Athena client (no workgroup in the environment)."""
        return self.settings.drift_athena if self.athena is not None else "off"

    def _read(self, start: datetime, end: datetime, deadline: float | None, shared: dict[Any, Any]) -> WindowRead:
        """The window, by the path ``drift_athena`` selects (``driftcheck/read_path.py``); the read says which and why."""
        mode = self.athena_mode
        if mode == "on":
            return self._read_through_athena(start, end, deadline, shared, "drift_athena=on")
        if mode == "auto":
            return self._read_auto(start, end, deadline, shared)
        read = self._read_s3(start, end, deadline, shared)
        read.read_reason = "drift_athena=off"
        return read

    def _read_s3(self, start: datetime, end: datetime, deadline: float | None, shared: dict[Any, Any]) -> WindowRead:
        return read_window(self.s3, self.captures, start, end, ReadOptions(self.settings.sample_cap, deadline=deadline), shared=shared)

    def _try_athena(self, start: datetime, end: datetime, until: float | None) -> AthenaWindowRead | str:
        """The window through Athena, or why not (the query and Athena's reason), logged."""
        try:
            return read_window_athena(self.athena, self.athena_plan(start, end), start, end, until)  # type: ignore[arg-type]
        except AthenaQueryError as exc:
            logger.error("athena_query_failed: %s; the window is read from S3 instead", exc)
            return f"{exc.query}: {exc.reason}" + (f" ({exc.detail})" if exc.detail else "")

    def _read_through_athena(
        self, start: datetime, end: datetime, deadline: float | None, shared: dict[Any, Any], reason: str
    ) -> WindowRead:
        """Through Athena; from S3 when a query did not succeed in time (counted)."""
        # the queries get at most a share of what the budget leaves: if they fail, the S3 read has the rest
        queries_until = None if deadline is None else time.monotonic() + ATHENA_BUDGET_SHARE * max(0.0, deadline - time.monotonic())
        athena = self._try_athena(start, end, queries_until)
        if isinstance(athena, AthenaWindowRead):
            athena.read_reason = reason
            return athena
        read = self._read_s3(start, end, deadline, shared)
        read.athena_error, read.read_reason = athena, f"{reason}; an Athena query failed, so read from S3"
        return read

    def _read_auto(self, start: datetime, end: datetime, deadline: float | None, shared: dict[Any, Any]) -> WindowRead:
        """``drift_athena=auto``: S3 while the window fits the read budget (estimated from its listing first), Athena past it."""
        if deadline is None:  # no budget (a local run): nothing cuts the S3 read short
            read = self._read_s3(start, end, None, shared)
            read.read_reason = "drift_athena=auto: no read budget"
            return read
        s3_budget = (1 - AUTO_ATHENA_SHARE) * max(0.0, deadline - time.monotonic())
        workers = READER_WORKERS
        options = ReadOptions(self.settings.sample_cap)
        estimate = estimate_read(
            self.s3, self.captures, start, end, options, lambda n, size: read_seconds(n, size, workers) > s3_budget, shared=shared
        )
        choice = choose_by_estimate(estimate, s3_budget, workers)
        if choice.athena:
            return self._read_through_athena(start, end, deadline, shared, choice.reason)
        read = self._read_s3(start, end, time.monotonic() + s3_budget, shared)
        read.read_reason = choice.reason
        if not read.partial:
            return read
        athena = self._try_athena(start, end, deadline)
        if isinstance(athena, AthenaWindowRead):
            cut = f"{read.objects_read:,} of {read.objects_listed:,} objects read"
            athena.read_reason = f"drift_athena=auto: the S3 read was cut short by its budget ({cut}), so read through Athena"
            return athena
        read.athena_error = athena
        read.read_reason = f"{choice.reason}; cut short by its budget, and Athena failed too"
        return read

    def windows(self, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
        """(Window label, start) of each window checked for [start, end), the main one first: the
        short window ends at the same time and is checked when it is on and shorter."""
        hours = (end - start).total_seconds() / 3600
        out = [(mn.window_label(hours), start)]
        short = self.settings.short_window_hours
        if 0 < short < hours:
            out.append((mn.window_label(short), end - timedelta(hours=short)))
        return out

    def _check(self, label: str, window: WindowRead, feedback_in: Mapping[RowKey, Any], main: bool) -> DriftRun:
        """Check one window read, publish its metrics and write its report."""
        started = time.perf_counter()
        start, end = window.start, window.end
        joined = feedback_in if isinstance(feedback_in, Labels) else Labels()  # a plain mapping: nothing to report
        conflicting = sorted({r.key for r in window.rows} & joined.conflicting)
        feedback = {r.key: feedback_in[r.key] for r in window.rows if r.key in feedback_in}
        sample = scored_sample(self.checked, window.rows)
        predictions = PredictionColumns(labels=sample.labels, probabilities=sample.probabilities, values=sample.values)
        athena = window if isinstance(window, AthenaWindowRead) else None
        labelled_rows, labels, labelled_predictions = window.rows, {key: record.label for key, record in feedback.items()}, predictions
        if athena is not None and athena.labelled is not None:
            labelled_rows, labels, conflicting = self._athena_labelled(athena, feedback, conflicting)
            every = scored_sample(self.checked, labelled_rows)
            labelled_predictions = PredictionColumns(labels=every.labels, probabilities=every.probabilities, values=every.values)
        # bounded by its object cap (DEFAULT_MAX_REJECT_OBJECTS), not the window's read budget: a window
        # read cut short must still say why requests were refused
        if athena is not None and athena.rejects is not None:
            rejected = athena.rejects  # every refused request's reasons and fields, counted by Athena
        else:
            rejected = read_rejects(self.s3, self.captures, start, end, seed=int(end.timestamp()))
        rejects = reject_counts(window, rejected)
        labeled = self._labeled(labelled_rows, labels, labelled_predictions)
        counts = athena.counts if athena is not None else None
        # contributions: the captured explanations (capture_explanations), for what moved the predictions
        report = self.checker.check(sample.table, predictions, labeled, rejects, sample.contributions, counts=counts)
        metrics = report.metrics() + [
            (mn.CORRUPT_CAPTURE_OBJECTS, float(window.corrupt_objects), None),
            (mn.CAPTURE_READ_ERRORS, float(window.failed_reads), None),
            (mn.PARTIAL_WINDOW, float(window.partial), None),
            (mn.WINDOW_ROWS_ESTIMATED, window.rows_estimated, None),
        ]
        if self.athena is not None:  # published only where Athena is on: its alarm reads a gap as OK
            metrics.append((mn.ATHENA_QUERY_ERRORS, 1.0 if window.athena_error else 0.0, None))
        if window.read_errors:  # a fault of the check, not of the traffic: its own reason in the log and report
            logger.error("capture_read_errors: %d capture objects not read %s", window.failed_reads, window.read_errors)
        self.publish(metrics, end, window=label)
        json_key, html_key = self.report_keys(end, None if main else label)
        document = {
            "model_name": self.manifest.model_name,
            "model_version": self.manifest.version,
            "window": {"start": utc_iso(start), "end": utc_iso(end), "label": label},
            "rows_seen": window.rows_seen,
            "objects_read": window.objects_read,
            "objects_listed": window.objects_listed,
            "partial_window": window.partial,
            "rows_estimated": round(window.rows_estimated),
            "corrupt_objects": window.corrupt_objects,
            "corrupt_keys": window.corrupt_keys,
            "read_errors": window.read_errors,
            "read_by": "athena" if athena is not None else "s3",
            "read_reason": window.read_reason,
            **({"athena": athena_section(athena)} if athena is not None else {}),
            **({"athena_error": window.athena_error} if window.athena_error else {}),
            "reject_objects_read": rejected.objects_read,
            "corrupt_reject_objects": rejected.corrupt_objects,
            "excluded_features": sorted(set(self.settings.redact_features) | set(self.settings.hash_features)),
            # labels the performance check could not take plainly (docs/capture.md#feedback-ground-truth)
            "labels": {
                "labeled_rows": len(labels),
                "conflicting": len(conflicting),
                "conflicting_rows": [list(k) for k in conflicting[:20]],
                "unmatched": joined.unmatched,
            },
            "seconds": round(time.perf_counter() - started, 3),
            "report": report.to_dict(),
        }
        sections: list[tuple[str, str]] = []
        if self.manifest.outputs.task is Task.CLASSIFICATION:
            audit = audit_agreement(window.rows, feedback, AUDIT_SOURCE)
            document["audit"] = audit.to_dict()
            sections.append(("Manual audit", audit.html()))
        body = json.dumps(document, allow_nan=False, indent=1).encode()
        title = f"Drift report: {self.manifest.model_name} {self.manifest.version}, {utc_iso(start)} to {utc_iso(end)} ({label} window)"
        html = render_html(report, self.profile, title=title, extra_sections=sections).encode()
        self._put(json_key, body, "application/json")
        self._put(html_key, html, "text/html; charset=utf-8")
        return DriftRun(
            start,
            end,
            window,
            report,
            json_key,
            html_key,
            metrics,
            labeled_rows=len(labels),
            window_label=label,
            rejects=rejects,
            conflicting_labels=len(conflicting),
            unmatched_labels=joined.unmatched,
        )

    def report_keys(self, at: datetime, window: str | None = None) -> tuple[str, str]:
        """(JSON, HTML) keys of the run ending at ``at``; a challenger's name its version; a window
        besides the main one (``window``: its label) names it."""
        m = self.manifest

        def key(suffix: str) -> str:
            if self.challenger:
                return version_report_key(m.model_name, m.version, at, f"w{window}.{suffix}" if window else suffix).replace(
                    f".w{window}.", f"-w{window}."
                )
            return window_report_key(m.model_name, at, window, suffix) if window else report_key(m.model_name, at, suffix)

        return key("json"), key("html")

    def verdict_event(self, run: DriftRun) -> VerdictEvent:
        """What subscribers learn of one run: the headline verdicts, the flagged findings (most telling
        first) and where the reports are."""
        report = run.report
        features = report.features
        # FeatureDriftSummary.verdicts(): the dataset verdict, then one per feature; the features go
        # into the findings with their statistics, not one verdict each
        feature_verdicts = features.verdicts() if features is not None else []
        per_feature = {v.check for v in feature_verdicts[1:]}
        headline = [v for v in report.verdicts() if v.verdict is not None and v.check not in per_feature]
        findings: list[str] = []
        if features is not None:
            for r in sorted((r for r in features.results if r.is_drift), key=lambda r: -r.effect_size):
                findings.append(
                    f"{r.feature}: {r.effect_measure or 'effect'} {r.effect_size:.3g} (threshold {r.effect_threshold:.3g}), "
                    f"{r.test} p={r.p_value_corrected:.2g} corrected"
                )
        dataset_check = feature_verdicts[0].check if feature_verdicts else None
        findings += [f"{v.check}: {v.detail}" if v.detail else v.check for v in headline if v.verdict and v.check != dataset_check]
        return VerdictEvent(
            window_label=run.window_label,
            root_cause=report.summary,
            deployment=self.deployment,
            model_name=self.manifest.model_name,
            model_version=self.manifest.version,
            window_start=utc_iso(run.start),
            window_end=utc_iso(run.end),
            window_rows=report.window_rows,
            dataset_drift=report.dataset_drift,
            verdicts={v.check: bool(v.verdict) for v in headline},
            findings=tuple(findings),
            report_json=f"s3://{self.bucket}/{run.json_key}",
            report_html=f"s3://{self.bucket}/{run.html_key}",
        )

    def _write_audit_sample(self, rows: Sequence[CaptureRecord], end: datetime) -> None:
        """The day's audit sample from this window; each check of the day rewrites it, so the day's
        file is the last window's (24 h of traffic with the default window)."""
        size = self.settings.audit_sample_rows
        if not size or not rows:
            return
        classifier = self.manifest.outputs.task is Task.CLASSIFICATION
        selected = select_audit_rows(rows, size, classifier, seed=int(end.timestamp()))
        features = [n for n in self.manifest.feature_names if n not in set(self.settings.redact_features)]  # not captured
        csv_body, jsonl_body = audit_files(rows, selected, features)
        day = end.astimezone(UTC).date()
        self._put(audit_key(self.manifest.model_name, day, "csv"), csv_body, "text/csv; charset=utf-8")
        self._put(audit_key(self.manifest.model_name, day, "jsonl"), jsonl_body, "application/x-ndjson")

    @staticmethod
    def _athena_labelled(
        read: AthenaWindowRead, sampled: Mapping[RowKey, FeedbackRecord], conflicting: list[RowKey]
    ) -> tuple[list[CaptureRecord], dict[RowKey, Any], list[RowKey]]:
        """The performance check's rows through Athena: every labelled row of the window (the join), and the
        sample's rows labelled only under the receipt layout (unverified labels, or labels written before the
        prediction-hour layout), which the feedback table does not hold."""
        joined = read.labelled or []
        labels: dict[RowKey, Any] = {key: record.label for key, record in read.labels.items()}
        by_receipt = [r for r in read.rows if r.key in sampled and r.key not in labels]
        labels.update({r.key: sampled[r.key].label for r in by_receipt})
        in_conflict = sorted(set(conflicting) | read.labels.conflicting)
        return [*joined, *by_receipt], labels, in_conflict

    def _labeled(
        self, rows: Sequence[CaptureRecord], labels: Mapping[RowKey, Any], predictions: PredictionColumns
    ) -> LabeledPredictions | None:
        idx = [i for i, r in enumerate(rows) if r.key in labels]
        if not idx:
            return None
        y = [labels[rows[i].key] for i in idx]
        sel = np.array(idx)
        if self.manifest.outputs.task is Task.CLASSIFICATION:
            sub = PredictionColumns(
                labels=predictions.labels[sel] if predictions.labels is not None else None,
                probabilities=predictions.probabilities[sel] if predictions.probabilities is not None else None,
            )
            return LabeledPredictions(label_texts(y), sub)  # 1.0 and "1" are the same class
        sub = PredictionColumns(values=predictions.values[sel] if predictions.values is not None else None)
        return LabeledPredictions(np.array(y, dtype=np.float64), sub)

    def publish(self, metrics: list[tuple[str, float, str | None]], timestamp: datetime, window: str | None = None) -> None:
        """``window``: the label of the window the metrics describe (dimension ``Window``)."""
        data = []
        for name, value, feature in metrics:
            if value is None or not np.isfinite(value):
                continue  # CloudWatch rejects NaN; a missing point is what alarms treat per their setting
            dims = list(self.dimensions)
            if window is not None:
                dims.append({"Name": mn.DIM_WINDOW, "Value": window})
            if feature is not None:
                dims.append({"Name": mn.DIM_FEATURE, "Value": feature})
            data.append(
                {"MetricName": name, "Dimensions": dims, "Value": float(value), "Timestamp": timestamp, "Unit": mn.CATALOGUE.unit(name)}
            )
            if name in DEPLOYMENT_WIDE_METRICS and not self.challenger:
                wide = [d for d in dims if d["Name"] != mn.DIM_MODEL_VERSION]
                data.append(
                    {"MetricName": name, "Dimensions": wide, "Value": float(value), "Timestamp": timestamp, "Unit": mn.CATALOGUE.unit(name)}
                )
        for i in range(0, len(data), CLOUDWATCH_BATCH):
            self.cloudwatch.put_metric_data(Namespace=self.settings.metrics_namespace, MetricData=data[i : i + CLOUDWATCH_BATCH])

    def _put(self, key: str, body: bytes, content_type: str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        if self.write_local is not None:
            self.write_local(key, body)
