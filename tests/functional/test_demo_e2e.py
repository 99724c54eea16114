"""The whole local loop: moto server, local gateway, real handlers, drift caught in the shifted period."""

from __future__ import annotations

import json

import pytest

from devtools.demo import PERIOD_QUIET, PERIOD_SHIFTED, demo


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory, sample_bundle, challenger_bundle):
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
            mp.delenv(k, raising=False)
        results = demo(
            bundle=str(sample_bundle.root),
            requests=80,
            rows=10,
            out=out,
            seed=3,
            progress=False,
            echo=lines.append,
            challenger=str(challenger_bundle.root),
            compare_requests=40,
        )
    return {r.name: r for r in results}, "\n".join(lines), out


def test_quiet_period_raises_no_drift_or_quality_alarm(demo_results) -> None:
    results, _, _ = demo_results
    quiet = results[PERIOD_QUIET]
    assert quiet.answered == 80 and quiet.rejected == 0
    assert quiet.summary["dataset_drift"] is False
    firing = {a for a, s in quiet.states.items() if s == "ALARM"}
    assert firing == set(), firing
    # the quiet labels are the reference truth: enough of them for a verdict, and it is no drop
    assert quiet.feedback >= 200
    assert quiet.states["PerformanceDegraded"] == "OK"


def test_shifted_period_labels_follow_a_changed_concept_and_raise_the_performance_alarm(demo_results) -> None:
    results, printed, _ = demo_results
    shifted = results[PERIOD_SHIFTED]
    assert shifted.states["PerformanceDegraded"] == "ALARM"
    assert "concept drift" in printed
    perf = {r.name: json.loads(r.html_path.with_suffix(".json").read_text())["report"]["performance"] for r in results.values()}
    assert perf[PERIOD_SHIFTED]["accuracy"] < perf[PERIOD_QUIET]["accuracy"]


def test_shifted_period_raises_dataset_drift_and_data_quality_alarms(demo_results) -> None:
    results, _, _ = demo_results
    shifted = results[PERIOD_SHIFTED]
    assert shifted.summary["dataset_drift"] is True
    assert shifted.states["DatasetDrift"] == "ALARM"
    assert shifted.states["DataQualityFailures"] == "ALARM"
    assert shifted.states["MissingRate"] == "ALARM"
    assert shifted.states["NoTraffic"] == "OK"
    # the report leads with the cause and names the value never seen in training
    assert shifted.summary["root_cause"] and quiet_root_cause(results) is None
    ((feature, values),) = shifted.summary["new_values"].items()
    assert list(values) == ["Atlantis"] and values["Atlantis"] > 0


def test_the_demo_ends_with_a_shadow_comparison_of_two_versions(demo_results, sample_bundle, challenger_bundle) -> None:
    _, printed, out = demo_results
    comparison = printed[printed.index("== shadow comparison: ") :]
    assert f"champion {sample_bundle.manifest.version} vs challenger {challenger_bundle.manifest.version}" in comparison
    assert "agreement " in comparison and "over 200 paired rows" in comparison  # 40 requests x 5 rows, every one scored by both
    assert "macro F1 difference " in comparison and "paired bootstrap" in comparison and "AUC difference " in comparison
    assert "the challenger's own drift report (200 rows against its reference)" in comparison
    doc = json.loads((out / "compare" / "comparison.json").read_text())["comparison"]
    assert doc["versions"]["challenger"] == challenger_bundle.manifest.version
    assert (out / "compare" / "comparison.html").read_text().startswith("<!DOCTYPE html>")
    own = json.loads((out / "compare" / "challenger-drift-report.json").read_text())
    assert own["model_version"] == challenger_bundle.manifest.version


def quiet_root_cause(results):
    return results[PERIOD_QUIET].summary["root_cause"]


def test_reports_exist_and_the_alarm_table_is_printed(demo_results) -> None:
    results, printed, _ = demo_results
    for r in results.values():
        html = r.html_path.read_text()
        assert html.startswith("<!DOCTYPE html>") and "<svg" in html
        assert r.html_path.with_suffix(".json").exists()
    assert "DatasetDrift" in printed and "ALARM" in printed and "HTML report:" in printed
    assert "root cause: " in printed and "new values in " in printed and "'Atlantis' in " in printed


def test_each_cause_family_pages_once_over_both_windows(demo_results) -> None:
    """The shifted period trips several alarms of one cause (nulls, a new category, drift): the demo
    prints what the stack's composite alarms would send, one notification per family."""
    from cdk.alarms import alarm_specs
    from devtools.demo import pages
    from modelserve.settings import Settings

    results, printed, _ = demo_results
    shifted = results[PERIOD_SHIFTED]
    assert sorted(shifted.summary["windows"]) == ["1h", "24h"]  # both windows checked, each its own report
    assert shifted.summary["windows"]["1h"]["report_json"].endswith("-w1h.json")
    firing = [a for a, s in shifted.states.items() if s == "ALARM"]
    specs = alarm_specs(Settings(), "penguins", "v")
    sent = pages(specs, shifted.states)
    assert len(firing) > len(sent) >= 1  # several alarms, fewer notifications
    assert sent[0].startswith("Input data changed") and "MissingRate" in sent[0]
    assert "pages (one per cause family): " + "; ".join(sent) in printed


def test_bring_your_own_regression_model_with_a_boolean_feature_runs_the_whole_loop(tmp_path) -> None:
    """Another model, another task: exported here, then served, captured and checked by the same command."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from devtools.export import export_sklearn, prepare_frame
    from modelserve.schema import infer_feature_specs

    rng = np.random.default_rng(0)
    n = 1500
    df = pd.DataFrame(
        {
            "sqft": rng.normal(1500, 400, n),
            "has_garage": rng.random(n) < 0.4,
            "city": rng.choice(["a", "b", "c"], n),
            "age": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0, 80, n)),
        }
    )
    df["price"] = df.sqft * 100 + df.has_garage * 10000 + rng.normal(0, 5000, n)
    features = ["sqft", "has_garage", "city", "age"]
    specs = infer_feature_specs({c: df[c] for c in features})
    pre = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), ["sqft", "has_garage", "age"]),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["city"]),
        ]
    )
    pipe = Pipeline([("pre", pre), ("reg", HistGradientBoostingRegressor(max_iter=20, random_state=0))])
    pipe.fit(prepare_frame(df, specs), df.price)
    bundle = export_sklearn(pipe, df, "price", "houses", tmp_path / "houses", feature_names=features)
    assert bundle.manifest.outputs.task.value == "regression"

    lines: list[str] = []
    results = {
        r.name: r
        for r in demo(bundle=str(bundle.root), requests=60, rows=10, out=tmp_path / "out", seed=1, progress=False, echo=lines.append)
    }
    assert results[PERIOD_QUIET].rejected == 0 and results[PERIOD_QUIET].summary["dataset_drift"] is False
    assert results[PERIOD_SHIFTED].states["DatasetDrift"] == "ALARM"
    printed = "\n".join(lines)
    assert "MAE" in printed and "labelled rows" in printed  # feedback joined for a regression model
    # MAE / RMSE estimated before labels from the loss model the export fitted on its holdout (DLE)
    report = json.loads(results[PERIOD_SHIFTED].html_path.with_suffix(".json").read_text())["report"]
    estimated = report["estimated_performance"]
    assert estimated["method"] == "direct_loss_estimation" and [e["metric"] for e in estimated["estimates"]] == ["mae", "rmse"]
    assert all(e["estimate"] > 0 for e in estimated["estimates"])
    assert "shadow comparison skipped: no second version of model 'houses'" in printed


def test_the_shifted_period_pages_each_cause_once_and_informs_on_the_drift(demo_results) -> None:
    """Read with the stack's own alarm specs over the period's two scheduled checks: the drift alarms
    (features, outputs, outliers) go to the non-paging topic, never in a page; each cause that pages (nulls
    and a new value upstream; the changed concept on the labels) pages once; and the performance verdict,
    breaching from the first shifted check, pages only when the second confirms it (drift_page_checks)."""
    from cdk.alarms import alarm_specs
    from modelserve.settings import Settings

    results, printed, _ = demo_results
    spec = {s.id: s for s in alarm_specs(Settings(), "penguins", "v")}
    shifted = results[PERIOD_SHIFTED]
    assert results[PERIOD_QUIET].sent == []  # the quiet period sends nothing at all
    sent_pages = [n for n in shifted.sent if n.kind == "page"]
    sent_informs = [n for n in shifted.sent if n.kind == "inform"]
    assert sorted(n.family for n in sent_pages) == ["input_data", "model_output"]  # each cause once, over both checks
    paged = {a for n in sent_pages for a in n.alarms}
    assert all(spec[a].pages for a in paged) and {"MissingRate", "PerformanceDegraded"} <= paged
    assert not paged & {"DatasetDrift", "PredictionDrift", "OutlierRate", "TargetDrift"}
    informed = [a for n in sent_informs for a in n.alarms]
    assert len(informed) == len(set(informed))  # an inform is sent when its alarm enters ALARM, once
    assert "DatasetDrift" in informed and all(not spec[a].pages for a in informed)
    assert set(informed) == {a for a, state in shifted.states.items() if state == "ALARM" and not spec[a].pages}
    data_page = next(n for n in sent_pages if n.family == "input_data")
    performance_page = next(n for n in sent_pages if n.family == "model_output")
    assert data_page.check == 1  # breakage pages at its first check
    assert performance_page.check == 2 and performance_page.alarms == ("PerformanceDegraded",)
    assert "informs (the non-paging topic): " in printed and "breaching, a page once the next check confirms: " in printed
