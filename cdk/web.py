"""The browser page (``web_page`` setting): the site ``python -m devtools web`` writes, in a private S3
bucket behind CloudFront (origin access control, HTTPS only, security headers and a content-security
policy that lets the page compile WebAssembly and call the API's origin, nothing else)."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from .nag import acknowledge

CONFIG_FILE = "config.json"  # what the page reads for the API URL; written at deploy time, see WebPage
LOG_EXPIRY_DAYS = 90


def content_security_policy(api_origin: str | None = None) -> str:
    """The page's CSP. 'wasm-unsafe-eval' lets onnxruntime-web compile its WebAssembly (and allows no
    JavaScript eval); the page has no inline script or style; connect-src adds only the API's origin."""
    connect = "'self'" + (f" {api_origin}" if api_origin else "")
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {connect}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ]
    )


def rest_api_origin(api: apigw.IRestApi) -> str:
    """``https://<id>.execute-api.<region>.<suffix>``: the origin the page's fetch goes to (a deploy-time token)."""
    stack = cdk.Stack.of(api)
    return f"https://{api.rest_api_id}.execute-api.{stack.region}.{stack.url_suffix}"


class WebPage(Construct):
    """Serves the generated site. Exposes ``url`` (https://<distribution domain>/, for the ``WebUrl``
    output), ``origin`` (https://<distribution domain>, for the API's CORS), ``bucket``, ``distribution``.

    ``api_url`` / ``api_origin``: the API the page compares with (tokens are fine); ``config.json`` is
    written at deploy time with the URL, so the site folder can be generated before the API exists.
    The API key is never put in the deployed page; the page asks for one when the API needs it.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        site_dir: str | Path,
        api_url: str | None = None,
        api_origin: str | None = None,
        api_key_required: bool = False,
    ) -> None:
        super().__init__(scope, id)
        site = Path(site_dir)
        if not (site / "index.html").exists():
            raise ValueError(f"{site} has no index.html: write the site first with `python -m devtools web --out {site}`")

        self.log_bucket = s3.Bucket(
            self,
            "Logs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            # CloudFront standard logging writes with ACLs: the one bucket kind that still needs them
            object_ownership=s3.ObjectOwnership.OBJECT_WRITER,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(LOG_EXPIRY_DAYS))],
        )
        acknowledge(
            self.log_bucket,
            "AwsSolutions-S1",
            "This is the access-log bucket of the page's bucket and distribution; logging it into itself would loop.",
        )
        self.bucket = s3.Bucket(
            self,
            "Site",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="site-bucket/",
        )
        self.headers = cloudfront.ResponseHeadersPolicy(
            self,
            "Headers",
            comment="Security headers and CSP of the model page",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=content_security_policy(api_origin),
                    override=True,
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(frame_option=cloudfront.HeadersFrameOption.DENY, override=True),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN,
                    override=True,
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=cdk.Duration.days(365),
                    include_subdomains=True,
                    override=True,
                ),
            ),
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="Model page (onnxruntime-web)",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=self.headers,
                compress=True,
            ),
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True,
            log_bucket=self.log_bucket,
            log_file_prefix="distribution/",
        )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR1",
            "A public demo page of the model: no country is excluded; the API behind it keeps its own auth and throttling.",
        )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR2",
            "Static files only (GET/HEAD, cached); no WAF web ACL, whose monthly cost the page does not justify.",
        )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR4",
            "The default *.cloudfront.net certificate (no custom domain setting); viewers get HTTPS only and CloudFront "
            "negotiates TLS 1.2+ with current browsers. A custom domain would set TLSv1.2_2021 through its certificate.",
        )

        # the folder as written by `python -m devtools web`, and config.json with the deploy-time API URL
        sources = [s3deploy.Source.asset(str(site), exclude=[CONFIG_FILE])]
        sources.append(
            s3deploy.Source.json_data(
                CONFIG_FILE,
                {
                    "api_url": api_url,
                    "ask_api_key": api_key_required,
                    "onnxruntime_web": _ort_version(site),
                },
            )
        )
        self.deployment = s3deploy.BucketDeployment(
            self,
            "Deploy",
            sources=sources,
            destination_bucket=self.bucket,
            distribution=self.distribution,
            distribution_paths=["/*"],  # the page and model keep their names across versions
            prune=True,
            memory_limit=512,
        )
        self.origin = f"https://{self.distribution.distribution_domain_name}"
        self.url = f"{self.origin}/"
        _acknowledge_deployment_handler(self, self.bucket)


def _ort_version(site: Path) -> str | None:
    import json

    try:
        return json.loads((site / CONFIG_FILE).read_text()).get("onnxruntime_web")
    except (OSError, ValueError):
        return None


def _acknowledge_deployment_handler(scope: Construct, bucket: s3.Bucket) -> None:
    """BucketDeployment's copy function is a CDK singleton at the stack root: acknowledge there, with reasons."""
    stack = cdk.Stack.of(scope)
    site_bucket_id = stack.get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
    # the bootstrap asset bucket's name as nag prints it: the account and region are the stack's (maybe pseudo-parameters)
    account = "<AWS::AccountId>" if cdk.Token.is_unresolved(stack.account) else stack.account
    region = "<AWS::Region>" if cdk.Token.is_unresolved(stack.region) else stack.region
    asset_bucket = f"cdk-{cdk.DefaultStackSynthesizer.DEFAULT_QUALIFIER}-assets-{account}-{region}"
    for child in stack.node.children:
        if child.node.id.startswith("Custom::CDKBucketDeployment"):
            acknowledge(
                child,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "CDK's BucketDeployment copy function: the AWS-managed basic execution policy only lets it write its own logs.",
            )
            for action in ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:DeleteObject*", "s3:Abort*"):
                acknowledge(
                    child,
                    f"AwsSolutions-IAM5[Action::{action}]",
                    "CDK's BucketDeployment copy function: the S3 read/sync/prune action groups CDK grants on the asset "
                    "bucket (read) and the page's bucket (write, prune) only.",
                )
            acknowledge(
                child,
                f"AwsSolutions-IAM5[Resource::<{site_bucket_id}.Arn>/*]",
                "CDK's BucketDeployment copy function writes and prunes every object of the page's bucket.",
            )
            acknowledge(
                child,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{asset_bucket}/*]",
                "CDK's BucketDeployment copy function reads the site's zip from the CDK bootstrap asset bucket.",
            )
            acknowledge(
                child,
                "AwsSolutions-IAM5[Resource::*]",
                "CDK's BucketDeployment copy function: cloudfront:CreateInvalidation/GetInvalidation have no resource-level scoping.",
            )
            acknowledge(
                child,
                "AwsSolutions-L1",
                "CDK's BucketDeployment copy function: its runtime is chosen and bundled by aws-cdk-lib, not by this stack.",
            )
