"""cdk-nag (3.x) wiring: the AwsSolutions pack as a CDK policy-validation plugin, and acknowledgments
that always carry a written reason."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct

ACKNOWLEDGED: list[tuple[str, str, str]] = []  # (construct path, rule id, reason): for docs and tests


def register(app: cdk.App) -> None:
    """Run AwsSolutionsChecks on every synth; an unacknowledged finding fails the synth."""
    from cdk_nag import AwsSolutionsChecks

    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding (``RuleId`` or ``RuleId[FindingId]``) on ``scope`` and below."""
    if len(reason.strip()) < 20:
        raise ValueError(f"acknowledging {rule_id} needs a real reason, got {reason!r}")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))
    ACKNOWLEDGED.append((scope.node.path, rule_id, reason))
