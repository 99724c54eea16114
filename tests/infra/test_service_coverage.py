"""The service's own alarms and guards in the synthesized template: API 4xx share, request count, Firehose
delivery alarms; capture objects that can't be replaced unnoticed; inference reserved concurrency;
the drift check's right to put verdict events."""

from __future__ import annotations

import json
from typing import Any

from cdk.alarms import API_4XX_MIN_REQUESTS, alarm_specs, evaluate
from modelserve.settings import Settings
from tests.infra.conftest import Synth, alarm_expression, alarm_metric_stats


def _alarms(s: Synth) -> dict[str, dict[str, Any]]:
    return {a["Properties"]["AlarmName"].rsplit("-", 1)[-1]: a["Properties"] for a in s.of_type("AWS::CloudWatch::Alarm").values()}


def _api_dims(s: Synth) -> dict[str, str]:
    (api,) = s.of_type("AWS::ApiGateway::RestApi").values()
    return {"ApiName": api["Properties"]["Name"], "Stage": s.settings.stage_name}


# ------------------------------------------------------------------ API 4xx share and request count


def test_api_4xx_share_alarm_reads_the_stage_over_minutes_gated_on_requests(default: Synth) -> None:
    a = _alarms(default)["Api4xxRate"]
    stats = alarm_metric_stats(a)
    # the gateway's own refusals: its 4xx count less the function's validation refusals (RejectRate pages for those)
    assert (stats["errors"]["namespace"], stats["errors"]["name"], stats["errors"]["stat"]) == ("AWS/ApiGateway", "4XXError", "Sum")
    assert stats["errors"]["dims"] == _api_dims(default) == stats["requests"]["dims"]
    assert (stats["requests"]["name"], stats["requests"]["stat"]) == ("Count", "Sum")
    assert (stats["rejects"]["name"], stats["rejects"]["stat"]) == ("ValidationRejects", "Sum")
    assert stats["errors"]["period"] == stats["requests"]["period"] == stats["rejects"]["period"] == 300
    # and less the refusals for access (403, 404, 429) counted from the access log: a scanner pages no one
    assert alarm_expression(a) == f"IF(requests >= {API_4XX_MIN_REQUESTS}, (errors - FILL(rejects, 0) - FILL(refused, 0)) / requests, 0)"
    assert (stats["refused"]["name"], stats["refused"]["stat"], stats["refused"]["period"]) == ("AccessRefusals", "Sum", 300)
    assert stats["refused"]["dims"] == {"Deployment": default.stack_name}
    assert a["Threshold"] == default.settings.api_4xx_rate and a["ComparisonOperator"] == "GreaterThanThreshold"
    assert (a["EvaluationPeriods"], a["DatapointsToAlarm"]) == (3, 2)
    assert "docs/runbook.md#alarm-api-4xx-rate" in json.dumps(a["AlarmDescription"])
    # a key change is not the new version's fault: it does not roll a canary back
    group = next(iter(default.of_type("AWS::CodeDeploy::DeploymentGroup").values()))["Properties"]
    rollback = json.dumps(group["AlarmConfiguration"])
    assert "Api4xxRate" not in rollback and "Api5xxRate" in rollback


def test_lost_traffic_reads_the_requests_served_so_a_deleted_keys_403_storm_pages(default: Synth) -> None:
    """TrafficDrop's band is over Count less AccessRefusals (both five-minute sums, 0 when none): every client refused
    403 leaves a Count as high as before but nothing served; a scanner's refusals on top of the traffic change nothing."""
    a = _alarms(default)["TrafficDrop"]
    stats = alarm_metric_stats(a)
    queries = {q["Id"]: q for q in a["Metrics"]}
    (band,) = [q for q in a["Metrics"] if q["Id"] == a["ThresholdMetricId"]]
    served_id = band["Expression"].removeprefix("ANOMALY_DETECTION_BAND(").split(",")[0]
    assert queries[served_id]["Expression"] == "FILL(m, 0) - FILL(refused, 0)" and queries[served_id]["ReturnData"] is True
    assert band["Expression"] == f"ANOMALY_DETECTION_BAND({served_id}, {default.settings.traffic_anomaly_band:g})"
    count = stats["m"]
    assert (count["namespace"], count["name"], count["stat"], count["period"]) == ("AWS/ApiGateway", "Count", "Sum", 300)
    assert count["dims"] == _api_dims(default)
    assert (stats["refused"]["namespace"], stats["refused"]["name"], stats["refused"]["stat"], stats["refused"]["period"]) == (
        default.settings.metrics_namespace,
        "AccessRefusals",
        "Sum",
        300,
    )
    assert stats["refused"]["dims"] == {"Deployment": default.stack_name}
    assert a["ComparisonOperator"] == "LessThanLowerThreshold" and (a["EvaluationPeriods"], a["DatapointsToAlarm"]) == (3, 3)
    assert "AccessRefusals" in json.dumps(a["AlarmDescription"])


def test_request_count_alarm_is_off_by_default_and_has_its_own_period(default: Synth, synth_of) -> None:
    assert "LowTraffic" not in _alarms(default)
    coverage = synth_of("coverage")
    a = _alarms(coverage)["LowTraffic"]
    stats = alarm_metric_stats(a)["m"]
    assert (stats["namespace"], stats["name"], stats["stat"], stats["dims"]) == ("AWS/ApiGateway", "Count", "Sum", _api_dims(coverage))
    # 30 minutes as set, whatever the drift schedule (hourly here); no requests at all is an alarm
    assert stats["period"] == 30 * 60 and a["EvaluationPeriods"] == 1
    assert a["Threshold"] == 50 and a["ComparisonOperator"] == "LessThanThreshold"
    assert a["TreatMissingData"] == "breaching"
    assert "docs/runbook.md#alarm-low-traffic" in json.dumps(a["AlarmDescription"])


def test_request_count_alarm_reads_the_requests_served_not_the_refused(synth_of) -> None:
    """A scanner's 403/404/429 are no traffic: LowTraffic reads Count less AccessRefusals, 0 when none, as TrafficDrop."""
    coverage = synth_of("coverage")
    a = _alarms(coverage)["LowTraffic"]
    assert alarm_expression(a) == "FILL(m, 0) - FILL(refused, 0)"
    refused = alarm_metric_stats(a)["refused"]
    assert (refused["namespace"], refused["name"], refused["stat"], refused["period"]) == (
        coverage.settings.metrics_namespace,
        "AccessRefusals",
        "Sum",
        30 * 60,
    )
    assert refused["dims"] == {"Deployment": coverage.stack_name}
    assert "AccessRefusals" in json.dumps(a["AlarmDescription"])


def test_request_count_alarm_follows_its_settings_not_the_drift_schedule() -> None:
    for schedule in ("rate(1 hour)", "cron(0 6 * * ? *)", "rate(2 days)"):
        s = Settings(alarm_min_requests=5, alarm_min_requests_minutes=15, drift_schedule=schedule)
        (spec,) = [x for x in alarm_specs(s, "m", "v") if x.id == "LowTraffic"]
        assert spec.period_s == 900
        assert evaluate(spec, None) == "ALARM" and evaluate(spec, 4) == "ALARM" and evaluate(spec, 5) == "OK"


# ------------------------------------------------------------------ Firehose delivery


def test_firehose_delivery_alarms_only_with_that_sink(s3_sink: Synth, full: Synth) -> None:
    assert not {"FirehoseDeliveryFailures", "FirehoseDataFreshness"} & set(_alarms(s3_sink))
    alarms = _alarms(full)
    (stream_id,) = full.of_type("AWS::KinesisFirehose::DeliveryStream")
    success, freshness = alarms["FirehoseDeliveryFailures"], alarms["FirehoseDataFreshness"]
    for a in (success, freshness):
        assert a["Namespace"] == "AWS/Firehose"
        assert a["Dimensions"] == [{"Name": "DeliveryStreamName", "Value": {"Ref": stream_id}}]
        assert a["TreatMissingData"] == "notBreaching"  # no records, nothing to deliver
    assert (success["MetricName"], success["Statistic"], success["Threshold"], success["ComparisonOperator"]) == (
        "DeliveryToS3.Success",
        "Average",
        1,
        "LessThanThreshold",
    )
    assert (freshness["MetricName"], freshness["Statistic"], freshness["ComparisonOperator"]) == (
        "DeliveryToS3.DataFreshness",
        "Maximum",
        "GreaterThanThreshold",
    )
    assert freshness["Threshold"] == full.settings.firehose_max_data_age_s
    assert "alarm-firehose-delivery-failures" in json.dumps(success["AlarmDescription"])
    assert "alarm-firehose-data-freshness" in json.dumps(freshness["AlarmDescription"])
    # both roll up into model health (the captures the drift check reads)
    (health,) = [c for k, c in full.of_type("AWS::CloudWatch::CompositeAlarm").items() if k.startswith("MonitoringModelHealth")]
    rule = json.dumps(health["Properties"]["AlarmRule"])
    assert "FirehoseDeliveryFailures" in rule and "FirehoseDataFreshness" in rule


# ------------------------------------------------------------------ capture objects kept


def test_capture_objects_cannot_be_replaced_unnoticed(default: Synth) -> None:
    ((bucket_id, bucket),) = [(k, v) for k, v in default.of_type("AWS::S3::Bucket").items() if k.startswith("CaptureBucket")]
    props = bucket["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    days = default.settings.capture_noncurrent_days
    for rule_id in ("captures", "feedback", "rejects", "capture-errors", "reports", "audit"):
        assert rules[rule_id]["NoncurrentVersionExpiration"] == {"NoncurrentDays": days}, rule_id
    assert rules["hour-samples"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert rules["delete-markers"]["ExpiredObjectDeleteMarker"] is True
    # the inference role may create objects under captures/, feedback/ and rejects/ and do nothing else with them:
    # no delete, no version or ACL calls, no other prefix
    (role_id,) = [k for k in default.of_type("AWS::IAM::Role") if k.startswith("ServingRole")]
    s3_statements = [
        st
        for p in default.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for st in p["Properties"]["PolicyDocument"]["Statement"]
        if "s3:" in json.dumps(st["Action"])
    ]
    # one write statement; the rest only read the label a row holds (the /feedback conflict check)
    (st,) = [x for x in s3_statements if x["Action"] == "s3:PutObject"]
    reads = [x for x in s3_statements if x is not st]
    assert sorted(x["Action"] for x in reads) == ["s3:GetObject", "s3:ListBucket"]
    for x in reads:
        assert "/labels/*" in json.dumps(x.get("Resource")) + json.dumps(x.get("Condition", {})), x
    suffixes = sorted("".join(x for x in r["Fn::Join"][1] if isinstance(x, str)) for r in st["Resource"])
    assert suffixes == ["/captures/*", "/feedback/*", "/rejects/*"]
    assert all({"Fn::GetAtt": [bucket_id, "Arn"]} in r["Fn::Join"][1] for r in st["Resource"])


# ------------------------------------------------------------------ concurrency, verdict events


def _function(s: Synth, prefix: str) -> dict[str, Any]:
    (props,) = [v["Properties"] for k, v in s.of_type("AWS::Lambda::Function").items() if k.startswith(prefix)]
    return props


def test_inference_reserved_concurrency_is_a_setting(default: Synth, synth_of) -> None:
    assert "ReservedConcurrentExecutions" not in _function(default, "ServingFunction")
    assert _function(synth_of("coverage"), "ServingFunction")["ReservedConcurrentExecutions"] == 10
    assert _function(default, "MonitoringDriftCheck")["ReservedConcurrentExecutions"] == 1


def test_drift_check_may_put_events_on_the_default_bus_only(default: Synth) -> None:
    role_id = _function(default, "MonitoringDriftCheck")["Role"]["Fn::GetAtt"][0]
    statements = [
        st
        for p in default.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for st in p["Properties"]["PolicyDocument"]["Statement"]
        if "events:" in json.dumps(st["Action"])
    ]
    (st,) = statements
    assert st["Action"] == "events:PutEvents" and st["Effect"] == "Allow" and "Condition" not in st
    arn = "".join(p if isinstance(p, str) else "<" + p["Ref"] + ">" for p in st["Resource"]["Fn::Join"][1])
    assert arn == "arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:event-bus/default"


def test_every_key_root_of_the_capture_bucket_expires_with_its_noncurrent_versions(default: Synth) -> None:
    """Every prefix the functions write (records.py's roots) has a rule that expires current and noncurrent objects:
    nothing captured outlives its expiry, not even what the drift check rewrites every run (the audit sample)."""
    import modelserve.records as records
    from cdk.capture import FIREHOSE_ERROR_ROOT

    roots = {v for k, v in vars(records).items() if k.endswith("_ROOT") and isinstance(v, str)} | {FIREHOSE_ERROR_ROOT}
    ((_, bucket),) = [(k, v) for k, v in default.of_type("AWS::S3::Bucket").items() if k.startswith("CaptureBucket")]
    by_prefix = {r.get("Prefix"): r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    for root in sorted(roots):
        rule = by_prefix.get(f"{root}/")
        assert rule is not None, f"no lifecycle rule for {root}/"
        assert rule["ExpirationInDays"] > 0 and rule["NoncurrentVersionExpiration"]["NoncurrentDays"] > 0, root
    assert by_prefix["audit/"]["ExpirationInDays"] == by_prefix["captures/"]["ExpirationInDays"]
