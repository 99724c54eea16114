"""Serving: the inference function, its ``live`` alias, the REST API in front of it and the
CodeDeploy deployment group that shifts traffic to a new model version."""

from __future__ import annotations

import json
from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk.alarms import AlarmSpec, Source
from modelserve import metric_catalogue as mc
from modelserve.schema import BundleManifest
from modelserve.settings import (
    ENV_BUNDLE_PATH,
    ENV_CORS_ORIGINS,
    ENV_HASH_SALT_SECRET,
    ENV_REQUEST_ID_KEY,
    ENV_SETTINGS_DIGEST,
    ServingSettings,
    Settings,
)
from modelserve.settings_env import env_name, settings_digest

from .bundling import BUNDLE_DIR_IN_ASSET
from .common import resource_name, retention
from .lambda_function import LambdaFunction, powertools_env
from .nag import acknowledge

_CANARY = {
    "AllAtOnce": "ALL_AT_ONCE",
    "Canary10Percent5Minutes": "CANARY_10_PERCENT_5_MINUTES",
    "Canary10Percent10Minutes": "CANARY_10_PERCENT_10_MINUTES",
    "Canary10Percent15Minutes": "CANARY_10_PERCENT_15_MINUTES",
    "Canary10Percent30Minutes": "CANARY_10_PERCENT_30_MINUTES",
    "Linear10PercentEvery1Minute": "LINEAR_10_PERCENT_EVERY_1_MINUTE",
    "Linear10PercentEvery2Minutes": "LINEAR_10_PERCENT_EVERY_2_MINUTES",
    "Linear10PercentEvery3Minutes": "LINEAR_10_PERCENT_EVERY_3_MINUTES",
    "Linear10PercentEvery10Minutes": "LINEAR_10_PERCENT_EVERY_10_MINUTES",
}

# (path, method, JSON body checked at the edge): the app's routes (serving/api.py); anything else never reaches Lambda
ROUTES = (
    ("predict", "POST", True),
    ("feedback", "POST", True),
    ("health", "GET", False),
    ("model", "GET", False),
    ("docs", "GET", False),
    ("openapi.json", "GET", False),
    # Open Inference Protocol v2 (serving/oip.py): the app routes /v2/... itself and answers 404 for the rest;
    # infer bodies may be binary tensors, so no body model
    ("v2", "GET", False),
    ("v2/{proxy+}", "GET", False),
    ("v2/{proxy+}", "POST", False),
)
# the app answers HEAD on every GET route (headers, no body): so does the gateway
ROUTES = ROUTES + tuple((path, "HEAD", False) for path, method, _ in ROUTES if method == "GET")
# With api_auth=api_key these need no key: the Swagger page (/docs) loads /openapi.json from the browser, which
# cannot add the x-api-key header to a page load. They expose the request schema only (feature names, types,
# categories); /model (reference statistics, export metrics) and every scoring route keep the key.
SCHEMA_ROUTES = frozenset({"docs", "openapi.json"})
# bodies API Gateway hands to the function base64-encoded and returns decoded when the function says
# isBase64Encoded (when the client's first Accept type is one of them): OIP binary tensors, Arrow streams
BINARY_MEDIA_TYPES = ("application/octet-stream", "application/vnd.apache.arrow.stream")
# what a browser may send besides the CORS-safelisted headers (OIP's binary header; SigV4's under api_auth=iam)
CORS_ALLOW_HEADERS = ("Content-Type", "X-Api-Key", "Inference-Header-Content-Length")
CORS_SIGV4_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256")
# the stage's access log: who called (API key id, IAM caller, source IP), what, and how it went
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "path": "$context.path",
    "protocol": "$context.protocol",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "ip": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "apiKeyId": "$context.identity.apiKeyId",
    "caller": "$context.identity.caller",
    "user": "$context.identity.user",
    "userArn": "$context.identity.userArn",
    "errorType": "$context.error.responseType",  # why the gateway refused: INVALID_API_KEY, THROTTLED, WAF_FILTERED, ...
    "errorMessage": "$context.error.message",
    "wafResponseCode": "$context.wafResponseCode",
}
# the gateway's refusals for access (counted by a metric filter on the access log, subtracted from Api4xxRate): a
# scanner's or an unkeyed client's 403, an unknown route's 404, a client over its quota's 429; none is the service's fault
ACCESS_REFUSAL_STATUSES = ("403", "404", "429")


def access_refusals_pattern() -> logs.IFilterPattern:
    """Access-log lines (ACCESS_LOG_FIELDS, JSON) of a request refused for access: status 403, 404 or 429."""
    return logs.FilterPattern.any(*(logs.FilterPattern.string_value("$.status", "=", code) for code in ACCESS_REFUSAL_STATUSES))


class Serving(Construct):
    """Exposes ``function``, ``alias``, ``api``, ``stage``, ``deployment_group``, ``api_key`` (or None),
    ``role`` (for capture grants), ``log_group``, ``route_resources`` (path -> API resource) and ``api_metric``;
    ``allow_browser_origins`` opens CORS for the stack's browser origins. A ``MetricSource`` for the alerting
    (cdk/alerting.py): the API's and the inference function's alarm metrics, its MetricsErrors log group."""

    alarm_sources: tuple[Source, ...] = ("api", "inference")

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        manifest: BundleManifest,
        code: lambda_.Code,
        extra_environment: dict[str, str],
    ) -> None:
        super().__init__(scope, id)
        s, m = settings, manifest
        self.settings = settings
        stack = cdk.Stack.of(self)

        env = s.serving.to_env()  # every setting the function reads (ServingSettings.from_env), nothing else
        self.hash_salt_secret: secretsmanager.Secret | None = None
        if s.hash_features and not s.capture_hash_salt:
            # a generated salt that never appears in cdk.json, the template or the function's configuration
            self.hash_salt_secret = secretsmanager.Secret(
                self,
                "CaptureHashSalt",
                description=f"Salt of the hashed capture features of model {m.model_name}",
                generate_secret_string=secretsmanager.SecretStringGenerator(password_length=48, exclude_punctuation=True),
            )
            env[ENV_HASH_SALT_SECRET] = self.hash_salt_secret.secret_arn
            acknowledge(
                self.hash_salt_secret,
                "AwsSolutions-SMG4",
                "The salt must stay the same for hashed captures to remain joinable; rotating it is a deliberate, manual act.",
            )
        # the key request ids are signed with (serving/request_ids.py): generated, never in cdk.json or the
        # template; resolved into the function's environment at deploy, so no answer waits on a secret fetch
        self.request_id_key = secretsmanager.Secret(
            self,
            "RequestIdKey",
            description=f"Key the request ids of model {m.model_name} are signed with (feedback names them)",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=48, exclude_punctuation=True),
        )
        env[ENV_REQUEST_ID_KEY] = self.request_id_key.secret_value.unsafe_unwrap()
        acknowledge(
            self.request_id_key,
            "AwsSolutions-SMG4",
            "Rotating the key would refuse feedback for every prediction answered before: a deliberate, manual act.",
        )
        env[ENV_BUNDLE_PATH] = BUNDLE_DIR_IN_ASSET  # inside the asset (resolved against LAMBDA_TASK_ROOT)
        env.update(extra_environment)
        env.update(powertools_env(s, "inference"))
        self._environment = dict(env)  # what the settings digest covers, kept current by allow_browser_origins
        env[ENV_SETTINGS_DIGEST] = self._settings_digest()

        self.inference = LambdaFunction(
            self,
            "Inference",
            settings=s,
            description=f"modelserve inference: model {m.model_name} version {m.version}",
            role_description=f"Inference function of model {m.model_name}",
            code=code,
            memory_mb=s.inference_memory_mb,
            timeout_s=s.inference_timeout_s,
            reserved_concurrent_executions=s.inference_reserved_concurrency,
            environment=env,
            # restored from a snapshot taken when a version is published (the alias and the canary point at versions)
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if s.snap_start else None,
            current_version_options=lambda_.VersionOptions(
                description=f"model {m.model_name} version {m.version}",
                removal_policy=cdk.RemovalPolicy.RETAIN,
            ),
        )
        self.function, self.role, self.log_group = self.inference.function, self.inference.role, self.inference.log_group
        if self.hash_salt_secret is not None:
            self.hash_salt_secret.grant_read(self.role)
        cdk.Tags.of(self.function).add("modelserve:model-name", m.model_name)
        cdk.Tags.of(self.function).add("modelserve:model-version", m.version)

        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name="live",
            version=self.function.current_version,
            description=f"Traffic alias; points at model {m.model_name} version {m.version}",
            provisioned_concurrent_executions=s.provisioned_concurrency or None,
        )

        self.deployment_group = codedeploy.LambdaDeploymentGroup(
            self,
            "Deployment",
            alias=self.alias,
            deployment_config=getattr(codedeploy.LambdaDeploymentConfig, _CANARY[s.canary_config]),
            auto_rollback=codedeploy.AutoRollbackConfig(failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True),
        )
        acknowledge(
            self.deployment_group,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited]",
            "AWS's own least-privilege service-role policy for CodeDeploy Lambda deployments (alias updates and "
            "invoking lifecycle hooks); CDK attaches it to the deployment group's role.",
        )

        self._api(s, m, stack)

    # ------------------------------------------------------------ API Gateway

    def _api(self, s: Settings, m: BundleManifest, stack: cdk.Stack) -> None:
        access_logs = logs.LogGroup(self, "AccessLogs", retention=retention(s.log_retention_days), removal_policy=cdk.RemovalPolicy.DESTROY)
        self.api_name = resource_name(stack.stack_name, "api", max_len=128)
        auth = {
            "none": apigw.AuthorizationType.NONE,
            "api_key": apigw.AuthorizationType.NONE,
            "iam": apigw.AuthorizationType.IAM,
        }[s.api_auth]
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=self.api_name,
            description=f"Predictions from model {m.model_name}",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            binary_media_types=list(BINARY_MEDIA_TYPES),
            # the account-level role API Gateway needs to write logs; kept on stack deletion (shared by the region)
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=cdk.RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=s.stage_name,
                throttling_rate_limit=s.throttle_rate_limit,
                throttling_burst_limit=s.throttle_burst_limit,
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=False,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                # the stack name, literally: the Deployment dimension of the access refusals' metric filter
                access_log_format=apigw.AccessLogFormat.custom(json.dumps({**ACCESS_LOG_FIELDS, "deployment": stack.stack_name})),
            ),
        )
        self.access_logs = access_logs
        logs.MetricFilter(
            self,
            "AccessRefusals",
            log_group=access_logs,
            filter_pattern=access_refusals_pattern(),
            metric_namespace=s.metrics_namespace,
            metric_name=mc.ACCESS_REFUSALS,
            metric_value="1",
            dimensions={mc.DIM_DEPLOYMENT: "$.deployment"},
        )
        self.stage = self.api.deployment_stage
        body_validator = self.api.add_request_validator("BodyValidator", validate_request_body=True, validate_request_parameters=True)
        params_validator = self.api.add_request_validator("ParamsValidator", validate_request_body=False, validate_request_parameters=True)
        json_object = self.api.add_model(
            "JsonBody",
            content_type="application/json",
            description="Structural check at the edge; the function validates every field and answers 422 with details",
            schema=apigw.JsonSchema(
                schema=apigw.JsonSchemaVersion.DRAFT4,
                type=[apigw.JsonSchemaType.OBJECT, apigw.JsonSchemaType.ARRAY],
            ),
        )
        integration = apigw.LambdaIntegration(self.alias, proxy=True, allow_test_invoke=False)
        self.route_resources: dict[str, apigw.Resource] = {}
        for path, method, has_body in ROUTES:
            resource = self.route_resources.get(path) or self.api.root.resource_for_path(path)
            self.route_resources[path] = resource
            key_exempt = path in SCHEMA_ROUTES and s.api_auth == "api_key"
            resource.add_method(
                method,
                integration,
                authorization_type=auth,
                api_key_required=s.api_auth == "api_key" and not key_exempt,
                request_validator=body_validator if has_body else params_validator,
                request_models={"application/json": json_object} if has_body else None,
            )

        # A REST API answers a path with no resource (any unknown path; a trailing slash, should the gateway
        # route it apart from the resource) with 403 "Missing Authentication Token" in its own shape. Answer it
        # like the function's 404 instead: the API's error shape, the request id, the model version. Under
        # api_auth=iam the same response type also means "unsigned request", so it stays a 403 there.
        iam = s.api_auth == "iam"
        unknown_route_body = {
            "error": "forbidden" if iam else "not_found",
            "message": ("missing or invalid SigV4 signature, or " if iam else "") + "no route $context.httpMethod $context.path",
            "details": [],
            "request_id": "$context.requestId",
            "model_version": m.version,
        }
        self.unknown_route_headers = {"x-request-id": "context.requestId", "x-model-version": f"'{m.version}'"}
        self.unknown_route_response = self.api.add_gateway_response(
            "UnknownRoute",
            type=apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN,
            status_code="403" if iam else "404",
            response_headers=self.unknown_route_headers,
            templates={"application/json": json.dumps(unknown_route_body)},
        )

        self.api_key: apigw.IApiKey | None = None
        if s.api_auth == "api_key":
            self.api_key = self.api.add_api_key("ApiKey", description=f"Client key for model {m.model_name}")
            plan = self.api.add_usage_plan(
                "UsagePlan",
                description="Throttles each API key like the stage",
                throttle=apigw.ThrottleSettings(rate_limit=s.throttle_rate_limit, burst_limit=s.throttle_burst_limit),
            )
            plan.add_api_stage(stage=self.stage)
            plan.add_api_key(self.api_key)
        if s.api_auth != "iam":
            reason = (
                "api_auth=api_key: clients present an API key bound to a throttled usage plan (revocable per client); "
                "/docs and /openapi.json (the request schema only) are readable without it. Set api_auth=iam for SigV4."
                if s.api_auth == "api_key"
                else "api_auth=none was chosen explicitly in the settings (public demo endpoint, throttled at the stage)."
            )
            acknowledge(self.api, "AwsSolutions-APIG4", reason)
            acknowledge(self.api, "AwsSolutions-COG4", reason)
        else:
            acknowledge(
                self.api,
                "AwsSolutions-COG4",
                "api_auth=iam: callers sign requests with SigV4 and IAM policies authorize them (service-to-service); "
                "a Cognito user pool would add end-user sign-in this API does not have.",
            )
        if not s.waf:
            acknowledge(
                self.api,
                "AwsSolutions-APIG3",
                "No WAF web ACL by default (fixed monthly cost); stage throttling and request validation bound abuse. "
                "Set waf=true for internet-facing production use.",
            )
        acknowledge(
            self.api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account-level API Gateway logging role needs exactly this AWS-managed policy to deliver access and execution logs.",
        )

    # ------------------------------------------------------------ browsers

    def allow_browser_origins(self, origins: Sequence[str]) -> None:
        """CORS for ``origins`` (literal origins or deploy-time tokens such as the web page's): a preflight
        OPTIONS on every route (no key, no auth: browsers never send credentials on a preflight), the
        gateway's own 4XX/5XX answers (missing key 403, throttled 429, WAF 403) readable by those pages, and the
        function told the list (``MS_CORS_ORIGINS``) to answer the actual requests with the same headers."""
        origins = ["*"] if "*" in origins else list(dict.fromkeys(origins))  # '*' already covers the page
        if not origins:
            return
        headers = CORS_ALLOW_HEADERS + (CORS_SIGV4_HEADERS if self.settings.api_auth == "iam" else ())
        for path, resource in self.route_resources.items():
            methods = sorted({method for p, method, _ in ROUTES if p == path} | {"OPTIONS"})
            resource.add_cors_preflight(
                allow_origins=origins,
                allow_headers=list(headers),
                allow_methods=methods,
                max_age=cdk.Duration.hours(1),
            )
        # a gateway response carries one fixed value: the origin itself when there is one, else '*' (these
        # bodies hold only the gateway's message, and '*' never lets a browser send cookies)
        allow_origin = origins[0] if len(origins) == 1 else "*"
        for name, response_type in (("Default4xx", apigw.ResponseType.DEFAULT_4_XX), ("Default5xx", apigw.ResponseType.DEFAULT_5_XX)):
            self.api.add_gateway_response(
                name,
                type=response_type,
                response_headers={"Access-Control-Allow-Origin": f"'{allow_origin}'", "Vary": "'Origin'"},
            )
        # the unknown-route answer is a response type of its own: it takes the same CORS headers (a whole-map override:
        # its response parameters are set when it is created)
        cors = {"Access-Control-Allow-Origin": f"'{allow_origin}'", "Vary": "'Origin'"}
        cfn_unknown = self.unknown_route_response.node.default_child
        assert isinstance(cfn_unknown, apigw.CfnGatewayResponse)
        cfn_unknown.add_property_override(
            "ResponseParameters",
            {f"gatewayresponse.header.{k}": v for k, v in {**self.unknown_route_headers, **cors}.items()},
        )
        self.function.add_environment(ENV_CORS_ORIGINS, ",".join(origins))
        self._environment[ENV_CORS_ORIGINS] = ",".join(origins)
        self.function.add_environment(ENV_SETTINGS_DIGEST, self._settings_digest())

    def _settings_digest(self) -> str:
        """The digest of the function's settings variables, validated above (``Settings``): the function reads
        them without pydantic while they match it (serving/function_settings.py). A value resolved at deploy
        (a token: the web page's origin) is named in it, not hashed (modelserve/settings_env.py says why)."""
        names = [env_name(field) for field in ServingSettings.model_fields]
        return settings_digest(self._environment, names, cdk.Token.is_unresolved)

    # ------------------------------------------------------------ metrics the alarms and dashboard use

    @property
    def metrics_error_log(self) -> tuple[str, logs.ILogGroup]:
        return "Inference", self.log_group

    def alarm_metric(self, spec: AlarmSpec) -> cloudwatch.IMetric:
        """The metric an alarm on the API (``AWS/ApiGateway``) or the inference function (``AWS/Lambda``) reads."""
        if spec.source == "inference":
            return self.function.metric(spec.metric_name, statistic=spec.statistic, period=cdk.Duration.seconds(spec.period_s))
        metric = self.api_metric(spec.metric_name, spec.statistic, spec.period_s)
        if spec.missing_as_zero:  # no datapoint is no request: 0, not missing
            return self._requests_or_zero(spec, metric)
        if not spec.min_requests:
            return metric
        # a share of a handful of requests is noise: periods under the minimum count as 0
        return cloudwatch.MathExpression(
            expression=f"IF(requests >= {spec.min_requests}, m, 0)",
            using_metrics={"m": metric, "requests": self.api_metric("Count", "Sum", spec.period_s)},
            label=f"{spec.metric_name} share (periods of {spec.min_requests}+ requests)",
            period=cdk.Duration.seconds(spec.period_s),
        )

    def _requests_or_zero(self, spec: AlarmSpec, metric: cloudwatch.Metric) -> cloudwatch.MathExpression:
        """Requests per period, 0 when none; with ``minus_access_refusals`` the requests served: Count counts the
        gateway's 403/404/429 too, so a deleted key's 403 storm would look like traffic."""
        using: dict[str, cloudwatch.IMetric] = {"m": metric}
        expression, label = "FILL(m, 0)", f"{spec.metric_name} (0 when none)"
        if spec.minus_access_refusals:
            using["refused"] = self.access_refusals_metric(spec.period_s)
            expression, label = "FILL(m, 0) - FILL(refused, 0)", "requests served (Count less AccessRefusals, 0 when none)"
        period = cdk.Duration.seconds(spec.period_s)
        return cloudwatch.MathExpression(expression=expression, using_metrics=using, label=label, period=period)

    def access_refusals_metric(self, period_s: int) -> cloudwatch.Metric:
        """The gateway's refusals for access (403, 404, 429) per period, from the access log's metric filter."""
        return cloudwatch.Metric(
            namespace=self.settings.metrics_namespace,
            metric_name=mc.ACCESS_REFUSALS,
            dimensions_map={mc.DIM_DEPLOYMENT: cdk.Stack.of(self).stack_name},
            statistic="Sum",
            period=cdk.Duration.seconds(period_s),
        )

    def api_metric(self, metric_name: str, statistic: str, period_s: int = 60) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/ApiGateway",
            metric_name=metric_name,
            # literal names, not tokens: a reference to the stage would make alarm -> stage -> methods ->
            # alias -> deployment group -> alarm a dependency cycle
            dimensions_map={"ApiName": self.api_name, "Stage": self.settings.stage_name},
            statistic=statistic,
            period=cdk.Duration.seconds(period_s),
        )
