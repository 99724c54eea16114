"""The "canary failing" alarm: in ALARM only while a new version of the inference function gets a canary share of
the ``live`` alias's traffic and fails (``cdk.alarms.CanaryWatch``: the thresholds and the timing).

Lambda publishes each invocation three ways: by ``FunctionName``, by ``Resource`` (``<function>:live``, the alias)
and by ``ExecutedVersion`` with the alias (``FunctionName`` + ``Resource`` + ``ExecutedVersion``: what a weighted
alias sends to each version). The new version is ``function.current_version.version``, a CloudFormation token
(the version the stack publishes); a dimension value may be one. Its failures: Lambda ``Errors`` of that version
(timeouts, out of memory, crashes, init failures) and the function's own ``ServerErrors`` of that version (the
500s the app answers for an exception in the model, which Lambda counts as successful invocations).

The service pages hold back (``ActionsSuppressor``) while this alarm is in ALARM (``cdk/alerting.py``), and
CodeDeploy watches it (``cdk/stack.py``); it has no actions of its own.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk.alarms import CanaryWatch
from modelserve import metric_catalogue as mc

from .common import resource_name


def canary_expression(watch: CanaryWatch) -> str:
    """The alarm's metric math: 1 in a period the new version had invocations, under ``max_share`` of the alias's,
    and more than ``error_share`` of them failed; else 0 (each comparison is 1 or 0; no division, so no period
    without invocations is a gap). ``CanaryWatch.failing`` is the same rule in Python."""
    new, alias = "FILL(version_invocations, 0)", "FILL(alias_invocations, 0)"
    failures = "FILL(version_errors, 0) + FILL(version_server_errors, 0)"
    return f"({new} > 0) * ({new} < {watch.max_share:g} * {alias}) * (({failures}) > {watch.error_share:g} * {new})"


def canary_failing_alarm(
    scope: Construct,
    id: str,
    *,
    watch: CanaryWatch,
    function: lambda_.IFunction,
    version: str,
    model_dimensions: dict[str, str],
    metrics_namespace: str,
    runbook: str,
    alias_name: str = "live",
) -> cloudwatch.Alarm:
    """The alarm (no actions). ``version``: the version the stack publishes (a token); ``model_dimensions``: the
    dimensions the function's own metrics carry (ModelName, ModelVersion, Deployment); ``runbook``: its section."""
    period = cdk.Duration.seconds(watch.period_s)
    alias = {"FunctionName": function.function_name, "Resource": f"{function.function_name}:{alias_name}"}
    executed = {**alias, "ExecutedVersion": version}

    def lambda_metric(name: str, dimensions: dict[str, str]) -> cloudwatch.Metric:
        return cloudwatch.Metric(namespace="AWS/Lambda", metric_name=name, dimensions_map=dimensions, statistic="Sum", period=period)

    using: dict[str, cloudwatch.IMetric] = {
        "alias_invocations": lambda_metric("Invocations", alias),
        "version_invocations": lambda_metric("Invocations", executed),
        "version_errors": lambda_metric("Errors", executed),
        "version_server_errors": cloudwatch.Metric(
            namespace=metrics_namespace,
            metric_name=mc.SERVER_ERRORS,
            dimensions_map={**model_dimensions, mc.DIM_EXECUTED_VERSION: version},
            statistic="Sum",
            period=period,
        ),
    }
    return cloudwatch.Alarm(
        scope,
        id,
        alarm_name=resource_name(cdk.Stack.of(scope).stack_name, watch.id, max_len=255),
        alarm_description=(
            f"A new version of the inference function is failing its canary: it gets more than none and under "
            f"{watch.max_share:.0%} of the alias's invocations, and more than {watch.error_share:.1%} of them fail (Lambda "
            "Errors or the app's 500s of that version), 2 minutes in a row. CodeDeploy rolls it back; the service pages "
            f"are held while this is in ALARM and {watch.suppressor_extension_s} s after (a failure still there then pages). "
            f"OK after a promotion and after a rollback. Runbook: {runbook}"
        ),
        metric=cloudwatch.MathExpression(
            expression=canary_expression(watch), using_metrics=using, label="canary failing (1) or not (0)", period=period
        ),
        threshold=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluation_periods=watch.evaluation_periods,
        datapoints_to_alarm=watch.datapoints_to_alarm,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
