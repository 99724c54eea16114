"""Logical IDs that survive moving a resource to another construct.

CloudFormation identifies a resource by its logical ID, which CDK derives from the construct path.
A new ID replaces the resource on the next deploy: a new alarm topic (e-mail subscriptions to
confirm again), new log groups (history gone) and, worst, named alarms and the dashboard created
under a name that still exists and then deleted with the old resource. So when constructs are
regrouped, the resources below a moved path keep the ID of their old path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from constructs import Construct

# new path (relative to the stack) -> path before the move; the longest matching prefix wins
MOVED_PATHS: Mapping[str, str] = {
    # serving and the drift check build their function through one LambdaFunction construct
    "Serving/Inference/Logs": "Serving/FunctionLogs",
    "Serving/Inference/Role": "Serving/Role",
    "Serving/Inference/Function": "Serving/Function",
    "DriftCheck/Lambda/Logs": "Monitoring/DriftCheckLogs",
    "DriftCheck/Lambda/Role": "Monitoring/DriftCheckRole",
    "DriftCheck/Lambda/Function": "Monitoring/DriftCheck",
    # the one Monitoring construct became three: drift check, alerting, dashboard
    "DriftCheck": "Monitoring",
    "Alerting": "Monitoring",
    "Dashboard": "Monitoring",
}


def moved_path(path: Sequence[str], moved: Mapping[str, str] = MOVED_PATHS) -> list[str]:
    """The path a resource had before the move (``path`` itself when it did not move)."""
    for n in range(len(path), 0, -1):
        old = moved.get("/".join(path[:n]))
        if old is not None:
            return old.split("/") + list(path[n:])
    return list(path)


class _IdCalculator:
    """CDK's own algorithm (``Names.uniqueId``) applied to any path: a scratch construct tree."""

    def __init__(self) -> None:
        self.root = cdk.App()

    def logical_id(self, path: Sequence[str]) -> str:
        node: Construct = self.root
        for part in path:
            node = node.node.try_find_child(part) or Construct(node, part)  # type: ignore[assignment]
        return cdk.Names.unique_id(node)


_calculator: _IdCalculator | None = None


def logical_id_of(path: Sequence[str]) -> str:
    """The logical ID CDK gives a resource at ``path`` (relative to its stack)."""
    global _calculator
    if _calculator is None:
        _calculator = _IdCalculator()
    return _calculator.logical_id(path)


def stable_logical_id(element: cdk.CfnElement, default: str) -> str:
    """``default`` (CDK's ID) unless the element lies below a moved path: then the ID of its old path."""
    scopes = element.node.scopes
    path = [s.node.id for s in scopes[scopes.index(element.stack) + 1 :]]
    old = moved_path(path)
    return default if old == path else logical_id_of(old)
