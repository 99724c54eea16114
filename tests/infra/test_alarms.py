"""cdk/alarms.py: the specs and evaluate() semantics (pure Python, no CDK). Their runbook links: tests/unit/test_docs.py."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest

from cdk.alarms import RUNBOOK_DOC, AlarmSpec, alarm_specs, evaluate, schedule_gap_s, schedule_period_s
from modelserve.settings import Settings, SettingsError

REQUIRED = {
    "DatasetDrift",
    "PredictionDrift",
    "OutlierRate",
    "MissingRate",
    "OutOfRangeRate",
    "UnseenCategoryRate",
    "NoTraffic",
    "CaptureErrors",
    "DriftCheckErrors",
    "Api5xxRate",
    "ApiP99Latency",
    "InferenceThrottles",
}


def specs(**settings) -> dict[str, AlarmSpec]:
    return {s.id: s for s in alarm_specs(Settings(**settings), "penguins", "v1", bucket_name="my-bucket")}


def test_covers_every_required_alarm_once() -> None:
    ids = [s.id for s in alarm_specs(Settings(), "m", "v")]
    assert len(ids) == len(set(ids))
    assert set(ids) >= REQUIRED


def test_thresholds_and_namespaces_come_from_settings() -> None:
    sp = specs(outlier_rate_threshold=0.2, api_p99_latency_ms=250, metrics_namespace="Acme/Models", empty_window_alarm="ignore")
    assert sp["OutlierRate"].threshold == 0.2
    assert sp["OutlierRate"].namespace == "Acme/Models"
    assert sp["OutlierRate"].dimensions == {"ModelName": "penguins", "ModelVersion": "v1"}
    assert sp["ApiP99Latency"].threshold == 250 and sp["ApiP99Latency"].statistic == "p99"
    assert sp["ApiP99Latency"].namespace == "AWS/ApiGateway" and sp["ApiP99Latency"].dimensions == {}
    assert sp["InferenceThrottles"].namespace == "AWS/Lambda"
    assert sp["NoTraffic"].treat_missing_data == "ignore"
    assert {s.id for s in sp.values() if s.rollback} == {"Api5xxRate", "ApiP99Latency", "InferenceErrors"}


def test_descriptions_say_what_where_and_runbook() -> None:
    for s in specs().values():
        assert "s3://my-bucket/reports/model=penguins/" in s.description
        assert s.description.endswith(f"Runbook: {RUNBOOK_DOC}#{s.runbook_anchor}")
        assert re.fullmatch(r"alarm-[a-z0-9-]+", s.runbook_anchor)
        assert len(s.description) < 1024 - 64  # CloudWatch's limit, with room for a long bucket name


def test_drift_alarm_period_follows_the_schedule() -> None:
    assert specs(drift_schedule="rate(6 hours)")["DatasetDrift"].period_s == 6 * 3600
    assert schedule_period_s("rate(1 minute)") == 60
    assert schedule_period_s("cron(0 * * * ? *)") == 3600
    assert schedule_period_s("cron(0 6 * * ? *)") == 86400  # daily, not the hour a cron used to get


@pytest.mark.parametrize(
    "schedule, gap_s",
    [
        ("rate(1 minute)", 60),
        ("rate(2 days)", 2 * 86400),
        ("cron(0 6 * * ? *)", 86400),
        ("cron(0/15 * * * ? *)", 900),
        ("cron(0 8,20 * * ? *)", 12 * 3600),  # 20:00 -> 08:00 is the longer gap
        ("cron(0 9 ? * MON-FRI *)", 3 * 86400),  # Friday -> Monday
        ("cron(30 6 ? * 2 *)", 7 * 86400),  # weekly (2 = Monday)
    ],
)
def test_schedule_gap_is_the_longest_time_between_two_checks(schedule: str, gap_s: int) -> None:
    assert schedule_gap_s(schedule) == gap_s


@pytest.mark.parametrize(
    "schedule, says",
    [
        ("cron(0 6 1 * ? *)", "day-of-month"),  # monthly: no weekly bound
        ("cron(0 6 ? * 2#1 *)", "cannot read"),
        ("cron(0 6 * * ?)", "6 fields"),
        ("rate(8 days)", "at least every 7 days"),
        ("rate(2 weeks)", "minutes, hours or days"),
    ],
)
def test_schedules_alarms_cannot_be_timed_on_are_rejected_naming_the_setting(schedule: str, says: str) -> None:
    with pytest.raises(SettingsError, match="drift_schedule") as e:
        alarm_specs(Settings(drift_schedule=schedule), "m", "v")
    assert says in str(e.value)


# ---- CloudWatch's evaluation, simulated: what the on-call engineer would receive over days of checks

HOUR, DAY = 3600, 86400
PUBLISH_DELAY_S = 300  # a check's datapoint becomes visible a few minutes after its timestamp
BREACHES = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


def simulate(spec: AlarmSpec, points: dict[int, float], at: int) -> str:
    """The alarm's state at ``at`` (s): the N periods ending at ``at`` (not aligned: any alignment),
    the statistic per period, FILL(m, REPEAT) when the spec asks, missing data per
    ``treat_missing_data``, ALARM when at least M of the N breach."""
    p, n = spec.period_s, spec.evaluation_periods
    visible = {ts: v for ts, v in points.items() if ts + PUBLISH_DELAY_S <= at}
    values: list[float | None] = []
    for i in range(n):
        start = at - (n - i) * p
        inside = [v for ts, v in visible.items() if start <= ts < start + p]
        pick = {"Minimum": min, "Maximum": max, "Sum": sum, "Average": lambda xs: sum(xs) / len(xs)}[spec.statistic]
        values.append(pick(inside) if inside else None)
    if spec.repeat_last_value:
        last = None
        values = [last := (v if v is not None else last) for v in values]
    breaching = []
    for v in values:
        if v is not None:
            breaching.append(BREACHES[spec.comparison](v, spec.threshold))
        elif spec.treat_missing_data in ("breaching", "notBreaching"):
            breaching.append(spec.treat_missing_data == "breaching")
    if sum(breaching) >= spec.datapoints_to_alarm:
        return "ALARM"
    return "OK" if breaching else "INSUFFICIENT_DATA"


HEALTHY = {  # what a good drift check publishes (AWS/Lambda publishes Errors = 0 per invocation)
    "WindowRows": 250.0,
    "DatasetDrift": 0.0,
    "PredictionDrift": 0.0,
    "OutlierRate": 0.0,
    "MissingRate": 0.0,
    "OutOfRangeRate": 0.0,
    "UnseenCategoryRate": 0.0,
    "DataQualityFailures": 0.0,
    "Errors": 0.0,
}


def drift_specs(schedule: str) -> list[AlarmSpec]:
    """The alarms on metrics the drift check publishes (the composite ModelHealth's children among them)."""
    return [s for s in specs(drift_schedule=schedule).values() if s.source in ("model", "drift_check") and s.metric_name in HEALTHY]


def states(spec: AlarmSpec, checks: list[int], value: float, until: int) -> list[str]:
    """States every 5 minutes from the first check on (before it, a new stack has no traffic to report)."""
    points = {t: value for t in checks}
    return [simulate(spec, points, at) for at in range(checks[0] + PUBLISH_DELAY_S, until, 300)]


@pytest.mark.parametrize(
    "schedule, checks",
    [
        ("cron(0 6 * * ? *)", [6 * HOUR + d * DAY for d in range(10)]),
        ("rate(2 days)", [2 * d * DAY for d in range(6)]),
        ("rate(1 hour)", [h * HOUR for h in range(24 * 4)]),
    ],
)
def test_healthy_checks_never_page(schedule: str, checks: list[int]) -> None:
    for spec in drift_specs(schedule):
        until = checks[-1] + (checks[1] - checks[0])  # up to when the next check is due
        assert "ALARM" not in states(spec, checks, HEALTHY[spec.metric_name], until), spec.id


def test_the_old_one_hour_period_paged_all_day_on_a_daily_cron() -> None:
    """The simulation can fail: the period a cron used to get leaves NoTraffic in ALARM ~23 h a day."""
    checks = [6 * HOUR + d * DAY for d in range(5)]
    old = replace(
        specs(drift_schedule="cron(0 6 * * ? *)")["NoTraffic"],
        period_s=3600,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        repeat_last_value=False,
    )
    seen = states(old, checks, 250.0, checks[-1])
    assert seen.count("ALARM") / len(seen) > 0.9


@pytest.mark.parametrize(
    "schedule, checks",
    [("cron(0 6 * * ? *)", [6 * HOUR + d * DAY for d in range(6)]), ("rate(2 days)", [2 * d * DAY for d in range(6)])],
)
def test_what_should_page_still_pages(schedule: str, checks: list[int]) -> None:
    sp = {s.id: s for s in drift_specs(schedule)}
    until = checks[-1] + DAY
    assert "ALARM" in states(sp["NoTraffic"], checks, 0.0, until)  # empty windows
    assert simulate(sp["NoTraffic"], {}, until) == "ALARM"  # the check publishes nothing at all
    assert "ALARM" in states(sp["DatasetDrift"], checks, 1.0, until)
    # a drift found by one check stays in ALARM until the next check (no OK in between for rate(2 days))
    one = {checks[2]: 1.0, **{t: 0.0 for t in checks if t != checks[2]}}
    between = [simulate(sp["DatasetDrift"], one, at) for at in range(checks[2] + PUBLISH_DELAY_S, checks[3], 600)]
    assert set(between) == {"ALARM"}


def test_one_late_or_missing_check_does_not_page() -> None:
    sp = {s.id: s for s in drift_specs("rate(1 hour)")}
    checks = [h * HOUR for h in range(48) if h != 30]  # the check at hour 30 never published
    assert "ALARM" not in states(sp["NoTraffic"], checks, 250.0, 48 * HOUR)
    assert sp["NoTraffic"].evaluation_periods >= 2


def test_rate_of_two_days_is_read_over_one_day_periods() -> None:
    sp = specs(drift_schedule="rate(2 days)")
    assert sp["DatasetDrift"].period_s == 86400 and sp["DatasetDrift"].evaluation_periods == 2
    assert sp["DatasetDrift"].datapoints_to_alarm == 1
    nt = sp["NoTraffic"]
    assert (nt.period_s, nt.evaluation_periods, nt.datapoints_to_alarm) == (86400, 4, 4)
    assert nt.period_s * nt.evaluation_periods <= 7 * 86400  # CloudWatch's longest evaluation range


def test_no_traffic_reads_the_deployment_not_the_version() -> None:
    """After a deploy the new version has no WindowRows until its first check: a version-scoped alarm
    treating missing data as breaching would page on every deploy."""
    sp = {s.id: s for s in alarm_specs(Settings(), "penguins", "v2", deployment="Stack-A")}
    # the main window's rows: a quiet last hour (the short window) is no outage
    assert sp["NoTraffic"].dimensions == {"ModelName": "penguins", "Deployment": "Stack-A", "Window": "24h"}
    assert sp["DatasetDrift"].dimensions == {"ModelName": "penguins", "ModelVersion": "v2", "Deployment": "Stack-A"}
    for s in sp.values():
        if s.treat_missing_data == "breaching":
            assert "ModelVersion" not in s.dimensions, s.id


@pytest.mark.parametrize(
    "comparison, threshold, value, state",
    [
        ("GreaterThanThreshold", 0.05, 0.06, "ALARM"),
        ("GreaterThanThreshold", 0.05, 0.05, "OK"),
        ("GreaterThanOrEqualToThreshold", 1, 1, "ALARM"),
        ("GreaterThanOrEqualToThreshold", 1, 0, "OK"),
        ("LessThanThreshold", 1, 0, "ALARM"),
        ("LessThanThreshold", 1, 1, "OK"),
        ("LessThanOrEqualToThreshold", 1, 1, "ALARM"),
        ("LessThanOrEqualToThreshold", 1, 2, "OK"),
    ],
)
def test_evaluate_comparisons(comparison, threshold, value, state) -> None:
    s = replace(specs()["OutlierRate"], comparison=comparison, threshold=float(threshold))
    assert evaluate(s, value) == state


@pytest.mark.parametrize(
    "treat, state",
    [("breaching", "ALARM"), ("notBreaching", "OK"), ("ignore", "INSUFFICIENT_DATA"), ("missing", "INSUFFICIENT_DATA")],
)
def test_evaluate_missing_data(treat, state) -> None:
    s = replace(specs()["NoTraffic"], treat_missing_data=treat)
    assert evaluate(s, None) == state
    assert evaluate(s, math.nan) == state


def test_evaluate_defaults_read_like_the_demo() -> None:
    sp = specs()
    assert evaluate(sp["DatasetDrift"], 1.0) == "ALARM"
    assert evaluate(sp["DatasetDrift"], 0.0) == "OK"
    assert evaluate(sp["NoTraffic"], 0) == "ALARM"  # empty window
    assert evaluate(sp["NoTraffic"], None) == "ALARM"  # default empty_window_alarm = breaching
    assert evaluate(sp["NoTraffic"], 250) == "OK"
    assert evaluate(sp["CaptureErrors"], None) == "OK"  # no errors emitted
    assert evaluate(sp["DatasetDrift"], None) == "INSUFFICIENT_DATA"


def test_rate_alarms_ignore_windows_below_the_minimum_rows() -> None:
    sp = specs(alarm_min_window_rows=100)
    missing = sp["MissingRate"]
    assert missing.min_window_rows == 100 and sp["DatasetDrift"].min_window_rows == 0
    assert evaluate(missing, 0.5, window_rows=20) == "OK"  # 10 nulls in 20 rows: noise, not a page
    assert evaluate(missing, 0.5, window_rows=100) == "ALARM"
    assert evaluate(missing, 0.5) == "ALARM"  # window size unknown: no gate
    assert {k for k, s in sp.items() if s.min_window_rows} == {"OutlierRate", "MissingRate", "OutOfRangeRate", "UnseenCategoryRate"}
    assert all(s.min_window_rows == 0 for s in specs(alarm_min_window_rows=0).values())


def test_one_cause_pages_once_through_its_family() -> None:
    """Nulls rising in two features trip MissingRate, OutlierRate and DatasetDrift: all three are
    one family, one composite alarm, one notification; the rollback alarms keep their own family."""
    from cdk.alarms import FAMILY_TITLES

    sp = specs(capture_sink="firehose", alarm_min_requests=1)
    families = {s.id: s.family for s in sp.values()}
    assert {families[i] for i in ("MissingRate", "OutlierRate", "DatasetDrift", "UnseenCategoryRate", "DataQualityFailures")} == {
        "input_data"
    }
    assert {families[i] for i in ("PredictionDrift", "PerformanceDegraded", "EstimatedAccuracyDrop", "TargetDrift")} == {"model_output"}
    assert {families[i] for i in ("NoTraffic", "CaptureErrors", "DriftCheckErrors", "FirehoseDeliveryFailures")} == {"pipeline"}
    assert {s.family for s in sp.values() if s.rollback} == {"service"}
    assert set(families.values()) <= set(FAMILY_TITLES)


def test_no_traffic_does_not_page_twice_for_every_request_refused() -> None:
    from cdk.alarms import paging

    both = {"NoTraffic": "ALARM", "RejectRate": "ALARM"}
    assert paging("RejectRate", both) and not paging("NoTraffic", both)
    assert paging("NoTraffic", {"NoTraffic": "ALARM", "RejectRate": "OK"})  # no requests at all still pages
    assert not paging("NoTraffic", {"NoTraffic": "OK"})


def test_family_pages_fit_a_composite_alarm_description() -> None:
    from cdk.alerting import Alerting

    settings = Settings(capture_sink="firehose", alarm_min_requests=1)
    sp = alarm_specs(settings, "m" * 40, "v" * 12, bucket_name="b" * 63, deployment="d" * 60)
    reports = f"s3://{'b' * 63}/reports/model={'m' * 40}/"
    # the links as deployed: the longest region name, a 63-character bucket, a runbook URL of 100 characters
    links = (
        f"Dashboard: https://ap-southeast-4.console.aws.amazon.com/cloudwatch/home?region=ap-southeast-4#dashboards:name={'d' * 60} . "
        f"Reports: https://s3.console.aws.amazon.com/s3/buckets/{'b' * 63}?prefix=reports/model={'m' * 40}/ . "
    )
    for family in {s.family for s in sp}:
        runbook = "https://" + "r" * 80 + "/docs/runbook.md#alarm-page-" + family
        text = Alerting.family_description(family, [s for s in sp if s.family == family], reports, links, runbook)
        assert len(text) < 1024, family  # CloudWatch's limit
        if family == "input_data":  # the reports' location: in the console link (bucket and prefix)
            assert "root_cause" in text and f"{'b' * 63}?prefix=reports/model={'m' * 40}/" in text and "MissingRate" in text
            bare = Alerting.family_description(family, [s for s in sp if s.family == family], reports)
            assert reports in bare  # without links: the s3:// path


def test_drift_alarms_read_both_windows_and_no_traffic_the_long_one() -> None:
    sp = specs()
    drift_metric_alarms = [
        s
        for s in sp.values()
        if s.source == "model" and s.period_s == sp["DatasetDrift"].period_s and s.id not in ("NoTraffic", "ChallengerWorse")
    ]
    assert drift_metric_alarms and all(s.windows == ("24h", "1h") for s in drift_metric_alarms)
    assert "the last 24 h (or the last 1 h)" in sp["DatasetDrift"].description
    assert sp["NoTraffic"].windows == () and sp["NoTraffic"].dimensions["Window"] == "24h"
    assert all(s.windows == () for s in sp.values() if s.source != "model" or s.id in ("CaptureErrors", "MetricsErrors"))
    assert all(s.windows == ("12h",) for s in specs(window_hours=12, short_window_hours=12).values() if s.windows)


def test_drift_without_impact_informs_and_a_setting_makes_it_page() -> None:
    """Feature, multivariate, prediction and target drift inform by default; data-quality breakage and
    performance drops page; page_on_drift turns the drift alarms into pages, confirmed over two checks."""
    informing = {"DatasetDrift", "OutlierRate", "PredictionDrift", "TargetDrift"}
    sp = specs()
    assert {i for i, s in sp.items() if not s.pages} == informing
    assert all(sp[i].pages for i in ("MissingRate", "RejectRate", "PerformanceDegraded", "EstimatedAccuracyDrop", "Api5xxRate"))
    assert (sp["DatasetDrift"].evaluation_periods, sp["DatasetDrift"].datapoints_to_alarm) == (1, 1)  # informs at once
    paged = specs(page_on_drift=True)
    assert all(paged[i].pages for i in informing)
    assert (paged["DatasetDrift"].evaluation_periods, paged["DatasetDrift"].datapoints_to_alarm) == (2, 2)


def test_the_performance_alarms_state_the_thresholds_their_verdicts_use() -> None:
    """The on-call engineer reads the test behind a page in its description: the performance test's own
    alpha (not the drift tests'), its baseline floor, and the estimate's band width and window floor."""
    sp = specs(
        alpha=0.02,
        performance_alpha=0.003,
        performance_min_baseline_rows=400,
        estimated_band_sd=2.5,
        estimated_min_rows=150,
        estimated_loss_min_increase=0.12,
    )
    labelled, estimated = sp["PerformanceDegraded"].description, sp["EstimatedAccuracyDrop"].description
    assert "alpha 0.003" in labelled and "alpha 0.02" not in labelled and "400 held-out rows" in labelled
    assert "2.5 of its standard errors" in estimated and "150 rows" in estimated and "12% of the reference's" in estimated


def test_a_paging_verdict_must_hold_in_consecutive_checks() -> None:
    one_check = specs(drift_page_checks=1)["PerformanceDegraded"]
    two = specs()["PerformanceDegraded"]
    # hourly checks: the first breaching check alone is no page with the default, the second in a row is
    assert (one_check.evaluation_periods, one_check.datapoints_to_alarm) == (1, 1)
    assert (two.evaluation_periods, two.datapoints_to_alarm) == (2, 2)
    # daily cron checks, one-day periods: still two checks
    daily = specs(drift_schedule="cron(0 6 * * ? *)")["EstimatedAccuracyDrop"]
    assert (daily.period_s, daily.evaluation_periods, daily.datapoints_to_alarm) == (86400, 2, 2)


def test_lost_traffic_pages_within_15_minutes_and_a_new_stack_stays_quiet() -> None:
    """TrafficDrop: five-minute sums, 3 of 3 periods under the learned band; no request is 0, not missing;
    with no band learned yet (no traffic seen) nothing is below it."""
    drop = specs()["TrafficDrop"]
    assert drop.anomaly_band and drop.missing_as_zero and drop.family == "service" and drop.pages
    assert drop.period_s * drop.evaluation_periods <= 15 * 60 and drop.datapoints_to_alarm == drop.evaluation_periods
    assert evaluate(drop, None, band_lower=40.0) == "ALARM"  # no datapoint: no request, under a band of 40+
    assert evaluate(drop, 55.0, band_lower=40.0) == "OK"
    assert evaluate(drop, None, band_lower=None) == "OK"  # first deploy: nothing learned, quiet
    assert evaluate(drop, 0.0, band_lower=0.0) == "OK"  # a band learned from zeros has nothing below it
    assert "TrafficDrop" not in specs(traffic_anomaly_alarm=False)


def test_a_denied_read_pages_as_a_read_fault_not_as_no_traffic() -> None:
    from cdk.alarms import paging

    sp = specs()
    assert {sp[i].family for i in ("CaptureReadErrors", "CorruptCaptureObjects", "PartialWindow")} == {"pipeline"}
    assert all(sp[i].pages for i in ("CaptureReadErrors", "CorruptCaptureObjects", "PartialWindow"))
    states = {"NoTraffic": "ALARM", "CaptureReadErrors": "ALARM"}
    assert paging("CaptureReadErrors", states) and not paging("NoTraffic", states)
    # one partial read is no page; two checks in a row are
    assert (sp["PartialWindow"].evaluation_periods, sp["PartialWindow"].datapoints_to_alarm) == (2, 2)


def test_pages_link_the_runbook_where_the_team_reads_it() -> None:
    from cdk.alarms import runbook_link

    base = "https://git.example.com/ml/modelserve/-/blob/main/docs/runbook.md"
    sp = specs(runbook_base_url=base)
    assert all(f"Runbook: {base}#{s.runbook_anchor}" in s.description for s in sp.values())
    assert runbook_link(Settings(), "alarm-no-traffic") == f"{RUNBOOK_DOC}#alarm-no-traffic"  # unset: the repository path
    with pytest.raises(SettingsError):
        Settings.from_context({"runbook_base_url": "docs/runbook.md"})
