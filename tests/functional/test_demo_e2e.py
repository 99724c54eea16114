"""The whole local loop: moto server, local gateway, real handlers, drift caught in the shifted period."""

from __future__ import annotations

import pytest

from modelserve.demo import PERIOD_QUIET, PERIOD_SHIFTED, demo


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory, sample_bundle):
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
            mp.delenv(k, raising=False)
        results = demo(bundle=str(sample_bundle.root), requests=80, rows=10, out=out, seed=3, progress=False, echo=lines.append)
    return {r.name: r for r in results}, "\n".join(lines)


def test_quiet_period_raises_no_drift_or_quality_alarm(demo_results) -> None:
    results, _ = demo_results
    quiet = results[PERIOD_QUIET]
    assert quiet.answered == 80 and quiet.rejected == 0
    assert quiet.summary["dataset_drift"] is False
    firing = {a for a, s in quiet.states.items() if s == "ALARM"}
    assert firing == set(), firing


def test_shifted_period_raises_dataset_drift_and_data_quality_alarms(demo_results) -> None:
    results, _ = demo_results
    shifted = results[PERIOD_SHIFTED]
    assert shifted.summary["dataset_drift"] is True
    assert shifted.states["DatasetDrift"] == "ALARM"
    assert shifted.states["DataQualityFailures"] == "ALARM"
    assert shifted.states["MissingRate"] == "ALARM"
    assert shifted.states["NoTraffic"] == "OK"


def test_reports_exist_and_the_alarm_table_is_printed(demo_results) -> None:
    results, printed = demo_results
    for r in results.values():
        html = r.html_path.read_text()
        assert html.startswith("<!DOCTYPE html>") and "<svg" in html
        assert r.html_path.with_suffix(".json").exists()
    assert "DatasetDrift" in printed and "ALARM" in printed and "HTML report:" in printed
