"""The one stack: wires the constructs together and prints the outputs a user needs."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from constructs import Construct

from cdk.alarms import canary_watch, runbook_link
from modelserve import metric_catalogue as mc
from modelserve.bundle import ModelBundle
from modelserve.schema import BundleManifest
from modelserve.settings import ENV_CHALLENGER_BUNDLE_PATH, ENV_CHALLENGER_VERSION, Settings, SettingsError

from .alerting import Alerting
from .also_firing import AlsoFiring
from .asset_trim import SERVING_PRUNE
from .bundling import ASSET_PACKAGES, CHALLENGER_DIR_IN_ASSET, DRIFT_CHECK_CHALLENGER_EXCLUDE, REPO_ROOT, AssetSpec, asset_code
from .canary import canary_failing_alarm
from .capture import CaptureStorage
from .dashboard import Dashboard, dashboard_url
from .deployment_events import DeploymentEvents
from .drift_check import DriftCheck
from .logical_ids import stable_logical_id
from .pre_traffic import PreTrafficHook
from .serving import Serving
from .waf import ApiFirewall
from .web import WebPage, rest_api_origin


class ModelServingStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        manifest: BundleManifest,
        bundle_dir: Path,
        bundling_mode: str = "local",
        prebuilt_assets: Path | None = None,
        repo_root: Path = REPO_ROOT,
        challenger: tuple[Path, BundleManifest] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(
            scope,
            id,
            description=f"modelserve: model {manifest.model_name} version {manifest.version} behind API Gateway + Lambda, "
            "captures to S3, scheduled drift check and alarms",
            **kwargs,  # type: ignore[arg-type]
        )
        s, m = settings, manifest
        cdk.Tags.of(self).add("modelserve:model-name", m.model_name)

        def spec(
            name: str,
            packages: tuple[str, ...],
            prune: tuple[str, ...] = (),
            challenger_dir: Path | None = None,
            challenger_exclude: tuple[str, ...] = (),
        ) -> AssetSpec:
            return AssetSpec(
                name=name,
                handler_dir=repo_root / "lambda" / name,
                packages=tuple(repo_root / p for p in packages),
                bundle_dir=bundle_dir,
                python_version=s.python_runtime,
                architecture=s.lambda_architecture,
                prune=prune,
                challenger_dir=challenger_dir,
                challenger_exclude=challenger_exclude,
            )

        self.capture = CaptureStorage(self, "Capture", settings=s, manifest=m)
        self.serving = Serving(
            self,
            "Serving",
            settings=s,
            manifest=m,
            code=asset_code(
                spec("inference", ASSET_PACKAGES["inference"], SERVING_PRUNE, challenger[0] if challenger else None),
                bundling_mode,
                prebuilt_assets,
            ),
            extra_environment=self.capture.environment,
        )
        self.capture.grant_capture_write(self.serving.role)
        self.capture.subscribe_capture_lines(self.serving.log_group)
        self.pre_traffic = PreTrafficHook(
            self,
            "PreTrafficHook",
            settings=s,
            manifest=m,
            handler_dir=repo_root / "lambda" / "pre_traffic",
            target=self.serving.function,
            deployment_group=self.serving.deployment_group,
            alias=self.serving.alias,
            reference_rows=ModelBundle(root=bundle_dir, manifest=m).reference_rows()[:1],
        )
        self.drift_check = DriftCheck(
            self,
            "DriftCheck",
            settings=s,
            manifest=m,
            # with a challenger: its manifest and reference too, for its own drift report (docs/versions.md)
            code=asset_code(
                spec(
                    "drift_check", ASSET_PACKAGES["drift_check"], (), challenger[0] if challenger else None, DRIFT_CHECK_CHALLENGER_EXCLUDE
                ),
                bundling_mode,
                prebuilt_assets,
            ),
            capture=self.capture,
        )
        if challenger is not None:  # docs/versions.md: both versions in the inference function, compared by the drift check
            self.serving.function.add_environment(ENV_CHALLENGER_BUNDLE_PATH, CHALLENGER_DIR_IN_ASSET)
            self.drift_check.function.add_environment(ENV_CHALLENGER_VERSION, challenger[1].version)
            self.drift_check.function.add_environment(ENV_CHALLENGER_BUNDLE_PATH, CHALLENGER_DIR_IN_ASSET)
        # a new version failing its canary: CodeDeploy rolls it back, and the service pages are held meanwhile
        self.canary_alarm = canary_failing_alarm(
            self.serving,
            "CanaryFailing",
            watch=canary_watch(s),
            function=self.serving.function,
            version=self.serving.function.current_version.version,
            model_dimensions={mc.DIM_MODEL_NAME: m.model_name, mc.DIM_MODEL_VERSION: m.version, mc.DIM_DEPLOYMENT: self.stack_name},
            metrics_namespace=s.metrics_namespace,
            runbook=runbook_link(s, "canary-failing"),
        )
        self.alerting = Alerting(
            self,
            "Alerting",
            settings=s,
            manifest=m,
            reports_bucket_name=self.capture.bucket.bucket_name,
            # each construct is asked for the metrics its alarms read (and the functions for their log groups)
            watched=(self.serving, self.drift_check, self.capture),
            challenger_version=challenger[1].version if challenger else None,
            canary_alarm=self.canary_alarm,
        )
        # a second alarm entering ALARM inside an open page notifies too ("also firing")
        self.also_firing = AlsoFiring(
            self, "AlsoFiring", settings=s, alerting=self.alerting, handler_dir=repo_root / "lambda" / "also_firing"
        )
        # a canary CodeDeploy rolled back: one notice on the inform topic, not a page
        self.deployment_events = DeploymentEvents(
            self,
            "DeploymentEvents",
            deployment_group=self.serving.deployment_group,
            topic=self.alerting.inform_topic,
            dashboard_url=self.alerting.dashboard_link,
            runbook_url=runbook_link(s, "deployment-events"),
        )
        self.web_page = self._web_page(s, repo_root) if s.web_page else None
        # the browser origins the API answers CORS for: the configured ones and the page's, when it calls the API
        origins = [*s.cors_origins]
        if self.web_page is not None and s.api_auth != "iam":
            origins.append(self.web_page.origin)
        self.serving.allow_browser_origins(origins)
        self.firewall = (
            ApiFirewall(self, "Firewall", stage=self.serving.stage, name_prefix=self.stack_name, rate_limit=s.waf_rate_limit)
            if s.waf
            else None
        )
        # CodeDeploy watches the canary alarm and the service alarms: the canary alarm sees the new version's errors a
        # minute before the service alarms do, but not its latency, and a failure it does not measure (say the new
        # version times out the gateway before Lambda counts anything) must still roll the canary back
        for alarm in (self.canary_alarm, *self.alerting.rollback_alarms):
            self.serving.deployment_group.add_alarm(alarm)
        self.dashboard = Dashboard(
            self,
            "Dashboard",
            settings=s,
            manifest=m,
            capture=self.capture,
            serving=self.serving,
            drift_check=self.drift_check,
            # the canary alarm too: while it is in ALARM the service pages are held ("Actions suppressed" in the console)
            alarms=[self.alerting.model_health, *self.alerting.alarms.values(), self.canary_alarm],
            pages=list(self.alerting.pages.values()),
            challenger_version=challenger[1].version if challenger else None,
        )

        if bundling_mode == "skip":
            cdk.Annotations.of(self).add_warning_v2(
                "modelserve:bundlingSkipped",
                "Bundling skipped (MS_SKIP_BUNDLING / modelserve:bundling=skip): the Lambda assets hold no dependencies. "
                "Synth for tests only; do not deploy this assembly.",
            )

        out = lambda name, value, desc: cdk.CfnOutput(self, name, value=value, description=desc)  # noqa: E731
        out("ApiUrl", self.serving.api.url, "Base URL of the stage: POST <url>predict")
        if self.serving.api_key is not None:
            out(
                "ApiKeyId",
                self.serving.api_key.key_id,
                "aws apigateway get-api-key --include-value --api-key <id> --query value --output text",
            )
        out("CaptureBucketName", self.capture.bucket.bucket_name, "captures/, feedback/ and reports/ live here")
        out("DashboardUrl", dashboard_url(self.stack_name), "CloudWatch dashboard of the model")
        out("AlarmTopicArn", self.alerting.topic.topic_arn, "SNS topic the alarms page (one composite alarm per cause family)")
        if self.alerting.warning_topic is not None:
            out("WarningTopicArn", self.alerting.warning_topic.topic_arn, "SNS topic the warning pages notify (warning_subscriptions)")
        out("InformTopicArn", self.alerting.inform_topic.topic_arn, "SNS topic of what informs without paging (drift without impact)")
        out("InferenceFunctionName", self.serving.function.function_name, "Inference Lambda (alias 'live')")
        out(
            "DriftCheckFunctionName",
            self.drift_check.function.function_name,
            "aws lambda invoke --function-name <name> /dev/stdout  runs a drift check now",
        )
        out("AthenaTable", f"{self.capture.database.ref}.captures", "Query captures with Athena (name the version)")
        out("ModelVersion", m.version, "Model version deployed behind the live alias")
        if challenger is not None:
            out("ChallengerVersion", challenger[1].version, f"Challenger version ({s.challenger_mode}) next to the champion")
        if self.capture.stream is not None:
            out("FirehoseStreamName", self.capture.stream.ref, "Delivery stream of capture records")
        if self.web_page is not None:
            out("WebUrl", self.web_page.url, "The model's page: scores in the browser (onnxruntime-web), compares with the API")
        if self.firewall is not None:
            out("WebAclArn", self.firewall.web_acl.attr_arn, "AWS WAF web ACL on the stage (sampled requests in the WAF console)")

    def _web_page(self, s: Settings, repo_root: Path) -> WebPage:
        site_dir = Path(s.web_site_dir)
        if not site_dir.is_absolute():
            site_dir = repo_root / site_dir
        if not (site_dir / "index.html").is_file():
            raise SettingsError(
                f"setting 'web_page' is on but setting 'web_site_dir' = {s.web_site_dir!r} holds no page ({site_dir}/index.html). "
                f"Build it first: `python -m devtools web --bundle {s.model_bundle_path} --out {s.web_site_dir}` "
                "(or `make web`), or set web_page=false."
            )
        # under api_auth=iam a browser cannot sign requests: the page scores locally and does not call the API
        calls_api = s.api_auth != "iam"
        return WebPage(
            self,
            "WebPage",
            site_dir=site_dir,
            api_url=self.serving.api.url if calls_api else None,
            api_origin=rest_api_origin(self.serving.api) if calls_api else None,
            api_key_required=s.api_auth == "api_key",
        )

    def _allocate_logical_id(self, cfn_element: cdk.CfnElement) -> str:
        # resources of regrouped constructs keep their deployed logical IDs (cdk/logical_ids.py)
        return stable_logical_id(cfn_element, super()._allocate_logical_id(cfn_element))
