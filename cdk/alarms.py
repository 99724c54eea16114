"""The one definition of the template's CloudWatch alarms.

Pure Python (no CDK, no AWS calls, no numpy: importing it loads only the settings and the metric
catalogue): the alerting construct (``cdk/alerting.py``) turns every ``AlarmSpec`` into a
``cloudwatch.Alarm``, and a local demo uses ``evaluate`` on the same specs to print what the
alarms would say about a drift report. Thresholds live in ``Settings``; nothing here or in
``cdk/`` copies them.

Adding an alarm: one alarm definition registered with ``register_alarms`` (a function of the
``AlarmContext`` calling ``ctx.add`` once per alarm), on a metric of the catalogue
(``modelserve/metric_catalogue.py``, ``pages=True``) or an AWS metric, plus its section in
``docs/runbook.md`` (the recipe: docs/development.md, section Extending).

Metric sources (``AlarmSpec.source``):
- ``model``: ``settings.metrics_namespace`` with dimensions ModelName + ModelVersion + Deployment
  (the stack name; the drift check's metrics and the inference function's EMF metrics). NoTraffic
  reads the deployment's WindowRows without ModelVersion, so a deploy starts no empty series;
- ``api``: ``AWS/ApiGateway`` with dimensions ApiName + Stage of the serving stage;
- ``inference``: ``AWS/Lambda``, FunctionName of the inference function;
- ``drift_check``: ``AWS/Lambda``, FunctionName of the drift-check function;
- ``firehose``: ``AWS/Firehose``, DeliveryStreamName of the capture stream (``capture_sink=firehose`` or ``logs``);
- ``logs``: ``AWS/Logs``, the capture-line subscription filter (LogGroupName, DestinationType, FilterName;
  ``capture_sink=logs``).
The CDK side fills in the AWS dimensions (resource names are only known there): the construct that
owns a source gives the metric (``alarm_metric``; ``cdk/alerting.py: MetricSource``).

Timing: alarms on what the drift check publishes take their period from ``drift_schedule``
(``drift_timing``): the longest gap between two checks, so every period holds a check.

Windows: the drift check publishes each metric once per window it checks (dimension ``Window``:
the main ``window_hours`` window, "24h", and the ``short_window_hours`` one, "1h"). An alarm on a
drift-check metric (``AlarmSpec.windows``) watches the larger of its windows' values (metric math
``MAX``, each window gated by its own row count first): a shift in either window is one alarm,
not two (``evaluate_windows`` is the same rule for the local demo).

Pages: each alarm belongs to a cause family (``AlarmSpec.family``: input data, model outputs and
performance, capture pipeline, service, challenger; an alarm on the model namespace takes its
metric's family from the catalogue). The family's composite alarm notifies; its
children do not (``cdk/alerting.py``), so nulls rising in two features that also push the outlier
rate and a drift verdict page once, as "input data", and the notification points to the report's
root-cause line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from modelserve import metric_catalogue as mc
from modelserve.metric_catalogue import Family
from modelserve.records import model_report_prefix
from modelserve.settings import Settings, SettingsError

Source = Literal["model", "api", "inference", "drift_check", "firehose", "logs"]
Comparison = Literal[
    "GreaterThanThreshold",
    "GreaterThanOrEqualToThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
    # an anomaly-detection alarm (``AlarmSpec.anomaly_band``): below the band CloudWatch learned from the metric's history
    "LessThanLowerThreshold",
]
TreatMissing = Literal["breaching", "notBreaching", "ignore", "missing"]
State = Literal["ALARM", "OK", "INSUFFICIENT_DATA"]
# How urgent a page is: critical wakes someone (requests failing, traffic lost, the monitoring itself blind,
# the model measurably worse); warning is for working hours (a share of clients refused, data quality, latency).
# Each family has one composite per severity, so a critical failure pages even while a warning of its family is open.
Severity = Literal["critical", "warning"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning")

AWS_NAMESPACES: dict[str, str] = {
    "api": "AWS/ApiGateway",
    "inference": "AWS/Lambda",
    "drift_check": "AWS/Lambda",
    "firehose": "AWS/Firehose",
    "logs": "AWS/Logs",
}
# the 4xx share counts only periods with at least this many requests: one rejected request of two is no page
API_4XX_MIN_REQUESTS = 20
# where the runbook lives (relative to the repository root; one section per alarm, anchored by runbook_anchor)
RUNBOOK_DOC = "docs/runbook.md"

# Group of an alarm: "model" alarms (data and model quality) roll up into the composite
# "model health" alarm; "service" alarms (API, Lambda) also drive the CodeDeploy rollback.
# "comparison": the champion-vs-challenger alarm (docs/versions.md), about the challenger, so neither.
Group = Literal["model", "service", "comparison"]
# Cause family of an alarm (``modelserve.metric_catalogue.Family``): one composite alarm per family
# notifies (cdk/alerting.py), so one cause that trips several alarms of its family pages once. An alarm
# on the model namespace takes its metric's family from the catalogue; an alarm on an AWS metric names
# its own, or takes its group's.
FAMILY_TITLES: dict[str, str] = {
    "input_data": "Input data changed (drift, missing values, ranges, new categories, outliers, data quality)",
    "model_output": "Model outputs or performance changed (prediction drift, performance, estimated accuracy, target drift)",
    "pipeline": "Capture or monitoring pipeline broken (no traffic, capture, metrics, drift-check or Firehose errors)",
    "service": "Serving degraded (API errors, latency, throttles, rejected clients, traffic)",
    "challenger": "Challenger worse than the champion",
}
_GROUP_FAMILY: dict[str, Family] = {"model": "input_data", "service": "service", "comparison": "challenger"}
# An alarm whose cause another family's alarm already pages for: while any of those is in ALARM, it
# adds nothing to its own family's page. Every request refused leaves no scored row, so NoTraffic
# (pipeline) would page a second time for what RejectRate (input data) says.
# A denied read empties the window too: NoTraffic would send the engineer to check API traffic, while
# CaptureReadErrors names the fault. A failing drift check publishes no rows at all: DriftCheckErrors names it
# (without this, NoTraffic would re-notify "also firing" inside the page the failing check opened).
PAGED_BY: dict[str, tuple[str, ...]] = {"NoTraffic": ("RejectRate", "CaptureReadErrors", "DriftCheckErrors")}


# A canary CodeDeploy rolls back is a deployment event, not a page: the pages of these families are held back
# (CloudWatch ActionsSuppressor) while the canary alarm (``CanaryWatch``) is in ALARM, and for its extension after.
SUPPRESSED_BY_CANARY: tuple[Family, ...] = ("service",)


@dataclass(frozen=True)
class CanaryWatch:
    """The "canary failing" alarm (built by ``cdk/canary.py``, evaluated by the page simulator): ALARM while a new
    version gets a canary share of the ``live`` alias's invocations (more than none, under ``max_share``) and more
    than ``error_share`` of its own invocations fail; two one-minute periods in a row, so it is in ALARM a minute
    before the service alarms (3 of 5 minutes) and suppresses their page. After a promotion (share 1) and after a
    rollback (no invocations of that version) it is OK: in steady state it cannot hold back a real outage.

    ``suppressor_wait_s``: how long a service page waits for this alarm to enter ALARM before notifying; 0, the
    least CloudFormation allows (``AWS::CloudWatch::CompositeAlarm`` schema: minimum 0), so a page outside a
    deployment is not delayed (a lost-traffic page is promised within 15 minutes). ``suppressor_extension_s``:
    how long the page stays held after this alarm leaves ALARM (the rollback done), a little more than the
    service alarms take to clear once the errors stop (3 clean minutes of 5) plus the metrics' delivery delay;
    a failure still there after it (the previous version failing too) pages then."""

    error_share: float
    id: str = "CanaryFailing"
    period_s: int = 60
    evaluation_periods: int = 2
    datapoints_to_alarm: int = 2
    max_share: float = 0.99
    suppressor_wait_s: int = 0
    suppressor_extension_s: int = 300

    def failing(self, invocations: float, alias_invocations: float, failures: float) -> bool:
        """One period's datapoint (the alarm's metric math: each comparison 1 or 0, their product): the new version
        had invocations, under ``max_share`` of the alias's, and more than ``error_share`` of them failed."""
        return 0 < invocations < self.max_share * alias_invocations and failures > self.error_share * invocations


def canary_watch(settings: Settings) -> CanaryWatch:
    """The canary alarm of a stack: a new version fails when its error share passes the API's 5xx threshold."""
    return CanaryWatch(error_share=settings.api_5xx_rate)


def runbook_link(settings: Settings, anchor: str) -> str:
    """Where a page sends the reader for one section: the anchor under ``runbook_base_url`` when the team set
    where it reads the runbook, else under the repository path ``RUNBOOK_DOC``."""
    base = settings.runbook_base_url
    return f"{base}#{anchor}" if base else f"{RUNBOOK_DOC}#{anchor}"


def paging(spec_id: str, states: Mapping[str, str]) -> bool:
    """Whether an alarm in ALARM adds to its family's page, given every alarm's state (the rule the
    family's composite alarm carries, cdk/alerting.py)."""
    return states.get(spec_id) == "ALARM" and not any(states.get(o) == "ALARM" for o in PAGED_BY.get(spec_id, ()))


def page_name(family: str, severity: Severity) -> str:
    """The name suffix of a family's composite alarm of one severity: "Page-service" (critical),
    "Warning-Page-service" (warning)."""
    page = f"Page-{family.replace('_', '-')}"
    return page if severity == "critical" else f"Warning-{page}"


def page_anchor(family: str) -> str:
    """The runbook section of a family's page (its composite alarm), e.g. "alarm-page-input-data"."""
    return f"alarm-page-{family.replace('_', '-')}"


@dataclass(frozen=True)
class AlarmSpec:
    id: str  # construct id and alarm name suffix, e.g. "DatasetDrift"
    metric_name: str
    source: Source
    namespace: str  # resolved: settings.metrics_namespace, AWS/ApiGateway or AWS/Lambda
    statistic: str  # "Maximum", "Minimum", "Sum", "Average" or a percentile like "p99"
    period_s: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: Comparison
    treat_missing_data: TreatMissing
    description: str
    runbook_anchor: str  # HTML anchor of its section in RUNBOOK_DOC, e.g. "alarm-dataset-drift"
    group: Group
    family: Family  # the cause family whose composite alarm notifies for this alarm
    rollback: bool = False  # a CodeDeploy canary rolls back when this alarm fires
    # rate alarms only count windows of at least this many rows (WindowRows); below it a share of a
    # handful of rows is noise, and the report's own verdicts add a sampling margin there instead
    min_window_rows: int = 0
    dimensions: dict[str, str] = field(default_factory=dict)  # filled for source == "model"
    # a period without a datapoint takes the last published value (metric math FILL(m, REPEAT)):
    # a check that is late, or the days between checks of a sparse schedule, don't read as missing
    repeat_last_value: bool = False
    # api alarms on a share only: periods with fewer requests (AWS/ApiGateway Count) count as 0
    min_requests: int = 0
    # drift-check metrics: the Window dimension values read (added to ``dimensions``); the alarm
    # watches the larger value over them (see the module docstring). Empty: no Window dimension.
    windows: tuple[str, ...] = ()
    # pages (through its family's composite alarm) or informs (the non-paging topic): drift without a
    # performance impact informs unless page_on_drift
    pages: bool = True
    # an anomaly-detection alarm: ``threshold`` is the band's width in standard deviations of the metric's own
    # recent pattern (CloudWatch ANOMALY_DETECTION_BAND), not a value
    anomaly_band: bool = False
    # a period without a datapoint counts as 0 (metric math FILL(m, 0)): AWS/ApiGateway publishes no Count
    # for a period without requests, and "no requests" is what a traffic alarm is for
    missing_as_zero: bool = False
    # the gateway's refusals for access (403, 404, 429, counted from the access log: a scanner, a client without a key
    # or over its quota) are subtracted: from the 4xx count (with ``minus_validation_rejects``), or from the request
    # count (``missing_as_zero``: traffic served, so a deleted key's 403 storm is lost traffic, not traffic)
    minus_access_refusals: bool = False
    # critical or warning (``Severity``): which of its family's two composites it pages through
    severity: Severity = "warning"
    # api 4xx only: the function's own validation refusals (ValidationRejects, which RejectRate pages for) are
    # subtracted from the gateway's 4XXError count, leaving auth, throttling and unknown routes
    minus_validation_rejects: bool = False

    def window_dimensions(self) -> list[tuple[str, dict[str, str]]]:
        """(Window label, dimensions) of each series the alarm reads; one ("", dimensions) without windows."""
        if not self.windows:
            return [("", dict(self.dimensions))]
        return [(w, {**self.dimensions, mc.DIM_WINDOW: w}) for w in self.windows]


_SCHEDULE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
_WEEK_MIN = 7 * 24 * 60
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
# CloudWatch: a period is at most one day; period x evaluation periods at most one day for periods
# under an hour, at most seven days otherwise
MAX_PERIOD_S = 86400
MAX_RANGE_S_SHORT, MAX_RANGE_S = 86400, 7 * 86400


def _schedule_error(schedule: str, why: str) -> SettingsError:
    return SettingsError(f"invalid settings:\n  setting 'drift_schedule' = {schedule!r}: {why}")


def _cron_values(field_: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    """The values one cron field allows: ``*``, ``n``, ``a-b``, lists, and ``/step`` on any of them."""
    out: set[int] = set()
    for part in field_.split(","):
        base, _, step_s = part.partition("/")
        step = int(step_s) if step_s else 1
        if base in ("*", "?"):
            first, last = low, high
        else:
            bounds = [(names or {}).get(b.upper()) or int(b) for b in base.split("-")]
            first = bounds[0]
            last = bounds[1] if len(bounds) == 2 else (high if step_s else first)  # "5/10": from 5 on
        if step < 1 or not low <= first <= last <= high:
            raise ValueError(f"{part!r} is outside {low}-{high}")
        out.update(range(first, last + 1, step))
    return out


def _cron_gap_s(schedule: str, body: str) -> int:
    fields = body.split()
    if len(fields) != 6:
        raise _schedule_error(schedule, "an EventBridge cron has 6 fields: minutes hours day-of-month month day-of-week year")
    minutes, hours, dom, month, dow, year = fields
    if dom not in ("*", "?") or month != "*" or year != "*":
        raise _schedule_error(
            schedule,
            "the alarms need the longest time between two drift checks, known for schedules that repeat every week; "
            "use '*' or '?' for day-of-month and '*' for month and year (days of the week may be listed)",
        )
    try:
        mins, hrs = _cron_values(minutes, 0, 59), _cron_values(hours, 0, 23)
        days = _cron_values(dow, 1, 7, _DAYS)
    except ValueError as e:  # also L, W, # and names that are not days
        raise _schedule_error(schedule, f"cannot read the cron fields ({e})") from None
    firings = sorted((d - 1) * 1440 + h * 60 + m for d in days for h in hrs for m in mins)
    gaps = [b - a for a, b in zip(firings, firings[1:])] + [firings[0] + _WEEK_MIN - firings[-1]]  # the week wraps
    return max(gaps) * 60


def schedule_gap_s(schedule: str) -> int:
    """The longest time between two drift checks, in seconds, for ``rate(...)`` or a weekly ``cron(...)``.

    Raises ``SettingsError`` (naming ``drift_schedule``) for what can't be bounded that way.
    """
    expr = schedule.strip()
    if m := re.fullmatch(r"rate\(\s*(\d+)\s+([a-z]+)\s*\)", expr):
        if m.group(2) not in _SCHEDULE_UNITS or int(m.group(1)) < 1:
            raise _schedule_error(schedule, "a rate is a positive number of minutes, hours or days")
        return int(m.group(1)) * _SCHEDULE_UNITS[m.group(2)]
    if m := re.fullmatch(r"cron\((.*)\)", expr):
        return _cron_gap_s(schedule, m.group(1))
    raise _schedule_error(schedule, "must be rate(...) or cron(...)")


@dataclass(frozen=True)
class DriftTiming:
    """How alarms read metrics the drift check publishes once per run."""

    period_s: int  # alarm period: the longest gap between checks (rounded up to a minute), at most a day
    periods_per_gap: int  # periods that together always hold a check: 1, or more when checks are days apart
    no_data_periods: int  # periods NoTraffic evaluates: two checks' worth where CloudWatch allows it


def drift_timing(schedule: str) -> DriftTiming:
    """Alarm periods derived from the schedule. Checks more than a day apart are read over several
    one-day periods (CloudWatch's longest); more than seven days apart can't be alarmed on: rejected."""
    gap = schedule_gap_s(schedule)
    period = min(MAX_PERIOD_S, -(-gap // 60) * 60)
    per_gap = -(-gap // period)
    max_periods = (MAX_RANGE_S if period >= 3600 else MAX_RANGE_S_SHORT) // period
    if per_gap > max_periods:
        raise _schedule_error(
            schedule,
            f"drift checks up to {gap / 86400:g} days apart: a CloudWatch alarm looks back at most 7 days, "
            "so it could not tell a missed check from a quiet week; schedule a check at least every 7 days",
        )
    return DriftTiming(period, per_gap, min(2 * per_gap, max_periods))


def schedule_period_s(schedule: str) -> int:
    """The alarm period of metrics the drift check publishes (see ``drift_timing``)."""
    return drift_timing(schedule).period_s


@dataclass
class AlarmContext:
    """What an alarm definition builds its specs from: the settings, the deployed model and the drift
    check's timing. ``add`` appends one spec; an alarm definition is a function of the context
    registered with ``register_alarms``."""

    settings: Settings
    model_name: str
    model_version: str
    reports: str  # s3://<bucket>/<the model's report prefix>: where every alarm sends the reader first
    dims: dict[str, str]  # ModelName + ModelVersion (+ Deployment): the model namespace's dimensions
    # the same metric across model versions: a deploy starts a new version's series with no datapoint
    # until its first drift check, which must not read as "missing"
    deployment_dims: dict[str, str]
    timing: DriftTiming
    windows: tuple[str, ...]  # Window labels the drift check publishes, the main one first
    span: str  # "the last 24 h (or the last 1 h)": what the drift alarms' descriptions say they read
    challenger_version: str | None = None
    specs: list[AlarmSpec] = field(default_factory=list)

    @property
    def drift(self) -> dict[str, Any]:
        """The timing of an alarm on a drift-check metric: published once per schedule period; a missing
        datapoint keeps the state ("ignore": an empty window or a failed run has its own alarms); checks
        further apart than a day span several one-day periods, any one breaching datapoint in them counts."""
        t = self.timing
        return dict(period_s=t.period_s, treat_missing="ignore", evaluation_periods=t.periods_per_gap, windows=self.windows)

    @property
    def drift_verdict(self) -> dict[str, Any]:
        """A drift or performance verdict of the drift check: like ``drift``, and when it pages it must hold in
        ``drift_page_checks`` checks in a row (a one-check blip of a statistical test is no page)."""
        return {**self.drift, **self.confirmed(True)}

    @property
    def drift_inform(self) -> dict[str, Any]:
        """Drift without a performance impact: informs (the non-paging topic) unless ``page_on_drift``."""
        pages = bool(self.settings.page_on_drift)
        return {**self.drift, **self.confirmed(pages), "pages": pages}

    def confirmed(self, pages: bool) -> dict[str, Any]:
        """Evaluation of a paging verdict over ``drift_page_checks`` consecutive checks; {} when it informs."""
        n = int(self.settings.drift_page_checks)
        if not pages or n <= 1:
            return {}
        return dict(evaluation_periods=self.timing.periods_per_gap * n, datapoints_to_alarm=n)

    def add(
        self,
        id: str,
        metric_name: str,
        source: Source,
        statistic: str,
        threshold: float,
        comparison: Comparison,
        what: str,
        todo: str,
        anchor: str,
        group: Group,
        *,
        period_s: int,
        family: Family | None = None,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int = 1,
        treat_missing: TreatMissing = "notBreaching",
        rollback: bool = False,
        min_window_rows: int = 0,
        dimensions: dict[str, str] | None = None,
        repeat_last_value: bool = False,
        min_requests: int = 0,
        windows: tuple[str, ...] = (),
        pages: bool = True,
        missing_as_zero: bool = False,
        minus_validation_rejects: bool = False,
        minus_access_refusals: bool = False,
        severity: Severity = "warning",
    ) -> None:
        """One alarm. ``family``: its cause family; for the model namespace it is its metric's in the
        catalogue (``modelserve/metric_catalogue.py``), which must say the metric pages. ``pages``: False
        for an alarm that informs (the non-paging topic) instead of paging."""
        if min_window_rows:
            what = f"{what[:-1]} (windows of at least {min_window_rows} rows)."
        if min_requests:
            what = f"{what[:-1]} (periods of at least {min_requests} requests)."
        model = source == "model"
        self.specs.append(
            AlarmSpec(
                id=id,
                metric_name=metric_name,
                source=source,
                namespace=self.settings.metrics_namespace if model else AWS_NAMESPACES[source],
                statistic=statistic,
                period_s=period_s,
                evaluation_periods=evaluation_periods,
                datapoints_to_alarm=datapoints_to_alarm,
                threshold=float(threshold),
                comparison=comparison,
                treat_missing_data=treat_missing,
                description=(
                    f"{what} Model {self.model_name} version {self.model_version}. "
                    f"Latest drift report: {self.reports} . {todo} Runbook: {runbook_link(self.settings, anchor)}"
                ),
                runbook_anchor=anchor,
                group=group,
                family=_family(id, metric_name, source, group, family),
                rollback=rollback,
                dimensions=dict(dimensions or self.dims) if model else {},
                repeat_last_value=repeat_last_value,
                min_window_rows=min_window_rows,
                min_requests=min_requests,
                windows=windows if model else (),
                pages=pages,
                anomaly_band=comparison == "LessThanLowerThreshold",
                missing_as_zero=missing_as_zero,
                minus_validation_rejects=minus_validation_rejects,
                minus_access_refusals=minus_access_refusals,
                severity=severity,
            )
        )


def _family(id: str, metric_name: str, source: Source, group: Group, family: Family | None) -> Family:
    """An alarm's cause family: the given one, else its metric's (model namespace), else its group's."""
    if source != "model":
        return family or _GROUP_FAMILY[group]
    entry = mc.CATALOGUE[metric_name]  # KeyError names the catalogue: add the metric there first
    if not entry.pages:
        raise ValueError(f"alarm {id} reads {metric_name}, which the metric catalogue says does not page (pages=False)")
    if family is not None and family != entry.family:
        raise ValueError(f"alarm {id}: family {family!r}, but its metric {metric_name} is {entry.family!r} in the catalogue")
    return entry.family


AlarmDefinition = Callable[[AlarmContext], None]
# the alarm definitions, in the order their specs are listed (and their families' composites built)
_DEFINITIONS: list[AlarmDefinition] = []


def register_alarms(definition: AlarmDefinition) -> AlarmDefinition:
    """Add an alarm definition (a function calling ``ctx.add`` for each of its alarms); usable as a
    decorator. Every stack and the local demo build its alarms from the registered definitions."""
    _DEFINITIONS.append(definition)
    return definition


def unregister_alarms(definition: AlarmDefinition) -> None:
    """Remove a definition (tests that register a toy alarm clean up with this)."""
    _DEFINITIONS.remove(definition)


def alarm_specs(
    settings: Settings,
    model_name: str,
    model_version: str,
    bucket_name: str = "<capture bucket>",
    deployment: str | None = None,
    challenger_version: str | None = None,
) -> list[AlarmSpec]:
    """Every alarm of the template for one deployed model version: the registered definitions' specs.

    ``deployment`` (the stack name): the Deployment dimension the functions add to every metric, so
    two stacks of one model never read each other's metrics. Raises ``SettingsError`` for a
    ``drift_schedule`` the alarms can't be timed on (see ``drift_timing``).
    """
    s = settings
    dims = {mc.DIM_MODEL_NAME: model_name, mc.DIM_MODEL_VERSION: model_version}
    if deployment:
        dims[mc.DIM_DEPLOYMENT] = deployment
    windows = tuple(label for label, _ in mc.drift_windows(s.window_hours, s.short_window_hours))
    ctx = AlarmContext(
        settings=s,
        model_name=model_name,
        model_version=model_version,
        reports=f"s3://{bucket_name}/{model_report_prefix(model_name)}",
        dims=dims,
        deployment_dims={k: v for k, v in dims.items() if k != mc.DIM_MODEL_VERSION},
        timing=drift_timing(s.drift_schedule),
        windows=windows,
        span=f"the last {s.window_hours} h" + (f" (or the last {s.short_window_hours} h)" if len(windows) > 1 else ""),
        challenger_version=challenger_version,
    )
    for definition in _DEFINITIONS:
        definition(ctx)
    return ctx.specs


# ---------------------------------------------------------------- the template's alarms


@register_alarms
def _input_and_output_drift(ctx: AlarmContext) -> None:
    """Model and data quality: published by the drift check once per schedule period."""
    s, span = ctx.settings, ctx.span
    ctx.add(
        "DatasetDrift",
        mc.DATASET_DRIFT,
        "model",
        "Maximum",
        1,
        "GreaterThanOrEqualToThreshold",
        (
            f"Dataset drift: at least {s.drift_share_threshold:.0%} of the features drifted"
            if s.drift_share_threshold > 0
            else "Dataset drift: at least one feature drifted"
        )
        + f" (alpha {s.alpha}, {s.p_value_correction}) in {span} of captures.",
        "Check which features drifted (report, dashboard p-values) and whether the input source changed; "
        "retrain on recent captures if the change is real.",
        "alarm-dataset-drift",
        "model",
        **ctx.drift_inform,
    )
    ctx.add(
        "PredictionDrift",
        mc.PREDICTION_DRIFT,
        "model",
        "Maximum",
        1,
        "GreaterThanOrEqualToThreshold",
        f"Prediction drift: the distribution of the model's outputs moved (alpha {s.alpha}) in {span}.",
        "Compare the prediction histogram in the report with the reference; check feedback performance.",
        "alarm-prediction-drift",
        "model",
        **ctx.drift_inform,
    )
    ctx.add(
        "OutlierRate",
        mc.OUTLIER_RATE,
        "model",
        "Maximum",
        s.outlier_rate_threshold,
        "GreaterThanThreshold",
        f"Outlier rate above {s.outlier_rate_threshold:.1%} of the rows in {span}.",
        "Compare the feature histograms in the report and query the window's captures in Athena for the unusual rows; "
        "find the client or feature producing them.",
        "alarm-outlier-rate",
        "model",
        **ctx.drift_inform,
        min_window_rows=s.alarm_min_window_rows,
    )


@register_alarms
def _data_quality(ctx: AlarmContext) -> None:
    """The schema's expectations and the requests validation refused."""
    s, span, drift = ctx.settings, ctx.span, ctx.drift
    ctx.add(
        "MissingRate",
        mc.MISSING_RATE,
        "model",
        "Maximum",
        s.missing_rate_threshold,
        "GreaterThanThreshold",
        f"Missing values rose by more than {s.missing_rate_threshold:.1%} over the reference in {span}.",
        "Find the feature with the most new nulls in the report; check the upstream producer of that field.",
        "alarm-missing-rate",
        "model",
        **drift,
        min_window_rows=s.alarm_min_window_rows,
    )
    ctx.add(
        "OutOfRangeRate",
        mc.OUT_OF_RANGE_RATE,
        "model",
        "Maximum",
        s.out_of_range_threshold,
        "GreaterThanThreshold",
        f"More than {s.out_of_range_threshold:.1%} of numeric values fall outside the training range in {span}.",
        "Check units and scaling of the features flagged in the report.",
        "alarm-out-of-range-rate",
        "model",
        **drift,
        min_window_rows=s.alarm_min_window_rows,
    )
    ctx.add(
        "UnseenCategoryRate",
        mc.UNSEEN_CATEGORY_RATE,
        "model",
        "Maximum",
        s.unseen_category_threshold,
        "GreaterThanThreshold",
        f"More than {s.unseen_category_threshold:.1%} of categorical values were not seen in training "
        f"(policy: {s.unseen_category_policy}).",
        "List the new categories in the report; map them or retrain with them.",
        "alarm-unseen-category-rate",
        "model",
        **drift,
        min_window_rows=s.alarm_min_window_rows,
    )
    ctx.add(
        "DataQualityFailures",
        mc.DATA_QUALITY_FAILURES,
        "model",
        "Maximum",
        0,
        "GreaterThanThreshold",
        f"Data-quality expectations of the bundle's schema failed on {span} (types, ranges, categories, nulls).",
        "The report lists each failed expectation with its share and threshold; query the captures in Athena for the rows, "
        "then fix the producer or retrain with the new schema.",
        "alarm-data-quality-failures",
        "model",
        **drift,
    )
    ctx.add(
        "RejectRate",
        mc.REJECT_RATE,
        "model",
        "Maximum",
        s.reject_rate_threshold,
        "GreaterThanThreshold",
        f"More than {s.reject_rate_threshold:.0%} of the requests of {span} were refused by validation "
        f"(422: nulls, unseen categories, wrong types; windows of at least {s.reject_min_requests} requests).",
        "The report's root-cause line and its rejects section name the field and reason behind most refusals; fix the "
        "upstream producer of that field (or the schema / unseen_category_policy if the new data is right).",
        "alarm-reject-rate",
        "model",
        **drift,
    )


@register_alarms
def _pipeline(ctx: AlarmContext) -> None:
    """Traffic reaching the drift check, captures, metrics and the drift check itself."""
    s, timing = ctx.settings, ctx.timing
    ctx.add(
        "NoTraffic",
        mc.WINDOW_ROWS,
        "model",
        "Minimum",
        1,
        "LessThanThreshold",
        f"No captured rows in the last {s.window_hours} h (or the drift check published nothing).",
        "Check API traffic on the dashboard, capture_sampling, CaptureErrors and the drift-check logs.",
        "alarm-no-traffic",
        "model",
        period_s=timing.period_s,
        treat_missing=s.empty_window_alarm,
        # every period of two checks' worth must be empty: one late check is no page; rows of every
        # version of this deployment, so a deploy is no gap either
        evaluation_periods=timing.no_data_periods,
        datapoints_to_alarm=timing.no_data_periods,
        dimensions={**ctx.deployment_dims, mc.DIM_WINDOW: ctx.windows[0]},
        repeat_last_value=True,
        severity="critical",
    )
    ctx.add(
        "CaptureErrors",
        mc.CAPTURE_ERRORS,
        "model",
        "Sum",
        0,
        "GreaterThanThreshold",
        "The inference function failed to write captures (requests were still answered).",
        "Search the inference logs for the capture error; check the bucket policy / Firehose stream.",
        "alarm-capture-errors",
        "model",
        period_s=300,
        severity="critical",
    )
    ctx.add(
        "CaptureDropped",
        mc.CAPTURE_DROPPED,
        "model",
        "Sum",
        0,
        "GreaterThanThreshold",
        "Captures were dropped before any write was tried (the after-response queue was full; requests were answered).",
        "Compare RowsScored with CapturedRows; check the capture sink's latency and throttling (as for CaptureErrors), "
        "or lower capture_sampling.",
        "alarm-capture-dropped",
        "model",
        period_s=300,
        severity="critical",
    )
    ctx.add(
        "MetricsErrors",
        mc.METRICS_ERRORS,
        "model",
        "Sum",
        0,
        "GreaterThanThreshold",
        "A function could not write its EMF metrics (predictions were still answered); other alarms may be blind.",
        "Search the functions' logs for 'metrics_error' and the traceback after it.",
        "alarm-metrics-errors",
        "model",
        period_s=300,
        severity="critical",
    )
    drift = ctx.drift
    ctx.add(
        "CaptureReadErrors",
        mc.CAPTURE_READ_ERRORS,
        "model",
        "Maximum",
        0,
        "GreaterThanThreshold",
        "The drift check could not read capture objects (GetObject failed: AccessDenied, KMS, throttling); "
        "its window is short of them, so its verdicts and NoTraffic are not about the traffic.",
        "Search the drift-check log for 'not read (' (the key and S3's error code) and the report's read_errors; "
        "check the bucket policy, the KMS key policy and the function's role after any recent change.",
        "alarm-capture-read-errors",
        "model",
        **drift,
        severity="critical",
    )
    ctx.add(
        "CorruptCaptureObjects",
        mc.CORRUPT_CAPTURE_OBJECTS,
        "model",
        "Maximum",
        0,
        "GreaterThanThreshold",
        "Capture objects were read but could not be decoded (truncated or not capture records); they were skipped whole.",
        "The report's corrupt_keys name them; check the writer (capture sink, Firehose format conversion) and "
        "whatever else writes under the captures prefix.",
        "alarm-corrupt-capture-objects",
        "model",
        **drift,
        severity="critical",
    )
    ctx.add(
        "PartialWindow",
        mc.PARTIAL_WINDOW,
        "model",
        "Maximum",
        1,
        "GreaterThanOrEqualToThreshold",
        "The drift check ran out of its time budget before reading the whole window, in two checks in a row: its "
        "verdicts are on a uniform sample of part of the window.",
        "Raise drift_timeout_s or drift_memory_mb, lower sample_cap, or shorten window_hours; the report's "
        "objects_read / objects_listed say how much was read.",
        "alarm-partial-window",
        "model",
        **{**drift, "evaluation_periods": ctx.timing.periods_per_gap * 2},
        datapoints_to_alarm=2,
        severity="critical",
    )
    ctx.add(
        "DriftCheckErrors",
        "Errors",
        "drift_check",
        "Sum",
        0,
        "GreaterThanThreshold",
        "The drift-check function failed; drift metrics for this window are missing.",
        "Read the drift-check function's log for the traceback; rerun it by hand once fixed.",
        "alarm-drift-check-errors",
        "model",
        family="pipeline",
        period_s=timing.period_s,
        evaluation_periods=timing.periods_per_gap,
        severity="critical",
    )


@register_alarms
def _service(ctx: AlarmContext) -> None:
    """Service health: one-minute metrics, 3 of 5 minutes; these also roll a canary back."""
    s = ctx.settings
    svc: dict[str, Any] = dict(period_s=60, evaluation_periods=5, datapoints_to_alarm=3, rollback=True)
    ctx.add(
        "Api5xxRate",
        "5XXError",
        "api",
        "Average",
        s.api_5xx_rate,
        "GreaterThanThreshold",
        f"More than {s.api_5xx_rate:.1%} of API requests answered 5xx.",
        "Check the inference function's errors and logs; if a deployment is in progress CodeDeploy rolls back.",
        "alarm-api-5xx-rate",
        "service",
        **svc,
        severity="critical",
    )
    ctx.add(
        "ApiP99Latency",
        "Latency",
        "api",
        "p99",
        s.api_p99_latency_ms,
        "GreaterThanThreshold",
        f"API p99 latency above {s.api_p99_latency_ms:g} ms.",
        "Check batch sizes, cold starts (provisioned_concurrency) and the function's memory.",
        "alarm-api-p99-latency",
        "service",
        **svc,
    )
    ctx.add(
        "InferenceErrors",
        "Errors",
        "inference",
        "Sum",
        0,
        "GreaterThanThreshold",
        "The inference function raised errors (timeouts, out of memory, init failures).",
        "Read the function's log; a failing new version is rolled back by CodeDeploy.",
        "alarm-inference-errors",
        "service",
        **svc,
        severity="critical",
    )
    ctx.add(
        "InferenceThrottles",
        "Throttles",
        "inference",
        "Sum",
        0,
        "GreaterThanThreshold",
        "The inference function was throttled (concurrency limit reached).",
        "Raise the account's concurrency quota or lower the stage throttling limits.",
        "alarm-inference-throttles",
        "service",
        period_s=300,
    )


@register_alarms
def _performance(ctx: AlarmContext) -> None:
    """Model performance: labels from /feedback, and the estimate before they come."""
    s, span = ctx.settings, ctx.span
    ctx.add(
        "PerformanceDegraded",
        mc.PERFORMANCE_DEGRADED,
        "model",
        "Maximum",
        1,
        "GreaterThanOrEqualToThreshold",
        f"Model performance on the feedback labels of {span} fell significantly below its "
        f"held-out reference performance (alpha {s.performance_alpha}, at least {s.performance_min_labels} labels, "
        f"a baseline of at least {s.performance_min_baseline_rows} held-out rows).",
        "Read performance_drop in the report (which metric, how far, on how many labels); compare with the "
        "drift alarms: inputs unchanged means the concept changed, retrain on recent labelled data.",
        "alarm-performance-degraded",
        "model",
        **ctx.drift_verdict,
        severity="critical",
    )
    ctx.add(
        "EstimatedAccuracyDrop",
        mc.ESTIMATED_PERFORMANCE_DEGRADED,
        "model",
        "Maximum",
        1,
        "GreaterThanOrEqualToThreshold",
        f"The accuracy, F1 or AUC estimated from the model's calibrated probabilities (a regressor: MAE or RMSE from its "
        f"loss model; no labels needed) moved past its band in {span}: more than {s.estimated_band_sd:g} of its "
        f"standard errors at the window's size and at least {s.estimated_accuracy_drop_threshold:.0%} (an error: "
        f"{s.estimated_loss_min_increase:.0%} of the reference's; windows of at least {s.estimated_min_rows} rows).",
        "Read estimated_performance in the report and the drift alarms: inputs moved to where the model is unsure; "
        "get labels for the window (audit sample, /feedback) to confirm, then retrain.",
        "alarm-estimated-accuracy-drop",
        "model",
        **ctx.drift_verdict,
        severity="critical",
    )
    ctx.add(
        "TargetDrift",
        mc.TARGET_DRIFT,
        "model",
        "Maximum",
        1,
        "GreaterThanOrEqualToThreshold",
        f"The labels that came back through /feedback in {span} are distributed unlike the "
        f"reference targets, or name a class the reference never had (alpha {s.alpha}, at least {s.performance_min_labels} labels).",
        "Read target_drift in the report: the classes whose share moved, new and vanished classes, predicted vs observed "
        "shares; check the labelling source, then retrain with the new class mix.",
        "alarm-target-drift",
        "model",
        **ctx.drift_inform,
    )


@register_alarms
def _api_traffic(ctx: AlarmContext) -> None:
    """Traffic reaching the API: seen in minutes, not at the next drift check."""
    s = ctx.settings
    ctx.add(
        "Api4xxRate",
        "4XXError",
        "api",
        "Sum",
        s.api_4xx_rate,
        "GreaterThanThreshold",
        f"More than {s.api_4xx_rate:.0%} of API requests were refused as malformed for 10 of 15 minutes "
        "((4XXError - ValidationRejects - AccessRefusals) / Count): bodies the gateway's validator refused (400), too "
        "large or of a type not served. Not counted: the function's validation refusals (422; RejectRate pages for them) "
        "and refusals for access (403 key, 404 route, 429 throttled: a scanner or a client over its quota).",
        "Read the access logs for the status codes, API key ids and user agents; compare with recent client releases.",
        "alarm-api-4xx-rate",
        "service",
        period_s=300,
        evaluation_periods=3,
        datapoints_to_alarm=2,
        min_requests=API_4XX_MIN_REQUESTS,
        minus_validation_rejects=True,
        minus_access_refusals=True,
    )
    if s.traffic_anomaly_alarm:
        ctx.add(
            "TrafficDrop",
            "Count",
            "api",
            "Sum",
            s.traffic_anomaly_band,
            "LessThanLowerThreshold",
            f"API requests served fell below their own recent pattern (CloudWatch anomaly band, {s.traffic_anomaly_band:g} "
            "standard deviations) in 3 of 3 five-minute periods: Count less the refusals for access (403 no or deleted key, "
            "404, 429; AccessRefusals), so clients all refused (a key deleted, its usage plan detached) are lost traffic; a "
            "period without requests counts as 0. Quiet until the API has seen traffic: the band is learned from it.",
            "Check the access logs first (status 403/429 with the clients' key ids: a deleted key or a detached usage plan), "
            "then the clients, DNS and the API's 4xx share; if the drop is planned (a client retired), the band learns it "
            "within days, or exclude the window in the anomaly model.",
            "alarm-traffic-drop",
            "service",
            period_s=300,
            evaluation_periods=3,
            datapoints_to_alarm=3,
            missing_as_zero=True,
            minus_access_refusals=True,
            severity="critical",
        )
    if s.alarm_min_requests:
        ctx.add(
            "LowTraffic",
            "Count",
            "api",
            "Sum",
            s.alarm_min_requests,
            "LessThanThreshold",
            f"Fewer than {s.alarm_min_requests} API requests served in {s.alarm_min_requests_minutes} min (no requests at all: "
            "also ALARM): Count less the refusals for access (403 no or deleted key, 404, 429; AccessRefusals), so a "
            "scanner's refused requests do not count as traffic.",
            "Check the access logs (403/429 with the clients' key ids), the clients, DNS and the API's 4xx share; "
            "a quiet period that is normal needs a lower alarm_min_requests.",
            "alarm-low-traffic",
            "service",
            period_s=s.alarm_min_requests_minutes * 60,
            treat_missing="breaching",
            missing_as_zero=True,
            minus_access_refusals=True,
            severity="critical",
        )


@register_alarms
def _firehose(ctx: AlarmContext) -> None:
    """The capture stream's delivery (``capture_sink=firehose`` or ``logs``: what Firehose fails is counted and alarmed)."""
    s = ctx.settings
    if s.capture_sink == "s3":
        return
    ctx.add(
        "FirehoseDeliveryFailures",
        "DeliveryToS3.Success",
        "firehose",
        "Average",
        1,
        "LessThanThreshold",
        "Firehose failed to deliver capture records to S3 in two 5-minute periods in a row (records retried, "
        "then written under the errors prefix).",
        "Read the stream's delivery error log and the errors/ prefix of the bucket; check the bucket policy and KMS key.",
        "alarm-firehose-delivery-failures",
        "model",
        family="pipeline",
        period_s=300,
        evaluation_periods=2,
        datapoints_to_alarm=2,
        severity="critical",
    )
    ctx.add(
        "FirehoseDataFreshness",
        "DeliveryToS3.DataFreshness",
        "firehose",
        "Maximum",
        s.firehose_max_data_age_s,
        "GreaterThanThreshold",
        f"The oldest capture record in the Firehose stream waited more than {s.firehose_max_data_age_s} s for delivery.",
        "Delivery is falling behind or failing: see FirehoseDeliveryFailures and the stream's error log.",
        "alarm-firehose-data-freshness",
        "model",
        family="pipeline",
        period_s=300,
        evaluation_periods=2,
        datapoints_to_alarm=2,
        severity="critical",
    )


@register_alarms
def _log_lines(ctx: AlarmContext) -> None:
    """``capture_sink=logs``: what can be lost between the function's log and the stream. CloudWatch Logs
    retries a failed or throttled delivery to Firehose for up to 24 hours, then drops it; with Parquet,
    a record Firehose cannot convert with the Glue table's schema goes to the errors prefix, not the table."""
    s = ctx.settings
    if s.capture_sink != "logs":
        return
    lost: dict[str, Any] = dict(family="pipeline", severity="critical", period_s=300, evaluation_periods=2, datapoints_to_alarm=2)
    ctx.add(
        "CaptureLinesDeliveryErrors",
        "DeliveryErrors",
        "logs",
        "Sum",
        0,
        "GreaterThanThreshold",
        "CloudWatch Logs failed to hand capture lines to the Firehose stream in two 5-minute periods in a row "
        "(it retries for up to 24 hours, then the lines are lost).",
        "Check the subscription filter's role (firehose:PutRecordBatch on the stream) and the stream's state; "
        "compare CapturedRows with the stream's IncomingRecords.",
        "alarm-capture-lines-delivery-errors",
        "model",
        **lost,
    )
    ctx.add(
        "CaptureLinesDeliveryThrottling",
        "DeliveryThrottling",
        "logs",
        "Sum",
        0,
        "GreaterThanThreshold",
        "Firehose throttled the delivery of capture lines in two 5-minute periods in a row (the stream's "
        "throughput quota; CloudWatch Logs retries for up to 24 hours, then the lines are lost).",
        "Raise the stream's throughput quota (a Service Quotas request) or lower capture_sampling.",
        "alarm-capture-lines-delivery-throttling",
        "model",
        **lost,
    )
    if s.capture_format == "parquet":
        ctx.add(
            "CaptureParquetConversionFailures",
            "FailedConversion.Records",
            "firehose",
            "Sum",
            0,
            "GreaterThanThreshold",
            "Firehose could not convert capture records to Parquet with the Glue table's schema in two 5-minute "
            "periods in a row; they went to the errors prefix, not the captures table.",
            "Read the records under capture-errors/format-conversion-failed/ and compare them with the captures "
            "table's columns (a feature added to the bundle without a new table version?).",
            "alarm-capture-parquet-conversion-failures",
            "model",
            **lost,
        )


@register_alarms
def _drift_athena(ctx: AlarmContext) -> None:
    """``drift_athena=auto|on``: a window whose queries failed or outlived the read budget was read from S3 instead."""
    if ctx.settings.drift_athena == "off":
        return
    ctx.add(
        "AthenaQueryErrors",
        mc.ATHENA_QUERY_ERRORS,
        "model",
        "Maximum",
        0,
        "GreaterThanThreshold",
        "The drift check's Athena queries failed or outlived its read budget; the window was read from S3 "
        "instead (a sample, partial past the budget), so its counts are not exact.",
        "The report's athena_error names the query and Athena's reason (FAILED with its message, Timeout, "
        "AccessDenied...); check the workgroup's bytes-scanned limit (athena_bytes_scanned_limit_mb) and "
        "the query's history in the workgroup.",
        "alarm-athena-query-errors",
        "model",
        severity="critical",
        **ctx.drift,
    )


@register_alarms
def _challenger(ctx: AlarmContext) -> None:
    """A challenger deployed next to the champion (docs/versions.md): its own version's series."""
    s, v, timing = ctx.settings, ctx.challenger_version, ctx.timing
    if not v or s.challenger_mode == "off":
        return
    theirs: dict[str, Any] = dict(
        period_s=timing.period_s,
        evaluation_periods=timing.periods_per_gap,
        treat_missing="notBreaching",
        dimensions={**ctx.dims, mc.DIM_MODEL_VERSION: v},
    )
    ctx.add(
        "ChallengerWorse",
        mc.CHALLENGER_WORSE,
        "model",
        "Maximum",
        1,
        "GreaterThanOrEqualToThreshold",
        f"Challenger {v} ({s.challenger_mode}) is significantly worse than the champion "
        f"on the labelled rows of the last {s.window_hours} h (p < {s.alpha}).",
        "Read the comparison report (next to the drift report); set challenger_mode off or replace the challenger.",
        "alarm-challenger-worse",
        "comparison",
        **theirs,
    )
    # the challenger's own drift report: only what the champion's check of the window did not find
    # (input drift is the champion's alarms' to page, once)
    ctx.add(
        "ChallengerDrift",
        mc.CHALLENGER_DRIFT,
        "model",
        "Maximum",
        1,
        "GreaterThanOrEqualToThreshold",
        f"Challenger {v} ({s.challenger_mode}): its own drift check found dataset or prediction drift "
        f"against its reference in the last {s.window_hours} h, where the champion's check found neither.",
        f"Read the challenger's drift report (*-version={v}.html, next to the champion's): traffic unlike "
        "its training data, or outputs that moved on inputs that did not; fix or replace the challenger before promoting it.",
        "alarm-challenger-drift",
        "comparison",
        **theirs,
    )


def evaluate_datapoints(spec: AlarmSpec, datapoints: Sequence[State], previous: State = "INSUFFICIENT_DATA") -> State:
    """An alarm's state after its latest datapoints (oldest first; each one period's ``evaluate``: ALARM
    breaching, OK not, INSUFFICIENT_DATA missing), with CloudWatch's M of N: ALARM when at least
    ``datapoints_to_alarm`` of the last ``evaluation_periods`` breach; with every one of them missing and
    ``ignore`` it keeps ``previous``; else OK. So a paging drift verdict confirmed over ``drift_page_checks``
    checks is ALARM only from the second breaching check in a row."""
    last = list(datapoints)[-spec.evaluation_periods :]
    if sum(p == "ALARM" for p in last) >= spec.datapoints_to_alarm:
        return "ALARM"
    if spec.treat_missing_data == "ignore" and all(p == "INSUFFICIENT_DATA" for p in last):
        return previous
    return "OK"


def evaluate_windows(spec: AlarmSpec, values: Mapping[str, float | None], window_rows: Mapping[str, float | None] | None = None) -> State:
    """What an alarm over several windows would say for one check: each window's value (by Window
    label) gated by its own row count, then the largest of those present, as the stack's metric
    math ``MAX`` over the windows' series; no window with a value is a missing datapoint."""
    rows = window_rows or {}
    gated = []
    for label in spec.windows or tuple(values):
        value = values.get(label)
        if value is None or value != value:
            continue
        n = rows.get(label)
        gated.append(0.0 if spec.min_window_rows and n is not None and n < spec.min_window_rows else float(value))
    if not gated:
        return evaluate(spec, None)
    # LessThan alarms (none on windowed metrics today) would want the smallest: MAX is for "above"
    return evaluate(spec, max(gated) if spec.comparison.startswith("Greater") else min(gated))


def evaluate(spec: AlarmSpec, value: float | None, window_rows: float | None = None, band_lower: float | None = None) -> State:
    """What the alarm would say for one datapoint (``None``: no datapoint in the period).

    An anomaly-detection alarm compares with ``band_lower``, the lower edge of the band learned from the
    metric's history (None: nothing learned yet, no band, OK); ``missing_as_zero`` reads no datapoint as 0.

    A missing datapoint follows ``treat_missing_data``: breaching -> ALARM, notBreaching -> OK,
    ignore / missing -> INSUFFICIENT_DATA (CloudWatch keeps the previous state for "ignore";
    with no history that is INSUFFICIENT_DATA).
    """
    if spec.min_window_rows and window_rows is not None and value is not None and window_rows < spec.min_window_rows:
        return "OK"  # the alarm's metric math gives 0 for windows under the minimum
    if spec.missing_as_zero and (value is None or value != value):
        value = 0.0
    if spec.anomaly_band:
        return "ALARM" if band_lower is not None and value is not None and value < band_lower else "OK"
    if value is None or value != value:  # None or NaN
        return {"breaching": "ALARM", "notBreaching": "OK"}.get(spec.treat_missing_data, "INSUFFICIENT_DATA")  # type: ignore[return-value]
    t = spec.threshold
    breached = {
        "GreaterThanThreshold": value > t,
        "GreaterThanOrEqualToThreshold": value >= t,
        "LessThanThreshold": value < t,
        "LessThanOrEqualToThreshold": value <= t,
    }[spec.comparison]
    return "ALARM" if breached else "OK"
