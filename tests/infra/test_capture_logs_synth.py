"""capture_sink=logs synthesized: the subscription filter on the inference function's log group, the
Firehose stream it feeds (decompression, message extraction, dynamic partitioning by model, version and
event hour; Parquet with the Glue table's schema when asked), the least-privilege roles, and the alarms."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from modelserve.records import (
    CAPTURE_LINES_FILTER_PATTERN,
    FeedbackRecord,
    RejectRecord,
    capture_key,
    feedback_prediction_key,
    reject_key,
    utc_iso,
)
from tests.infra.conftest import Synth


@pytest.fixture(scope="module")
def logs(synth_of) -> Synth:
    return synth_of("logs")


@pytest.fixture(scope="module")
def parquet(synth_of) -> Synth:
    return synth_of("logs_parquet_kms")


def _stream(s: Synth) -> tuple[str, dict[str, Any]]:
    ((sid, stream),) = s.of_type("AWS::KinesisFirehose::DeliveryStream").items()
    return sid, stream["Properties"]["ExtendedS3DestinationConfiguration"]


def _processors(dest: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        p["Type"]: {q["ParameterName"]: q["ParameterValue"] for q in p.get("Parameters", [])}
        for p in dest["ProcessingConfiguration"]["Processors"]
    }


def _role_statements(s: Synth, role_id_part: str) -> list[dict[str, Any]]:
    out = []
    for pol in s.of_type("AWS::IAM::Policy").values():
        roles = json.dumps(pol["Properties"]["Roles"])
        if role_id_part in roles:
            out += pol["Properties"]["PolicyDocument"]["Statement"]
    return out


def test_the_inference_log_group_is_subscribed_with_the_capture_line_pattern(logs: Synth, default: Synth, s3_sink: Synth) -> None:
    assert not s3_sink.of_type("AWS::Logs::SubscriptionFilter")
    assert default.of_type("AWS::Logs::SubscriptionFilter")  # logs is the default sink
    ((_, sub),) = logs.of_type("AWS::Logs::SubscriptionFilter").items()
    p = sub["Properties"]
    sid, _ = _stream(logs)
    assert p["FilterPattern"] == CAPTURE_LINES_FILTER_PATTERN
    assert p["DestinationArn"] == {"Fn::GetAtt": [sid, "Arn"]}
    group = logs.stack.serving.log_group.node.default_child
    assert p["LogGroupName"] == {"Ref": logs.stack.get_logical_id(group)}
    # the role CloudWatch Logs assumes may put records into that stream only
    role_id = p["RoleArn"]["Fn::GetAtt"][0]
    (statement,) = _role_statements(logs, role_id)
    assert sorted(statement["Action"]) == ["firehose:PutRecord", "firehose:PutRecordBatch"]
    assert statement["Resource"] == {"Fn::GetAtt": [sid, "Arn"]}
    trust = logs.resources[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "logs.amazonaws.com"}


def test_firehose_files_each_line_by_model_version_and_event_hour(logs: Synth) -> None:
    _, dest = _stream(logs)
    assert dest["DynamicPartitioningConfiguration"]["Enabled"] is True
    assert dest["Prefix"] == (
        "captures/model=!{partitionKeyFromQuery:model}/version=!{partitionKeyFromQuery:version}/"
        "dt=!{partitionKeyFromQuery:dt}/hour=!{partitionKeyFromQuery:hour}/"
    )
    procs = _processors(dest)
    assert procs["Decompression"] == {"CompressionFormat": "GZIP"}
    assert procs["CloudWatchLogProcessing"] == {"DataMessageExtraction": "true"}
    assert "AppendDelimiterToRecord" in procs and dest["CompressionFormat"] == "GZIP"
    assert "DataFormatConversionConfiguration" not in dest
    # the jq query's slices (jq slices strings as Python does) give the S3 sink's own partition values
    query = procs["MetadataExtraction"]["MetadataExtractionQuery"]
    assert query == "{model: .model_name, version: .model_version, dt: .event_time[0:10], hour: .event_time[11:13]}"
    at = datetime(2026, 11, 25, 7, 4, 5, tzinfo=UTC)
    t = utc_iso(at)
    ours = capture_key("m", "v1", at, "r")
    assert ours.startswith(f"captures/model=m/version=v1/dt={t[0:10]}/hour={t[11:13]}/")


def test_the_function_needs_no_firehose_permission_with_log_lines(logs: Synth) -> None:
    statements = _role_statements(logs, "ServingRole")
    assert statements and not any("firehose:" in json.dumps(st["Action"]) for st in statements)


def test_parquet_is_converted_with_the_glue_tables_schema(parquet: Synth) -> None:
    sid, dest = _stream(parquet)
    conv = dest["DataFormatConversionConfiguration"]
    assert conv["Enabled"] is True
    assert "ParquetSerDe" in conv["OutputFormatConfiguration"]["Serializer"]
    assert "OpenXJsonSerDe" in conv["InputFormatConfiguration"]["Deserializer"]
    schema = conv["SchemaConfiguration"]
    ((_, table),) = [(i, t) for i, t in parquet.of_type("AWS::Glue::Table").items() if t["Properties"]["TableInput"]["Name"] == "captures"]
    ti = table["Properties"]["TableInput"]
    assert schema["TableName"] == ti["Name"] and schema["DatabaseName"] == table["Properties"]["DatabaseName"]
    assert dest["CompressionFormat"] == "UNCOMPRESSED" and "AppendDelimiterToRecord" not in _processors(dest)
    sd = ti["StorageDescriptor"]
    assert sd["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe") and ti["Parameters"]["classification"] == "parquet"
    # the columns conversion keeps include the challenger's variant and the captured explanations
    assert {"variant", "encoding_fallback", "inputs", "probabilities", "explanation"} <= {c["Name"] for c in sd["Columns"]}
    role_id = schema["RoleARN"]["Fn::GetAtt"][0]
    glue = [st for st in _role_statements(parquet, role_id) if "glue:" in json.dumps(st["Action"])]
    assert len(glue) == 1 and sorted(glue[0]["Action"]) == ["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"]


def test_firehose_delivery_is_alarmed_for_the_log_path(logs: Synth) -> None:
    alarms = {a["Properties"].get("MetricName") for a in logs.of_type("AWS::CloudWatch::Alarm").values()}
    assert {"DeliveryToS3.Success", "DeliveryToS3.DataFreshness"} <= alarms


def test_the_athena_workgroup_keeps_results_in_the_bucket_encrypted_and_limits_bytes_scanned(parquet: Synth, logs: Synth) -> None:
    assert not logs.of_type("AWS::Athena::WorkGroup")  # drift_athena=off
    ((wg_id, wg),) = parquet.of_type("AWS::Athena::WorkGroup").items()
    conf = wg["Properties"]["WorkGroupConfiguration"]
    assert conf["BytesScannedCutoffPerQuery"] == parquet.settings.athena_bytes_scanned_limit_mb * 1024 * 1024
    assert conf["EnforceWorkGroupConfiguration"] is True
    result = conf["ResultConfiguration"]
    assert "athena-results/" in json.dumps(result["OutputLocation"])
    assert result["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"  # the bucket's key
    fn = next(
        f["Properties"]
        for f in parquet.of_type("AWS::Lambda::Function").values()
        if "MS_ATHENA_WORKGROUP" in f["Properties"].get("Environment", {}).get("Variables", {})
    )
    assert fn["Environment"]["Variables"]["MS_ATHENA_WORKGROUP"] == {"Ref": wg_id}
    assert fn["Environment"]["Variables"]["MS_CAPTURES_TABLE"].endswith(".captures")


def test_the_drift_check_may_query_only_its_workgroup_and_write_only_athena_results(parquet: Synth) -> None:
    (wg_id,) = parquet.of_type("AWS::Athena::WorkGroup")
    statements = {st.get("Sid"): st for st in _role_statements(parquet, "DriftCheck")}
    athena = statements["QueryCapturesInWorkgroup"]
    assert sorted(athena["Action"]) == [
        "athena:GetQueryExecution",
        "athena:GetQueryResults",
        "athena:StartQueryExecution",
        "athena:StopQueryExecution",
    ]
    assert wg_id in json.dumps(athena["Resource"]) and "*" not in json.dumps(athena["Resource"]).replace("/*", "")
    glue = statements["ReadCapturesTableDefinition"]
    assert sorted(glue["Action"]) == ["glue:GetDatabase", "glue:GetTable"]
    assert "table/" in json.dumps(glue["Resource"]) and "/captures" in json.dumps(glue["Resource"])
    writes = statements["WriteReadAthenaResults"]
    assert json.dumps(writes["Resource"]).count("athena-results/*") == 1 and "captures/" not in json.dumps(writes["Resource"])
    assert statements["ListAthenaResults"]["Condition"] == {"StringLike": {"s3:prefix": ["athena-results/*"]}}


def test_the_feedback_table_projects_the_prediction_hour_layout_and_is_readable_only_as_a_table(parquet: Synth, logs: Synth) -> None:
    assert [t["Properties"]["TableInput"]["Name"] for t in logs.of_type("AWS::Glue::Table").values()] == ["captures"]  # Athena off
    tables = {t["Properties"]["TableInput"]["Name"]: t["Properties"] for t in parquet.of_type("AWS::Glue::Table").values()}
    feedback, captures = tables["feedback"], tables["captures"]
    assert feedback["DatabaseName"] == captures["DatabaseName"]  # the drift check names it next to the captures table
    ti = feedback["TableInput"]
    params = ti["Parameters"]
    assert [k["Name"] for k in ti["PartitionKeys"]] == ["model", "dt", "hour"]
    # the template, filled in, is the folder /feedback files a label under (the hour its prediction was made)
    template = json.dumps(params["storage.location.template"])
    folder = template[template.index("feedback/") : template.rindex("/") + 1]
    at = datetime(2026, 12, 6, 7, 30, tzinfo=UTC)
    key = feedback_prediction_key("penguins", at, at, "b1")
    filled = folder.replace("${model}", "penguins").replace("${dt}", "2026-12-06").replace("${hour}", "07")
    assert key.startswith(filled) and key[len(filled) :].count("/") == 0
    assert params["projection.hour.digits"] == "2" and params["projection.dt.format"] == "yyyy-MM-dd"
    assert params["compressionType"] == "gzip" and ti["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("JsonSerDe")
    # its columns are the fields a stored label has (FeedbackRecord)
    assert {c["Name"] for c in ti["StorageDescriptor"]["Columns"]} == set(FeedbackRecord.__dataclass_fields__)
    # the drift check reads its definition (the objects under feedback/ it already reads), nothing more
    statements = {st.get("Sid"): st for st in _role_statements(parquet, "DriftCheck")}
    glue = json.dumps(statements["ReadCapturesTableDefinition"]["Resource"])
    assert glue.count("table/") == 3 and "/captures" in glue and "/feedback" in glue and "/rejects" in glue
    reads = [st for st in statements.values() if "s3:GetObject" in _actions(st) and "feedback/*" in json.dumps(st["Resource"])]
    assert len(reads) == 1


def test_the_rejects_table_projects_where_a_refused_request_is_filed(parquet: Synth) -> None:
    tables = {t["Properties"]["TableInput"]["Name"]: t["Properties"] for t in parquet.of_type("AWS::Glue::Table").values()}
    ti = tables["rejects"]["TableInput"]
    assert tables["rejects"]["DatabaseName"] == tables["captures"]["DatabaseName"]
    assert [k["Name"] for k in ti["PartitionKeys"]] == ["model", "version", "dt", "hour"]
    template = json.dumps(ti["Parameters"]["storage.location.template"])
    folder = template[template.index("rejects/") : template.rindex("/") + 1]
    at = datetime(2026, 12, 6, 7, 30, tzinfo=UTC)
    key = reject_key("penguins", "v1", at, "r1")
    filled = folder.replace("${model}", "penguins").replace("${version}", "v1").replace("${dt}", "2026-12-06").replace("${hour}", "07")
    assert key.startswith(filled) and key[len(filled) :].count("/") == 0
    # one column per field of a stored reject, the errors typed so SQL can split them by field and reason
    columns = {c["Name"]: c["Type"] for c in ti["StorageDescriptor"]["Columns"]}
    assert set(columns) == set(RejectRecord.__dataclass_fields__)
    assert columns["errors"] == "array<struct<row:int,field:string,reason:string,message:string>>"


def test_the_default_drift_athena_auto_synthesizes_the_same_workgroup_permissions_and_alarm_as_on(parquet: Synth, default: Synth) -> None:
    auto = default
    assert auto.settings.drift_athena == "auto"
    ((wg_id, wg),) = auto.of_type("AWS::Athena::WorkGroup").items()
    limit = wg["Properties"]["WorkGroupConfiguration"]["BytesScannedCutoffPerQuery"]
    assert limit == auto.settings.athena_bytes_scanned_limit_mb * 1024 * 1024
    on = {st.get("Sid"): st for st in _role_statements(parquet, "DriftCheck")}
    auto_statements = {st.get("Sid"): st for st in _role_statements(auto, "DriftCheck")}
    for sid in ("QueryCapturesInWorkgroup", "ReadCapturesTableDefinition", "ListAthenaResults", "WriteReadAthenaResults"):
        assert sorted(_actions(auto_statements[sid])) == sorted(_actions(on[sid]))
    (fn,) = [
        f["Properties"]
        for f in auto.of_type("AWS::Lambda::Function").values()
        if "MS_ATHENA_WORKGROUP" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    env = fn["Environment"]["Variables"]
    assert env["MS_DRIFT_ATHENA"] == "auto" and env["MS_ATHENA_WORKGROUP"] == {"Ref": wg_id}  # the function knows the mode
    assert [i for i in auto.of_type("AWS::CloudWatch::Alarm") if i.startswith("MonitoringAthenaQueryErrors")]


def _actions(st: dict[str, Any]) -> list[str]:
    a = st["Action"]
    return a if isinstance(a, list) else [a]


def test_without_drift_athena_the_drift_check_has_no_athena_or_glue_permission(logs: Synth) -> None:
    statements = _role_statements(logs, "DriftCheck")
    assert statements and not any(a.startswith(("athena:", "glue:")) for st in statements for a in _actions(st))


def _alarms_on(s: Synth, metric: str) -> list[dict[str, Any]]:
    return [a["Properties"] for a in s.of_type("AWS::CloudWatch::Alarm").values() if a["Properties"].get("MetricName") == metric]


def test_what_the_log_subscription_fails_to_deliver_is_alarmed_on_its_own_filter(logs: Synth, s3_sink: Synth) -> None:
    ((_, sub),) = logs.of_type("AWS::Logs::SubscriptionFilter").items()
    assert sub["Properties"]["FilterName"] == "capture-lines"
    for metric in ("DeliveryErrors", "DeliveryThrottling"):
        (alarm,) = _alarms_on(logs, metric)
        assert alarm["Namespace"] == "AWS/Logs" and alarm["Statistic"] == "Sum" and alarm["Threshold"] == 0
        dims = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert dims == {"LogGroupName": sub["Properties"]["LogGroupName"], "DestinationType": "Firehose", "FilterName": "capture-lines"}
        assert not _alarms_on(s3_sink, metric)
    assert not _alarms_on(logs, "FailedConversion.Records")  # JSON Lines: nothing to convert


def test_parquet_conversion_failures_are_alarmed_on_the_stream(parquet: Synth) -> None:
    sid, _ = _stream(parquet)
    (alarm,) = _alarms_on(parquet, "FailedConversion.Records")
    assert alarm["Namespace"] == "AWS/Firehose" and alarm["Dimensions"] == [{"Name": "DeliveryStreamName", "Value": {"Ref": sid}}]


def test_athena_query_errors_are_alarmed_only_where_the_drift_check_queries_athena(parquet: Synth, logs: Synth) -> None:
    def athena_alarms(s: Synth) -> list[str]:
        return [i for i in s.of_type("AWS::CloudWatch::Alarm") if i.startswith("MonitoringAthenaQueryErrors")]

    (alarm_id,) = athena_alarms(parquet)
    alarm = parquet.resources[alarm_id]["Properties"]
    assert "AthenaQueryErrors" in json.dumps(alarm["Metrics"]) and "alarm-athena-query-errors" in json.dumps(alarm["AlarmDescription"])
    assert not athena_alarms(logs)


def test_the_new_losses_page_through_the_pipeline_composite(parquet: Synth) -> None:
    """They join the composites that already stand for CaptureReadErrors (the pipeline page, the model-health roll-up)."""
    rules = [
        json.dumps(c["Properties"]["AlarmRule"])
        for c in parquet.of_type("AWS::CloudWatch::CompositeAlarm").values()
        if "MonitoringCaptureReadErrors" in json.dumps(c["Properties"]["AlarmRule"])
    ]
    new = ("CaptureLinesDeliveryErrors", "CaptureLinesDeliveryThrottling", "CaptureParquetConversionFailures", "AthenaQueryErrors")
    assert rules and all(f"Monitoring{alarm_id}" in rule for rule in rules for alarm_id in new)
