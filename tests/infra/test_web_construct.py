"""The WebPage construct (cdk/web.py) in a bare stack: private bucket behind CloudFront with origin access
control, HTTPS, security headers and CSP, the site deployed with config.json written at deploy time; cdk-nag."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

API_ORIGIN = "https://abc123.execute-api.eu-west-1.amazonaws.com"


@dataclass
class WebSynth:
    template: dict[str, Any]
    outdir: Path

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == cfn_type}

    def single(self, cfn_type: str) -> tuple[str, dict[str, Any]]:
        found = self.of_type(cfn_type)
        assert len(found) == 1, list(found)
        ((k, v),) = found.items()
        return k, v["Properties"]


def _site(folder: Path) -> Path:
    """A site folder as `python -m devtools web` writes it (the construct deploys the folder as is)."""
    folder.mkdir(parents=True)
    for name in ("index.html", "app.mjs", "score.mjs", "style.css", "manifest.json", "model.onnx"):
        (folder / name).write_text(name)
    (folder / "config.json").write_text(
        json.dumps({"api_url": "http://127.0.0.1:8080/prod", "api_key": "local-only", "onnxruntime_web": "1.30.0"})
    )
    return folder


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> WebSynth:
    import aws_cdk as cdk

    from cdk import nag
    from cdk.web import WebPage

    root = tmp_path_factory.mktemp("web")
    outdir = root / "cdk.out"
    app = cdk.App(outdir=str(outdir))
    nag.register(app)
    stack = cdk.Stack(app, "WebOnly", env=cdk.Environment(account="123456789012", region="eu-west-1"))
    api_url = cdk.CfnParameter(stack, "ApiUrl", type="String").value_as_string  # a deploy-time value, like the API's URL
    page = WebPage(stack, "Web", site_dir=_site(root / "site"), api_url=api_url, api_origin=API_ORIGIN, api_key_required=True)
    cdk.CfnOutput(stack, "WebUrl", value=page.url)
    cdk.CfnOutput(stack, "WebOrigin", value=page.origin)
    app.synth()  # cdk-nag runs here: an unacknowledged AwsSolutions finding raises
    return WebSynth(json.loads((outdir / "WebOnly.template.json").read_text()), outdir)


def test_cdk_nag_finds_nothing_unacknowledged_and_every_acknowledgment_has_a_reason(web: WebSynth) -> None:
    from cdk.nag import ACKNOWLEDGED

    report_path = web.outdir / "validation-report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {"pluginReports": []}
    assert [v for r in report["pluginReports"] for v in r.get("violations", []) if v.get("severity") == "error"] == []
    mine = [(path, rule, reason) for path, rule, reason in ACKNOWLEDGED if path.startswith("WebOnly/")]
    assert {rule for _, rule, _ in mine} >= {"AwsSolutions-CFR1", "AwsSolutions-CFR2", "AwsSolutions-CFR4", "AwsSolutions-S1"}
    assert all(len(reason) >= 40 for _, _, reason in mine)


def test_the_site_bucket_is_private_encrypted_tls_only_and_readable_by_the_distribution_alone(web: WebSynth) -> None:
    buckets = web.of_type("AWS::S3::Bucket")
    site_id = next(k for k in buckets if "WebSite" in k)
    site = buckets[site_id]["Properties"]
    assert site["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert site["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert "WebsiteConfiguration" not in site  # no S3 website endpoint: only CloudFront reads it
    policy = next(p["Properties"] for p in web.of_type("AWS::S3::BucketPolicy").values() if p["Properties"]["Bucket"] == {"Ref": site_id})
    statements = policy["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements)
    (reader,) = [s for s in statements if s["Effect"] == "Allow" and s.get("Principal") == {"Service": "cloudfront.amazonaws.com"}]
    assert reader["Action"] == "s3:GetObject"
    dist_id, _ = web.single("AWS::CloudFront::Distribution")
    assert json.dumps(reader["Condition"]["StringEquals"]["AWS:SourceArn"]).count(dist_id) == 1  # this distribution only
    assert not [s for s in statements if s.get("Principal") in ("*", {"AWS": "*"}) and s["Effect"] == "Allow"]


def test_the_distribution_serves_https_through_origin_access_control_with_the_security_headers(web: WebSynth) -> None:
    _, oac = web.single("AWS::CloudFront::OriginAccessControl")
    assert oac["OriginAccessControlConfig"]["OriginAccessControlOriginType"] == "s3"
    assert oac["OriginAccessControlConfig"]["SigningBehavior"] == "always"
    headers_id, headers = web.single("AWS::CloudFront::ResponseHeadersPolicy")
    _, dist = web.single("AWS::CloudFront::Distribution")
    config = dist["DistributionConfig"]
    behavior = config["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behavior["AllowedMethods"] == ["GET", "HEAD"]
    assert behavior["ResponseHeadersPolicyId"] == {"Ref": headers_id}
    (origin,) = config["Origins"]
    assert "OriginAccessControlId" in origin and origin["S3OriginConfig"]["OriginAccessIdentity"] == ""
    assert config["DefaultRootObject"] == "index.html"
    assert config["Logging"]["Bucket"]

    security = headers["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    csp = dict(d.strip().split(" ", 1) for d in security["ContentSecurityPolicy"]["ContentSecurityPolicy"].split(";"))
    assert csp["script-src"] == "'self' 'wasm-unsafe-eval'"  # WebAssembly may compile; no JavaScript eval, no inline script
    assert csp["connect-src"] == f"'self' {API_ORIGIN}"
    assert csp["default-src"] == "'none'" and csp["frame-ancestors"] == "'none'"
    assert all("unsafe-inline" not in v and "'unsafe-eval'" not in v for v in csp.values())
    assert security["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert security["ContentTypeOptions"]["Override"] is True
    assert security["FrameOptions"]["FrameOption"] == "DENY"


def test_the_site_is_deployed_with_config_written_at_deploy_time_and_the_cache_invalidated(web: WebSynth) -> None:
    deployments = web.of_type("Custom::CDKBucketDeployment")
    (deploy,) = [d["Properties"] for d in deployments.values()]
    site_id = next(k for k in web.of_type("AWS::S3::Bucket") if "WebSite" in k)
    dist_id, _ = web.single("AWS::CloudFront::Distribution")
    assert deploy["DestinationBucketName"] == {"Ref": site_id}
    assert deploy["DistributionId"] == {"Ref": dist_id} and deploy["DistributionPaths"] == ["/*"]
    assert deploy["Prune"] is True
    # config.json: the API URL is filled in when CloudFormation deploys (a marker replaced by a quoted string)
    (markers,) = [m for m in deploy["SourceMarkers"] if m]
    ((marker, value),) = markers.items()
    assert value == {"Fn::Join": ["", ['"', {"Ref": "ApiUrl"}, '"']]}
    # the folder's own config.json (local API URL and key) is not uploaded: the deploy-time one replaces it
    staged = [p for p in web.outdir.glob("asset.*") if p.is_dir() and (p / "index.html").exists()]
    assert len(staged) == 1
    assert not (staged[0] / "config.json").exists()
    (config_asset,) = [p for p in web.outdir.glob("asset.*") if p.is_dir() and (p / "config.json").exists()]
    deployed = json.loads((config_asset / "config.json").read_text().replace(marker, '"https://api.example/prod"'))
    assert deployed == {"api_url": "https://api.example/prod", "ask_api_key": True, "onnxruntime_web": "1.30.0"}  # never a key


def test_the_url_and_origin_come_from_the_distribution(web: WebSynth) -> None:
    dist_id, _ = web.single("AWS::CloudFront::Distribution")
    outputs = web.template["Outputs"]
    domain = {"Fn::GetAtt": [dist_id, "DomainName"]}
    assert outputs["WebUrl"]["Value"] == {"Fn::Join": ["", ["https://", domain, "/"]]}
    assert outputs["WebOrigin"]["Value"] == {"Fn::Join": ["", ["https://", domain]]}


def test_cfn_lint_reports_no_errors(web: WebSynth) -> None:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(web.outdir / "WebOnly.template.json", config=ManualArgs(regions=["eu-west-1"]))
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")] == []


def test_a_folder_without_the_page_is_refused(tmp_path: Path) -> None:
    import aws_cdk as cdk

    from cdk.web import WebPage

    with pytest.raises(ValueError, match="python -m devtools web"):
        WebPage(cdk.Stack(cdk.App(), "Empty"), "Web", site_dir=tmp_path)
