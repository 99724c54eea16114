"""The dashboard's rows for the recent metrics: performance on labels next to its estimate before labels,
performance against the reference, the estimate's verdict, target drift, the capture path, the API 4XX share,
and the champion/challenger comparison."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from cdk.dashboard import ESTIMATE_VERDICT_GRAPH, PERFORMANCE_GRAPH
from modelserve import metric_catalogue as mc
from modelserve.schema import MANIFEST_FILE, OutputSpec, Task
from tests.infra.conftest import Synth, alarm_metric_stats, dashboard_body, synth_variant
from tests.infra.fake_bundle import fake_manifest, write_fake_bundle
from tests.infra.test_challenger_synth import CHALLENGER_VERSION, write_challenger


def graphs(s: Synth) -> dict[str, list[list[Any]]]:
    """Graph title -> its metric rows (['Namespace', 'Name', 'Dim', 'value', ..., {options}])."""
    return {w["properties"]["title"]: w["properties"].get("metrics", []) for w in dashboard_body(s)["widgets"] if w["type"] == "metric"}


def series(rows: list[list[Any]], ns: str) -> set[tuple[str, str]]:
    """(metric name, ModelVersion) of the rows of namespace ``ns``."""
    out = set()
    for row in rows:
        plain = [x for x in row if not isinstance(x, dict)]
        if plain and plain[0] == ns:
            out.add((plain[1], dict(zip(plain[2::2], plain[3::2], strict=True))["ModelVersion"]))
    return out


def test_every_model_series_on_the_dashboard_is_a_catalogued_metric(default: Synth) -> None:
    ns = default.settings.metrics_namespace
    names = {name for rows in graphs(default).values() for name, _ in series(rows, ns)}
    assert len(names) >= 20 and names <= set(mc.CATALOGUE.names())


def test_health_row_graphs_performance_estimates_capture_path_and_4xx_share(default: Synth) -> None:
    g, ns, v = graphs(default), default.settings.metrics_namespace, default.manifest.version
    assert series(g["Performance vs reference (drop) / degraded"], ns) == {
        (n, v) for n in (mc.ACCURACY_DROP, mc.F1_DROP, mc.AUC_DROP, mc.PERFORMANCE_DEGRADED)
    }
    assert series(g[ESTIMATE_VERDICT_GRAPH], ns) == {
        (n, v) for n in (mc.ESTIMATED_ACCURACY_DROP, mc.ESTIMATED_PERFORMANCE_DEGRADED, mc.TARGET_DRIFT)
    }
    assert series(g["Captures dropped / verdict event errors"], ns) == {(mc.CAPTURE_DROPPED, v), (mc.VERDICT_EVENT_ERRORS, v)}
    (share,) = g["API 4XX share"]
    assert share[:2] == ["AWS/ApiGateway", "4XXError"] and share[-1].get("stat", "Average") == "Average"  # a graph's default statistic
    # no challenger: no comparison row
    assert not any(title.startswith("Champion vs challenger") for title in g)


def labels(rows: list[list[Any]]) -> list[str]:
    return [row[-1]["label"] for row in rows if isinstance(row[-1], dict) and "label" in row[-1]]


def test_a_classifier_s_estimated_accuracy_f1_and_auc_are_graphed_next_to_the_real_ones_in_each_window(default: Synth) -> None:
    g, ns, v = graphs(default), default.settings.metrics_namespace, default.manifest.version
    figures = (mc.ACCURACY, mc.F1, mc.AUC, mc.ESTIMATED_ACCURACY, mc.ESTIMATED_F1, mc.ESTIMATED_AUC)
    assert series(g[PERFORMANCE_GRAPH], ns) == {(n, v) for n in figures}
    # each real figure followed by its estimate, one line per window the drift check publishes
    assert labels(g[PERFORMANCE_GRAPH]) == [
        f"{n} {w}"
        for pair in ((mc.ACCURACY, mc.ESTIMATED_ACCURACY), (mc.F1, mc.ESTIMATED_F1), (mc.AUC, mc.ESTIMATED_AUC))
        for n in pair
        for w in ("24h", "1h")
    ]


def test_a_regressor_s_estimated_mae_and_rmse_are_graphed_next_to_the_real_ones(tmp_path) -> None:
    bundle = write_fake_bundle(tmp_path / "regressor")
    manifest = dataclasses.replace(fake_manifest(), outputs=OutputSpec(task=Task.REGRESSION, probability_output=None))
    (bundle / MANIFEST_FILE).write_text(manifest.to_json())
    s = synth_variant("regressor", bundle, tmp_path / "out", {})
    g, ns, v = graphs(s), s.settings.metrics_namespace, s.manifest.version
    assert series(g[PERFORMANCE_GRAPH], ns) == {(n, v) for n in (mc.MAE, mc.ESTIMATED_MAE, mc.RMSE, mc.ESTIMATED_RMSE)}
    # no CBPE figure for a regressor; its estimate's verdict and the target drift are there
    assert series(g[ESTIMATE_VERDICT_GRAPH], ns) == {(mc.ESTIMATED_PERFORMANCE_DEGRADED, v), (mc.TARGET_DRIFT, v)}


def test_no_alarm_reads_an_estimated_figure_only_the_estimate_s_verdict(default: Synth) -> None:
    figures = {mc.ESTIMATED_ACCURACY, mc.ESTIMATED_F1, mc.ESTIMATED_AUC, mc.ESTIMATED_MAE, mc.ESTIMATED_RMSE, mc.ESTIMATED_ACCURACY_DROP}
    read = {
        stat["name"]
        for alarm in default.of_type("AWS::CloudWatch::Alarm").values()
        for stat in alarm_metric_stats(alarm["Properties"]).values()
        if stat["namespace"] == default.settings.metrics_namespace
    }
    assert mc.ESTIMATED_PERFORMANCE_DEGRADED in read
    assert not read & figures, read & figures


def test_a_challenger_adds_the_comparison_row_on_each_versions_series(fake_bundle_dir, tmp_path) -> None:
    challenger = write_challenger(tmp_path / "challenger")
    s = synth_variant("shadow", fake_bundle_dir, tmp_path / "out", {"challenger_mode": "shadow", "challenger_bundle_path": str(challenger)})
    g, ns, champion = graphs(s), s.settings.metrics_namespace, s.manifest.version
    both = {champion, CHALLENGER_VERSION}
    assert series(g[f"Champion vs challenger {CHALLENGER_VERSION}"], ns) == {
        (n, v) for n in (mc.VARIANT_ACCURACY, mc.VARIANT_F1) for v in both
    }
    assert series(g["Labeled rows per version"], ns) == {(mc.VARIANT_LABELED_ROWS, v) for v in both}
    assert series(g["Shadow agreement / challenger worse"], ns) == {
        (mc.SHADOW_AGREEMENT, CHALLENGER_VERSION),
        (mc.CHALLENGER_WORSE, CHALLENGER_VERSION),
    }
    # each version's own drift verdicts (the challenger's own drift report) and the challenger-only alarm's series
    assert series(g["Each version's dataset / prediction drift; challenger-only drift"], ns) == {
        *((n, v) for n in (mc.DATASET_DRIFT, mc.PREDICTION_DRIFT) for v in both),
        (mc.CHALLENGER_DRIFT, CHALLENGER_VERSION),
    }


def test_the_rejected_share_is_drawn_with_the_data_quality_rates(default: Synth) -> None:
    g, ns, v = graphs(default), default.settings.metrics_namespace, default.manifest.version
    assert (mc.REJECT_RATE, v) in series(g["Data quality rates / rejected share"], ns)


def test_the_first_row_shows_the_pages_that_notify(default: Synth) -> None:
    body = dashboard_body(default)
    first = min(body["widgets"], key=lambda w: (w["y"], w["x"]))
    assert first["properties"]["title"] == "Pages (these notify)"
    pages = [k for k, c in default.of_type("AWS::CloudWatch::CompositeAlarm").items() if c["Properties"].get("AlarmActions")]
    assert len(first["properties"]["alarms"]) == len(pages) >= 4


def test_a_page_carries_the_dashboard_and_the_reports_console_links(default: Synth) -> None:
    for c in default.of_type("AWS::CloudWatch::CompositeAlarm").values():
        if not c["Properties"].get("AlarmActions"):
            continue
        text = json.dumps(c["Properties"]["AlarmDescription"])
        assert "#dashboards:name=ModelServe-penguins" in text and "s3.console.aws.amazon.com/s3/buckets/" in text
        assert "docs/runbook.md#alarm-page-" in text
