"""HTML rendering: self-contained, one SVG per feature, everything escaped."""

from __future__ import annotations

import re

import numpy as np

from devtools import synthetic as syn
from monitoring import DriftConfig, run_drift_check
from monitoring.html_report import render_html
from monitoring.profile import ReferenceProfile
from monitoring.types import FeatureKind, FeatureSpec

FAST = DriftConfig(mmd_permutations=20, mmd_max_rows=200)


def test_html_has_a_verdict_table_and_one_svg_per_feature_and_model_output(profile, rng):
    table = syn.make_table(1000, rng, mean_shift={"num_a": 0.3})
    report = run_drift_check(profile, table, syn.make_predictions(table, rng), FAST)
    page = render_html(report, profile)
    assert page.startswith("<!DOCTYPE html>")
    assert report.output_histograms
    assert page.count("<svg") == len(profile.features) + len(report.output_histograms)
    assert "<table" in page and "DRIFT" in page and "p-value" in page
    assert not re.search(r"<(script|link|img)\b", page)
    assert "src=" not in page and "href=" not in page


def test_feature_names_and_categories_are_escaped():
    specs = (
        FeatureSpec("<script>alert(1)</script>", FeatureKind.NUMERIC),
        FeatureSpec('cat"&', FeatureKind.CATEGORICAL),
    )
    rng = np.random.default_rng(0)
    ref = {specs[0].name: rng.normal(size=200), specs[1].name: np.array(["<b>x</b>", "y&z"] * 100, dtype=object)}
    prof = ReferenceProfile.fit(specs, ref)
    tgt = {specs[0].name: rng.normal(size=50), specs[1].name: np.array(["<img src=x>"] * 50, dtype=object)}
    page = render_html(run_drift_check(prof, tgt, None, FAST), prof)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<img" not in page
    assert "cat&quot;&amp;" in page
    assert page.count("<svg") == 2


def test_empty_window_still_renders_reference_histograms(profile):
    page = render_html(run_drift_check(profile, {}, None, FAST), profile)
    assert "no verdict" in page
    assert page.count("<svg") == len(profile.features)


def test_report_shows_model_output_histograms_named_like_the_prediction_tests() -> None:
    import numpy as np

    from monitoring.html_report import render_html
    from monitoring.prediction_drift import PredictionDriftResult
    from monitoring.profile import PredictionColumns, ReferenceProfile
    from monitoring.types import FeatureKind, FeatureSpec, Outputs, Task

    rng = np.random.default_rng(0)
    features = (FeatureSpec("x", FeatureKind.NUMERIC),)
    outputs = Outputs(Task.CLASSIFICATION, ("no", "yes"))

    def preds(n: int, p_yes: float) -> PredictionColumns:
        p = np.clip(rng.normal(p_yes, 0.1, n), 0, 1)
        return PredictionColumns(labels=np.where(p > 0.5, "yes", "no").astype(object), probabilities=np.c_[1 - p, p])

    profile = ReferenceProfile.fit(features, {"x": rng.normal(size=2000)}, preds(2000, 0.3), outputs=outputs)
    report = run_drift_check(profile, {"x": rng.normal(size=2000)}, preds(2000, 0.7))
    names = [h.feature for h in report.output_histograms]
    assert names == ["predicted_label", "probability[yes]"]  # a binary model: the positive class only
    label = report.output_histograms[0]
    assert sum(label.reference_counts) == 2000 and sum(label.target_counts) == 2000
    assert label.target_counts[1] > label.reference_counts[1]  # more "yes" in the window
    tested = {r.feature for r in report.result(PredictionDriftResult).results}
    assert set(names) <= tested
    html = render_html(report, profile)
    assert "<h2>Model outputs</h2>" in html and html.count("<svg") == 1 + len(names)
