"""Critical and warning pages: each alarm spec has a severity, each family one composite alarm per severity it
has, so a 5xx storm pages while a 4xx-share warning of the service family is open; warning pages go with the
critical ones unless ``warning_subscriptions`` routes them to a topic of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cdk.alarms import alarm_specs, page_name
from modelserve.settings import Settings, SettingsError
from tests.infra.conftest import Synth, synth_variant
from tests.infra.test_stack import paged_ids

EVERY_ALARM = Settings(capture_sink="firehose", alarm_min_requests=1, page_on_drift=True, alarm_subscriptions="oncall@example.com")


def _specs() -> dict[str, Any]:
    return {s.id: s for s in alarm_specs(EVERY_ALARM, "m", "v")}


def test_failing_requests_lost_traffic_blind_monitoring_and_a_worse_model_are_critical() -> None:
    specs = _specs()
    critical = {i for i, s in specs.items() if s.severity == "critical"}
    for needed in ("Api5xxRate", "InferenceErrors", "TrafficDrop", "LowTraffic", "PerformanceDegraded", "EstimatedAccuracyDrop"):
        assert needed in critical, needed
    # every capture, metrics, drift-check and read failure: the monitoring is blind while one is open
    assert {i for i, s in specs.items() if s.family == "pipeline"} <= critical


def test_a_share_of_clients_refused_data_quality_and_latency_are_warnings() -> None:
    specs = _specs()
    warning = {i for i, s in specs.items() if s.severity == "warning"}
    assert {"Api4xxRate", "ApiP99Latency", "MissingRate", "RejectRate", "OutOfRangeRate", "DatasetDrift"} <= warning


def _pages(s: Synth) -> dict[str, dict[str, Any]]:
    """Composite alarms that notify, by name."""
    return {
        c["Properties"]["AlarmName"]: c["Properties"]
        for c in s.of_type("AWS::CloudWatch::CompositeAlarm").values()
        if c["Properties"].get("AlarmActions")
    }


def _text(value: Any) -> str:
    """A template string, its tokens (Fn::Join parts that are not text) left out."""
    return value if isinstance(value, str) else "".join(p for p in value["Fn::Join"][1] if isinstance(p, str))


def _alarm_id(s: Synth, spec_id: str) -> str:
    (alarm_id,) = [k for k, v in s.of_type("AWS::CloudWatch::Alarm").items() if v["Properties"]["AlarmName"].endswith("-" + spec_id)]
    return alarm_id


def test_a_5xx_storm_and_a_4xx_share_page_through_different_composites(default: Synth) -> None:
    """With Api4xxRate's warning open, the service family's critical composite is still OK: a 5xx storm pages."""
    pages = _pages(default)
    (critical,) = [p for p in pages.values() if _alarm_id(default, "Api5xxRate") in paged_ids(p["AlarmRule"])]
    (warning,) = [p for p in pages.values() if _alarm_id(default, "Api4xxRate") in paged_ids(p["AlarmRule"])]
    assert critical["AlarmName"] == f"{default.stack_name}-{page_name('service', 'critical')}"
    assert warning["AlarmName"] == f"{default.stack_name}-{page_name('service', 'warning')}"
    assert _alarm_id(default, "Api4xxRate") not in paged_ids(critical["AlarmRule"])
    assert _text(critical["AlarmDescription"]).startswith("CRITICAL: ") and _text(warning["AlarmDescription"]).startswith("WARNING: ")
    # by default both severities reach the paging topic's subscribers
    topic = next(k for k in default.of_type("AWS::SNS::Topic") if k.startswith("MonitoringAlarmTopic"))
    assert critical["AlarmActions"] == warning["AlarmActions"] == [{"Ref": topic}]


def test_every_composite_pages_one_severity_only(default: Synth) -> None:
    specs = {s.id: s for s in alarm_specs(default.settings, default.manifest.model_name, default.manifest.version)}
    for name, page in _pages(default).items():
        ids = {i for i in specs if specs[i].pages and _alarm_id(default, i) in paged_ids(page["AlarmRule"])}
        severities = {specs[i].severity for i in ids}
        assert len(severities) == 1, (name, ids)
        assert name.endswith(page_name(specs[next(iter(ids))].family, severities.pop()))


@pytest.fixture(scope="module")
def routed(fake_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth_variant("default", fake_bundle_dir, tmp_path_factory.mktemp("warn"), {"warning_subscriptions": "chat@example.com"})


def test_warning_subscriptions_route_the_warning_pages_to_their_own_topic(routed: Synth) -> None:
    topics = routed.of_type("AWS::SNS::Topic")
    alarm_topic = next(k for k in topics if k.startswith("MonitoringAlarmTopic"))
    warning_topic = next(k for k in topics if k.startswith("MonitoringWarningTopic"))
    assert "Fn::GetAtt" in topics[warning_topic]["Properties"]["KmsMasterKeyId"]
    specs = {s.id: s for s in alarm_specs(routed.settings, routed.manifest.model_name, routed.manifest.version)}
    seen = set()
    for page in _pages(routed).values():
        ids = [i for i in specs if specs[i].pages and _alarm_id(routed, i) in paged_ids(page["AlarmRule"])]
        severity = specs[ids[0]].severity
        expected = warning_topic if severity == "warning" else alarm_topic
        assert page["AlarmActions"] == page["OKActions"] == [{"Ref": expected}], page["AlarmName"]
        seen.add(severity)
    assert seen == {"critical", "warning"}
    subs = {(v["Properties"]["Endpoint"], v["Properties"]["TopicArn"]["Ref"]) for v in routed.of_type("AWS::SNS::Subscription").values()}
    assert subs == {("oncall@example.com", alarm_topic), ("chat@example.com", warning_topic)}
    assert "WarningTopicArn" in routed.template["Outputs"]
    # CloudWatch alarms of the account may publish to it, over TLS only, like the paging topic
    ((_, policy),) = [
        (k, v) for k, v in routed.of_type("AWS::SNS::TopicPolicy").items() if v["Properties"]["Topics"] == [{"Ref": warning_topic}]
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(st["Principal"] == {"Service": "cloudwatch.amazonaws.com"} for st in statements)
    assert any(st["Effect"] == "Deny" for st in statements)


def test_a_warning_target_that_is_no_subscriber_is_refused_naming_the_setting() -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_context({"warning_subscriptions": "chat"})
    assert "'warning_subscriptions'" in str(err.value)
