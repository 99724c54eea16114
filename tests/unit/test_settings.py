"""Settings by section: flat cdk.json keys in, one section per reader out, through the environment and back."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelserve.bundle import function_bundle_dir
from modelserve.settings import (
    ENV_BUNDLE_PATH,
    DeploySettings,
    DriftSettings,
    ServingSettings,
    Settings,
    SettingsError,
    SharedSettings,
)


def test_every_key_belongs_to_a_section_and_only_shared_keys_to_two() -> None:
    deploy, serving, drift = (set(m.model_fields) for m in (DeploySettings, ServingSettings, DriftSettings))
    assert not deploy & (serving | drift)  # deploy-only settings are in no function's section
    assert serving & drift == set(SharedSettings.model_fields)
    assert len(Settings.names()) == len(deploy | serving | drift)


def test_a_flat_key_reaches_every_section_that_holds_it() -> None:
    s = Settings(metrics_namespace="Team/Models", max_batch_rows=7, window_hours=3, inference_memory_mb=2048)
    assert s.serving.metrics_namespace == s.drift.metrics_namespace == "Team/Models"
    assert (s.serving.max_batch_rows, s.drift.window_hours, s.deploy.inference_memory_mb) == (7, 3, 2048)
    # deploy-time code reads by flat name
    assert (s.metrics_namespace, s.max_batch_rows, s.window_hours, s.inference_memory_mb) == ("Team/Models", 7, 3, 2048)
    with pytest.raises(AttributeError):
        _ = s.no_such_setting


def test_sections_can_be_given_whole() -> None:
    serving = ServingSettings(stage_name="v2")
    assert Settings(serving=serving).stage_name == "v2"


@pytest.mark.parametrize("section", [ServingSettings, DriftSettings])
def test_a_section_round_trips_through_its_environment(section: type[ServingSettings] | type[DriftSettings]) -> None:
    values = {"redact_features": ("a", "b"), "hash_features": ("c",), "capture_sink": "firehose"}
    if section is DriftSettings:
        values |= {"alpha": 0.01, "numeric_effect_threshold": 0.125, "p_value_correction": "fdr", "performance_alpha": 0.002}
        values |= {"performance_min_baseline_rows": 400, "estimated_band_sd": 2.5, "estimated_min_rows": 150}
    else:
        values |= {"capture_sampling": 0.25, "max_body_bytes": 4096, "capture_hash_salt": "s" * 16}
    original = section(**values)
    assert section.from_env(original.to_env()) == original
    assert section.from_env({}) == section()  # nothing set: the defaults


def test_unset_optional_settings_stay_out_of_the_environment() -> None:
    env = DriftSettings().to_env()
    assert env["MS_ALPHA"] == "0.05" and env["MS_NUMERIC_EFFECT_THRESHOLD"] == "0.03"  # a threshold travels with its declared default
    assert "MS_CAPTURE_HASH_SALT" not in ServingSettings(capture_hash_salt="").to_env()  # empty: the stack generates one


def test_bad_values_name_the_key_once_even_when_two_sections_hold_it() -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_context({"capture_sink": "kafka", "capture_hash_salt": "short"})
    lines = str(err.value).splitlines()[1:]
    assert len(lines) == 2
    assert "'capture_sink' = 'kafka'" in lines[0] and "firehose" in lines[0]
    assert "'capture_hash_salt' = 'short'" in lines[1] and "16" in lines[1]


def test_cross_checks_of_a_section_still_apply() -> None:
    with pytest.raises(SettingsError, match="both redacted and hashed"):
        Settings.from_context({"redact_features": ["x"], "hash_features": ["x"]})
    with pytest.raises(SettingsError, match="capture_transition_days must be below"):
        Settings.from_context({"capture_transition_days": 400, "capture_expiry_days": 365})


def test_the_bundle_folder_is_relative_to_the_asset_root_unless_absolute(tmp_path: Path) -> None:
    assert function_bundle_dir({ENV_BUNDLE_PATH: "bundle", "LAMBDA_TASK_ROOT": "/var/task"}) == Path("/var/task/bundle")
    assert function_bundle_dir({ENV_BUNDLE_PATH: str(tmp_path), "LAMBDA_TASK_ROOT": "/var/task"}) == tmp_path
    with pytest.raises(KeyError, match=ENV_BUNDLE_PATH):
        function_bundle_dir({})


def test_every_drift_threshold_setting_reaches_the_library_config() -> None:
    """drift_config maps settings to DriftConfig by name: a setting renamed on one side only would
    silently fall back to the library's default. Each is set to a non-default value and read back."""
    from driftcheck.drift_service import drift_config

    expected = {  # DriftConfig field -> DriftSettings field, written out independently of the code
        "alpha": "alpha",
        "correction": "p_value_correction",
        "drift_share_threshold": "drift_share_threshold",
        "numeric_effect_threshold": "numeric_effect_threshold",
        "categorical_effect_threshold": "categorical_effect_threshold",
        "outlier_rate_threshold": "outlier_rate_threshold",
        "missing_rate_tolerance": "missing_rate_threshold",
        "out_of_range_threshold": "out_of_range_threshold",
        "unseen_category_threshold": "unseen_category_threshold",
        "performance_min_labels": "performance_min_labels",
        "estimated_accuracy_drop_threshold": "estimated_accuracy_drop_threshold",
        "performance_alpha": "performance_alpha",
        "performance_min_baseline_rows": "performance_min_baseline_rows",
        "estimated_band_sd": "estimated_band_sd",
        "estimated_min_rows": "estimated_min_rows",
        "estimated_loss_min_increase": "estimated_loss_min_increase",
        "min_new_value_rows": "min_new_value_rows",
        "reject_rate_threshold": "reject_rate_threshold",
        "reject_min_requests": "reject_min_requests",
    }
    changed = {
        "alpha": 0.011,
        "p_value_correction": "fdr",
        "drift_share_threshold": 0.3,
        "numeric_effect_threshold": 0.21,
        "categorical_effect_threshold": 0.22,
        "outlier_rate_threshold": 0.07,
        "missing_rate_threshold": 0.09,
        "out_of_range_threshold": 0.03,
        "unseen_category_threshold": 0.04,
        "performance_min_labels": 321,
        "estimated_accuracy_drop_threshold": 0.08,
        "performance_alpha": 0.002,
        "performance_min_baseline_rows": 400,
        "estimated_band_sd": 2.5,
        "estimated_min_rows": 150,
        "estimated_loss_min_increase": 0.12,
        "min_new_value_rows": 33,
        "reject_rate_threshold": 0.12,
        "reject_min_requests": 55,
    }
    config = drift_config(DriftSettings(**changed))
    for threshold, setting in expected.items():
        assert getattr(config, threshold) == changed[setting], threshold


def test_the_drift_thresholds_of_the_settings_are_generated_from_the_checks_declarations() -> None:
    """modelserve may not import monitoring: DriftSettings carries a generated copy of the thresholds the
    checks declare with a deploy setting; a threshold added or changed next to its check shows up here."""
    from devtools.settings_table import SETTINGS_PY, drift_threshold_fields, replace_drift_fields

    source = SETTINGS_PY.read_text()
    # out of date: python -m devtools.settings_table --write docs/deploy.md
    assert replace_drift_fields(source, drift_threshold_fields()) == source


def _outside(bounds) -> list[float]:
    """Values just outside each finite end of a declared range."""
    out = []
    if bounds.low is not None:
        out.append(bounds.low if bounds.low_open else bounds.low - 1)
    if bounds.high is not None:
        out.append(bounds.high if bounds.high_open else bounds.high + 1)
    return out


def test_a_deploy_setting_and_its_threshold_refuse_the_same_values() -> None:
    """One declaration, one range: a value the drift library would refuse at run time is refused at synth
    (the settings once allowed outlier_rate_threshold only above 0 while the library allowed [0, 1])."""
    from driftcheck.drift_service import drift_config
    from monitoring import DriftConfig

    declared = [spec for spec in DriftConfig.thresholds() if spec.setting]
    assert {spec.setting for spec in declared} <= set(DriftSettings.model_fields)
    for spec in declared:
        default = DriftSettings.model_fields[spec.setting].default
        assert default == spec.default and getattr(drift_config(DriftSettings()), spec.name) == spec.default, spec.name
        for bad in _outside(spec.bounds):
            value = int(bad) if isinstance(spec.default, int) else bad
            with pytest.raises(SettingsError, match=spec.setting):
                Settings.from_context({spec.setting: value})
            with pytest.raises(ValueError, match=spec.name):
                DriftConfig(**{spec.name: value})
        for choice in spec.choices:
            assert getattr(drift_config(DriftSettings(**{spec.setting: choice})), spec.name) == choice
