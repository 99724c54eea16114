"""The metric catalogue is the one description of what the template publishes: every key the drift
library can produce is catalogued under the same name, each paging metric has an alarm in its family,
and every alarm on the model namespace reads a catalogued, paging metric."""

from __future__ import annotations

import pytest

from cdk.alarms import alarm_specs
from modelserve import metric_catalogue as mc
from modelserve.metric_catalogue import Metric, MetricCatalogue
from modelserve.settings import Settings
from monitoring import metric_names as monitoring_keys
from monitoring.checker import DEFAULT_CHECKS, feature_metric_names, published_metric_names

# every optional alarm on (request count, Firehose delivery, the challenger's)
# the logs sink has the Firehose alarms too, and its own; Parquet and drift_athena add theirs
EVERY_ALARM = Settings(
    capture_sink="logs",
    capture_format="parquet",
    drift_athena="on",
    alarm_min_requests=1,
    challenger_mode="ab",
    challenger_bundle_path="models/challenger",
)


def _library_keys() -> set[str]:
    """Every upper-case string constant of monitoring/metric_names.py but the dimension's name."""
    return {v for k, v in vars(monitoring_keys).items() if k.isupper() and isinstance(v, str) and k != "FEATURE_DIMENSION"}


def test_every_key_the_drift_library_produces_is_catalogued_as_a_drift_check_metric() -> None:
    keys = _library_keys() | set(published_metric_names(DEFAULT_CHECKS)) | set(monitoring_keys.COMPARISON_METRIC_NAMES)
    assert len(keys) >= 40
    assert keys <= set(mc.CATALOGUE.names("drift_check")), keys - set(mc.CATALOGUE.names("drift_check"))


def test_the_library_s_per_feature_keys_carry_the_feature_dimension_in_the_catalogue() -> None:
    per_feature = feature_metric_names(DEFAULT_CHECKS)
    assert per_feature
    for name in mc.CATALOGUE.names("drift_check"):
        with_feature = any(mc.DIM_FEATURE in dims for dims in mc.CATALOGUE[name].dimension_sets)
        assert with_feature == (name in per_feature), name


def test_each_paging_metric_has_an_alarm_in_its_family_and_each_model_alarm_reads_a_paging_metric() -> None:
    specs = alarm_specs(EVERY_ALARM, "m", "v", deployment="Stack", challenger_version="w")
    on_model = [s for s in specs if s.source == "model"]
    paging = {m.name for m in mc.CATALOGUE if m.pages}
    assert {s.metric_name for s in on_model} == paging
    for spec in on_model:
        assert spec.family == mc.CATALOGUE[spec.metric_name].family, spec.id


def test_an_alarm_on_a_metric_that_does_not_page_is_refused() -> None:
    from cdk.alarms import AlarmContext, register_alarms, unregister_alarms

    def graph_only(ctx: AlarmContext) -> None:
        ctx.add(
            "ShareAlarm",
            mc.DRIFT_SHARE,
            "model",
            "Maximum",
            0.5,
            "GreaterThanThreshold",
            "Drift share high.",
            "Look.",
            "alarm-share",
            "model",
            **ctx.drift,
        )

    register_alarms(graph_only)
    try:
        with pytest.raises(ValueError, match="DriftShare.*does not page"):
            alarm_specs(Settings(), "m", "v")
    finally:
        unregister_alarms(graph_only)
    assert "ShareAlarm" not in {s.id for s in alarm_specs(Settings(), "m", "v")}


def test_units_are_what_the_emitters_publish_with() -> None:
    assert mc.CATALOGUE.unit(mc.PREDICTION_LATENCY_MS) == "Milliseconds"
    assert mc.CATALOGUE.unit(mc.ROWS_SCORED) == "Count"
    assert mc.CATALOGUE.unit(mc.DRIFT_SHARE) == "None"  # a share of rows, not CloudWatch's Percent (0..100)
    assert mc.CATALOGUE.unit("NotCatalogued") == "None"


def test_a_catalogue_refuses_a_second_definition_of_a_name_and_an_unknown_family() -> None:
    catalogue = MetricCatalogue()
    name = catalogue.register(Metric("Toy", "Count", "inference", "pipeline", False, "a toy"))
    assert name == "Toy" and "Toy" in catalogue
    with pytest.raises(ValueError, match="already in the catalogue"):
        catalogue.register(Metric("Toy", "None", "drift_check", "input_data", True, "the same name again"))
    with pytest.raises(ValueError, match="unknown family"):
        catalogue.register(Metric("Other", "Count", "inference", "weather", False, "no such family"))  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="metric_catalogue.py"):
        catalogue["Missing"]
