"""Adding an alarm is one catalogued metric plus one registered alarm definition (and its runbook
section): the recipe of docs/development.md, followed for a toy alarm on a toy metric and checked in a
real synthesis. The toy is unregistered afterwards, so no shipped stack (and no runbook) sees it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdk.alarms import AlarmContext, alarm_specs, register_alarms, unregister_alarms
from modelserve import metric_catalogue as mc
from modelserve.metric_catalogue import Metric
from modelserve.settings import Settings
from tests.infra.conftest import Synth, alarm_metric_stats, synth_variant
from tests.infra.test_stack import paged_ids

TOY_METRIC = "ToyQueueDepth"


def toy_alarm(ctx: AlarmContext) -> None:
    """The one alarm definition a contributor writes: what, threshold, timing, runbook section."""
    ctx.add(
        "ToyQueueDepth",
        TOY_METRIC,
        "model",
        "Maximum",
        10,
        "GreaterThanThreshold",
        "More than 10 captures waited in the toy queue.",
        "Look at the toy queue.",
        "alarm-toy-queue-depth",
        "model",
        period_s=300,
    )


@contextlib.contextmanager
def toy_registered() -> Iterator[None]:
    """The toy metric in the catalogue and its alarm definition registered, both removed on exit."""
    mc.register(Metric(TOY_METRIC, "Count", "inference", "pipeline", True, "captures waiting in a toy queue"))
    register_alarms(toy_alarm)
    try:
        yield
    finally:
        unregister_alarms(toy_alarm)
        mc.CATALOGUE.unregister(TOY_METRIC)


@pytest.fixture(scope="module")
def toy_stack(fake_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    with toy_registered():
        return synth_variant("default", fake_bundle_dir, tmp_path_factory.mktemp("cdkout-toy-alarm"))


def test_a_registered_alarm_is_synthesized_on_its_catalogued_metric_and_paged_by_its_family(toy_stack: Synth) -> None:
    alarms = toy_stack.of_type("AWS::CloudWatch::Alarm")
    (logical_id,) = [k for k, a in alarms.items() if a["Properties"]["AlarmName"].endswith("-ToyQueueDepth")]
    props = alarms[logical_id]["Properties"]
    (stat,) = alarm_metric_stats(props).values()
    m = toy_stack.manifest
    assert (stat["namespace"], stat["name"], stat["stat"], stat["period"]) == (
        toy_stack.settings.metrics_namespace,
        TOY_METRIC,
        "Maximum",
        300,
    )
    assert stat["dims"] == {"ModelName": m.model_name, "ModelVersion": m.version, "Deployment": toy_stack.stack_name}
    description = "".join(p for p in props["AlarmDescription"]["Fn::Join"][1] if isinstance(p, str))  # the bucket is a token
    assert props["Threshold"] == 10 and description.endswith("Runbook: docs/runbook.md#alarm-toy-queue-depth")
    # its family comes from the catalogue entry: the pipeline page notifies for it, no other page does
    pages = {
        c["Properties"]["AlarmName"].rsplit("-", 1)[-1]: c["Properties"]
        for c in toy_stack.of_type("AWS::CloudWatch::CompositeAlarm").values()
    }
    notifying = {name for name, page in pages.items() if page.get("AlarmActions") and logical_id in paged_ids(page["AlarmRule"])}
    assert notifying == {"pipeline"}
    # a model-group alarm: also in the model-health roll-up
    assert logical_id in paged_ids(pages["ModelHealth"]["AlarmRule"])


def test_once_unregistered_the_toy_is_in_no_alarm_list_and_not_in_the_catalogue(toy_stack: Synth) -> None:
    assert TOY_METRIC not in mc.CATALOGUE
    assert "ToyQueueDepth" not in {s.id for s in alarm_specs(Settings(), "m", "v")}
