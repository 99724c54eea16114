"""The synthesized stack (bundling skipped): resources and their key properties, cdk-nag, cfn-lint."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from cdk.alarms import alarm_specs
from tests.infra.conftest import Synth, alarm_expression, alarm_metric_stats


def _policy_statements(s: Synth, role_path_fragment: str) -> list[dict[str, Any]]:
    """Statements of the inline policies attached to the role whose logical id contains the fragment."""
    out = []
    for res in s.of_type("AWS::IAM::Policy").values():
        roles = [r.get("Ref", "") for r in res["Properties"].get("Roles", [])]
        if any(role_path_fragment in r for r in roles):
            out += res["Properties"]["PolicyDocument"]["Statement"]
    assert out, f"no policy for a role like {role_path_fragment}"
    return out


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _arn_suffixes(resources: Any) -> list[str]:
    """'/captures/*' from {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/captures/*"]]}."""
    out = []
    for r in _as_list(resources):
        if isinstance(r, dict) and "Fn::Join" in r:
            out.append("".join(p for p in r["Fn::Join"][1] if isinstance(p, str)))
        elif isinstance(r, dict) and "Fn::GetAtt" in r:
            out.append("<arn>")
        else:
            out.append(str(r))
    return out


def _single(s: Synth, cfn_type: str) -> dict[str, Any]:
    found = s.of_type(cfn_type)
    assert len(found) == 1, f"{cfn_type}: {list(found)}"
    return next(iter(found.values()))["Properties"]


def _function(s: Synth, fragment: str) -> dict[str, Any]:
    found = {k: v for k, v in s.of_type("AWS::Lambda::Function").items() if fragment in k}
    assert len(found) == 1, list(found)
    return next(iter(found.values()))["Properties"]


# ------------------------------------------------------------------ capture bucket


def test_capture_bucket_encryption_public_access_and_versioning(default: Synth, full: Synth) -> None:
    t = default.assertions()
    from aws_cdk.assertions import Match

    t.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LoggingConfiguration": Match.object_like({"LogFilePrefix": "capture-bucket/"}),
        },
    )
    # the capture bucket keeps replaced objects (see test_capture_objects_cannot_be_replaced_unnoticed);
    # its access-log bucket does not need to
    versioned = {k for k, b in default.of_type("AWS::S3::Bucket").items() if "VersioningConfiguration" in b["Properties"]}
    assert len(versioned) == 1 and versioned.pop().startswith("CaptureBucket")
    kms_buckets = [
        b
        for b in full.of_type("AWS::S3::Bucket").values()
        if b["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
        == "aws:kms"
    ]
    assert len(kms_buckets) == 1
    assert kms_buckets[0]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["BucketKeyEnabled"] is True


def test_every_bucket_denies_plain_http(default: Synth) -> None:
    policies = default.of_type("AWS::S3::BucketPolicy")
    assert len(policies) == len(default.of_type("AWS::S3::Bucket")) == 2
    for p in policies.values():
        denies = [
            st
            for st in p["Properties"]["PolicyDocument"]["Statement"]
            if st["Effect"] == "Deny" and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        ]
        assert denies, p


def test_lifecycle_rules_follow_settings(default: Synth) -> None:
    s = default.settings
    bucket = next(b for k, b in default.of_type("AWS::S3::Bucket").items() if k.startswith("CaptureBucket"))
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    for rid, prefix in (("captures", "captures/"), ("feedback", "feedback/")):
        r = rules[rid]
        assert r["Prefix"] == prefix and r["Status"] == "Enabled"
        assert r["ExpirationInDays"] == s.capture_expiry_days
        assert r["Transitions"] == [{"StorageClass": "STANDARD_IA", "TransitionInDays": s.capture_transition_days}]
    assert rules["reports"]["Prefix"] == "reports/"
    assert rules["reports"]["ExpirationInDays"] == s.report_expiry_days
    # hour samples outlive the window that uses them by two days, no more
    assert rules["hour-samples"]["Prefix"] == "samples/"
    assert rules["hour-samples"]["ExpirationInDays"] == -(-s.window_hours // 24) + 2
    log_bucket = next(b for k, b in default.of_type("AWS::S3::Bucket").items() if k.startswith("CaptureAccessLogs"))
    assert (
        log_bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
            "SSEAlgorithm"
        ]
        == "AES256"
    )
    assert any("ExpirationInDays" in r for r in log_bucket["Properties"]["LifecycleConfiguration"]["Rules"])


def test_no_transition_when_disabled(public: Synth) -> None:
    bucket = next(b for k, b in public.of_type("AWS::S3::Bucket").items() if k.startswith("CaptureBucket"))
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert "Transitions" not in rules["captures"]


# ------------------------------------------------------------------ least privilege


def test_inference_role_writes_only_captures_feedback_and_rejects(default: Synth) -> None:
    st = _policy_statements(default, "ServingRole")
    s3 = [x for x in st if any(str(a).startswith("s3:") for a in _as_list(x["Action"]))]
    assert len(s3) == 3
    writes, reads, lists = ([x for x in s3 if _as_list(x["Action"]) == [a]] for a in ("s3:PutObject", "s3:GetObject", "s3:ListBucket"))
    assert len(writes) == len(reads) == len(lists) == 1
    assert sorted(_arn_suffixes(writes[0]["Resource"])) == ["/captures/*", "/feedback/*", "/rejects/*"]
    # /feedback reads only the label a row holds, never a capture
    assert _arn_suffixes(reads[0]["Resource"]) == ["/feedback/model=*/labels/*"]
    assert lists[0]["Condition"] == {"StringLike": {"s3:prefix": ["feedback/model=*/labels/*"]}}
    assert not any("firehose:" in str(x["Action"]) for x in st)
    # no wildcard actions anywhere
    assert not any("*" in a for x in st for a in _as_list(x["Action"]))


def test_inference_role_with_firehose_and_kms(full: Synth) -> None:
    st = _policy_statements(full, "ServingRole")
    fh = [x for x in st if any(str(a).startswith("firehose:") for a in _as_list(x["Action"]))]
    assert len(fh) == 1
    assert sorted(_as_list(fh[0]["Action"])) == ["firehose:PutRecord", "firehose:PutRecordBatch"]
    assert fh[0]["Resource"] == {"Fn::GetAtt": [next(k for k in full.of_type("AWS::KinesisFirehose::DeliveryStream")), "Arn"]}
    kms = [x for x in st if "kms:GenerateDataKey" in _as_list(x["Action"])]
    assert kms and all(_as_list(x["Action"]) == ["kms:GenerateDataKey"] for x in kms)


def test_drift_role_reads_captures_feedback_writes_reports_and_hour_samples(default: Synth) -> None:
    st = {x.get("Sid"): x for x in _policy_statements(default, "MonitoringDriftCheckRole")}
    assert sorted(_arn_suffixes(st["ReadCapturesFeedbackReports"]["Resource"])) == [
        "/captures/*",
        "/feedback/*",
        "/rejects/*",
        "/reports/*",
        "/samples/*",
    ]
    assert _as_list(st["ReadCapturesFeedbackReports"]["Action"]) == ["s3:GetObject"]
    assert _as_list(st["WriteReportsAndHourSamples"]["Action"]) == ["s3:PutObject"]
    assert sorted(_arn_suffixes(st["WriteReportsAndHourSamples"]["Resource"])) == ["/audit/*", "/reports/*", "/samples/*"]
    assert st["ListCaptureFeedbackReports"]["Condition"]["StringLike"]["s3:prefix"] == [
        "captures/*",
        "feedback/*",
        "reports/*",
        "samples/*",
        "rejects/*",
    ]
    metrics = st["PublishDriftMetrics"]
    assert _as_list(metrics["Action"]) == ["cloudwatch:PutMetricData"]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": default.settings.metrics_namespace}}


# ------------------------------------------------------------------ functions, alias, deployment


def test_inference_function_configuration(default: Synth, full: Synth) -> None:
    s, m = default.settings, default.manifest
    f = _function(default, "ServingFunction")
    assert f["Runtime"] == f"python{s.python_runtime}"
    assert f["Architectures"] == ["arm64"]
    assert f["MemorySize"] == s.inference_memory_mb and f["Timeout"] == s.inference_timeout_s
    assert f["TracingConfig"] == {"Mode": "Active"}
    assert f["Handler"] == "handler.handler"
    env = f["Environment"]["Variables"]
    assert env["MS_MODEL_BUNDLE_PATH"] == "bundle"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == s.metrics_namespace == env["MS_METRICS_NAMESPACE"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "inference"
    assert env["MS_CAPTURE_BUCKET"] == {"Ref": next(k for k in default.resources if k.startswith("CaptureBucket"))}
    assert env["MS_MAX_BATCH_ROWS"] == str(s.max_batch_rows)
    assert "MS_FIREHOSE_STREAM" not in env
    assert m.version in f["Description"]
    f2 = _function(full, "ServingFunction")
    assert f2["Architectures"] == ["x86_64"]
    assert f2["Environment"]["Variables"]["MS_FIREHOSE_STREAM"] == {"Ref": next(iter(full.of_type("AWS::KinesisFirehose::DeliveryStream")))}
    assert f2["Environment"]["Variables"]["MS_CAPTURE_SINK"] == "firehose"


def test_live_alias_version_and_deployment_group(default: Synth, full: Synth) -> None:
    m = default.manifest
    alias = _single(default, "AWS::Lambda::Alias")
    assert alias["Name"] == "live"
    version = _single(default, "AWS::Lambda::Version")
    assert m.version in version["Description"]
    dg = _single(default, "AWS::CodeDeploy::DeploymentGroup")
    assert dg["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    assert set(dg["AutoRollbackConfiguration"]["Events"]) >= {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"}
    assert dg["AlarmConfiguration"]["Enabled"] is True
    rollback = {sp.id for sp in alarm_specs(default.settings, m.model_name, m.version) if sp.rollback}
    names = {json.dumps(a["Name"]) for a in dg["AlarmConfiguration"]["Alarms"]}
    # the service alarms and the canary alarm (a failing new version, tests/infra/test_canary_alarm.py)
    assert len(names) == len(rollback) + 1 == 4
    assert all(any(rid in n for n in names) for rid in (*rollback, "CanaryFailing"))
    # the alias is shifted by CodeDeploy
    alias_res = next(iter(default.of_type("AWS::Lambda::Alias").values()))
    assert "CodeDeployLambdaAliasUpdate" in alias_res["UpdatePolicy"]
    assert (
        _single(full, "AWS::CodeDeploy::DeploymentGroup")["DeploymentConfigName"] == "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"
    )
    assert _single(full, "AWS::Lambda::Alias")["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 2}


def test_drift_function_and_schedule(default: Synth) -> None:
    s = default.settings
    f = _function(default, "MonitoringDriftCheck")
    assert f["MemorySize"] == s.drift_memory_mb and f["Timeout"] == s.drift_timeout_s
    assert f["TracingConfig"] == {"Mode": "Active"}
    assert f["ReservedConcurrentExecutions"] == 1  # a slow check never overlaps the next
    env = f["Environment"]["Variables"]
    assert env["MS_ALPHA"] == str(s.alpha) and env["MS_WINDOW_HOURS"] == str(s.window_hours)
    assert "MS_CAPTURE_BUCKET" in env and env["MS_MODEL_BUNDLE_PATH"] == "bundle"
    # the drift check's schedule (the other rules react to alarm and deployment events)
    (rule,) = [r["Properties"] for r in default.of_type("AWS::Events::Rule").values() if "ScheduleExpression" in r["Properties"]]
    assert rule["ScheduleExpression"] == s.drift_schedule
    fn_id = next(k for k in default.of_type("AWS::Lambda::Function") if k.startswith("MonitoringDriftCheck"))
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [fn_id, "Arn"]}


# ------------------------------------------------------------------ API


def test_stage_throttling_tracing_and_access_logs(default: Synth) -> None:
    s = default.settings
    stage = _single(default, "AWS::ApiGateway::Stage")
    assert stage["StageName"] == s.stage_name
    assert stage["TracingEnabled"] is True
    ms = stage["MethodSettings"][0]
    assert ms["ThrottlingRateLimit"] == s.throttle_rate_limit and ms["ThrottlingBurstLimit"] == s.throttle_burst_limit
    assert ms["LoggingLevel"] == "ERROR"
    fmt = json.loads(stage["AccessLogSetting"]["Format"])
    assert fmt["requestId"] == "$context.requestId" and fmt["status"] == "$context.status"
    # who called: the API key's id (never the key), the IAM caller, the client address; and how it went
    assert fmt["apiKeyId"] == "$context.identity.apiKeyId"
    assert fmt["caller"] == "$context.identity.caller" and fmt["userArn"] == "$context.identity.userArn"
    assert fmt["ip"] == "$context.identity.sourceIp"
    assert fmt["responseLatency"] == "$context.responseLatency" and fmt["errorType"] == "$context.error.responseType"
    assert '$context.identity.apiKey"' not in stage["AccessLogSetting"]["Format"]


def _route_of(s: Synth, method: dict[str, Any]) -> str:
    """'/v2/{proxy+}' for a method: its resource's path, from the resources' PathParts and parents."""
    resources = s.of_type("AWS::ApiGateway::Resource")
    parts, ref = [], method["Properties"]["ResourceId"]
    while isinstance(ref, dict) and "Ref" in ref:
        res = resources[ref["Ref"]]["Properties"]
        parts.append(res["PathPart"])
        ref = res["ParentId"]
    return "/" + "/".join(reversed(parts))


def methods_by_route(s: Synth) -> dict[tuple[str, str], dict[str, Any]]:
    """(path, HTTP method) -> the method's properties."""
    return {(_route_of(s, m), m["Properties"]["HttpMethod"]): m["Properties"] for m in s.of_type("AWS::ApiGateway::Method").values()}


def test_methods_auth_and_validation(default: Synth, full: Synth, public: Synth) -> None:
    methods = methods_by_route(default)
    gets = {"/health", "/model", "/docs", "/openapi.json", "/v2", "/v2/{proxy+}"}
    assert set(methods) == {
        ("/predict", "POST"),
        ("/feedback", "POST"),
        ("/v2/{proxy+}", "POST"),
        *((p, "GET") for p in gets),
        *((p, "HEAD") for p in gets),
    }
    validators = default.of_type("AWS::ApiGateway::RequestValidator")
    body_validator = next(k for k, v in validators.items() if v["Properties"]["ValidateRequestBody"])
    for (path, _verb), p in methods.items():
        # the schema pages are readable without the key (the browser loading /docs cannot send it); nothing else
        assert p["ApiKeyRequired"] is (path not in ("/docs", "/openapi.json")), path
        assert p["AuthorizationType"] == "NONE"
        assert "RequestValidatorId" in p
        if path in ("/predict", "/feedback"):
            assert p["RequestValidatorId"] == {"Ref": body_validator}
            assert "application/json" in p["RequestModels"]
        else:  # OIP infer bodies may be binary tensors: no JSON body model, no body validation
            assert p["RequestValidatorId"] != {"Ref": body_validator} and "RequestModels" not in p, path
        # proxy integration into the live alias, never the bare function
        uri = json.dumps(p["Integration"]["Uri"])
        assert "ServingLive" in uri and p["Integration"]["Type"] == "AWS_PROXY"
    assert _single(default, "AWS::ApiGateway::UsagePlan")["Throttle"] == {
        "RateLimit": default.settings.throttle_rate_limit,
        "BurstLimit": default.settings.throttle_burst_limit,
    }
    assert len(default.of_type("AWS::ApiGateway::ApiKey")) == 1
    assert len(default.of_type("AWS::ApiGateway::UsagePlanKey")) == 1
    assert len(full.of_type("AWS::ApiGateway::Method")) == len(methods)
    for m in full.of_type("AWS::ApiGateway::Method").values():
        assert m["Properties"]["AuthorizationType"] == "AWS_IAM" and not m["Properties"].get("ApiKeyRequired")
    assert not full.of_type("AWS::ApiGateway::ApiKey")
    for m in public.of_type("AWS::ApiGateway::Method").values():
        assert m["Properties"]["AuthorizationType"] == "NONE" and not m["Properties"].get("ApiKeyRequired")


def test_the_open_inference_protocol_routes_are_authorized_like_predict(default: Synth, full: Synth) -> None:
    for s in (default, full):
        methods = methods_by_route(s)
        predict = methods[("/predict", "POST")]
        for route in (("/v2", "GET"), ("/v2/{proxy+}", "GET"), ("/v2/{proxy+}", "POST")):
            assert methods[route]["AuthorizationType"] == predict["AuthorizationType"], route
            assert methods[route].get("ApiKeyRequired") == predict.get("ApiKeyRequired"), route
            assert methods[route]["Integration"]["Uri"] == predict["Integration"]["Uri"], route
    # the stage's throttling covers every method, the /v2 tree included
    (setting,) = _single(default, "AWS::ApiGateway::Stage")["MethodSettings"]
    assert setting["ResourcePath"] == "/*" and setting["HttpMethod"] == "*"


def _gateway_serves(gateway: set[tuple[str, str]], path: str, verb: str) -> bool:
    if (path, verb) in gateway:
        return True
    # a greedy {proxy+} resource takes every deeper path
    return any(p.endswith("/{proxy+}") and path.startswith(p.removesuffix("{proxy+}")) and v == verb for p, v in gateway)


def test_every_endpoint_of_the_app_reaches_the_function_and_nothing_else_does(default: Synth) -> None:
    """The gateway declares routes explicitly: an endpoint added to serving/api.py without one would answer
    403 Missing Authentication Token when deployed, while every local test passes."""
    from types import SimpleNamespace

    from starlette.routing import Route

    from serving.api import create_app

    # the app's routes only depend on the manifest and the service's limits (no model is loaded)
    service = SimpleNamespace(
        manifest=default.manifest, max_batch_rows=1000, challenger=None, validator=SimpleNamespace(reject_unseen=True)
    )
    app = create_app(service, max_body_bytes=1024)  # type: ignore[arg-type]
    endpoints = {(r.path, verb) for r in app.routes if isinstance(r, Route) for verb in r.methods}
    endpoints |= {(app.docs_url, "GET"), (app.openapi_url, "GET")}
    endpoints |= {(path, "HEAD") for path, verb in endpoints if verb == "GET"}  # the app answers HEAD on GET routes
    gateway = set(methods_by_route(default))
    assert [e for e in sorted(endpoints) if not _gateway_serves(gateway, *e)] == []
    # and each gateway route leads to an endpoint (no method the app would answer 404/405 for)
    for path, verb in gateway:
        prefix = path.removesuffix("{proxy+}")
        assert any(p == path or (path.endswith("{proxy+}") and p.startswith(prefix)) for p, v in endpoints if v == verb), (path, verb)


def test_binary_bodies_pass_through_the_gateway(default: Synth) -> None:
    api = _single(default, "AWS::ApiGateway::RestApi")
    # base64 to the function and decoded on the way back (the function answers isBase64Encoded for them)
    assert set(api["BinaryMediaTypes"]) == {"application/octet-stream", "application/vnd.apache.arrow.stream"}
    assert "*/*" not in api["BinaryMediaTypes"]  # JSON stays text: the /predict body model still applies


# ------------------------------------------------------------------ alarms and notifications


def _expressions(alarm: dict[str, Any]) -> dict[str, str]:
    """Query id -> metric math expression of an alarm; "" for the one it alarms on (ReturnData)."""
    out = {q["Id"]: q["Expression"] for q in alarm.get("Metrics", []) if "Expression" in q}
    out[""] = next((q["Expression"] for q in alarm.get("Metrics", []) if q.get("ReturnData", True) and "Expression" in q), "")
    return out


def paged_ids(rule: Any) -> set[str]:
    """Logical ids of the alarms whose ALARM state puts a composite alarm rule in ALARM (not those under NOT)."""
    text = "".join(part if isinstance(part, str) else part["Fn::GetAtt"][0] for part in rule["Fn::Join"][1])
    text = re.sub(r"NOT \(\((?:[^()]|\([^()]*\))*\)\)", "", text)
    return set(re.findall(r'ALARM\("([^"]+)"\)', text))


def test_no_traffic_adds_nothing_to_the_pipeline_page_while_the_reject_rate_pages(default: Synth) -> None:
    """Every request refused leaves no scored row: NoTraffic would page a second time for RejectRate's cause."""
    (pipeline,) = [
        c["Properties"]
        for c in default.of_type("AWS::CloudWatch::CompositeAlarm").values()
        if c["Properties"]["AlarmName"].endswith("Page-pipeline")
    ]
    text = "".join(p if isinstance(p, str) else p["Fn::GetAtt"][0] for p in pipeline["AlarmRule"]["Fn::Join"][1])
    # nor while the drift check's reads fail (CaptureReadErrors names that fault) or the check itself fails
    assert re.search(
        r'ALARM\("MonitoringNoTraffic\w+"\) AND \(NOT \(\(ALARM\("MonitoringRejectRate\w+"\) OR '
        r'ALARM\("MonitoringCaptureReadErrors\w+"\) OR ALARM\("MonitoringDriftCheckErrors\w+"\)\)\)\)',
        text,
    ), text


def test_every_alarm_spec_becomes_an_alarm_its_family_notifies_for(default: Synth) -> None:
    m = default.manifest
    specs = alarm_specs(default.settings, m.model_name, m.version, deployment=default.stack_name)
    alarms = default.of_type("AWS::CloudWatch::Alarm")
    # and the canary alarm, which is no spec: it pages no one (tests/infra/test_canary_alarm.py)
    assert len(alarms) == len(specs) + 1 and sum(a["Properties"]["AlarmName"].endswith("-CanaryFailing") for a in alarms.values()) == 1
    topic = next(k for k in default.of_type("AWS::SNS::Topic") if k.startswith("MonitoringAlarmTopic"))
    inform = next(k for k in default.of_type("AWS::SNS::Topic") if k.startswith("MonitoringInformTopic"))
    by_name = {a["Properties"]["AlarmName"]: a["Properties"] for a in alarms.values()}
    composites = [c["Properties"] for c in default.of_type("AWS::CloudWatch::CompositeAlarm").values()]
    for spec in specs:
        (alarm_id,) = [k for k, v in alarms.items() if v["Properties"]["AlarmName"].endswith("-" + spec.id)]
        a = by_name[alarms[alarm_id]["Properties"]["AlarmName"]]
        if spec.anomaly_band:  # below the learned band: the band's width is the spec's threshold
            (band,) = [q for q in a["Metrics"] if q["Id"] == a["ThresholdMetricId"]]
            assert band["Expression"].startswith("ANOMALY_DETECTION_BAND(") and band["Expression"].endswith(f", {spec.threshold:g})")
        else:
            assert a["Threshold"] == spec.threshold
        assert a["ComparisonOperator"] == spec.comparison
        assert a["EvaluationPeriods"] == spec.evaluation_periods and a["DatapointsToAlarm"] == spec.datapoints_to_alarm
        assert a["TreatMissingData"] == spec.treat_missing_data
        stats = alarm_metric_stats(a)
        if not spec.pages:  # informs: its own actions on the non-paging topic, in no page
            assert a["AlarmActions"] == [{"Ref": inform}] and a["OKActions"] == [{"Ref": inform}]
            assert not [c for c in composites if alarm_id in paged_ids(c["AlarmRule"]) and c.get("AlarmActions")]
        else:
            # one cause, one page: the alarm itself has no actions; exactly one composite (its family's) notifies for it
            assert "AlarmActions" not in a and "OKActions" not in a
            (page,) = [c for c in composites if alarm_id in paged_ids(c["AlarmRule"]) and c.get("AlarmActions")]
            assert page["AlarmActions"] == [{"Ref": topic}] and page["OKActions"] == [{"Ref": topic}]
            assert page["AlarmName"].endswith("Page-" + spec.family.replace("_", "-"))
        if len(spec.windows) > 1:  # a drift-check metric: the larger of its windows' series
            exprs = _expressions(a)
            assert exprs[""] == "MAX([" + ", ".join(f"w{i}" for i in range(len(spec.windows))) + "])"
            for i, window in enumerate(spec.windows):
                w = stats[f"m{i}"] if spec.min_window_rows else stats[f"w{i}"]  # gated: w{i} is IF(rows{i}..., m{i}, 0)
                assert w["dims"] == {**spec.dimensions, "Window": window}
                assert (w["name"], w["namespace"], w["period"], w["stat"]) == (
                    spec.metric_name,
                    spec.namespace,
                    spec.period_s,
                    spec.statistic,
                )
                if spec.min_window_rows:  # each window gated by its own rows
                    assert exprs[f"w{i}"] == f"IF(rows{i} >= {spec.min_window_rows}, m{i}, 0)"
                    assert stats[f"rows{i}"]["name"] == "WindowRows" and stats[f"rows{i}"]["dims"] == w["dims"]
            continue
        if spec.minus_validation_rejects:  # the gateway's own refusals: its 4xx less the function's validation refusals
            access = " - FILL(refused, 0)" if spec.minus_access_refusals else ""
            assert alarm_expression(a) == f"IF(requests >= {spec.min_requests}, (errors - FILL(rejects, 0){access}) / requests, 0)"
            assert (stats["errors"]["name"], stats["errors"]["stat"], stats["requests"]["name"]) == (spec.metric_name, "Sum", "Count")
            assert stats["rejects"]["name"] == "ValidationRejects" and stats["rejects"]["namespace"] == default.settings.metrics_namespace
            assert stats["rejects"]["dims"]["ModelVersion"] == m.version and stats["errors"]["dims"] == stats["requests"]["dims"]
            continue
        main = stats["m"]
        assert (main["name"], main["namespace"], main["period"], main["stat"]) == (
            spec.metric_name,
            spec.namespace,
            spec.period_s,
            spec.statistic,
        )
        if spec.min_window_rows:  # a rate alarm gated on the window's size by metric math
            assert alarm_expression(a) == f"IF(rows >= {spec.min_window_rows}, m, 0)"
            assert stats["rows"]["name"] == "WindowRows" and stats["rows"]["dims"] == main["dims"]
            assert spec.metric_name in ("OutlierRate", "MissingRate", "OutOfRangeRate", "UnseenCategoryRate")
            assert f"at least {spec.min_window_rows} rows" in json.dumps(a["AlarmDescription"])
        elif spec.repeat_last_value:
            assert alarm_expression(a) == "FILL(m, REPEAT)"
        elif spec.min_requests:  # a share of API requests, gated on the period's request count
            assert alarm_expression(a) == f"IF(requests >= {spec.min_requests}, m, 0)"
            assert stats["requests"]["name"] == "Count" and stats["requests"]["dims"] == main["dims"]
        elif spec.missing_as_zero:  # no datapoint is no request: 0 (less the refusals for access), then the band over that series
            served = "FILL(m, 0) - FILL(refused, 0)" if spec.minus_access_refusals else "FILL(m, 0)"
            (filled,) = [q for q in a["Metrics"] if q.get("Expression") == served]
            assert band["Expression"] == f"ANOMALY_DETECTION_BAND({filled['Id']}, {spec.threshold:g})"
        else:
            assert alarm_expression(a) is None
        desc = json.dumps(a["AlarmDescription"])
        assert spec.runbook_anchor in desc and f"/reports/model={m.model_name}/" in desc
        if spec.source == "model":
            assert main["dims"] == spec.dimensions
            assert main["dims"]["ModelName"] == m.model_name and main["dims"]["Deployment"] == default.stack_name
            assert main["dims"].get("ModelVersion", m.version) == m.version
        if spec.source == "api":
            assert set(main["dims"]) == {"ApiName", "Stage"}


def _alarm_by_id(s: Synth) -> dict[str, dict[str, Any]]:
    return {a["Properties"]["AlarmName"].rsplit("-", 1)[-1]: a["Properties"] for a in s.of_type("AWS::CloudWatch::Alarm").values()}


def test_a_deploy_does_not_page(default: Synth) -> None:
    """A new model version has no drift metrics until its first check: no alarm that reads missing data
    as breaching may watch a version-scoped metric, and NoTraffic needs two checks' worth of periods."""
    alarms = _alarm_by_id(default)
    for name, a in alarms.items():
        if a["TreatMissingData"] == "breaching":
            for stat in alarm_metric_stats(a).values():
                assert "ModelVersion" not in stat["dims"], name
    nt = alarms["NoTraffic"]
    assert nt["EvaluationPeriods"] >= 2 and nt["DatapointsToAlarm"] == nt["EvaluationPeriods"]
    assert alarm_expression(nt) == "FILL(m, REPEAT)"  # a late check reads as the last value, not as missing
    assert alarm_metric_stats(nt)["m"]["dims"] == {
        "ModelName": default.manifest.model_name,
        "Deployment": default.stack_name,
        "Window": "24h",
    }


@pytest.mark.parametrize(
    "variant, period_s, drift_periods, no_traffic_periods",
    [("default", 3600, 1, 2), ("daily_cron", 86400, 1, 2), ("two_days", 86400, 2, 4)],
)
def test_alarm_periods_follow_the_drift_schedule(
    variant: str, period_s: int, drift_periods: int, no_traffic_periods: int, synth_of
) -> None:
    s = synth_of(variant)
    alarms = _alarm_by_id(s)
    for name in ("DatasetDrift", "OutlierRate", "NoTraffic", "DriftCheckErrors"):
        assert {st["period"] for st in alarm_metric_stats(alarms[name]).values()} == {period_s}, name
    assert alarms["DatasetDrift"]["EvaluationPeriods"] == drift_periods and alarms["DatasetDrift"]["DatapointsToAlarm"] == 1
    assert alarms["NoTraffic"]["EvaluationPeriods"] == no_traffic_periods
    for name, a in alarms.items():  # CloudWatch: period x evaluation periods at most 1 day under an hour, else 7 days
        periods = {st["period"] for st in alarm_metric_stats(a).values()}
        assert max(periods) * a["EvaluationPeriods"] <= (7 * 86400 if max(periods) >= 3600 else 86400), name


def test_alarm_thresholds_come_from_settings(full: Synth, synth_of) -> None:
    s = full.settings
    alarms = {a["Properties"]["AlarmName"].rsplit("-", 1)[-1]: a["Properties"] for a in full.of_type("AWS::CloudWatch::Alarm").values()}
    assert alarms["OutlierRate"]["Threshold"] == s.outlier_rate_threshold
    assert alarms["ApiP99Latency"]["Threshold"] == s.api_p99_latency_ms
    assert alarms["ApiP99Latency"]["ExtendedStatistic"] == "p99"
    assert alarms["Api5xxRate"]["Threshold"] == s.api_5xx_rate
    assert alarms["NoTraffic"]["TreatMissingData"] == s.empty_window_alarm


def _model_health(s: Synth) -> dict[str, Any]:
    (comp,) = [c["Properties"] for k, c in s.of_type("AWS::CloudWatch::CompositeAlarm").items() if k.startswith("MonitoringModelHealth")]
    return comp


def test_composite_model_health_alarm(default: Synth) -> None:
    comp = _model_health(default)
    assert "AlarmActions" not in comp  # a roll-up: the families page
    rule = json.dumps(comp["AlarmRule"])
    for sp in alarm_specs(default.settings, default.manifest.model_name, default.manifest.version):
        ref = next(k for k, v in default.of_type("AWS::CloudWatch::Alarm").items() if v["Properties"]["AlarmName"].endswith("-" + sp.id))
        assert (ref in rule) == (sp.group == "model"), sp.id


def test_topic_is_kms_encrypted_and_tls_only(default: Synth, full: Synth) -> None:
    topics = default.of_type("AWS::SNS::Topic")  # the paging topic and the non-paging (inform) one
    assert len(topics) == 2
    for topic in (t["Properties"] for t in topics.values()):
        assert "Fn::GetAtt" in topic["KmsMasterKeyId"]
    policies = default.of_type("AWS::SNS::TopicPolicy")
    assert len(policies) == 2
    for policy in (p["Properties"]["PolicyDocument"]["Statement"] for p in policies.values()):
        assert any(st["Effect"] == "Deny" and st["Condition"]["Bool"]["aws:SecureTransport"] == "false" for st in policy)
    key = next(v for k, v in default.of_type("AWS::KMS::Key").items() if k.startswith("MonitoringTopicKey"))["Properties"]
    assert key["EnableKeyRotation"] is True
    assert any(st.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com" for st in key["KeyPolicy"]["Statement"])
    # the tests' subscriber (cdk.json names none: synth stops, tests/infra/test_subscriptions.py); alarm_email joins it once
    for s in (default, full):
        sub = _single(s, "AWS::SNS::Subscription")
        assert sub["Protocol"] == "email" and sub["Endpoint"] == "oncall@example.com"


def test_dashboard_covers_api_lambda_capture_and_every_feature(default: Synth) -> None:
    body = json.dumps(_single(default, "AWS::CloudWatch::Dashboard")["DashboardBody"])
    for needle in (
        "Latency",
        "4XXError",
        "5XXError",
        "Duration",
        "Throttles",
        "CaptureErrors",
        "CapturedRows",
        "DriftShare",
        "OutlierRate",
        "MissingRate",
        "OutOfRangeRate",
        "UnseenCategoryRate",
        "Accuracy",
    ):
        assert needle in body, needle
    for f in default.manifest.features:
        assert f'\\"{f.name}\\"' in body or f.name in body
    assert body.count("FeaturePValue") >= len(default.manifest.features)
    # rejects exist per Reason dimension: the breakdown is a SEARCH over it for this model version
    assert "SEARCH(" in body and "ModelName,ModelVersion,Deployment,Reason" in body and default.manifest.version in body


# ------------------------------------------------------------------ Firehose and Glue


def test_firehose_stream_when_sink_is_firehose(s3_sink: Synth, full: Synth) -> None:
    assert not s3_sink.of_type("AWS::KinesisFirehose::DeliveryStream")
    fh = _single(full, "AWS::KinesisFirehose::DeliveryStream")
    dest = fh["ExtendedS3DestinationConfiguration"]
    m = full.manifest
    assert dest["Prefix"] == f"captures/model={m.model_name}/version={m.version}/dt=!{{timestamp:yyyy-MM-dd}}/hour=!{{timestamp:HH}}/"
    assert dest["ErrorOutputPrefix"].startswith("capture-errors/!{firehose:error-output-type}/")
    assert dest["CompressionFormat"] == "GZIP"
    assert fh["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}
    assert "KMSEncryptionConfig" in dest["EncryptionConfiguration"]
    st = _policy_statements(full, "CaptureFirehoseRole")
    put = next(x for x in st if "s3:PutObject" in _as_list(x["Action"]))
    assert sorted(_arn_suffixes(put["Resource"])) == ["/capture-errors/*", "/captures/*"]


def test_glue_table_with_partition_projection(default: Synth) -> None:
    m = default.manifest
    # the captures table (the default's Athena path adds the feedback and rejects tables beside it)
    (table,) = [
        t["Properties"]["TableInput"]
        for t in default.of_type("AWS::Glue::Table").values()
        if t["Properties"]["TableInput"]["Name"] == "captures"
    ]
    p = table["Parameters"]
    assert p["projection.enabled"] == "true"
    assert p["projection.model.type"] == "enum" and p["projection.model.values"] == m.model_name
    assert p["projection.version.type"] == "injected"
    assert p["projection.dt.type"] == "date" and p["projection.dt.format"] == "yyyy-MM-dd"
    assert p["projection.hour.type"] == "integer" and p["projection.hour.range"] == "0,23" and p["projection.hour.digits"] == "2"
    assert "/captures/model=${model}/version=${version}/dt=${dt}/hour=${hour}/" in json.dumps(p["storage.location.template"])
    assert [k["Name"] for k in table["PartitionKeys"]] == ["model", "version", "dt", "hour"]
    sd = table["StorageDescriptor"]
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    cols = {c["Name"]: c["Type"] for c in sd["Columns"]}
    assert set(cols) >= {"request_id", "row", "event_time", "model_name", "model_version", "inputs", "prediction", "probabilities"}
    assert cols["inputs"] == "struct<bill_length_mm:double,flipper_length_mm:double,island:string,is_adult:boolean>"


def test_outputs(default: Synth, full: Synth) -> None:
    outs = default.template["Outputs"]
    for k in ("ApiUrl", "ApiKeyId", "CaptureBucketName", "DashboardUrl", "AlarmTopicArn", "AthenaTable", "DriftCheckFunctionName"):
        assert k in outs, k
    assert "FirehoseStreamName" in full.template["Outputs"] and "ApiKeyId" not in full.template["Outputs"]


# ------------------------------------------------------------------ checks


@pytest.mark.parametrize("variant", ["default", "firehose_kms_iam", "public", "coverage", "cors_waf", "iam_cors", "s3", "logs_parquet_kms"])
def test_cdk_nag_has_no_unacknowledged_findings(variant: str, synth_of) -> None:
    s = synth_of(variant)  # synth raises on any unacknowledged AwsSolutions finding
    report = (
        json.loads((s.outdir / "validation-report.json").read_text())
        if (s.outdir / "validation-report.json").exists()
        else {"pluginReports": []}
    )
    errors = [v for r in report["pluginReports"] for v in r.get("violations", []) if v.get("severity") == "error"]
    assert errors == []


@pytest.mark.parametrize(
    "variant", ["default", "firehose_kms_iam", "public", "two_days", "coverage", "cors_waf", "iam_cors", "s3", "logs_parquet_kms"]
)
def test_cfn_lint_reports_no_errors(variant: str, synth_of) -> None:
    from cfnlint.api import ManualArgs, lint_file

    s = synth_of(variant)
    matches = lint_file(s.template_path, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    errors = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id.startswith("E")]
    assert errors == []


def test_metrics_failures_are_counted_from_the_logs_of_both_functions(default: Synth) -> None:
    # (the access log's AccessRefusals filter is tests/infra/test_access_refusals.py's)
    filters = [
        f
        for f in default.of_type("AWS::Logs::MetricFilter").values()
        if f["Properties"]["MetricTransformations"][0]["MetricName"] != "AccessRefusals"
    ]
    assert len(filters) == 2
    for f in filters:
        p = f["Properties"]
        assert "metrics_error*" in p["FilterPattern"]
        (t,) = p["MetricTransformations"]
        assert t["MetricName"] == "MetricsErrors" and t["MetricNamespace"] == default.settings.metrics_namespace
        assert {d["Key"]: d["Value"] for d in t["Dimensions"]} == {
            "ModelName": "$.model_name",
            "ModelVersion": "$.model_version",
            "Deployment": "$.deployment",
        }


def _salt_secrets(s: Synth) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in s.of_type("AWS::SecretsManager::Secret").items() if "CaptureHashSalt" in k}


def test_hashed_features_get_a_generated_salt_the_function_alone_may_read(default: Synth, full: Synth) -> None:
    assert not _salt_secrets(default)
    ((secret_id, secret),) = _salt_secrets(full).items()
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 16
    env = _function(full, "ServingFunction")["Environment"]["Variables"]
    assert env["MS_CAPTURE_HASH_SALT_SECRET_ARN"] == {"Ref": secret_id}
    assert "MS_CAPTURE_HASH_SALT" not in env  # the salt itself is nowhere in the template
    assert "island" in env["MS_HASH_FEATURES"]
    reads = [st for st in _policy_statements(full, "ServingRole") if "secretsmanager:GetSecretValue" in json.dumps(st.get("Action"))]
    assert len(reads) == 1 and reads[0]["Resource"] == {"Ref": secret_id}
    drift_env = _function(full, "MonitoringDriftCheck")["Environment"]["Variables"]
    assert "MS_CAPTURE_HASH_SALT_SECRET_ARN" not in drift_env


def test_request_ids_are_signed_with_a_generated_key_resolved_at_deploy(default: Synth) -> None:
    ((secret_id, secret),) = {k: v for k, v in default.of_type("AWS::SecretsManager::Secret").items() if "RequestIdKey" in k}.items()
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    key = json.dumps(_function(default, "ServingFunction")["Environment"]["Variables"]["MS_REQUEST_ID_KEY"])
    # a dynamic reference CloudFormation resolves at deploy: no value in the template, no fetch at cold start
    assert "{{resolve:secretsmanager:" in key and secret_id in key
    reads = [st for st in _policy_statements(default, "ServingRole") if "secretsmanager:GetSecretValue" in json.dumps(st.get("Action"))]
    assert not reads  # the function never reads the secret itself
    assert "MS_REQUEST_ID_KEY" not in _function(default, "MonitoringDriftCheck")["Environment"]["Variables"]


# ------------------------------------------------------------------ logical IDs


# logical IDs of stacks deployed before cdk/monitoring.py was split: a changed ID would replace the
# resource (a new topic to confirm, named alarms and the dashboard recreated under a name in use)
DEPLOYED_LOGICAL_IDS = {
    "MonitoringAlarmTopicAF62D4F1": "AWS::SNS::Topic",
    "MonitoringAlarmTopicPolicyCB9CCFB0": "AWS::SNS::TopicPolicy",
    "MonitoringTopicKey423AF5B2": "AWS::KMS::Key",
    "MonitoringApi5xxRateB085961B": "AWS::CloudWatch::Alarm",
    "MonitoringDatasetDrift941627E6": "AWS::CloudWatch::Alarm",
    "MonitoringNoTrafficEED93320": "AWS::CloudWatch::Alarm",
    "MonitoringModelHealth49DEED15": "AWS::CloudWatch::CompositeAlarm",
    "MonitoringDashboard0C3675C6": "AWS::CloudWatch::Dashboard",
    "MonitoringInferenceMetricsErrors93D7F7EC": "AWS::Logs::MetricFilter",
    "MonitoringDriftCheckMetricsErrorsFF8C415C": "AWS::Logs::MetricFilter",
    "MonitoringDriftCheckE195D5AD": "AWS::Lambda::Function",
    "MonitoringDriftCheckLogs79B3DD38": "AWS::Logs::LogGroup",
    "MonitoringDriftCheckRole63FF4ACB": "AWS::IAM::Role",
    "MonitoringDriftCheckRoleDefaultPolicy859F42C1": "AWS::IAM::Policy",
    "MonitoringScheduleDB3E6DB0": "AWS::Events::Rule",
    "ServingFunctionEAA0CF5B": "AWS::Lambda::Function",
    "ServingFunctionLogsD640BEF5": "AWS::Logs::LogGroup",
    "ServingRole3E7A9AA5": "AWS::IAM::Role",
    "ServingRoleDefaultPolicy3C5BF513": "AWS::IAM::Policy",
}


def test_regrouped_resources_keep_their_deployed_logical_ids(default: Synth) -> None:
    for logical_id, cfn_type in DEPLOYED_LOGICAL_IDS.items():
        assert default.resources.get(logical_id, {}).get("Type") == cfn_type, logical_id
    # every alarm too (named alarms must never be recreated under their own name)
    for sp in alarm_specs(default.settings, default.manifest.model_name, default.manifest.version):
        assert any(k.startswith(f"Monitoring{sp.id}") for k in default.of_type("AWS::CloudWatch::Alarm")), sp.id


def test_moved_path_takes_the_longest_matching_prefix() -> None:
    from cdk.logical_ids import logical_id_of, moved_path

    moved = {"A": "Old", "A/F/Logs": "Old/FLogs"}
    assert moved_path(["A", "F", "Logs", "Resource"], moved) == ["Old", "FLogs", "Resource"]
    assert moved_path(["A", "Topic", "Resource"], moved) == ["Old", "Topic", "Resource"]
    assert moved_path(["B", "Resource"], moved) == ["B", "Resource"]
    # CDK's own naming: human-readable part plus a hash of the whole path, "Default" left out
    assert logical_id_of(["Monitoring", "AlarmTopic", "Resource"]) == "MonitoringAlarmTopicAF62D4F1"
    assert logical_id_of(["Monitoring", "Default", "AlarmTopic", "Resource"]) == "MonitoringAlarmTopicAF62D4F1"
