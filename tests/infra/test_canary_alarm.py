"""A canary CodeDeploy rolls back is a deployment event, not a service page: the "canary failing" alarm reads the new
version's share of the alias's invocations and its failures (Lambda's per-alias metrics by ExecutedVersion, the
version the stack publishes as a token; the app's own ServerErrors of that version); it holds back the service
pages (ActionsSuppressor, no wait, an extension past the rollback) and CodeDeploy watches it beside the service
alarms. The rule itself is checked against ``CanaryWatch.failing`` on sample periods."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cdk.alarms import CanaryWatch, canary_watch
from cdk.canary import canary_expression
from modelserve.settings import Settings
from tests.infra.conftest import Synth, alarm_expression, alarm_metric_stats, dashboard_body


def _canary(s: Synth) -> tuple[str, dict[str, Any]]:
    alarms = s.of_type("AWS::CloudWatch::Alarm").items()
    ((alarm_id, alarm),) = [(k, v["Properties"]) for k, v in alarms if v["Properties"]["AlarmName"].endswith("-CanaryFailing")]
    return alarm_id, alarm


def _version_id(s: Synth) -> str:
    (version_id,) = [k for k, v in s.of_type("AWS::Lambda::Version").items() if k.startswith("ServingFunctionCurrentVersion")]
    return version_id


def test_the_canary_alarm_reads_the_published_versions_share_of_the_alias_and_its_failures(default: Synth) -> None:
    _, alarm = _canary(default)
    stats = alarm_metric_stats(alarm)
    (fn_ref,) = {str(st["dims"]["FunctionName"]) for st in stats.values() if st["namespace"] == "AWS/Lambda"}
    version = {"Fn::GetAtt": [_version_id(default), "Version"]}
    alias = stats["alias_invocations"]
    assert (alias["namespace"], alias["name"], alias["stat"], alias["period"]) == ("AWS/Lambda", "Invocations", "Sum", 60)
    assert set(alias["dims"]) == {"FunctionName", "Resource"} and str(alias["dims"]["Resource"]).endswith(":live']]}")
    for query, name in (("version_invocations", "Invocations"), ("version_errors", "Errors")):
        st = stats[query]
        assert (st["namespace"], st["name"], st["stat"]) == ("AWS/Lambda", name, "Sum")
        assert st["dims"]["ExecutedVersion"] == version and st["dims"]["Resource"] == alias["dims"]["Resource"], query
        assert str(st["dims"]["FunctionName"]) == fn_ref
    server = stats["version_server_errors"]
    assert (server["namespace"], server["name"]) == (default.settings.metrics_namespace, "ServerErrors")
    assert server["dims"] == {
        "ModelName": default.manifest.model_name,
        "ModelVersion": default.manifest.version,
        "Deployment": default.stack_name,
        "ExecutedVersion": version,
    }
    expression = alarm_expression(alarm)
    assert expression == canary_expression(canary_watch(default.settings))
    assert "FILL(version_invocations, 0) > 0" in expression and "< 0.99 * FILL(alias_invocations, 0)" in expression
    assert "(FILL(version_errors, 0) + FILL(version_server_errors, 0)) > 0.01 * FILL(version_invocations, 0)" in expression
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"], alarm["TreatMissingData"]) == (2, 2, "notBreaching")
    assert "AlarmActions" not in alarm and "OKActions" not in alarm  # it pages no one: it holds pages back
    assert alarm["AlarmDescription"].endswith("Runbook: docs/runbook.md#canary-failing") and len(alarm["AlarmDescription"]) < 1024


def _rule(expression: str, invocations: float, alias: float, failures: float) -> bool:
    """The alarm's metric math on one period's sums (FILL'd to 0), evaluated as CloudWatch would."""
    python = re.sub(r"FILL\((\w+), 0\)", r"\1", expression)
    values = {"version_invocations": invocations, "alias_invocations": alias, "version_errors": failures, "version_server_errors": 0.0}
    return bool(eval(python, {}, values))  # noqa: S307 - our own expression over numbers


@pytest.mark.parametrize(
    ("invocations", "alias", "failures", "failing"),
    [
        (10, 100, 10, True),  # a 10% canary failing every request
        (10, 100, 0, False),  # a healthy canary
        (100, 100, 100, False),  # promoted (share 1): the service alarms page, nothing holds them
        (0, 100, 0, False),  # rolled back: the version gets nothing
        (10, 100, 0.1, False),  # 1% of the canary failing: at the threshold, not over it
        (0, 0, 0, False),  # no traffic at all
    ],
)
def test_the_expression_is_in_alarm_only_while_a_canary_share_fails(invocations, alias, failures, failing) -> None:
    watch = CanaryWatch(error_share=0.01)
    assert _rule(canary_expression(watch), invocations, alias, failures) is failing
    assert watch.failing(invocations, alias, failures) is failing


def test_the_service_pages_are_held_while_the_canary_fails_and_no_other_page_is(default: Synth) -> None:
    canary_id, _ = _canary(default)
    watch = canary_watch(default.settings)
    composites = {v["Properties"]["AlarmName"]: v["Properties"] for v in default.of_type("AWS::CloudWatch::CompositeAlarm").values()}
    held = {name for name, c in composites.items() if "ActionsSuppressor" in c}
    assert held == {n for n in composites if n.endswith(("-Page-service", "-Warning-Page-service"))} and len(held) == 2
    for name in held:
        c = composites[name]
        assert c["ActionsSuppressor"] == {"Fn::GetAtt": [canary_id, "Arn"]}
        # no page waits for a canary that is not coming; a failure still there 5 minutes after the rollback pages
        assert (c["ActionsSuppressorWaitPeriod"], c["ActionsSuppressorExtensionPeriod"]) == (0, 300)
    assert watch.suppressor_extension_s > 3 * 60  # the service alarms clear 3 clean minutes after the errors stop


def test_codedeploy_watches_the_canary_alarm_and_the_service_alarms(default: Synth) -> None:
    canary_id, _ = _canary(default)
    (group,) = [g["Properties"] for g in default.of_type("AWS::CodeDeploy::DeploymentGroup").values()]
    watched = group["AlarmConfiguration"]["Alarms"]
    names = {a["Name"]["Ref"] if isinstance(a["Name"], dict) else a["Name"] for a in watched}
    alarms = {k: v["Properties"]["AlarmName"] for k, v in default.of_type("AWS::CloudWatch::Alarm").items()}
    watched_names = {alarms.get(n, n) for n in names}
    assert alarms[canary_id] in watched_names
    for spec_id in ("Api5xxRate", "ApiP99Latency", "InferenceErrors"):
        assert any(n.endswith("-" + spec_id) for n in watched_names), spec_id
    assert group["AutoRollbackConfiguration"]["Events"] == ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST", "DEPLOYMENT_STOP_ON_ALARM"]


def test_the_dashboard_shows_the_canary_alarm_beside_every_alarm(default: Synth) -> None:
    """While it is in ALARM the service pages are held: the on-call engineer sees why on the dashboard."""
    canary_id, _ = _canary(default)
    (dashboard,) = default.of_type("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    assert {"Fn::GetAtt": [canary_id, "Arn"]} in parts
    (listing,) = [w for w in dashboard_body(default)["widgets"] if w["properties"].get("title") == "Alarms"]
    # every metric alarm (the canary's included) and the ModelHealth roll-up
    assert len(listing["properties"]["alarms"]) == len(default.of_type("AWS::CloudWatch::Alarm")) + 1


def test_the_canary_threshold_is_the_apis_5xx_threshold() -> None:
    assert canary_watch(Settings(api_5xx_rate=0.05, alarm_subscriptions="oncall@example.com")).error_share == 0.05
