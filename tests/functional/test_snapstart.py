"""SnapStart's hooks around the real handler, in-process: what Lambda does when it snapshots init and
resumes environments from it (before_snapshot, then after_restore in each new environment).

Proven here: no AWS client survives into the snapshot, a restored environment builds its own and
keeps capturing; two environments restored from the same snapshot sample captures with different
random sequences; the hooks register with the runtime's registry. Not provable without AWS (and
stated in docs/performance.md#snapstart): the restore latency, and the runtime calling the hooks.
"""

from __future__ import annotations

import copy
import random
from types import SimpleNamespace
from typing import Any

import pytest

from modelserve.settings import Settings, SettingsError
from tests.support import event, response_json

BUCKET = "snapstart-captures"


def _captures(s3: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="captures/").get("Contents", [])]


@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_a_restored_handler_builds_its_own_clients_and_keeps_capturing(s3, load_inference, sample_bundle, lambda_context) -> None:
    s3.create_bucket(Bucket=BUCKET)
    mod = load_inference(capture_bucket=BUCKET, capture_mode="sync")
    rows = {"instances": [r["inputs"] for r in sample_bundle.reference_rows()[:2]]}
    assert mod.handler(event("rest_v1", "POST", "/predict", rows), lambda_context)["statusCode"] == 200
    sink_client = mod.service.capturer.sink.client
    built_at_init = sink_client.get()
    assert len(_captures(s3)) == 1

    mod.snapstart.before_snapshot()
    assert not sink_client.built  # nothing of the client (connections, credentials) in the snapshot
    mod.snapstart.after_restore()

    answer = mod.handler(event("rest_v1", "POST", "/predict", rows), lambda_context)
    assert answer["statusCode"] == 200 and response_json(answer)["predictions"]
    assert sink_client.built and sink_client.get() is not built_at_init
    assert len(_captures(s3)) == 2  # the restored environment captured with its own client


def test_environments_restored_from_one_snapshot_sample_differently(load_inference, aws_credentials) -> None:
    mod = load_inference(capture_bucket=BUCKET, capture_mode="sync", capture_sampling="0.5")
    capturer = mod.service.capturer
    snapshot = copy.deepcopy(capturer.rng.getstate()), random.getstate()

    def restored_environment() -> tuple[list[bool], float]:
        capturer.rng.setstate(snapshot[0])  # the memory every environment resumes from
        random.setstate(snapshot[1])
        mod.snapstart.after_restore()
        return [capturer.should_capture() for _ in range(64)], random.random()

    without_hook = [capturer.should_capture() for _ in range(64)]
    capturer.rng.setstate(snapshot[0])
    assert [capturer.should_capture() for _ in range(64)] == without_hook  # the problem: one sequence for all
    first, second = restored_environment(), restored_environment()
    assert first[0] != second[0] and first[1] != second[1]
    assert mod.snapstart.restores == 2


def test_hooks_register_with_the_runtime_registry(load_inference, aws_credentials) -> None:
    mod = load_inference(capture_bucket=BUCKET, capture_mode="sync")
    registry: dict[str, list[Any]] = {"before": [], "after": []}
    runtime = SimpleNamespace(register_before_snapshot=registry["before"].append, register_after_restore=registry["after"].append)
    assert mod.snapstart.register(runtime) is True
    assert registry == {"before": [mod.snapstart.before_snapshot], "after": [mod.snapstart.after_restore]}


@pytest.mark.parametrize(
    "overrides, must_name",
    [
        ({"python_runtime": "3.11"}, "3.12"),
        ({"provisioned_concurrency": 2}, "provisioned_concurrency"),
    ],
)
def test_snap_start_is_refused_where_it_cannot_work(overrides: dict[str, Any], must_name: str) -> None:
    with pytest.raises((SettingsError, ValueError)) as refused:
        Settings.from_context({"snap_start": True, "capture_mode": "sync", **overrides})
    assert must_name in str(refused.value)


@pytest.mark.parametrize("capture_mode", ["sync", "auto", "extension"])
def test_snap_start_is_accepted_with_every_capture_mode(capture_mode: str) -> None:
    # with the capture extension too: tests/functional/test_post_response_capture.py runs the hooks around it
    settings = Settings.from_context({"snap_start": True, "capture_mode": capture_mode})
    assert isinstance(settings, Settings) and settings.snap_start and settings.capture_mode == capture_mode
