"""Browsers and the edge, in the synthesized template: CORS (settings cors_origins, web_page), the web page
wired to the API (output WebUrl), and the optional WAF web ACL (settings waf, waf_rate_limit)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from modelserve.settings import ENV_CORS_ORIGINS, ServingSettings, SettingsError
from tests.functional.web_support import needs_node_ort
from tests.infra.conftest import TEST_SUBSCRIBER, Synth, synth_variant
from tests.infra.test_stack import methods_by_route

APP_ROUTES = {"/predict", "/feedback", "/health", "/model", "/docs", "/openapi.json", "/v2", "/v2/{proxy+}"}
ALLOW_ORIGIN = "method.response.header.Access-Control-Allow-Origin"


def flat(value: Any) -> str:
    """A template value as one string, deploy-time parts as <X> (Ref) / <X.Attr> (GetAtt) (for comparing and searching)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(flat(p) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    return json.dumps(value)


def preflights(s: Synth) -> dict[str, dict[str, Any]]:
    return {path: p for (path, verb), p in methods_by_route(s).items() if verb == "OPTIONS"}


def gateway_responses(s: Synth) -> dict[str, dict[str, str]]:
    return {
        r["Properties"]["ResponseType"]: {k: flat(v) for k, v in r["Properties"]["ResponseParameters"].items()}
        for r in s.of_type("AWS::ApiGateway::GatewayResponse").values()
    }


UNKNOWN_ROUTE = "MISSING_AUTHENTICATION_TOKEN"  # a REST API's answer to a path without a resource


def inference_env(s: Synth) -> dict[str, Any]:
    (fn,) = [
        f["Properties"]
        for f in s.of_type("AWS::Lambda::Function").values()
        if f["Properties"].get("Environment", {}).get("Variables", {}).get("POWERTOOLS_SERVICE_NAME") == "inference"
    ]
    return fn["Environment"]["Variables"]


def acknowledged_rules(construct: Any) -> set[str]:
    """Rule ids acknowledged on a construct itself (cdk.Validations.of(...).acknowledge records them as metadata)."""
    return {rule.split("::")[-1] for entry in construct.node.metadata if entry.type == "aws:cdk:acknowledged-rules" for rule in entry.data}


# ------------------------------------------------------------------ unknown routes


@pytest.mark.parametrize("kind, status", [("default", "404"), ("iam_cors", "403")])
def test_an_unknown_path_at_the_gateway_is_answered_in_the_apis_error_shape(synth_of, default: Synth, kind: str, status: str) -> None:
    """API Gateway answers a path with no resource itself (403 "Missing Authentication Token"): here a 404
    like the function's (a 403 under iam, where the type also means an unsigned request), with the request
    id and the model version, in the error shape the OpenAPI document gives."""
    s = default if kind == "default" else synth_of(kind)
    (r,) = [
        r["Properties"] for r in s.of_type("AWS::ApiGateway::GatewayResponse").values() if r["Properties"]["ResponseType"] == UNKNOWN_ROUTE
    ]
    assert r["StatusCode"] == status
    body = json.loads(r["ResponseTemplates"]["application/json"])
    assert set(body) == {"error", "message", "details", "request_id", "model_version"}
    assert body["error"] == ("not_found" if status == "404" else "forbidden") and "$context.path" in body["message"]
    assert body["request_id"] == "$context.requestId"
    assert r["ResponseParameters"]["gatewayresponse.header.x-request-id"] == "context.requestId"
    assert r["ResponseParameters"]["gatewayresponse.header.x-model-version"] == f"'{body['model_version']}'"


# ------------------------------------------------------------------ CORS


def test_without_browser_origins_there_is_no_cors(default: Synth) -> None:
    assert preflights(default) == {}
    assert set(gateway_responses(default)) == {UNKNOWN_ROUTE}
    assert not any("Access-Control" in k for k in gateway_responses(default)[UNKNOWN_ROUTE])
    assert _function_origins(inference_env(default)) == ()


def test_configured_origins_get_an_unauthenticated_preflight_on_every_route(synth_of) -> None:
    s = synth_of("cors_waf")
    methods = methods_by_route(s)
    options = preflights(s)
    assert set(options) == APP_ROUTES
    for path, p in options.items():
        # no key, no authorization: a browser sends neither on a preflight, and the mock answers headers only
        assert p["AuthorizationType"] == "NONE" and p["ApiKeyRequired"] is False, path
        assert p["Integration"]["Type"] == "MOCK"
        (answer,) = p["Integration"]["IntegrationResponses"]
        headers = answer["ResponseParameters"]
        allowed_headers = {h.lower() for h in headers["method.response.header.Access-Control-Allow-Headers"].strip("'").split(",")}
        assert {"content-type", "x-api-key"} <= allowed_headers
        route_methods = {verb for (p2, verb) in methods if p2 == path}
        assert set(headers["method.response.header.Access-Control-Allow-Methods"].strip("'").split(",")) == route_methods
        # the first origin answers by default; the template echoes the second when it is the caller's
        assert headers[ALLOW_ORIGIN] == "'https://app.example.com'"
        assert '$origin == "http://localhost:5173"' in answer["ResponseTemplates"]["application/json"]
    # the routes themselves still need the key
    assert methods[("/predict", "POST")]["ApiKeyRequired"] is True
    # the function answers the actual requests for the same origins
    assert inference_env(s)[ENV_CORS_ORIGINS] == "https://app.example.com,http://localhost:5173"


def test_gateway_refusals_are_readable_by_the_browser(synth_of) -> None:
    """A missing key (403) or throttling (429) comes from API Gateway, not the function: its answers carry CORS too."""
    several = gateway_responses(synth_of("cors_waf"))
    assert set(several) == {"DEFAULT_4XX", "DEFAULT_5XX", UNKNOWN_ROUTE}
    for params in several.values():
        assert params["gatewayresponse.header.Access-Control-Allow-Origin"] == "'*'"  # one fixed value, several origins
    one = gateway_responses(synth_of("iam_cors"))
    for params in one.values():
        assert params["gatewayresponse.header.Access-Control-Allow-Origin"] == "'https://console.example.org'"


def test_under_iam_only_the_preflight_is_unauthorized_and_signed_headers_are_allowed(synth_of) -> None:
    s = synth_of("iam_cors")
    for (path, verb), p in methods_by_route(s).items():
        assert p["AuthorizationType"] == ("NONE" if verb == "OPTIONS" else "AWS_IAM"), (path, verb)
    for p in preflights(s).values():
        headers = p["Integration"]["IntegrationResponses"][0]["ResponseParameters"]
        allowed = {h.lower() for h in headers["method.response.header.Access-Control-Allow-Headers"].strip("'").split(",")}
        assert {"authorization", "x-amz-date", "x-amz-security-token"} <= allowed
    assert inference_env(s)[ENV_CORS_ORIGINS] == "https://console.example.org"


@pytest.mark.parametrize(
    "origins, must_name",
    [
        (["https://app.example.com/page"], "not an origin"),
        (["*", "https://app.example.com"], "cannot be combined"),
        ("ftp://files.example.com", "not an origin"),
    ],
)
def test_a_bad_origin_is_refused_naming_the_setting(origins: Any, must_name: str) -> None:
    from modelserve.settings import Settings

    with pytest.raises(SettingsError) as err:
        Settings.from_context({"cors_origins": origins})
    assert "cors_origins" in str(err.value) and must_name in str(err.value)


def test_origins_from_the_command_line_are_split_on_commas() -> None:
    from modelserve.settings import Settings

    s = Settings.from_context({"cors_origins": "https://a.example.com, http://localhost:8000/"})
    assert s.cors_origins == ("https://a.example.com", "http://localhost:8000")


# ------------------------------------------------------------------ WAF


def test_no_web_acl_by_default_and_the_finding_is_acknowledged(default: Synth) -> None:
    assert not default.of_type("AWS::WAFv2::WebACL")
    assert "AwsSolutions-APIG3" in acknowledged_rules(default.stack.serving.api)
    assert "WebAclArn" not in default.template["Outputs"]


def test_the_web_acl_guards_the_stage_with_managed_rules_and_a_rate_limit(synth_of) -> None:
    s = synth_of("cors_waf")
    ((acl_id, acl),) = s.of_type("AWS::WAFv2::WebACL").items()
    p = acl["Properties"]
    assert p["Scope"] == "REGIONAL" and p["DefaultAction"] == {"Allow": {}}
    rules = {r["Name"]: r for r in p["Rules"]}
    rate = rules["RateLimitPerIp"]["Statement"]["RateBasedStatement"]
    assert rate["Limit"] == s.settings.waf_rate_limit == 500 and rate["AggregateKeyType"] == "IP"
    assert rules["RateLimitPerIp"]["Action"] == {"Block": {}}
    managed = rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    assert (managed["VendorName"], managed["Name"]) == ("AWS", "AWSManagedRulesCommonRuleSet")
    # its 8 KB body limit would block ordinary batches and binary tensors: that rule only counts
    assert managed["RuleActionOverrides"] == [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]
    assert all(r["VisibilityConfig"]["CloudWatchMetricsEnabled"] for r in p["Rules"])
    (assoc,) = s.of_type("AWS::WAFv2::WebACLAssociation").values()
    (stage_id,) = s.of_type("AWS::ApiGateway::Stage")
    assert assoc["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    assert f"<{stage_id}>" in flat(assoc["Properties"]["ResourceArn"])
    # cdk-nag passed (synth ran it) without the WAF acknowledgment: the association satisfies the rule
    assert "AwsSolutions-APIG3" not in acknowledged_rules(s.stack.serving.api)
    assert s.template["Outputs"]["WebAclArn"]["Value"] == {"Fn::GetAtt": [acl_id, "Arn"]}


# ------------------------------------------------------------------ the web page


@pytest.fixture(scope="module")
def site_dir(sample_bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page as `python -m devtools web` writes it (Node checks the model in onnxruntime-web first)."""
    from devtools.web import build_site

    return build_site(sample_bundle.root, tmp_path_factory.mktemp("site") / "web").root


@pytest.fixture(scope="module")
def with_page(site_dir: Path, fake_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth_variant(
        "web_page",
        fake_bundle_dir,
        tmp_path_factory.mktemp("cdkout-web"),
        {
            "web_page": True,
            "web_site_dir": str(site_dir),
            "cors_origins": ["https://app.example.com"],
        },
    )


@needs_node_ort
def test_the_page_is_deployed_nag_clean_with_its_url_as_an_output(with_page: Synth) -> None:
    report_path = with_page.outdir / "validation-report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {"pluginReports": []}
    assert [v for r in report["pluginReports"] for v in r.get("violations", []) if v.get("severity") == "error"] == []
    (dist_id,) = with_page.of_type("AWS::CloudFront::Distribution")
    assert flat(with_page.template["Outputs"]["WebUrl"]["Value"]) == f"https://<{dist_id}.DomainName>/"


@needs_node_ort
def test_the_api_lets_the_page_origin_call_it(with_page: Synth) -> None:
    (dist_id,) = with_page.of_type("AWS::CloudFront::Distribution")
    page_origin = f"https://<{dist_id}.DomainName>"
    options = preflights(with_page)
    assert set(options) == APP_ROUTES
    for p in options.values():
        assert p["AuthorizationType"] == "NONE" and p["ApiKeyRequired"] is False
        answer = p["Integration"]["IntegrationResponses"][0]
        # the configured origin first, the page's echoed when it asks
        assert answer["ResponseParameters"][ALLOW_ORIGIN] == "'https://app.example.com'"
        assert f'$origin == "{page_origin}"' in flat(answer["ResponseTemplates"]["application/json"])
    assert flat(inference_env(with_page)[ENV_CORS_ORIGINS]) == f"https://app.example.com,{page_origin}"
    assert set(gateway_responses(with_page)) == {"DEFAULT_4XX", "DEFAULT_5XX", UNKNOWN_ROUTE}


@needs_node_ort
def test_the_page_gets_the_api_url_and_may_connect_to_its_origin_only(with_page: Synth) -> None:
    (api_id,) = with_page.of_type("AWS::ApiGateway::RestApi")
    (stage_id,) = with_page.of_type("AWS::ApiGateway::Stage")
    (deploy,) = with_page.of_type("Custom::CDKBucketDeployment").values()
    (markers,) = [m for m in deploy["Properties"]["SourceMarkers"] if m]
    api_url = flat(next(iter(markers.values())))
    assert f"https://<{api_id}>.execute-api." in api_url and f"<{stage_id}>" in api_url
    (headers,) = with_page.of_type("AWS::CloudFront::ResponseHeadersPolicy").values()
    csp = flat(
        headers["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    )
    connect = next(d for d in csp.split(";") if d.strip().startswith("connect-src")).split()[1:]
    assert connect[0] == "'self'" and len(connect) == 2 and connect[1].startswith(f"https://<{api_id}>.execute-api.")


def test_web_page_without_the_site_stops_synth_naming_the_setting_and_the_command(fake_bundle_dir: Path, tmp_path: Path) -> None:
    from cdk.application import build_app, cdk_json_context

    ctx = {
        **cdk_json_context(),
        **TEST_SUBSCRIBER,
        "model_bundle_path": str(fake_bundle_dir),
        "web_page": True,
        "web_site_dir": str(tmp_path / "no-site"),
    }
    with mock.patch.dict(os.environ, {"MS_SKIP_BUNDLING": "1"}), pytest.raises(SettingsError) as err:
        build_app(ctx)
    msg = str(err.value)
    assert "'web_page'" in msg and "web_site_dir" in msg and "python -m devtools web" in msg and str(tmp_path / "no-site") in msg


@needs_node_ort
def test_under_iam_the_page_scores_in_the_browser_only_and_the_api_allows_no_origin(
    site_dir: Path, fake_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A browser cannot sign SigV4 requests: the page gets no API URL, may connect nowhere else, and no CORS opens."""
    s = synth_variant(
        "web_page_iam",
        fake_bundle_dir,
        tmp_path_factory.mktemp("cdkout-web-iam"),
        {"web_page": True, "web_site_dir": str(site_dir), "api_auth": "iam"},
    )
    assert "WebUrl" in s.template["Outputs"]
    (deploy,) = s.of_type("Custom::CDKBucketDeployment").values()
    assert not [m for m in deploy["Properties"].get("SourceMarkers", []) if m]  # config.json fixed at synth: no API URL
    (config_asset,) = [p for p in s.outdir.glob("asset.*") if p.is_dir() and (p / "config.json").exists()]
    config = json.loads((config_asset / "config.json").read_text())
    assert config.get("api_url") is None and "api_key" not in config  # (jsii drops a None value: the key is absent)
    (headers,) = s.of_type("AWS::CloudFront::ResponseHeadersPolicy").values()
    csp = flat(
        headers["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    )
    assert "connect-src 'self';" in csp
    assert (
        preflights(s) == {}
        and not any("Access-Control" in k for r in gateway_responses(s).values() for k in r)
        and _function_origins(inference_env(s)) == ()
    )


@needs_node_ort
def test_any_origin_covers_the_page_too(site_dir: Path, fake_bundle_dir: Path, tmp_path: Path) -> None:
    """'*' with the page's origin would be a mix CDK refuses: '*' alone is what the API allows then."""
    s = synth_variant(
        "any_origin_page", fake_bundle_dir, tmp_path / "out", {"cors_origins": "*", "web_page": True, "web_site_dir": str(site_dir)}
    )
    assert set(preflights(s)) == APP_ROUTES
    for p in preflights(s).values():
        answer = p["Integration"]["IntegrationResponses"][0]
        assert answer["ResponseParameters"][ALLOW_ORIGIN] == "'*'" and "ResponseTemplates" not in answer
    assert inference_env(s)[ENV_CORS_ORIGINS] == "*"
    for params in gateway_responses(s).values():
        assert params["gatewayresponse.header.Access-Control-Allow-Origin"] == "'*'"


def _function_origins(env: dict) -> tuple[str, ...]:
    """The origins the inference function will allow, read as the function reads its settings."""
    return ServingSettings.from_env({k: v for k, v in env.items() if isinstance(v, str)}).cors_origins


@needs_node_ort
def test_the_settings_digest_names_the_pages_deploy_time_origin_and_the_function_reads_it_without_pydantic(with_page: Synth) -> None:
    from modelserve.settings import ENV_SETTINGS_DIGEST
    from serving.function_settings import function_settings
    from serving.settings_view import ServingSettingsView

    variables = inference_env(with_page)
    digest = variables[ENV_SETTINGS_DIGEST]
    assert isinstance(digest, str) and digest.endswith(f";{ENV_CORS_ORIGINS}")  # a token at synth: named, not hashed
    # as deployed: CloudFormation resolves the page's origin (and the resources' names)
    env = {k: v if isinstance(v, str) else "resolved-at-deploy" for k, v in variables.items()}
    env[ENV_CORS_ORIGINS] = "https://app.example.com,https://d111111abcdef8.cloudfront.net"
    view = function_settings(env)
    assert type(view) is ServingSettingsView
    assert view.cors_origins == ("https://app.example.com", "https://d111111abcdef8.cloudfront.net")
    assert {n: getattr(view, n) for n in ServingSettings.model_fields} == ServingSettings.from_env(env).model_dump()
