"""The page simulator (devtools/page_simulator.py): the stack's alarm specs evaluated with CloudWatch's
semantics over a 30-day calendar. Each injected failure pages the families its spec names, once each,
within its stated delay; quiet days page no one; the runbook's table is generated from the same run."""

from __future__ import annotations

import pytest

from devtools import page_simulator as ps

ROOT_RUNBOOK = ps.Path(__file__).resolve().parents[2] / "docs" / "runbook.md"


@pytest.fixture(scope="module")
def run() -> ps.Run:
    return ps.calendar_run()


def test_the_calendar_injects_every_kind_of_failure_the_issue_lists() -> None:
    assert len(ps.CALENDAR) >= 12
    names = " ".join(f.name for f in ps.CALENDAR)
    for kind in (
        "5xx",
        "4xx",
        "lost traffic",
        "throttling",
        "422",
        "capture",
        "Firehose",
        "scanner",
        "403 storm",
        "canary rolled back",
        "keeps failing after rollback",
        "drift check failing",
        "denied",
        "not scheduled",
        "input drift",
        "performance",
        "second failure",
    ):
        assert kind in names, kind


@pytest.mark.parametrize("failure", ps.CALENDAR, ids=lambda f: f.name)
def test_each_failure_pages_once_per_family_within_its_stated_delay(run: ps.Run, failure: ps.Failure) -> None:
    (outcome,) = ps.outcomes(run, (failure,))
    assert sorted(n.family for n in outcome.pages) == sorted(failure.pages), outcome.pages
    assert all(n.minute - failure.start <= failure.max_delay_min for n in outcome.pages), outcome.pages
    assert sorted({n.family for n in outcome.informs}) == sorted(failure.informs), outcome.informs
    assert [n.severity for n in outcome.pages] == [failure.severity] * len(failure.pages), outcome.pages


def test_a_5xx_storm_pages_critical_while_a_4xx_share_warning_of_its_family_is_open() -> None:
    """One composite per family and severity: the open warning does not hide the storm."""
    share = ps.Failure("4xx share", ps._at(0, 9), 180, {"share_400": 0.6}, ("service",), 15, severity="warning")
    storm = ps.Failure("5xx storm", ps._at(0, 10), 30, {"share_5xx": 0.2}, ("service",), 5)
    run = ps.simulate((share, storm), days=1)
    assert [(n.severity, n.alarms) for n in run.between(share.start, share.end)] == [
        ("warning", ("Api4xxRate",)),
        ("critical", ("Api5xxRate",)),
    ]
    (page,) = run.between(storm.start, storm.end)
    assert page.minute - storm.start <= storm.max_delay_min


def test_quiet_days_page_no_one(run: ps.Run) -> None:
    quiet = ps.quiet_days(run)
    assert len(quiet) >= 10 and 0 in quiet  # the first day too: a new stack with no history
    assert any(d in quiet for d in ps.DEPLOY_DAYS)  # a canary's small 5xx share on a deploy day is no page
    assert [n for n in run.notifications if n.minute // ps.DAY in quiet] == []


def test_a_second_failure_inside_an_open_page_is_re_notified_once_as_also_firing(run: ps.Run) -> None:
    """Capture errors open the pipeline page; two hours later the drift check fails: the composite, already in
    ALARM, sends nothing, and the also-firing function notifies once, naming the new alarm."""
    (opened,) = ps.outcomes(run, (ps.OPEN_PAGE,))[0].pages[:1]
    assert (opened.kind, opened.alarms) == ("page", ("CaptureErrors",))
    second = next(f for f in ps.CALENDAR if f.name.startswith("a second failure inside an open family"))
    (also,) = ps.outcomes(run, (second,))[0].pages
    assert (also.kind, also.family, also.severity, also.alarms) == ("also", "pipeline", "critical", ("DriftCheckErrors",))
    assert [n for n in run.between(second.start, second.end + ps.HOUR)] == []  # no second page from the composite


def test_without_the_also_firing_function_the_second_failure_would_send_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator sees the difference the function makes (a grace period longer than the month: it never fires)."""
    second = next(f for f in ps.CALENDAR if f.name.startswith("a second failure inside an open family"))
    monkeypatch.setattr(ps.ALSO_FIRING, "GRACE_S", 10**9)
    run = ps.simulate((ps.OPEN_PAGE, second), days=28)
    assert ps.outcomes(run, (second,))[0].pages == []


def test_two_alarms_of_one_cause_at_the_same_check_are_one_page(run: ps.Run) -> None:
    """Nulls upstream trip MissingRate and DataQualityFailures at the same check: the composite's page only."""
    nulls = next(f for f in ps.CALENDAR if f.name.startswith("nulls upstream"))
    (page,) = ps.outcomes(run, (nulls,))[0].pages
    assert page.kind == "page" and set(page.alarms) == {"MissingRate", "DataQualityFailures"}


def test_cloudwatch_semantics_a_blip_shorter_than_m_of_n_does_not_page() -> None:
    """Api5xxRate is 3 of 5 one-minute periods: two bad minutes are no page, three are."""
    two = ps.Failure("blip", ps._at(0, 12), 2, {"share_5xx": 0.5}, (), 0)
    three = ps.Failure("storm", ps._at(0, 12), 3, {"share_5xx": 0.5}, ("service",), 5)
    assert ps.simulate((two,), days=1).between(0, ps.DAY) == []
    assert [n.alarms for n in ps.simulate((three,), days=1).between(0, ps.DAY)] == [("Api5xxRate",)]


def test_the_runbook_table_is_generated_from_the_calendar(run: ps.Run) -> None:
    doc = ROOT_RUNBOOK.read_text()
    assert ps.BEGIN in doc and ps.END in doc
    assert ps.render(doc, ps.calendar_table(run)) == doc, "run: python -m devtools.page_simulator --write docs/runbook.md"


def test_a_422_storm_would_page_twice_if_the_gateway_4xx_counted_validation_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator sees the difference the spec makes: with the 422s in Api4xxRate's count, the storm
    pages the service family as well as input data."""
    from dataclasses import replace

    storm = next(f for f in ps.CALENDAR if f.name.startswith("422 storm"))
    storm = replace(storm, start=ps._at(1, 9, 30))
    real = ps.alarm_specs

    def counting_422s(*args, **kwargs):  # the stack before the split: 4XXError / Count
        return [replace(s, minus_validation_rejects=False) for s in real(*args, **kwargs)]

    with monkeypatch.context() as patched:
        patched.setattr(ps, "alarm_specs", counting_422s)
        before = ps.simulate((storm,), days=2)
    assert sorted(n.family for n in before.between(storm.start, storm.end + ps.HOUR)) == ["input_data", "service"]
    assert [n.family for n in ps.simulate((storm,), days=2).between(storm.start, storm.end + ps.HOUR)] == ["input_data"]


LOGS_ATHENA = ps.Settings(capture_sink="logs", capture_format="parquet", drift_athena="on", alarm_subscriptions="oncall@example.com")


@pytest.mark.parametrize(
    ("signals", "alarm", "max_delay_min"),
    [
        ({"logs_delivery_errors": 3.0}, "CaptureLinesDeliveryErrors", 15),
        ({"logs_delivery_throttling": 50.0}, "CaptureLinesDeliveryThrottling", 15),
        ({"conversion_failures": 20.0}, "CaptureParquetConversionFailures", 15),
        ({"athena_fails": 1.0}, "AthenaQueryErrors", 85),  # the next hourly check, then its period ends
    ],
)
def test_each_loss_of_the_logs_path_and_each_athena_failure_pages_the_pipeline_once(signals, alarm, max_delay_min) -> None:
    start = ps.DAY + 6 * ps.HOUR + 40
    failure = ps.Failure(alarm, start, 180, signals, ("pipeline",), max_delay_min)
    run = ps.simulate((failure,), days=2, settings=LOGS_ATHENA)
    (page,) = run.between(0, 2 * ps.DAY)
    assert page.family == "pipeline" and alarm in page.alarms
    assert 0 < page.minute - start <= max_delay_min


def test_a_night_time_scanner_would_page_if_the_4xx_share_counted_refusals_for_access(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator sees the difference AccessRefusals makes: counted, the scanner's 403/404s page the service family."""
    from dataclasses import replace

    scanner = next(f for f in ps.CALENDAR if f.name.startswith("night-time scanner"))
    scanner = replace(scanner, start=ps._at(1, 2))
    real = ps.alarm_specs

    def counting_refusals(*args, **kwargs):  # the stack before the filter: (4XXError - ValidationRejects) / Count
        return [replace(s, minus_access_refusals=False) for s in real(*args, **kwargs)]

    with monkeypatch.context() as patched:
        patched.setattr(ps, "alarm_specs", counting_refusals)
        before = ps.simulate((scanner,), days=2)
    assert [(n.family, n.alarms) for n in before.between(scanner.start, scanner.end + ps.HOUR)] == [("service", ("Api4xxRate",))]
    assert ps.simulate((scanner,), days=2).between(scanner.start, scanner.end + ps.HOUR) == []


def test_a_canary_codedeploy_rolls_back_informs_once_as_a_deployment_event(run: ps.Run) -> None:
    canary = next(f for f in ps.CALENDAR if f.name.startswith("canary rolled back"))
    (outcome,) = ps.outcomes(run, (canary,))
    assert [(n.family, n.alarms) for n in outcome.informs] == [("deployment", ("CanaryFailing",))]
    assert outcome.pages == []  # the service page was held while the canary failed (below: it would have paged)
    # a weekly deploy whose canary is healthy is no deployment event
    healthy = [d for d in ps.DEPLOY_DAYS if d in ps.quiet_days(run)]
    assert healthy and not [n for n in run.notifications if n.family == "deployment" and n.minute // ps.DAY in healthy]


def test_a_deleted_key_would_page_no_one_if_lost_traffic_counted_the_refused_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every client refused 403: Api4xxRate leaves the refusals for access out, so only TrafficDrop can page, and only
    because it reads the requests served; over Count alone the storm looks like traffic. The scanner still pages no one."""
    from dataclasses import replace

    storm = next(f for f in ps.CALENDAR if f.name.startswith("API key deleted"))
    scanner = next(f for f in ps.CALENDAR if f.name.startswith("night-time scanner"))
    storm, scanner = replace(storm, start=ps._at(8, 14, 20)), replace(scanner, start=ps._at(9, 2))
    real = ps.alarm_specs

    def over_count(*args, **kwargs):  # TrafficDrop's band over FILL(Count, 0), refusals included
        return [replace(s, minus_access_refusals=False) if s.id == "TrafficDrop" else s for s in real(*args, **kwargs)]

    with monkeypatch.context() as patched:
        patched.setattr(ps, "alarm_specs", over_count)
        before = ps.simulate((storm,), days=9)
    assert before.between(storm.start, storm.end + ps.HOUR) == []
    after = ps.simulate((storm, scanner), days=10)
    (page,) = after.between(storm.start, storm.end + ps.HOUR)
    assert (page.family, page.severity, page.alarms) == ("service", "critical", ("TrafficDrop",))
    assert 0 < page.minute - storm.start <= storm.max_delay_min
    assert after.between(scanner.start, scanner.end + ps.HOUR) == []


def _canary_days() -> tuple[ps.Failure, ps.Failure]:
    rolled = next(f for f in ps.CALENDAR if f.name.startswith("canary rolled back"))
    persisting = next(f for f in ps.CALENDAR if "keeps failing after rollback" in f.name)
    return rolled, persisting


def test_a_rolled_back_canary_would_page_the_service_without_the_canary_alarm_holding_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rolled-back canary trips Api5xxRate (3 of 5 minutes) before the rollback ends its errors: the service
    page is in ALARM, and only the ActionsSuppressor keeps it off the pager."""
    rolled, _ = _canary_days()
    monkeypatch.setattr(ps, "SUPPRESSED_BY_CANARY", ())
    run = ps.simulate((rolled,), days=rolled.start // ps.DAY + 1)
    (page,) = run.between(rolled.start, rolled.end + ps.HOUR)
    assert (page.family, page.severity, page.alarms) == ("service", "critical", ("Api5xxRate",))


def test_a_failure_that_outlasts_the_rollback_pages_once_after_the_extension(run: ps.Run) -> None:
    _, persisting = _canary_days()
    (outcome,) = ps.outcomes(run, (persisting,))
    (page,) = outcome.pages
    assert (page.family, page.severity, page.kind) == ("service", "critical", "page")
    (notice,) = outcome.informs
    # held from the canary alarm's ALARM to its extension's end: the page comes after the rollback notice, not before
    assert notice.minute < page.minute <= notice.minute + ps.CANARY.suppressor_extension_s // 60 + 2
    assert [n for n in run.between(persisting.start, persisting.end + ps.HOUR, "also")] == []


def test_outside_a_deployment_no_service_page_waits_for_the_canary_alarm() -> None:
    """The wait period is 0 s: a 5xx storm pages as soon as its alarm is in ALARM (3 minutes), lost traffic within 15."""
    assert ps.CANARY.suppressor_wait_s == 0
    storm = ps.Failure("5xx storm", ps._at(0, 14), 30, {"share_5xx": 0.2}, ("service",), 5)
    (page,) = ps.simulate((storm,), days=1).between(storm.start, storm.end)
    assert page.minute - storm.start == 3


def test_the_canary_alarm_is_ok_after_a_promotion_and_after_a_rollback() -> None:
    """In steady state it cannot hold a real outage back: a storm the day after a healthy deploy, or right after a
    rolled-back one, pages at once."""
    rolled, _ = _canary_days()
    after_rollback = ps.Failure("storm after rollback", rolled.start + 30, 30, {"share_5xx": 0.2}, ("service",), 5)
    after_promotion = ps.Failure("storm after promotion", ps._at(9, 10, 30), 30, {"share_5xx": 0.2}, ("service",), 5)
    run = ps.simulate((rolled, after_rollback, after_promotion), days=rolled.start // ps.DAY + 1)
    for storm in (after_rollback, after_promotion):
        (page,) = run.between(storm.start, storm.end)
        assert page.minute - storm.start == 3, storm.name


def test_lost_traffic_under_a_scanner_pages_low_traffic_because_it_reads_the_requests_served(monkeypatch: pytest.MonkeyPatch) -> None:
    """LowTraffic (``alarm_min_requests``) reads Count less AccessRefusals: the clients gone at night while a scanner's
    403/404/429 go on is fewer requests served; over Count alone the scanner's requests would keep it quiet."""
    from dataclasses import replace

    settings = ps.Settings(
        capture_sink="firehose",
        alarm_subscriptions="oncall@example.com",
        alarm_min_requests=300,
        alarm_min_requests_minutes=30,
        traffic_anomaly_alarm=False,  # LowTraffic alone: TrafficDrop would page the same loss
    )
    lost = ps.Failure("clients gone, a scanner goes on", ps._at(1, 2, 0), 120, {"traffic": 0.0, "scanner_rpm": 60.0}, ("service",), 60)
    run = ps.simulate((lost,), days=2, settings=settings)
    assert run.between(0, lost.start) == []  # 600 requests per 30 minutes at the quietest hour: no page
    (page,) = run.between(lost.start, lost.end + ps.HOUR)
    assert (page.family, page.severity, page.alarms) == ("service", "critical", ("LowTraffic",))
    assert page.minute - lost.start <= lost.max_delay_min
    real = ps.alarm_specs

    def over_count(*args, **kwargs):  # LowTraffic over FILL(Count, 0), the refused requests included
        return [replace(s, minus_access_refusals=False) if s.id == "LowTraffic" else s for s in real(*args, **kwargs)]

    monkeypatch.setattr(ps, "alarm_specs", over_count)
    assert ps.simulate((lost,), days=2, settings=settings).between(lost.start, lost.end + ps.HOUR) == []
