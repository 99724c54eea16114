"""Statistics checked against scipy and against hand-computed small cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon, mahalanobis

from monitoring.encoding import PCA
from monitoring.multivariate import mmd2_unbiased, mmd_permutation_test
from monitoring.outliers import MahalanobisOutlierDetector
from monitoring.performance import (
    classification_metrics,
    f1_macro,
    regression_metrics,
    roc_auc_binary,
    roc_auc_ovr_macro,
)
from monitoring.univariate import (
    ChiSquareDrift,
    KSDrift,
    chi2_homogeneity,
    correct_p_values,
    js_distance,
    merge_sparse_levels,
    wasserstein_effect,
)


# ---------------------------------------------------------------- KS / Wasserstein
def test_ks_detector_matches_scipy_ks_2samp_ignoring_nan():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=500)
    tgt = rng.normal(0.3, 1.0, size=300)
    tgt_with_nan = np.concatenate([tgt, [np.nan] * 40])
    res = KSDrift(ref, feature="x").predict(tgt_with_nan)
    expected = stats.ks_2samp(ref, tgt)
    assert res.statistic == pytest.approx(expected.statistic)
    assert res.p_value == pytest.approx(expected.pvalue)
    assert res.n_target == 300
    assert res.effect_size == pytest.approx(stats.wasserstein_distance(ref, tgt) / ref.std(ddof=1))


def test_wasserstein_effect_on_tiny_arrays_by_hand():
    # F steps to 0.5 at 0 and 1 at 1; G to 0.5 at 0 and 1 at 3: |F - G| = 0.5 on [1, 3) -> area 1
    assert wasserstein_effect(np.array([0.0, 1.0]), np.array([0.0, 3.0]), scale=1.0) == pytest.approx(1.0)
    assert wasserstein_effect(np.array([0.0, 1.0]), np.array([0.0, 3.0]), scale=2.0) == pytest.approx(0.5)
    # a pure shift by 5
    assert wasserstein_effect(np.array([0.0, 1.0, 3.0]), np.array([5.0, 6.0, 8.0]), scale=1.0) == pytest.approx(5.0)


def test_pure_location_shift_gives_effect_equal_to_shift_in_sds():
    rng = np.random.default_rng(1)
    ref = rng.normal(10, 3, size=2000)
    res = KSDrift(ref).predict(ref + 0.6)  # 0.2 sd
    assert res.effect_size == pytest.approx(0.6 / ref.std(ddof=1))


def test_ks_effect_scale_falls_back_to_iqr_then_one_for_constant_reference():
    ref = np.array([1.0] * 10)
    det = KSDrift(ref)
    assert det.scale == 1.0
    res = det.predict(np.array([3.0, 3.0]))
    assert res.effect_size == pytest.approx(2.0)
    assert res.statistic == pytest.approx(1.0)


# ---------------------------------------------------------------- chi-squared
def test_chi2_homogeneity_two_categories_by_hand():
    # reference 30/70, window 50/50: expected 40/60 per row -> 2.5 + 1.667 + 2.5 + 1.667
    stat, p, dof = chi2_homogeneity([30, 70], [50, 50])
    assert stat == pytest.approx(2 * (10**2 / 40 + 10**2 / 60))
    assert dof == 1
    assert p == pytest.approx(math.erfc(math.sqrt(stat / 2)))  # chi2(1) survival function


def test_chi2_homogeneity_matches_scipy_contingency():
    ref, tgt = [120, 150, 130, 800], [15, 19, 20, 66]  # no level below the merge limit
    stat, p, dof = chi2_homogeneity(ref, tgt)
    res = stats.chi2_contingency(np.array([ref, tgt]), correction=False)
    assert (stat, p, dof) == pytest.approx((res.statistic, res.pvalue, res.dof))


def test_sparse_levels_are_merged_until_expected_counts_reach_five():
    # total 1000 vs 100: a level needs total >= 5 * 1100 / 100 = 55
    r, t = merge_sparse_levels([500, 400, 30, 10, 60, 0], [50, 40, 3, 1, 6, 0])
    assert len(r) == 3  # 30+10 -> 40 (<55) merged with 60 -> 100; empty level dropped
    assert sorted(r.tolist()) == [100, 400, 500]
    assert sorted(t.tolist()) == [10, 40, 50]
    expected = np.outer([r.sum(), t.sum()], r + t) / (r.sum() + t.sum())
    assert expected.min() >= 5


def test_chi2_detector_pools_unseen_categories_and_counts_null_as_a_level():
    det = ChiSquareDrift({"a": 60, "b": 40}, reference_nulls=10)
    counts = det.count(np.array(["a", "b", "new1", "new2", None, "a"], dtype=object))
    assert counts.tolist() == [2, 1, 1, 2]  # a, b, null, unseen
    assert det.ref_counts.tolist() == [60, 40, 10, 0]


def test_chi2_detector_single_level_everywhere_does_not_test_as_drift():
    det = ChiSquareDrift({"a": 100})
    res = det.predict(np.array(["a"] * 50, dtype=object))
    assert res.p_value == 1.0 and res.effect_size == 0.0 and not res.is_drift


# ---------------------------------------------------------------- Jensen-Shannon
def test_js_distance_by_hand_and_against_scipy():
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_distance([5, 5], [5, 5]) == 0.0
    m = np.array([0.75, 0.25])
    kl_p = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    kl_q = math.log2(1 / 0.75)
    assert js_distance([0.5, 0.5], [1, 0]) == pytest.approx(math.sqrt(0.5 * kl_p + 0.5 * kl_q))
    assert m.sum() == 1
    p, q = [10, 20, 30, 0], [5, 5, 30, 10]
    assert js_distance(p, q) == pytest.approx(jensenshannon(np.array(p) / 60, np.array(q) / 50, base=2))


def test_new_category_at_ten_percent_gives_js_distance_about_0_23():
    p = np.array([0.4, 0.25, 0.15, 0.12, 0.08, 0.0])
    q = np.append(0.9 * p[:-1], 0.1)
    # hand: JSD = 0.5 log2(1/0.95) + 0.5 (0.9 log2(0.9/0.95) + 0.1 log2(2))
    jsd = 0.5 * math.log2(1 / 0.95) + 0.5 * (0.9 * math.log2(0.9 / 0.95) + 0.1)
    assert js_distance(p, q) == pytest.approx(math.sqrt(jsd))
    assert 0.22 < js_distance(p, q) < 0.24


# ---------------------------------------------------------------- multiple testing
def test_benjamini_hochberg_against_hand_example():
    # sorted 0.005, 0.01, 0.03, 0.04 -> p*m/rank 0.02, 0.02, 0.04, 0.04 (then running min from the top)
    adj = correct_p_values([0.01, 0.04, 0.03, 0.005], "fdr")
    assert adj == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_bonferroni_multiplies_by_number_of_tests_and_caps_at_one():
    assert correct_p_values([0.01, 0.04, 0.3, 0.005], "bonferroni") == pytest.approx([0.04, 0.16, 1.0, 0.02])


def test_untested_features_do_not_count_towards_the_correction():
    adj = correct_p_values([0.01, float("nan"), 0.02], "bonferroni")
    assert adj[0] == pytest.approx(0.02) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.04)


def test_unknown_correction_is_rejected():
    with pytest.raises(ValueError):
        correct_p_values([0.1], "holm")


# ---------------------------------------------------------------- MMD / PCA / Mahalanobis
def test_mmd_unbiased_by_hand():
    x = np.array([[0.0], [0.0]])
    y = np.array([[1.0], [1.0]])
    assert mmd2_unbiased(x, y, sigma=1.0) == pytest.approx(2 - 2 * math.exp(-0.5))


def test_mmd_permutation_quadratic_forms_equal_the_direct_estimate():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 3)), rng.normal(0.5, 1, size=(25, 3))
    stat, p = mmd_permutation_test(x, y, sigma=1.7, n_permutations=50, rng=rng)
    assert stat == pytest.approx(mmd2_unbiased(x, y, 1.7))
    assert 1 / 51 <= p <= 1


def test_pca_matches_covariance_eigendecomposition_and_reconstructs_low_rank_data():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(300, 2))
    x = z @ rng.normal(size=(2, 5)) + 3.0
    pca = PCA(2).fit(x)
    evals = np.sort(np.linalg.eigvalsh(np.cov(x, rowvar=False)))[::-1][:2]
    assert pca.explained_variance_ == pytest.approx(evals)
    assert pca.reconstruction_errors(x).max() < 1e-8
    assert PCA(0.999).fit(x).components_.shape[0] == 2


def test_mahalanobis_distances_match_scipy_without_ridge():
    rng = np.random.default_rng(5)
    x = rng.multivariate_normal([1, 2, 3], [[2, 0.5, 0], [0.5, 1, 0.3], [0, 0.3, 0.5]], size=500)
    det = MahalanobisOutlierDetector(x, ridge=0.0)
    vi = np.linalg.inv(np.cov(x, rowvar=False))
    probe = rng.normal(size=(5, 3))
    expected = [mahalanobis(p, x.mean(axis=0), vi) for p in probe]
    assert det.distances(probe) == pytest.approx(expected)


# ---------------------------------------------------------------- performance
def test_auc_by_hand_including_ties():
    assert roc_auc_binary(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert roc_auc_binary(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert roc_auc_binary(np.array([1, 1]), np.array([0.2, 0.3])) is None


def test_auc_and_f1_match_scikit_learn():
    import sklearn.metrics as sklearn_metrics  # a test dependency: the reference implementation

    rng = np.random.default_rng(6)
    classes = ["a", "b", "c"]
    probs = rng.dirichlet([1, 1, 1], size=400)
    y = np.array(classes, dtype=object)[[rng.choice(3, p=p) for p in probs]]
    pred = np.array(classes, dtype=object)[probs.argmax(axis=1)]
    assert roc_auc_ovr_macro(y, probs, classes) == pytest.approx(
        sklearn_metrics.roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=classes)
    )
    assert f1_macro(y, pred) == pytest.approx(sklearn_metrics.f1_score(y, pred, average="macro", zero_division=0))
    res = classification_metrics(y, pred, probs, classes)
    assert res.accuracy == pytest.approx(sklearn_metrics.accuracy_score(y, pred))
    assert res.n_labels == 400


def test_macro_f1_by_hand():
    # a: tp1 fp0 fn1 -> 2/3 ; b: tp2 fp1 fn0 -> 4/5
    assert f1_macro(np.array(["a", "a", "b", "b"]), np.array(["a", "b", "b", "b"])) == pytest.approx((2 / 3 + 0.8) / 2)


def test_regression_metrics_by_hand_and_null_labels_dropped():
    res = regression_metrics(np.array([1.0, 2.0, 3.0, None], dtype=object), np.array([1.0, 3.0, 5.0, 9.0]))
    assert res.n_labels == 3
    assert res.mae == pytest.approx(1.0)
    assert res.rmse == pytest.approx(math.sqrt(5 / 3))


def test_no_labels_gives_none_metrics():
    res = classification_metrics(np.array([None, None], dtype=object), np.array(["a", "b"], dtype=object))
    assert res.n_labels == 0 and res.accuracy is None and res.auc is None
