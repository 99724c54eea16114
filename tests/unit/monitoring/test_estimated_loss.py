"""Direct loss estimation: a regressor's MAE / RMSE before labels, from a loss model of held-out rows.

The world: ``y = 2x + noise`` whose spread grows with ``|x|`` and is larger in category ``b`` of ``c``; the
model predicts ``2x``, so its error depends on where the rows are, as the method assumes."""

from __future__ import annotations

import numpy as np
import pytest

from monitoring import DriftChecker, DriftConfig, PredictionColumns, ReferenceProfile
from monitoring.estimated_loss import EstimatedLossResult, LossModel
from monitoring.estimated_performance import EstimatedPerformanceCheck
from monitoring.performance_drop import measure_performance
from monitoring.types import FeatureKind, FeatureSpec, Outputs, Task

SPECS = [FeatureSpec("x", FeatureKind.NUMERIC), FeatureSpec("c", FeatureKind.CATEGORICAL, categories=("a", "b"))]


def rows(rng: np.random.Generator, n: int, x_sd: float = 1.0, share_b: float = 0.3) -> tuple[dict[str, np.ndarray], np.ndarray]:
    x = rng.normal(0, x_sd, n)
    c = np.where(rng.random(n) < share_b, "b", "a").astype(object)
    spread = (0.3 + np.abs(x)) * np.where(c == "b", 2.0, 1.0)
    return {"x": x, "c": c}, 2 * x + rng.normal(0, 1, n) * spread


def predict(table: dict[str, np.ndarray]) -> np.ndarray:
    return 2 * table["x"]


def checker(rng: np.random.Generator, holdout_rows: int = 3000) -> DriftChecker:
    held, y_held = rows(rng, holdout_rows)
    perf = measure_performance(Task.REGRESSION, y_held, predict(held), source="holdout")
    perf["loss_model"] = LossModel.fit(held, SPECS, predict(held), y_held).to_dict()  # type: ignore[union-attr]
    ref, y_ref = rows(rng, 5000)
    profile = ReferenceProfile.fit(
        SPECS,
        ref,
        PredictionColumns(values=predict(ref)),
        outputs=Outputs(Task.REGRESSION),
        targets=y_ref,
        reference_performance=perf,
    )
    return DriftChecker(profile, DriftConfig(), checks=(EstimatedPerformanceCheck,))


def estimate(c: DriftChecker, table: dict[str, np.ndarray]) -> EstimatedLossResult:
    result = c.check(table, PredictionColumns(values=predict(table))).results["estimated_performance"]
    assert isinstance(result, EstimatedLossResult)
    return result


def real(table: dict[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    err = predict(table) - y
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}


def test_the_estimate_tracks_real_mae_and_rmse_on_unseen_rows_within_8_percent() -> None:
    rng = np.random.default_rng(0)
    c = checker(rng)
    for x_sd, share_b in ((1.0, 0.3), (1.4, 0.3), (1.0, 0.7), (0.7, 0.1)):
        table, y = rows(rng, 20_000, x_sd, share_b)
        got = {e.metric: e.estimate for e in estimate(c, table).estimates}
        truth = real(table, y)
        assert got["mae"] == pytest.approx(truth["mae"], rel=0.08), (x_sd, share_b, got, truth)
        assert got["rmse"] == pytest.approx(truth["rmse"], rel=0.08), (x_sd, share_b, got, truth)


def test_the_estimated_mae_and_rmse_are_published_with_the_verdict_and_follow_a_shift() -> None:
    rng = np.random.default_rng(5)
    c = checker(rng)
    published = {}
    for x_sd in (1.0, 1.4):
        table, y = rows(rng, 20_000, x_sd)
        report = c.check(table, PredictionColumns(values=predict(table)))
        metrics = {n: v for n, v, feature in report.metrics() if feature is None}
        estimates = {e.metric: e.estimate for e in report.results["estimated_performance"].estimates}
        assert (metrics["EstimatedMAE"], metrics["EstimatedRMSE"]) == (estimates["mae"], estimates["rmse"])
        truth = real(table, y)  # the estimates' accuracy: test_the_estimate_tracks_real_mae_and_rmse_on_unseen_rows_within_8_percent
        assert metrics["EstimatedMAE"] == pytest.approx(truth["mae"], rel=0.1)
        assert metrics["EstimatedRMSE"] == pytest.approx(truth["rmse"], rel=0.15)
        assert metrics["EstimatedPerformanceDegraded"] == (x_sd > 1.0)
        published[x_sd] = metrics
    # the figure rises with the real error the shift causes: what the dashboard draws next to MAE on labels
    assert published[1.4]["EstimatedMAE"] > 1.2 * published[1.0]["EstimatedMAE"]


def test_a_shift_that_raises_real_mae_breaches_and_says_what_moved() -> None:
    rng = np.random.default_rng(1)
    c = checker(rng)
    reference_mae = real(*rows(rng, 50_000))["mae"]
    for _ in range(5):
        table, y = rows(rng, 3000, x_sd=1.3)  # rows move to where the model errs more
        assert real(table, y)["mae"] > 1.15 * reference_mae
        result = estimate(c, table)
        assert result.degraded is True
        assert ("EstimatedPerformanceDegraded", 1.0, None) in result.metrics()
        (finding, *_) = result.findings()
        assert finding.text.startswith("estimated MAE ") and "vs reference" in finding.text and "upper band edge" in finding.text


def test_quiet_windows_do_not_breach_and_a_small_window_gets_no_verdict() -> None:
    rng = np.random.default_rng(2)
    c = checker(rng)
    breaches = {n: sum(bool(estimate(c, rows(rng, n)[0]).degraded) for _ in range(60)) for n in (300, 3000)}
    assert breaches == {300: 0, 3000: 0}, breaches
    small = estimate(c, rows(rng, 50)[0])
    # the estimates are figures for the dashboard on any window; the verdict needs estimated_min_rows
    assert small.degraded is None and {n for n, _, _ in small.metrics()} == {"EstimatedMAE", "EstimatedRMSE"}


def test_a_regressor_without_a_loss_model_is_not_estimated_and_the_report_says_why() -> None:
    rng = np.random.default_rng(3)
    ref, y_ref = rows(rng, 2000)
    perf = measure_performance(Task.REGRESSION, y_ref, predict(ref), source="holdout")
    profile = ReferenceProfile.fit(
        SPECS, ref, PredictionColumns(values=predict(ref)), outputs=Outputs(Task.REGRESSION), targets=y_ref, reference_performance=perf
    )
    c = DriftChecker(profile, DriftConfig(), checks=(EstimatedPerformanceCheck,))
    report = c.check(rows(rng, 500)[0], PredictionColumns(values=predict(rows(rng, 500)[0])))
    assert report.results["estimated_performance"] is None
    assert any("no loss model" in note for note in report.notes)


def test_the_loss_model_survives_the_manifest_json() -> None:
    import json

    rng = np.random.default_rng(4)
    held, y = rows(rng, 1000)
    model = LossModel.fit(held, SPECS, predict(held), y)
    assert model is not None
    again = LossModel.from_dict(json.loads(json.dumps(model.to_dict())))
    table = rows(rng, 200)[0]
    assert again.estimate(table, predict(table)) == model.estimate(table, predict(table))
