"""A window read past its budget is published as such: PartialWindow 1 and WindowRowsEstimated, the
window's rows estimated from what was read; a whole read publishes PartialWindow 0 and its exact count."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from modelserve import metric_catalogue as mn
from tests.functional.test_drift_check_handler import _metric, _send, aws, handlers, scheduled_event  # noqa: F401

# the captures come from the inference handler through the s3 sink, read back by event hour at once
pytestmark = pytest.mark.capture_sink("s3")


def test_a_partial_read_publishes_partial_window_and_a_whole_one_its_exact_rows(handlers, sample_bundle, lambda_context) -> None:  # noqa: F811
    inference, drift = handlers
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    _send(inference, lambda_context, rows, 5, random.Random(4))
    version = sample_bundle.manifest.version
    cut_at = datetime.now(UTC) + timedelta(seconds=1)
    cut = drift.service.run(scheduled_event(cut_at), read_budget_s=0.0)
    assert cut.window.partial is True
    whole_at = cut_at + timedelta(minutes=10)
    whole = drift.service.run(scheduled_event(whole_at), read_budget_s=60.0)
    assert whole.window.partial is False
    assert _metric(mn.PARTIAL_WINDOW, cut_at, cut_at, version) == [1.0]
    assert _metric(mn.PARTIAL_WINDOW, whole_at, whole_at, version) == [0.0]
    assert _metric(mn.WINDOW_ROWS_ESTIMATED, whole_at, whole_at, version) == [50.0]
    assert whole.summary("b")["rows_estimated"] == 50
