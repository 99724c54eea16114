"""Explanations (serving/explain.py) on the real sample model and onnxruntime: the exact method equals the
``shap`` package's exact explainer on the same background, is additive on random rows, and its weights
give a linear function's known contributions; the permutation estimator is additive, repeatable and
within its stated error bound of the exact values."""

from __future__ import annotations

import numpy as np
import pytest

from modelserve.bundle import ModelBundle
from modelserve.schema import FeatureKind, Table, rows_to_table
from serving.explain import (
    EXACT,
    PERMUTATION,
    Explainer,
    ExplainRequest,
    PermutationPlan,
    exact_coalitions,
    shapley_weights,
)
from serving.model import ModelRunner
from tests.explain_support import ShapReference

BACKGROUND = 40


@pytest.fixture(scope="module")
def runner(sample_bundle: ModelBundle) -> ModelRunner:
    return ModelRunner.from_path(sample_bundle.manifest, sample_bundle.model_path)


@pytest.fixture(scope="module")
def reference(sample_bundle: ModelBundle) -> Table:
    return rows_to_table(sample_bundle.manifest.features, [r["inputs"] for r in sample_bundle.reference_rows()])


def explainer(bundle: ModelBundle, runner: ModelRunner, reference: Table, exact_max_features: int = 12) -> Explainer:
    return Explainer(bundle.manifest, runner, lambda: reference, BACKGROUND, 10**8, exact_max_features=exact_max_features)


def random_rows(bundle: ModelBundle, reference: Table, n: int, seed: int) -> Table:
    """Rows mixing reference values at random, numeric values moved within the feature's range."""
    rng = np.random.default_rng(seed)
    size = len(next(iter(reference.values())))
    table: Table = {}
    for f in bundle.manifest.features:
        col = reference[f.name][rng.integers(0, size, n)]
        if f.kind is FeatureKind.NUMERIC and f.min is not None and f.max is not None:
            col = np.where(np.isnan(col.astype(float)), np.nan, rng.uniform(f.min, f.max, n))
        table[f.name] = col
    return table


def test_shapley_weights_give_a_linear_functions_own_contributions() -> None:
    # for f(z) = w . z the interventional Shapley value of feature i is w_i (x_i - mean background_i)
    rng = np.random.default_rng(0)
    m, n = 5, 7
    w, x, background = rng.normal(size=m), rng.normal(size=m), rng.normal(size=(n, m))
    coalitions = exact_coalitions(m)
    mixed = np.where(coalitions[:, None, :], x[None, None, :], background[None, :, :])  # [C, N, m]
    v = (mixed @ w).mean(axis=1)
    np.testing.assert_allclose(shapley_weights(coalitions) @ v, w * (x - background.mean(axis=0)), atol=1e-12)


@pytest.mark.slow
def test_exact_values_equal_shaps_exact_explainer_on_the_sample_model(sample_bundle, runner, reference) -> None:
    ours = explainer(sample_bundle, runner, reference)
    assert ours.method == EXACT and len(ours.coalitions) == 2**6
    rows = random_rows(sample_bundle, reference, 4, seed=1)
    labels = runner.predict(rows).labels
    classes = ours.explained_classes(labels, ExplainRequest())
    got = ours.explain(rows, classes)
    shap = ShapReference(sample_bundle.manifest, runner, ours.background())
    positions = {c: i for i, c in enumerate(sample_bundle.manifest.outputs.classes)}
    for r, cls in enumerate(classes or []):
        one = {k: v[r : r + 1] for k, v in rows.items()}
        values, base = shap.values(one, positions[cls])
        np.testing.assert_allclose(got.values[r], values[0], atol=1e-5)
        assert got.base_value[r] == pytest.approx(base[0], abs=1e-5)


def test_exact_explanations_are_additive_on_random_rows(sample_bundle, runner, reference) -> None:
    ours = explainer(sample_bundle, runner, reference)
    rows = random_rows(sample_bundle, reference, 25, seed=2)
    pred = runner.predict(rows)
    for request in (ExplainRequest(), ExplainRequest("Chinstrap")):
        classes = ours.explained_classes(pred.labels, request)
        got = ours.explain(rows, classes)
        np.testing.assert_allclose(got.base_value + got.values.sum(axis=1), got.output, atol=1e-6)
        # the explained output is the probability the model answers for that class
        picked = pred.probabilities[np.arange(25), [list(sample_bundle.manifest.outputs.classes).index(c) for c in classes]]
        np.testing.assert_allclose(got.output, picked, atol=1e-5)
        # the base value is the mean output over the background, whatever the row
        assert np.ptp(got.base_value[np.array(classes) == classes[0]]) < 1e-12


def test_mixed_rows_take_the_coalitions_features_from_the_row_and_the_rest_from_the_background(sample_bundle, runner, reference) -> None:
    ours = explainer(sample_bundle, runner, reference)
    rows = {k: v[:2] for k, v in reference.items()}
    mixed = ours.mixed_rows(rows)
    background = ours.background()
    names = sample_bundle.manifest.feature_names
    coalitions = len(ours.coalitions)
    for r in range(2):
        for c in (0, 5, coalitions - 1):
            for j in (0, BACKGROUND - 1):
                at = (r * coalitions + c) * BACKGROUND + j
                for i, name in enumerate(names):
                    want = rows[name][r] if ours.coalitions[c, i] else background[name][j]
                    got = mixed[name][at]
                    assert got == want or (got != got and want != want), (r, c, j, name)


def test_permutation_estimate_is_additive_repeatable_and_within_its_bound_of_the_exact_values(sample_bundle, runner, reference) -> None:
    sampled = explainer(sample_bundle, runner, reference, exact_max_features=3)
    exact = explainer(sample_bundle, runner, reference)
    assert sampled.method == PERMUTATION
    rows = random_rows(sample_bundle, reference, 20, seed=3)
    classes = sampled.explained_classes(runner.predict(rows).labels, ExplainRequest())
    got, again, want = sampled.explain(rows, classes), sampled.explain(rows, classes), exact.explain(rows, classes)
    np.testing.assert_array_equal(got.values, again.values)
    np.testing.assert_allclose(got.base_value + got.values.sum(axis=1), got.output, atol=1e-9)
    np.testing.assert_allclose(got.output, want.output, atol=1e-12)
    assert got.error_bound is not None and (got.error_bound >= 0).all()
    within = np.abs(got.values - want.values) <= got.error_bound + 1e-9
    assert within.mean() >= 0.85, within.mean()  # a 95 % interval: most values, not every one


def test_permutation_plan_visits_each_orderings_prefixes() -> None:
    plan = PermutationPlan.draw(7, permutations=8, seed=0)
    assert plan.prefix_index.shape == (8, 8)
    for p in range(8):
        sizes = plan.coalitions[plan.prefix_index[p]].sum(axis=1)
        assert sizes.tolist() == list(range(8))
    # antithetic: ordering p + 4 is the reverse of ordering p
    np.testing.assert_array_equal(plan.ranks[4:], 6 - plan.ranks[:4])
