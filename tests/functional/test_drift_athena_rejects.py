"""On the Athena path the refused requests' split by reason and field is counted by Athena over every one of
them (the rejects table: driftcheck/athena_sql.py, reject_reasons and reject_fields), not scaled from at most
2,000 objects read. On moto: requests refused by the real inference handler, the drift check's own SQL run on
DuckDB over the reject objects as stored (tests/athena_support.py).

What it proves: the Athena path's reject counts (requests, rows, by reason, by field: a request with two
errors on one field counted once for it) equal the Lambda path's reading every reject object, with nothing
estimated and no reject object read; the Lambda path capped below the window's rejects scales a sample."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from driftcheck.reject_reader import read_rejects
from driftcheck.store import CaptureLocation
from tests.functional.test_drift_athena import BUCKET, load, queue_the_windows_queries, send
from tests.functional.test_drift_athena import aws as aws_fixture  # noqa: F401 - used by pytestmark
from tests.functional.test_drift_athena_exact import lambda_path
from tests.functional.test_drift_check_handler import scheduled_event
from tests.support import event

# slow: hundreds of real requests, two drift checks; aws_fixture: moto with Athena speaking its JSON protocol
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("aws_fixture")]


def refuse(inference, ctx, rows, rng: random.Random, n: int, broken: dict[str, object], batch: int) -> None:
    for i in range(n):
        body = {"instances": [{**rng.choice(rows), **broken} for _ in range(batch)]}
        resp = inference.handler(event("rest_v1", "POST", "/predict", body, request_id=f"bad{i}-{rng.random()}"), ctx)
        assert resp["statusCode"] == 422, resp["body"]


def test_the_athena_path_counts_every_refused_requests_reason_and_field(
    load_inference, monkeypatch, sample_bundle, lambda_context, tmp_path
) -> None:
    inference, drift = load(load_inference, monkeypatch, sample_cap=100)
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    rng = random.Random(31)
    send(inference, lambda_context, rows, 50, rng)
    refuse(inference, lambda_context, rows, rng, 60, {"island": None}, batch=2)  # the same error on both rows
    refuse(inference, lambda_context, rows, rng, 30, {"flipper_length_mm": "long"}, batch=1)
    refuse(inference, lambda_context, rows, rng, 10, {"island": None, "flipper_length_mm": "long"}, batch=3)
    at = datetime.now(UTC) + timedelta(seconds=1)
    queue_the_windows_queries(drift, tmp_path, at)

    athena = drift.service.run(scheduled_event(at))
    every_object = lambda_path(drift, 10_000).run(scheduled_event(at))

    assert athena.summary(BUCKET)["read_by"] == "athena"
    on_athena, exact = athena.rejects, every_object.rejects
    assert on_athena.rejected_requests == exact.rejected_requests == 100
    assert on_athena.by_reason == exact.by_reason and sum(on_athena.by_reason.values()) == 100
    assert on_athena.by_field == exact.by_field
    assert sum(on_athena.by_field["island"].values()) == 70  # 60 + 10, each request once for the field
    assert on_athena.rejected_rows == exact.rejected_rows == 60 * 2 + 30 + 10 * 3
    assert on_athena.estimated is exact.estimated is False
    assert athena.window.rejects is not None and athena.window.rejects.objects_read == 0  # no reject object read
    # the Lambda path reads at most its cap of objects and scales: with 25 of 100 the split is an estimate
    start, end = athena.start, athena.end
    where = CaptureLocation(BUCKET, sample_bundle.manifest.model_name, sample_bundle.manifest.version)
    capped = read_rejects(drift.service.s3, where, start, end, max_objects=25)
    assert capped.estimated is True and capped.objects_read == 25
