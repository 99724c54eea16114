"""Version comparison statistics against scipy's own implementations and hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from monitoring.comparison import (
    CHALLENGER,
    CHALLENGER_WORSE,
    CHAMPION,
    SHADOW_AGREEMENT,
    VARIANT_ACCURACY,
    VariantOutputs,
    agreement,
    compare_ab,
    compare_shadow,
    mcnemar_exact,
    paired_abs_error_t,
    render_comparison_html,
    two_proportion_z,
    welch_abs_error_t,
    wilson_interval,
)

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
