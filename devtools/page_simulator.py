"""A page simulator: the stack's alarm specs (``cdk/alarms.py``) evaluated with CloudWatch's semantics over
synthetic metric series for a 30-day calendar, to show which failure pages whom, once, and how fast.

moto evaluates no alarm and has no composite alarms, so this is pure Python over the same ``AlarmSpec``
objects the stack deploys (period, statistic's datapoint, evaluation periods, datapoints to alarm, missing
data treatment, ``FILL(m, REPEAT)`` / ``FILL(m, 0)``, the family composites with ``PAGED_BY``, page vs
inform, the "also firing" re-notification with the function's own grace period). What it approximates, stated
plainly:

- metric values are synthetic: requests follow a day/night cycle; a failure overrides signals for its span;
- M of N: an alarm is ALARM when at least ``datapoints_to_alarm`` of its last ``evaluation_periods``
  datapoints breach; with no datapoint in all of them and ``ignore`` it keeps its state, else OK;
- ``FILL(m, REPEAT)`` repeats the last value published inside the alarm's own query range only (what
  CloudWatch does: a metric silent for the whole range is missing);
- the anomaly band (``TrafficDrop``) is modelled as the mean minus ``threshold`` standard deviations of the
  same five-minute slot over the previous 7 days, with no band before a day of history or while the
  slot's history is all zeros. CloudWatch's own model differs in detail; the timing (3 of 3 five-minute
  periods) does not;
- CodeDeploy's canary: 10% of the traffic to the new version for 5 minutes on each deploy day; an alarm it watches
  (the service alarms, the canary alarm) entering ALARM rolls it back ``ROLLBACK_MIN`` later (the FAILURE event
  informs once); the canary alarm is ``CanaryWatch.failing`` per minute, M of N;
- ActionsSuppressor on the service pages: a page entering ALARM waits ``suppressor_wait_s`` for the canary alarm,
  is held while it is in ALARM and for ``suppressor_extension_s`` after, and notifies then if still in ALARM;
- a page is a family composite of one severity (critical or warning) entering ALARM (one notification); an
  alarm entering ALARM while another alarm of its page has been paging for longer than the also-firing
  function's grace period is an "also firing" notification; an informing alarm entering ALARM is a
  notice on the second topic.

``python -m devtools.page_simulator --write docs/runbook.md`` regenerates the runbook's table from
``CALENDAR``; ``tests/unit/test_page_simulator.py`` checks every failure pages as its spec says and
the table is current.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cdk.alarms import SUPPRESSED_BY_CANARY, AlarmSpec, CanaryWatch, State, alarm_specs, canary_watch, evaluate, evaluate_datapoints, paging
from devtools.local import load_handler_module
from modelserve.settings import Settings

# the "also firing" function itself: its grace period (and the same paging rule) drive the simulated re-notification
ALSO_FIRING = load_handler_module("also_firing")

MINUTE, HOUR, DAY = 1, 60, 24 * 60
DAYS = 30
CHECK_MINUTE = 2  # the hourly drift check runs at hh:02 and publishes then
# the calendar's stack: Firehose capture, so its delivery alarms exist too; a subscriber, hourly checks
SETTINGS = Settings(capture_sink="firehose", alarm_subscriptions="oncall@example.com")
DEPLOY_DAYS = (2, 9, 16, 23)  # a new version each week at 10:00: a canary's few minutes of a small 5xx share
# CodeDeploy's canary (Canary10Percent5Minutes): 10% of the alias's traffic to the new version for 5 minutes, then all
CANARY_SHARE, CANARY_MIN = 0.1, 5
# from an alarm CodeDeploy watches entering ALARM to the alias serving the previous version again
ROLLBACK_MIN = 2
# the canary alarm and the pages it holds back (cdk/canary.py, cdk/alerting.py)
CANARY = canary_watch(SETTINGS)


@dataclass(frozen=True)
class Failure:
    """One injected failure: what it overrides from ``start`` (minutes into the calendar) for ``minutes``,
    and what the stack must do about it: the families paged (once each), the families only informed, and
    the longest delay from its start to the page."""

    name: str
    start: int
    minutes: int
    signals: dict[str, float]
    pages: tuple[str, ...]
    max_delay_min: int
    informs: tuple[str, ...] = ()
    note: str = ""
    severity: str = "critical"  # of its pages

    @property
    def end(self) -> int:
        return self.start + self.minutes


def _at(day: int, hour: int = 0, minute: int = 0) -> int:
    return day * DAY + hour * HOUR + minute


# the calendar: quiet days between failures; each failure starts at least a day after the previous ends
CALENDAR: tuple[Failure, ...] = (
    Failure("5xx storm (a bad dependency)", _at(3, 14, 10), 30, {"share_5xx": 0.2}, ("service",), 5),
    Failure(
        "4xx share (a client release sends malformed bodies: 400)",
        _at(4, 10, 5),
        120,
        {"share_400": 0.6},
        ("service",),
        15,
        severity="warning",
    ),
    Failure("lost traffic (clients' DNS broken)", _at(5, 15, 3), 180, {"traffic": 0.0}, ("service",), 15),
    Failure(
        "API key deleted: 403 storm (every client refused)",
        _at(11, 14, 20),
        120,
        {"key_refused": 1.0},
        ("service",),
        15,
        note="TrafficDrop reads the requests served (Count less AccessRefusals): the refused requests are lost traffic",
    ),
    Failure("throttling (concurrency exhausted)", _at(6, 11, 20), 30, {"throttles": 40.0}, ("service",), 10, severity="warning"),
    Failure(
        "422 storm (upstream sends nulls in a required field)",
        _at(7, 9, 30),
        180,
        {"share_422": 1.0},
        ("input_data",),
        95,
        note="one page: Api4xxRate counts the gateway's own 4xx only (4XXError less ValidationRejects)",
        severity="warning",
    ),
    Failure(
        "night-time scanner (403/404/429 at 3x the traffic)",
        _at(8, 2, 0),
        180,
        {"scanner_rpm": 60.0},
        (),
        0,
        note="no page: Api4xxRate leaves out the refusals for access (AccessRefusals, from the access log)",
    ),
    Failure("capture writes failing (bucket policy)", _at(10, 13, 7), 60, {"capture_errors": 25.0}, ("pipeline",), 5),
    Failure("Firehose delivery failing (KMS key disabled)", _at(12, 8, 1), 90, {"firehose_success": 0.0}, ("pipeline",), 15),
    Failure("drift check failing (a bad release of it)", _at(14, 6, 40), 240, {"check_fails": 1.0}, ("pipeline",), 85),
    Failure("drift check reads denied (key policy change)", _at(16, 6, 40), 240, {"read_denied": 1.0}, ("pipeline",), 85),
    Failure("drift check not scheduled (rule disabled)", _at(18, 6, 40), 600, {"check_off": 1.0}, ("pipeline",), 200),
    Failure("input drift without impact (a feature shifted)", _at(20, 6, 40), 720, {"dataset_drift": 1.0}, (), 0, informs=("input_data",)),
    Failure("nulls upstream (a feature 25% missing)", _at(22, 6, 40), 600, {"missing_rate": 0.25}, ("input_data",), 85, severity="warning"),
    Failure("performance drop on labels", _at(24, 6, 40), 600, {"performance_degraded": 1.0}, ("model_output",), 145),
    Failure("latency (p99 3 s after a memory cut)", _at(25, 12, 4), 30, {"p99_ms": 3000.0}, ("service",), 5, severity="warning"),
    Failure(
        "canary rolled back by CodeDeploy (the new version answers 5xx to its 10%)",
        _at(23, 10, 0),
        CANARY_MIN,
        {"canary_errors": 1.0},
        (),
        0,
        informs=("deployment",),
        note="no page: the deployment event informs (CodeDeploy FAILURE); CanaryFailing holds the service page "
        "(ActionsSuppressor) while Api5xxRate is in ALARM, until it is OK again",
    ),
    Failure(
        "bad deploy that keeps failing after rollback (the release also changed what the previous version reads)",
        _at(2, 10, 0),
        60,
        {"share_5xx": 0.2, "canary_errors": 1.0},
        ("service",),
        12,
        informs=("deployment",),
        note="the rollback informs; the page is held while the canary fails and for the 5-minute extension after, "
        "then opens once: the errors are the previous version's too",
    ),
    Failure(
        "a second failure inside an open family (the drift check fails while capture errors page)",
        _at(27, 8, 40),
        180,
        {"check_fails": 1.0},
        ("pipeline",),
        85,
        note="re-notified: 'also firing' (EventBridge + lambda/also_firing) while the pipeline page is open since 06:40",
    ),
)
# what opens the pipeline page the calendar's last failure happens inside: capture errors from 06:40 to 12:40
OPEN_PAGE = Failure("capture errors open the pipeline page", _at(27, 6, 40), 360, {"capture_errors": 5.0}, ("pipeline",), 5)


@dataclass
class World:
    """The signals every metric is computed from, minute by minute: a quiet baseline plus the failures."""

    failures: tuple[Failure, ...]

    def signal(self, name: str, t: int, default: float) -> float:
        for f in self.failures:
            if f.start <= t < f.end and name in f.signals:
                return f.signals[name]
        return default

    def requests(self, t: int) -> float:
        """The clients' requests per minute: 20 at night, 200 mid-afternoon (UTC), smooth; the lost-traffic failure
        zeroes it."""
        hour = (t % DAY) / HOUR
        base = 20 + 180 * (0.5 - 0.5 * math.cos(2 * math.pi * (hour - 3) / 24))
        return base * self.signal("traffic", t, 1.0)

    def served(self, t: int) -> float:
        """The clients' requests the gateway let through: a deleted key refuses its share with 403."""
        return self.requests(t) * (1.0 - self.signal("key_refused", t, 0.0))

    def access_refusals(self, t: int) -> float:
        """403/404/429 per minute (AccessRefusals): a scanner's requests and the clients' refused for their key."""
        return self.signal("scanner_rpm", t, 0.0) + self.requests(t) - self.served(t)

    rolled_back: dict[int, int] = field(default_factory=dict)  # deploy start -> when CodeDeploy rolled it back

    def deploying(self, t: int) -> bool:
        return self.deploy_start(t) is not None

    def deploy_start(self, t: int) -> int | None:
        """The start of the canary ``t`` falls in (its first CANARY_MIN minutes, until a rollback), or None."""
        for d in DEPLOY_DAYS:
            start = _at(d, 10)
            if start <= t < min(start + CANARY_MIN, self.rolled_back.get(start, start + CANARY_MIN)):
                return start
        return None

    def canary_share(self, t: int) -> float:
        return CANARY_SHARE if self.deploying(t) else 0.0

    def version_errors(self, t: int) -> float:
        """The share of the new version's invocations failing during its canary: what it breaks, and what fails for
        every version; a healthy canary's small 5xx share is the service's, spread over both versions."""
        return min(1.0, self.signal("canary_errors", t, 0.0) + self.signal("share_5xx", t, 0.0) + 0.004)

    def share_5xx(self, t: int) -> float:
        """The API's 5xx share: every version's (``share_5xx``) and the canary's share of its own failures."""
        healthy = 0.004 * self.deploying(t)
        return self.signal("share_5xx", t, 0.0) + healthy + self.canary_share(t) * self.signal("canary_errors", t, 0.0)

    def checks_at(self, t: int) -> bool:
        return t % HOUR == CHECK_MINUTE and not self.signal("check_off", t, 0.0)


def _sum(world: World, f: Callable[[int], float], start: int, end: int) -> float:
    return sum(f(t) for t in range(start, end))


def _api_value(spec: AlarmSpec, world: World, start: int, end: int) -> float | None:
    if spec.id in ("TrafficDrop", "LowTraffic"):
        return _traffic(spec, world, start, end)
    requests = _sum(world, world.requests, start, end)
    if not requests:
        return None
    if spec.id == "Api5xxRate":
        return _sum(world, lambda t: world.served(t) * world.share_5xx(t), start, end) / requests
    if spec.id == "Api4xxRate":  # 4XXError counts the function's 422s and the refusals for access too; the spec subtracts them
        return _gateway_4xx_share(spec, world, start, end)
    if spec.id == "ApiP99Latency":
        return max(world.signal("p99_ms", t, 180.0) for t in range(start, end))
    raise KeyError(spec.id)


def _traffic(spec: AlarmSpec, world: World, start: int, end: int) -> float | None:
    """TrafficDrop's and LowTraffic's series: Count (every request, refused ones too) less AccessRefusals as far as the
    spec subtracts."""
    count = _sum(world, lambda t: world.requests(t) + world.signal("scanner_rpm", t, 0.0), start, end)
    refused = _sum(world, world.access_refusals, start, end) if spec.minus_access_refusals else 0.0
    return count - refused if count else None  # AWS/ApiGateway publishes no Count without requests


def _gateway_4xx_share(spec: AlarmSpec, world: World, start: int, end: int) -> float:
    """Api4xxRate's metric math: (4XXError - ValidationRejects - AccessRefusals) / Count, as far as the spec subtracts."""
    rejects_counted = 0.0 if spec.minus_validation_rejects else 1.0
    access_counted = 0.0 if spec.minus_access_refusals else 1.0
    count = _sum(world, lambda t: world.requests(t) + world.signal("scanner_rpm", t, 0.0), start, end)
    bad = _sum(
        world,
        lambda t: world.served(t) * min(1.0, world.signal("share_400", t, 0.02) + rejects_counted * world.signal("share_422", t, 0.01)),
        start,
        end,
    )
    refused = _sum(world, world.access_refusals, start, end)
    return (bad + access_counted * refused) / count if count >= spec.min_requests else 0.0


def _lambda_value(spec: AlarmSpec, world: World, start: int, end: int) -> float | None:
    if spec.id == "InferenceErrors":
        return 0.0 if _sum(world, world.served, start, end) else None
    if spec.id == "InferenceThrottles":
        return _sum(world, lambda t: world.signal("throttles", t, 0.0), start, end) or None
    if spec.id == "DriftCheckErrors":
        runs = [t for t in range(start, end) if world.checks_at(t)]
        return float(sum(world.signal("check_fails", t, 0.0) for t in runs)) if runs else None
    raise KeyError(spec.id)


# a drift-check metric's value in a check that ran and published (its Maximum over the windows)
_CHECK_VALUES: dict[str, Callable[[World, int], float]] = {
    "DatasetDrift": lambda w, t: w.signal("dataset_drift", t, 0.0),
    "PredictionDrift": lambda w, t: 0.0,
    "OutlierRate": lambda w, t: 0.01,
    "MissingRate": lambda w, t: w.signal("missing_rate", t, 0.0),
    "OutOfRangeRate": lambda w, t: 0.0,
    "UnseenCategoryRate": lambda w, t: 0.0,
    "DataQualityFailures": lambda w, t: float(w.signal("missing_rate", t, 0.0) > 0),
    "RejectRate": lambda w, t: w.signal("share_422", t, 0.01),
    "PerformanceDegraded": lambda w, t: w.signal("performance_degraded", t, 0.0),
    "EstimatedAccuracyDrop": lambda w, t: 0.0,
    "TargetDrift": lambda w, t: 0.0,
    "CaptureReadErrors": lambda w, t: 12.0 * w.signal("read_denied", t, 0.0),
    "CorruptCaptureObjects": lambda w, t: 0.0,
    "PartialWindow": lambda w, t: 0.0,
    "AthenaQueryErrors": lambda w, t: w.signal("athena_fails", t, 0.0),
}


def _check_value(spec: AlarmSpec, world: World, start: int, end: int) -> float | None:
    """A drift-check metric: published only by a check that ran and did not fail."""
    runs = [t for t in range(start, end) if world.checks_at(t) and not world.signal("check_fails", t, 0.0)]
    if not runs:
        return None
    t = runs[-1]
    if spec.id == "NoTraffic":  # rows of the 24 h window; a denied read empties it
        return 0.0 if world.signal("read_denied", t, 0.0) else _sum(world, world.served, max(0, t - DAY), t)
    return _CHECK_VALUES[spec.id](world, t)


def _model_value(spec: AlarmSpec, world: World, start: int, end: int) -> float | None:
    if spec.id == "CaptureErrors":
        return _sum(world, lambda t: world.signal("capture_errors", t, 0.0), start, end) or None
    if spec.id == "CaptureDropped":  # the after-response queue was full: no calendar failure injects it yet
        return _sum(world, lambda t: world.signal("capture_dropped", t, 0.0), start, end) or None
    if spec.id == "MetricsErrors":
        return None
    return _check_value(spec, world, start, end)


def _firehose_value(spec: AlarmSpec, world: World, start: int, end: int) -> float | None:
    if spec.id == "FirehoseDeliveryFailures":
        return min(world.signal("firehose_success", t, 1.0) for t in range(start, end))
    if spec.id == "CaptureParquetConversionFailures":
        return _sum(world, lambda t: world.signal("conversion_failures", t, 0.0), start, end)
    return 120.0  # DataFreshness: the 60-300 s buffer


def _logs_value(spec: AlarmSpec, world: World, start: int, end: int) -> float | None:
    """The capture-line subscription's deliveries (capture_sink=logs): errors or throttled deliveries in the period."""
    signal = "logs_delivery_errors" if spec.id == "CaptureLinesDeliveryErrors" else "logs_delivery_throttling"
    return _sum(world, lambda t: world.signal(signal, t, 0.0), start, end)


_SOURCES: dict[str, Callable[[AlarmSpec, World, int, int], float | None]] = {
    "api": _api_value,
    "inference": _lambda_value,
    "drift_check": _lambda_value,
    "model": _model_value,
    "firehose": _firehose_value,
    "logs": _logs_value,
}


class _Alarm:
    """One metric alarm's evaluation: the last N datapoints, M of them breaching."""

    def __init__(self, spec: AlarmSpec) -> None:
        self.spec = spec
        self.state: State = "OK"
        self.points: list[State] = []  # each period's own evaluation: ALARM breaching, OK not, INSUFFICIENT_DATA missing
        self.values: list[float | None] = []
        self.slots: dict[int, list[float]] = {}  # TrafficDrop: the five-minute slot's history

    def datapoint(self, world: World, start: int, end: int) -> State:
        s = self.spec
        value = _SOURCES[s.source](s, world, start, end)
        self.values = [*self.values[-(s.evaluation_periods - 1) :], value] if s.evaluation_periods > 1 else [value]
        if s.repeat_last_value and value is None:  # FILL(m, REPEAT) inside the alarm's own range
            value = next((v for v in reversed(self.values) if v is not None), None)
        band = self._band(start, value) if s.anomaly_band else None
        return evaluate(s, value, band_lower=band)

    def _band(self, start: int, value: float | None) -> float | None:
        slot = start % DAY
        history = self.slots.setdefault(slot, [])
        lower = None
        if len(history) >= 1 and any(history):
            mean = sum(history) / len(history)
            std = math.sqrt(sum((h - mean) ** 2 for h in history) / len(history))
            lower = mean - self.spec.threshold * max(std, 0.1 * mean)
        history.append(value or 0.0)
        del history[:-7]
        return lower

    def step(self, world: World, end: int) -> bool:
        """Evaluate the period ending at ``end``; True when the alarm entered ALARM."""
        s = self.spec
        self.points = (
            [*self.points[-(s.evaluation_periods - 1) :], self.datapoint(world, end - s.period_s // 60, end)]
            if s.evaluation_periods > 1
            else [self.datapoint(world, end - s.period_s // 60, end)]
        )
        before = self.state
        self.state = evaluate_datapoints(s, self.points, before)
        return before != "ALARM" and self.state == "ALARM"


@dataclass
class Notification:
    minute: int
    kind: str  # "page" or "inform"
    family: str
    alarms: tuple[str, ...]
    severity: str = ""  # a page's: "critical" or "warning" (which of the family's composites notified)


@dataclass
class Run:
    notifications: list[Notification] = field(default_factory=list)

    def between(self, start: int, end: int, kind: str = "page") -> list[Notification]:
        return [n for n in self.notifications if start <= n.minute < end and n.kind == kind]


class _CanaryAlarm:
    """The canary alarm (``cdk/canary.py``, the rule ``CanaryWatch.failing``): each minute the new version's
    invocations, the alias's and the new version's failures; M of N as any alarm. ``holding``: whether the service
    pages are held back (ActionsSuppressor): in ALARM, or out of it for less than the extension period."""

    def __init__(self, watch: CanaryWatch) -> None:
        self.watch = watch
        self.state: State = "OK"
        self.points: list[bool] = []
        self.left_alarm_at: int | None = None

    def step(self, world: World, end: int) -> bool:
        """Evaluate the minute ending at ``end``; True when the alarm entered ALARM."""
        w, t = self.watch, end - 1
        alias = world.served(t)
        new = alias * world.canary_share(t)
        self.points = [*self.points[-(w.evaluation_periods - 1) :], w.failing(new, alias, new * world.version_errors(t))]
        before = self.state
        self.state = "ALARM" if sum(self.points) >= w.datapoints_to_alarm else "OK"
        if before == "ALARM" and self.state == "OK":
            self.left_alarm_at = end
        return before != "ALARM" and self.state == "ALARM"

    def holding(self, end: int) -> bool:
        extension = self.watch.suppressor_extension_s // 60
        return self.state == "ALARM" or (self.left_alarm_at is not None and end < self.left_alarm_at + extension)


@dataclass
class _Pages:
    """The family composites (one per family and severity, ``cdk/alerting.py``): a page notifies when it enters ALARM,
    unless the canary alarm holds it (a service page: ActionsSuppressor, waiting ``suppressor_wait_s`` for the canary
    alarm, then held while it is in ALARM and for the extension after; a page still in ALARM then notifies)."""

    pages: set[tuple[str, str]]
    canary: _CanaryAlarm
    open: set[tuple[str, str]] = field(default_factory=set)
    pending: dict[tuple[str, str], int] = field(default_factory=dict)  # in ALARM, not notified yet -> since when

    def step(self, end: int, members: dict[tuple[str, str], list[str]], entered: list[str], since: dict[str, int]) -> list[Notification]:
        """The notifications at ``end``: ``members``, each page's alarms adding to it now."""
        out: list[Notification] = []
        for page in sorted(self.pages):
            members_now = members[page]
            suppressed = page[0] in SUPPRESSED_BY_CANARY
            held = suppressed and self.canary.holding(end)
            if not members_now:
                self.open.discard(page)
                self.pending.pop(page, None)
            elif page in self.open:
                # lambda/also_firing reads the canary alarm too: nothing "also firing" inside a held page
                out += [] if held else _also_firing(end, page, members_now, entered, since)
            else:
                waited = end - self.pending.setdefault(page, end)
                if not held and waited >= (self.canary.watch.suppressor_wait_s // 60 if suppressed else 0):
                    del self.pending[page]
                    self.open.add(page)
                    out.append(Notification(end, "page", page[0], tuple(members_now), page[1]))
        return out


def simulate(failures: tuple[Failure, ...], days: int = DAYS, settings: Settings = SETTINGS) -> Run:
    """Every notification of the stack's alarms over ``days`` of the world with these failures."""
    specs = alarm_specs(settings, "penguins", "v1", deployment="ModelServe-penguins")
    alarms = [_Alarm(s) for s in specs]
    world = World(failures)
    canary = _CanaryAlarm(canary_watch(settings))
    pages = _Pages({(s.family, s.severity) for s in specs if s.pages}, canary)
    since: dict[str, int] = {}  # alarm -> the minute it entered ALARM
    run = Run()
    for end in range(1, days * DAY + 1):
        entered = [a.spec for a in alarms if end % (a.spec.period_s // 60) == 0 and a.step(world, end)]
        canary_entered = canary.step(world, end)
        since.update({s.id: end for s in entered})
        run.notifications += [Notification(end, "inform", s.family, (s.id,)) for s in entered if not s.pages]
        run.notifications += _rollback(world, end, [s.id for s in entered if s.rollback] + [canary.watch.id] * canary_entered)
        states = {a.spec.id: a.state for a in alarms}
        members: dict[tuple[str, str], list[str]] = {page: [] for page in pages.pages}
        for a in alarms:
            if a.spec.pages and paging(a.spec.id, states):
                members[(a.spec.family, a.spec.severity)].append(a.spec.id)
        run.notifications += pages.step(end, members, [s.id for s in entered], since)
    return run


def _rollback(world: World, end: int, watched_entered: list[str]) -> list[Notification]:
    """CodeDeploy rolls a canary back when an alarm it watches (the service alarms, the canary alarm) enters ALARM
    during it: the alias serves the previous version ``ROLLBACK_MIN`` later, and the FAILURE event informs once."""
    start = world.deploy_start(end - 1)
    if start is None or not watched_entered or start in world.rolled_back:
        return []
    world.rolled_back[start] = end + ROLLBACK_MIN
    return [Notification(end + ROLLBACK_MIN, "inform", "deployment", tuple(watched_entered))]


def _also_firing(end: int, page: tuple[str, str], members: list[str], entered: list[str], since: dict[str, int]) -> list[Notification]:
    """What lambda/also_firing publishes for the alarms that entered ALARM at ``end`` inside an open page: one
    notification each, when another alarm of the page has been paging for longer than its grace period."""
    grace = ALSO_FIRING.GRACE_S // 60
    return [
        Notification(end, "also", page[0], (a,), page[1])
        for a in entered
        if a in members and any(o != a and since.get(o, end) <= end - grace for o in members)
    ]


@dataclass(frozen=True)
class Outcome:
    failure: Failure
    pages: list[Notification]
    informs: list[Notification]

    @property
    def delay_min(self) -> int | None:
        return self.pages[0].minute - self.failure.start if self.pages else None

    @property
    def as_specified(self) -> bool:
        f = self.failure
        paged = sorted(n.family for n in self.pages)
        in_time = all(n.minute - f.start <= f.max_delay_min for n in self.pages)
        severities = all(n.severity == f.severity for n in self.pages)
        return paged == sorted(f.pages) and in_time and severities and sorted({n.family for n in self.informs}) == sorted(f.informs)


def outcomes(run: Run, calendar: tuple[Failure, ...] = CALENDAR) -> list[Outcome]:
    """What each failure caused: the notifications from its start until an hour after its end (alarms
    return to OK by then), a page that opened for it and an inform."""
    return [
        Outcome(
            f,
            sorted(run.between(f.start, f.end + HOUR) + run.between(f.start, f.end + HOUR, "also"), key=lambda n: n.minute),
            run.between(f.start, f.end + HOUR, "inform"),
        )
        for f in calendar
    ]


def quiet_days(run: Run, calendar: tuple[Failure, ...] = CALENDAR, days: int = DAYS) -> list[int]:
    """The days no failure touches (nor the hour after one ends)."""
    busy = {d for f in calendar for d in range(f.start // DAY, (f.end + HOUR) // DAY + 1)}
    return [d for d in range(days) if d not in busy]


def markdown_table(result: list[Outcome]) -> str:
    lines = ["| failure (injected) | pages (family, severity) | delay | informs | note |", "|---|---|---|---|---|"]
    for o in result:
        pages = (
            ", ".join(
                f"{n.family.replace('_', ' ')}, {n.severity}{', also firing' if n.kind == 'also' else ''} ({', '.join(n.alarms)})"
                for n in o.pages
            )
            or "none"
        )
        delay = f"{o.delay_min} min" if o.delay_min is not None else "-"
        informs = ", ".join(f"{n.family.replace('_', ' ')} ({', '.join(n.alarms)})" for n in o.informs) or "-"
        lines.append(f"| {o.failure.name} | {pages} | {delay} | {informs} | {o.failure.note} |")
    return "\n".join(lines)


BEGIN, END = "<!-- page-simulator:begin -->", "<!-- page-simulator:end -->"


def render(doc: str, table: str) -> str:
    """``doc`` with the text between the simulator's markers replaced by ``table``."""
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def calendar_run() -> Run:
    """The 30 days with every failure of ``CALENDAR`` (and what opens the page its last failure happens inside)."""
    return simulate((*CALENDAR, OPEN_PAGE))


def calendar_table(run: Run | None = None) -> str:
    return markdown_table(outcomes(run or calendar_run()))


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--write":
        path = Path(argv[1])
        path.write_text(render(path.read_text(), calendar_table()))
        return 0
    print(calendar_table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
