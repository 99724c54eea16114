"""The CodeDeploy pre-traffic hook: before the ``live`` alias moves, a small function invokes the new
inference version with ``GET /health`` and a ``POST /predict`` of the bundle's first reference row
(lambda/pre_traffic/handler.py) and fails the deployment on any error or wrong answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from modelserve.schema import BundleManifest
from modelserve.settings import Settings, SettingsError

from .lambda_function import LambdaFunction
from .nag import acknowledge

# the variables lambda/pre_traffic/handler.py reads (it imports nothing of ours: stdlib + boto3 only)
ENV_TARGET = "MS_TARGET_FUNCTION"
ENV_SMOKE_REQUEST = "MS_SMOKE_REQUEST"
ENV_EXPECTED_VERSION = "MS_EXPECTED_MODEL_VERSION"
ENV_STAGE = "MS_STAGE_NAME"

# two invocations of a possibly cold new version (model load included), with room for a retry
HOOK_TIMEOUT_S = 120
HOOK_MEMORY_MB = 256


def smoke_request(reference_rows: list[dict[str, Any]], model_name: str) -> dict[str, Any]:
    """``{"instances": [inputs of the first reference row]}``: a request the model is known to answer."""
    if not reference_rows or not isinstance(reference_rows[0].get("inputs"), dict):
        raise SettingsError(
            f"setting 'model_bundle_path': the bundle of model {model_name} has no reference rows "
            "(reference.jsonl.gz); the pre-traffic hook and the drift check need them. Export the bundle again."
        )
    return {"instances": [reference_rows[0]["inputs"]]}


class PreTrafficHook(Construct):
    """Exposes ``function`` and ``role``; registers itself as the deployment group's pre-traffic hook."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        manifest: BundleManifest,
        handler_dir: Path,
        target: lambda_.Function,
        deployment_group: codedeploy.LambdaDeploymentGroup,
        alias: lambda_.Alias,
        reference_rows: list[dict[str, Any]],
    ) -> None:
        super().__init__(scope, id)
        s, m = settings, manifest
        version = target.current_version
        request = smoke_request(reference_rows, m.model_name)
        self.lambda_function = LambdaFunction(
            self,
            "Lambda",
            settings=s,
            description=f"modelserve pre-traffic hook: model {m.model_name} version {m.version} answers before traffic shifts",
            role_description=f"Pre-traffic hook of model {m.model_name}: invokes the new inference version",
            # handler.py alone: no dependencies (boto3 is the runtime's)
            code=lambda_.Code.from_asset(str(handler_dir), exclude=["__pycache__", "*.pyc"]),
            memory_mb=HOOK_MEMORY_MB,
            timeout_s=HOOK_TIMEOUT_S,
            environment={
                ENV_TARGET: version.function_arn,
                ENV_SMOKE_REQUEST: json.dumps(request, separators=(",", ":")),
                ENV_EXPECTED_VERSION: m.version,
                ENV_STAGE: s.stage_name,
            },
            retry_attempts=0,  # CodeDeploy invokes it once per deployment; a retry would report twice
        )
        self.function, self.role = self.lambda_function.function, self.lambda_function.role
        # the new version only: not the alias, not $LATEST, not any other version
        self.role.add_to_policy(
            iam.PolicyStatement(sid="InvokeNewVersion", actions=["lambda:InvokeFunction"], resources=[version.function_arn])
        )
        # CDK grants codedeploy:PutLifecycleEventHookExecutionStatus on this deployment group, lets the
        # group's role invoke the hook, and names it in the alias's UpdatePolicy (BeforeAllowTrafficHook)
        deployment_group.add_pre_hook(self.function)
        # the alias update starts the CodeDeploy deployment: the hook (pointed at the new version, with
        # its permissions) must be updated before it, not in parallel
        alias.node.add_dependency(self.lambda_function)
        fn_id = cdk.Stack.of(self).get_logical_id(self.function.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            deployment_group,
            f"AwsSolutions-IAM5[Resource::<{fn_id}.Arn>:*]",
            "CDK's grantInvoke of the pre-traffic hook to the deployment group's role: the hook function and its "
            "versions (CodeDeploy invokes the function it was given), nothing else.",
        )
