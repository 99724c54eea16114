"""Version comparison statistics against scipy's own implementations and hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from monitoring.comparison import (
    BOOTSTRAP_BATCH,
    BOOTSTRAP_MIN_ROWS,
    BOOTSTRAP_SEED,
    CHALLENGER,
    CHALLENGER_WORSE,
    CHAMPION,
    SHADOW_AGREEMENT,
    VARIANT_ACCURACY,
    VariantOutputs,
    agreement,
    bootstrap_differences,
    challenger_only_drift,
    compare_ab,
    compare_shadow,
    mcnemar_exact,
    paired_abs_error_t,
    two_proportion_z,
    welch_abs_error_t,
    wilson_interval,
)
from monitoring.html_report import render_comparison_html

CLASSES = ("a", "b", "c")


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (8, 10), (97, 100), (500, 1000), (1, 1)])
def test_wilson_interval_is_scipys(k: int, n: int) -> None:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-12) and hi == pytest.approx(ci.high, abs=1e-12)


def test_mcnemar_exact_counts_discordant_pairs_and_matches_the_binomial_test() -> None:
    # 40 labelled rows: 20 both right, 7 both wrong, b = 3 only the champion right, c = 10 only the challenger right
    champ = np.array([True] * 20 + [False] * 7 + [True] * 3 + [False] * 10)
    chal = np.array([True] * 20 + [False] * 7 + [False] * 3 + [True] * 10)
    d = mcnemar_exact(champ, chal)
    assert d.detail == {"b": 3, "c": 10}
    assert d.estimate == pytest.approx(chal.mean() - champ.mean()) == pytest.approx(7 / 40)
    assert d.p_value == pytest.approx(stats.binomtest(10, 13, 0.5).pvalue)
    se = math.sqrt(13 - 49 / 40) / 40
    assert (d.ci_low, d.ci_high) == pytest.approx((7 / 40 - 1.959964 * se, 7 / 40 + 1.959964 * se), abs=1e-6)
    assert d.challenger_better is True
    # no discordant pair: no evidence either way
    same = mcnemar_exact(champ, champ)
    assert same.estimate == 0 and same.p_value == 1.0


def test_two_proportion_z_is_the_chi_square_test_of_the_2x2_table() -> None:
    d = two_proportion_z(80, 100, 70, 100)
    table = [[80, 20], [70, 30]]
    assert d.p_value == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)
    assert d.estimate == pytest.approx(-0.1)
    se = math.sqrt(0.8 * 0.2 / 100 + 0.7 * 0.3 / 100)
    assert (d.ci_low, d.ci_high) == pytest.approx((-0.1 - 1.959964 * se, -0.1 + 1.959964 * se), abs=1e-6)
    assert d.challenger_better is False


def test_paired_and_welch_t_are_scipys_with_their_intervals() -> None:
    rng = np.random.default_rng(3)
    e1, e2 = rng.normal(0, 1, 60), rng.normal(0, 1.3, 60)
    p = paired_abs_error_t(e1, e2)
    ref = stats.ttest_rel(np.abs(e2), np.abs(e1))
    assert p.estimate == pytest.approx(np.mean(np.abs(e2)) - np.mean(np.abs(e1)))
    assert p.p_value == pytest.approx(ref.pvalue)
    assert (p.ci_low, p.ci_high) == pytest.approx(tuple(ref.confidence_interval(0.95)))
    w = welch_abs_error_t(e1[:40], e2)
    ref = stats.ttest_ind(np.abs(e2), np.abs(e1[:40]), equal_var=False)
    assert w.p_value == pytest.approx(ref.pvalue)
    assert (w.ci_low, w.ci_high) == pytest.approx(tuple(ref.confidence_interval(0.95)))


def outputs(version: str, labels: list[str], y: list[str | None], top: list[float] | None = None) -> VariantOutputs:
    probs = None
    if top is not None:  # the predicted class gets ``top``, the rest share what is left
        probs = np.array([[t if c == lab else (1 - t) / 2 for c in CLASSES] for lab, t in zip(labels, top)])
    return VariantOutputs(version, np.array(y, dtype=object), labels=np.array(labels, dtype=object), probabilities=probs)


def test_agreement_breaks_disagreements_down_by_champion_class_and_confidence() -> None:
    champ = outputs("v1", ["a", "a", "a", "b", "b", "c"], [None] * 6, top=[0.95, 0.55, 0.45, 0.85, 0.92, 1.0])
    chal = outputs("v2", ["a", "b", "c", "b", "a", "c"], [None] * 6)
    a = agreement(champ, chal, CLASSES)
    assert (a.rows, a.agreeing, a.rate) == (6, 3, 0.5)
    by = {r["class"]: r for r in a.by_champion_class}
    assert by["a"] == {"class": "a", "rows": 3, "disagreeing": 2, "rate": 2 / 3, "challenger_said": {"b": 1, "c": 1}}
    assert by["b"]["disagreeing"] == 1 and by["b"]["challenger_said"] == {"a": 1}
    assert by["c"]["disagreeing"] == 0
    conf = {(r["low"], r["high"]): (r["rows"], r["disagreeing"]) for r in a.by_confidence}
    # 0.45 -> [0, .5); 0.55 -> [.5, .6); 0.85 -> [.8, .9); 0.92, 0.95 and 1.0 -> [.9, 1.0]
    assert conf[(0.0, 0.5)] == (1, 1) and conf[(0.5, 0.6)] == (1, 1) and conf[(0.8, 0.9)] == (1, 0) and conf[(0.9, 1.0)] == (3, 1)
    assert sum(r for r, _ in conf.values()) == 6


def test_shadow_report_flags_a_worse_challenger_and_publishes_its_metrics() -> None:
    y = ["a"] * 30 + [None] * 10
    champ = outputs("v1", ["a"] * 40, y, top=[0.9] * 40)
    chal = outputs("v2", ["b"] * 15 + ["a"] * 25, y, top=[0.6] * 40)
    r = compare_shadow(champ, chal, CLASSES, alpha=0.05)
    assert r.performance[CHAMPION].accuracy == 1.0 and r.performance[CHALLENGER].accuracy == 0.5
    assert r.difference is not None and r.difference.detail == {"b": 15, "c": 0}
    assert r.difference.p_value == pytest.approx(stats.binomtest(0, 15).pvalue)
    assert r.challenger_worse
    m = {(name, variant): value for name, value, variant in r.metrics()}
    assert m[(SHADOW_AGREEMENT, CHALLENGER)] == 25 / 40
    assert m[(VARIANT_ACCURACY, CHAMPION)] == 1.0 and m[(VARIANT_ACCURACY, CHALLENGER)] == 0.5
    assert m[(CHALLENGER_WORSE, CHALLENGER)] == 1.0
    dist = r.prediction_distribution
    assert dist["champion_share"] == [1.0, 0.0, 0.0] and dist["challenger_share"] == [25 / 40, 15 / 40, 0.0]
    assert dist["total_variation"] == pytest.approx(15 / 40)
    json.dumps(r.to_dict(), allow_nan=False)
    page = render_comparison_html(r)
    assert "significantly worse" in page and "v2" in page and "0.625" in page


def test_ab_report_on_different_rows_uses_the_two_proportion_test() -> None:
    champ = outputs("v1", ["a"] * 100, ["a"] * 80 + ["b"] * 20)
    chal = outputs("v2", ["a"] * 50, ["a"] * 44 + ["b"] * 6)
    r = compare_ab(champ, chal, CLASSES)
    assert r.agreement is None
    assert r.difference is not None and r.difference.test == "two_proportion_z"
    assert r.difference.estimate == pytest.approx(0.88 - 0.8)
    assert r.difference.p_value == pytest.approx(stats.chi2_contingency([[80, 20], [44, 6]], correction=False).pvalue)
    assert not r.challenger_worse
    assert "<script" not in render_comparison_html(r)


def test_regression_shadow_compares_absolute_errors() -> None:
    y = np.arange(20, dtype=float)
    champ = VariantOutputs("v1", y.astype(object), values=y + 0.5)
    chal = VariantOutputs("v2", y.astype(object), values=y + np.where(np.arange(20) % 2, 1.0, -1.0))
    r = compare_shadow(champ, chal)
    assert r.agreement is not None and r.agreement.mean_abs_difference == pytest.approx(np.mean(np.abs(chal.values - champ.values)))
    assert r.performance[CHAMPION].mae == pytest.approx(0.5) and r.performance[CHALLENGER].mae == pytest.approx(1.0)
    assert r.difference is not None and r.difference.estimate == pytest.approx(0.5)
    assert r.challenger_worse  # constant +0.5 per row: the paired test is certain
    assert r.prediction_distribution["test"] == "ks_2samp"


# ---------------------------------------------------------------- bootstrap intervals of the F1 / AUC (MAE / RMSE) differences


def scored_pair(n: int, rng: np.random.Generator, noise: float = 0.8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels 0..2 and two models' probabilities: the challenger's are the champion's logits plus noise."""
    y = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), y] += 1.5
    other = logits + rng.normal(0, noise, (n, 3))
    softmax = lambda z: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # noqa: E731
    return y, softmax(logits), softmax(other)


def variant(version: str, y: np.ndarray, probabilities: np.ndarray) -> VariantOutputs:
    names = np.array(CLASSES, dtype=object)
    return VariantOutputs(version, names[y], labels=names[probabilities.argmax(axis=1)], probabilities=probabilities)


def sklearn_f1_auc(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import f1_score, roc_auc_score

    return f1_score(y, p.argmax(axis=1), average="macro"), roc_auc_score(y, p, multi_class="ovr", labels=[0, 1, 2])


def test_paired_bootstrap_intervals_are_scipys_bootstrap_of_sklearns_metrics() -> None:
    y, pa, pb = scored_pair(300, np.random.default_rng(5))
    report = compare_shadow(variant("v1", y, pa), variant("v2", y, pb), CLASSES, bootstrap_resamples=200)
    got = {d.metric: d for d in report.metric_differences}
    assert set(got) == {"f1_macro", "auc"} and all(d.test == "paired_bootstrap" for d in got.values())
    for k, metric in enumerate(("f1_macro", "auc")):
        # the same resamples of the row pairs, computed independently: scipy's bootstrap of sklearn's metric
        # (the probabilities are [n, 3]: paired by a row index into them)
        ref = stats.bootstrap(
            (y, np.arange(len(y))),
            lambda y_, i: sklearn_f1_auc(y_, pb[i])[k] - sklearn_f1_auc(y_, pa[i])[k],  # noqa: B023
            paired=True,
            vectorized=False,
            n_resamples=200,
            method="percentile",
            rng=np.random.default_rng(BOOTSTRAP_SEED),
        ).confidence_interval
        d = got[metric]
        assert (d.ci_low, d.ci_high) == pytest.approx((ref.low, ref.high), abs=1e-12)
        assert d.estimate == pytest.approx(sklearn_f1_auc(y, pb)[k] - sklearn_f1_auc(y, pa)[k])
        assert d.ci_low < d.estimate < d.ci_high
    perf = report.performance
    assert got["f1_macro"].estimate == pytest.approx(perf[CHALLENGER].f1_macro - perf[CHAMPION].f1_macro)
    assert got["auc"].estimate == pytest.approx(perf[CHALLENGER].auc - perf[CHAMPION].auc)
    doc = report.to_dict()
    assert [d["metric"] for d in doc["metric_differences"]] == ["f1_macro", "auc"]
    assert doc["metric_differences"][1]["ci_low"] == got["auc"].ci_low
    page = render_comparison_html(report)
    assert "paired_bootstrap" in page and "200 resamples of the row pairs" in page


def test_ab_bootstrap_resamples_each_versions_rows_on_their_own() -> None:
    rng = np.random.default_rng(9)
    ya, pa, _ = scored_pair(200, rng)
    yb, _, pb = scored_pair(150, rng)
    report = compare_ab(variant("v1", ya, pa), variant("v2", yb, pb), CLASSES, bootstrap_resamples=BOOTSTRAP_BATCH)
    d = {d.metric: d for d in report.metric_differences}
    assert d["auc"].test == "bootstrap" and (d["auc"].n_champion, d["auc"].n_challenger) == (200, 150)
    # one batch of resamples: scipy draws the champion's resample indices, then the challenger's
    ref = stats.bootstrap(
        (np.arange(200), np.arange(150)),
        lambda i, j: sklearn_f1_auc(yb[j], pb[j])[1] - sklearn_f1_auc(ya[i], pa[i])[1],
        vectorized=False,
        n_resamples=BOOTSTRAP_BATCH,
        method="percentile",
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    ).confidence_interval
    assert (d["auc"].ci_low, d["auc"].ci_high) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_regression_bootstrap_intervals_of_the_mae_and_rmse_differences() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(10, 3, 120)
    a, b = y + rng.normal(0, 1.0, 120), y + rng.normal(0, 1.4, 120)
    report = compare_shadow(
        VariantOutputs("v1", y.astype(object), values=a), VariantOutputs("v2", y.astype(object), values=b), bootstrap_resamples=300
    )
    got = {d.metric: d for d in report.metric_differences}
    mae = lambda e: np.mean(np.abs(e))  # noqa: E731
    rmse = lambda e: np.sqrt(np.mean(e**2))  # noqa: E731
    for metric, f in (("mae", mae), ("rmse", rmse)):
        ref = stats.bootstrap(
            (y, a, b),
            lambda y_, a_, b_: f(b_ - y_) - f(a_ - y_),  # noqa: B023
            paired=True,
            vectorized=False,
            n_resamples=300,
            method="percentile",
            rng=np.random.default_rng(BOOTSTRAP_SEED),
        ).confidence_interval
        assert (got[metric].ci_low, got[metric].ci_high) == pytest.approx((ref.low, ref.high), abs=1e-12)
        assert got[metric].estimate == pytest.approx(f(b - y) - f(a - y))
        assert got[metric].challenger_better is (got[metric].estimate < 0)


def test_too_few_labelled_rows_give_an_estimate_without_an_interval() -> None:
    y, pa, pb = scored_pair(BOOTSTRAP_MIN_ROWS - 1, np.random.default_rng(1))
    for d in bootstrap_differences(variant("v1", y, pa), variant("v2", y, pb), CLASSES):
        assert d.ci_low is None and d.ci_high is None and d.estimate is not None


def test_bootstrap_intervals_cover_the_true_difference_at_about_the_nominal_rate() -> None:
    """Samples of 150 rows from a population whose F1 and AUC difference is known: the 95% intervals
    cover it in about 95% of the samples (within the binomial margin of the number of samples)."""
    population = 200_000
    y, pa, pb = scored_pair(population, np.random.default_rng(0))
    true_f1, true_auc = (sklearn_f1_auc(y, pb)[k] - sklearn_f1_auc(y, pa)[k] for k in (0, 1))
    rng = np.random.default_rng(1)
    samples, covered_f1, covered_auc = 200, 0, 0
    for _ in range(samples):
        i = rng.integers(0, population, 150)
        got = {d.metric: d for d in bootstrap_differences(variant("v1", y[i], pa[i]), variant("v2", y[i], pb[i]), CLASSES, n_resamples=500)}
        covered_f1 += got["f1_macro"].ci_low <= true_f1 <= got["f1_macro"].ci_high
        covered_auc += got["auc"].ci_low <= true_auc <= got["auc"].ci_high
    low, high = stats.binom.interval(0.999, samples, 0.95)
    assert low <= covered_f1 <= high and low <= covered_auc <= high, (covered_f1, covered_auc)


@pytest.mark.parametrize(
    ("champion", "challenger", "expected"),
    [
        ({"DatasetDrift": 0, "PredictionDrift": 0}, {"DatasetDrift": 0, "PredictionDrift": 1}, 1.0),  # its outputs moved alone
        ({"DatasetDrift": 0, "PredictionDrift": 0}, {"DatasetDrift": 1, "PredictionDrift": 0}, 1.0),  # unlike its own training data
        ({"DatasetDrift": 1, "PredictionDrift": 0}, {"DatasetDrift": 1, "PredictionDrift": 1}, 0.0),  # the champion's alarms page
        ({"DatasetDrift": 0, "PredictionDrift": 1}, {"DatasetDrift": 0, "PredictionDrift": 1}, 0.0),
        ({"DatasetDrift": 0, "PredictionDrift": 0}, {"DatasetDrift": 0, "PredictionDrift": 0}, 0.0),
        ({}, {"DatasetDrift": 0, "PredictionDrift": 1}, 1.0),  # the champion saw no rows (A/B at share 1)
        ({"DatasetDrift": 0}, {"WindowRows": 0}, None),  # the challenger saw no rows: nothing to say
    ],
)
def test_challenger_only_drift_leaves_the_champions_drift_to_the_champions_alarms(champion, challenger, expected) -> None:
    as_metrics = lambda d: [(name, float(v), None) for name, v in d.items()] + [("DatasetDrift", 1.0, "some_feature")]  # noqa: E731
    assert challenger_only_drift(as_metrics(champion), as_metrics(challenger)) == expected
