"""A scanner's 403/404/429 page no one: a metric filter on the stage's JSON access log counts the gateway's refusals
for access (AccessRefusals), and Api4xxRate subtracts them with the function's validation refusals.

moto's filter_log_events does not evaluate JSON filter patterns (it returns every line) and has no
TestMetricFilter, so the pattern the stack deploys is evaluated here with CloudWatch Logs' documented JSON
pattern semantics (``{ ($.field = "value") || ... }``, string values, ``*`` wildcards) over access-log lines
rendered from the stage's own format, as API Gateway writes them."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from cdk.serving import ACCESS_LOG_FIELDS, access_refusals_pattern
from modelserve import metric_catalogue as mc
from tests.infra.conftest import Synth

_TERM = re.compile(r'^\(?\s*\$\.(\w+)\s*(=|!=)\s*"([^"]*)"\s*\)?$')


def matches(pattern: str, line: str) -> bool:
    """CloudWatch Logs' JSON filter pattern (a flat ``||`` or ``&&`` of string comparisons) against one log line."""
    body = pattern.strip()
    assert body.startswith("{") and body.endswith("}"), pattern
    body = body[1:-1].strip()
    op = "||" if "||" in body else "&&"
    event = json.loads(line)
    results = []
    for term in body.split(op):
        m = _TERM.match(term.strip())
        assert m, term
        field, cmp, value = m.groups()
        actual = event.get(field)
        hit = isinstance(actual, str) and fnmatch.fnmatchcase(actual, value)
        results.append(hit if cmp == "=" else not hit)
    return any(results) if op == "||" else all(results)


def access_log_line(status: int, error_type: str = "-", deployment: str = "ModelServe-penguins", **context: str) -> str:
    """One line of the stage's access log: its format (ACCESS_LOG_FIELDS) with API Gateway's values filled in."""
    values = {
        "$context.requestId": "5b1d1f6e-1f1a-4a1b-9d0b-1a2b3c4d5e6f",
        "$context.requestTime": "06/Dec/2026:03:14:07 +0000",
        "$context.httpMethod": "GET",
        "$context.resourcePath": "-",
        "$context.path": "/prod/wp-login.php",
        "$context.protocol": "HTTP/1.1",
        "$context.status": str(status),
        "$context.responseLength": "120",
        "$context.responseLatency": "3",
        "$context.integrationLatency": "-",
        "$context.identity.sourceIp": "203.0.113.7",
        "$context.identity.userAgent": "Mozilla/5.0 zgrab/0.x",
        "$context.identity.apiKeyId": "-",
        "$context.identity.caller": "-",
        "$context.identity.user": "-",
        "$context.identity.userArn": "-",
        "$context.error.responseType": error_type,
        "$context.error.message": "-",
        "$context.wafResponseCode": "-",
        **context,
    }
    return json.dumps({**{k: values[v] for k, v in ACCESS_LOG_FIELDS.items()}, "deployment": deployment})


PATTERN = access_refusals_pattern().log_pattern_string


@pytest.mark.parametrize(
    "line, refused",
    [
        (access_log_line(403, "INVALID_API_KEY"), True),  # a scanner without a key
        (access_log_line(404, "MISSING_AUTHENTICATION_TOKEN"), True),  # an unknown route (answered 404)
        (access_log_line(429, "THROTTLED"), True),  # a client over its quota
        (access_log_line(403, "WAF_FILTERED"), True),
        (access_log_line(422, **{"$context.integrationLatency": "41", "$context.resourcePath": "/predict"}), False),  # validation
        (access_log_line(400, "BAD_REQUEST_BODY"), False),  # a malformed body: Api4xxRate's to count
        (access_log_line(413, **{"$context.integrationLatency": "2"}), False),
        (access_log_line(200, **{"$context.integrationLatency": "38"}), False),
        (access_log_line(503, **{"$context.integrationLatency": "900"}), False),
    ],
)
def test_the_filter_counts_the_gateways_refusals_for_access_only(line: str, refused: bool) -> None:
    assert matches(PATTERN, line) is refused


def test_the_evaluator_is_not_trivially_true() -> None:
    assert matches('{ ($.status = "4*") && ($.status != "403") }', access_log_line(400))
    assert not matches('{ ($.status = "4*") && ($.status != "403") }', access_log_line(403))


def test_the_stack_counts_access_refusals_from_its_access_log(default: Synth) -> None:
    (stage,) = [r["Properties"] for r in default.of_type("AWS::ApiGateway::Stage").values()]
    fmt = json.loads(stage["AccessLogSetting"]["Format"])
    assert fmt["deployment"] == default.stack_name  # the metric's dimension, literally in each line
    (flt,) = [
        f["Properties"]
        for f in default.of_type("AWS::Logs::MetricFilter").values()
        if f["Properties"]["MetricTransformations"][0]["MetricName"] == mc.ACCESS_REFUSALS
    ]
    # on the stage's access log group
    assert flt["LogGroupName"]["Ref"] in json.dumps(stage["AccessLogSetting"]["DestinationArn"])
    assert flt["FilterPattern"] == PATTERN
    (transform,) = flt["MetricTransformations"]
    assert transform == {
        "MetricName": mc.ACCESS_REFUSALS,
        "MetricNamespace": default.settings.metrics_namespace,
        "MetricValue": "1",
        "Dimensions": [{"Key": mc.DIM_DEPLOYMENT, "Value": "$.deployment"}],
    }
