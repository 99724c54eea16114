"""A canary CodeDeploy stopped or rolled back is a deployment event, not an outage: an EventBridge rule on the
stack's deployment group's FAILURE and STOP state changes sends one notice to the inform topic (no page),
saying which deployment, what happened and where to look. The service pages are held meanwhile (the canary alarm,
cdk/canary.py); errors that go on after the rollback are the live alias's: its service alarms page then."""

from __future__ import annotations

from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from .nag import acknowledge

# the CodeDeploy states that end a deployment without the new version serving: CodeDeploy rolls it back
# (auto_rollback: failed_deployment, stopped_deployment, deployment_in_alarm)
ENDED_WITHOUT_SHIFT = ("FAILURE", "STOP")


class DeploymentEvents(Construct):
    """Exposes ``rule`` and ``role`` (what EventBridge publishes with)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        deployment_group: codedeploy.LambdaDeploymentGroup,
        topic: sns.Topic,
        dashboard_url: str,
        runbook_url: str,
    ) -> None:
        super().__init__(scope, id)
        group, detail = deployment_group, events.EventField.from_path
        self.role = iam.Role(
            self,
            "PublishRole",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description="Deployment events to the inform topic",
        )
        topic.grant_publish(self.role)
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "CDK's grant_publish on the KMS-encrypted inform topic: GenerateDataKey* and Decrypt on the topic's own key only.",
        )
        message = events.RuleTargetInput.from_text(
            f"DEPLOYMENT EVENT (no page): CodeDeploy deployment {detail('$.detail.deploymentId')} of "
            f"{detail('$.detail.application')}/{detail('$.detail.deploymentGroup')} ended {detail('$.detail.state')} at "
            f"{detail('$.time')}: the new version was stopped or rolled back and the live alias serves the previous one. "
            "Why: the deployment's events in the CodeDeploy console (pre-traffic hook or the alarm that fired). The service "
            "page is held meanwhile; if errors go on 5 minutes after the rollback, it opens as for any failure. "
            f"Dashboard: {dashboard_url} . Runbook: {runbook_url}"
        )
        self.rule = events.Rule(
            self,
            "DeploymentEnded",
            description="The inference function's CodeDeploy deployment failed or was stopped (rolled back): an inform notice",
            event_pattern=events.EventPattern(
                source=["aws.codedeploy"],
                detail_type=["CodeDeploy Deployment State-change Notification"],
                detail={
                    "application": [group.application.application_name],
                    "deploymentGroup": [group.deployment_group_name],
                    "state": list(ENDED_WITHOUT_SHIFT),
                },
            ),
            # through a role of its own (sns:Publish on this topic, its key): the topic policy keeps letting
            # CloudWatch alone publish (tests/infra/test_alarm_delivery.py)
            targets=[targets.SnsTopic(topic, message=message, retry_attempts=3, role=self.role, authorize_using_role=True)],
        )
