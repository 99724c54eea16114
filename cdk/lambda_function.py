"""One Lambda function of this template with its own role and log group: what the inference
function and the drift-check function have in common."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from modelserve.metric_catalogue import ENV_DEPLOYMENT
from modelserve.settings import Settings

from .bundling import python_runtime
from .common import retention
from .nag import acknowledge


def lambda_architecture(settings: Settings) -> lambda_.Architecture:
    return lambda_.Architecture.ARM_64 if settings.lambda_architecture == "arm64" else lambda_.Architecture.X86_64


def powertools_env(settings: Settings, service: str) -> dict[str, str]:
    return {
        "POWERTOOLS_SERVICE_NAME": service,
        "POWERTOOLS_METRICS_NAMESPACE": settings.metrics_namespace,
    }


class LambdaFunction(Construct):
    """A Python function (runtime and architecture from the settings, X-Ray tracing) whose role may
    write only to the function's own log group; callers add what else it may do to ``role``.

    Exposes ``function``, ``role`` and ``log_group``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        description: str,
        role_description: str,
        code: lambda_.Code,
        memory_mb: int,
        timeout_s: int,
        environment: dict[str, str],
        wildcard_reason: str = "",
        **function_options: Any,
    ) -> None:
        """``wildcard_reason``: why statements the caller adds to the role need ``Resource::*``
        (cdk-nag AwsSolutions-IAM5), beyond X-Ray's, which this construct adds itself.
        ``function_options``: further ``lambda_.Function`` properties (e.g. ``retry_attempts``)."""
        super().__init__(scope, id)
        s = settings
        self.log_group = logs.LogGroup(self, "Logs", retention=retention(s.log_retention_days), removal_policy=cdk.RemovalPolicy.DESTROY)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=role_description)
        # instead of the AWSLambdaBasicExecutionRole managed policy: its own log group only
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnLogGroup",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=python_runtime(s.python_runtime),
            architecture=lambda_architecture(s),
            handler="handler.handler",
            code=code,
            memory_size=memory_mb,
            timeout=cdk.Duration.seconds(timeout_s),
            tracing=lambda_.Tracing.ACTIVE,
            # the stack name: the Deployment dimension of every metric and log line of the function
            environment={**environment, ENV_DEPLOYMENT: cdk.Stack.of(self).stack_name},
            role=self.role,
            log_group=self.log_group,
            **function_options,
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            " ".join(
                r
                for r in (
                    wildcard_reason,
                    "X-Ray tracing (xray:PutTraceSegments / PutTelemetryRecords) supports no resource-level scoping; "
                    "CDK adds exactly these two actions for Tracing.ACTIVE.",
                )
                if r
            ),
        )
        if s.python_runtime != "3.13":
            acknowledge(
                self.function,
                "AwsSolutions-L1",
                f"The runtime is the python_runtime setting ({s.python_runtime}): the bundled wheels are built for it.",
            )
