"""drift_athena (off, auto, on): a drift-check setting the function reads, refused where auto cannot work."""

from __future__ import annotations

import pytest

from modelserve.settings import DriftSettings, Settings, SettingsError


def test_drift_athena_reaches_the_drift_check_and_not_the_inference_function() -> None:
    s = Settings.from_context({"capture_sink": "logs", "drift_athena": "auto"})
    assert s.drift.to_env()["MS_DRIFT_ATHENA"] == "auto"
    assert DriftSettings.from_env(s.drift.to_env()).drift_athena == "auto"
    assert "MS_DRIFT_ATHENA" not in s.serving.to_env()
    assert Settings.from_context({}).drift_athena == "auto"


def test_parquet_captures_are_read_through_athena_and_any_other_mode_is_refused_naming_on() -> None:
    with pytest.raises(SettingsError, match="drift_athena=on"):
        Settings.from_context({"capture_sink": "logs", "capture_format": "parquet", "drift_athena": "auto"})
    assert Settings.from_context({"capture_sink": "logs", "capture_format": "parquet", "drift_athena": "on"}).drift_athena == "on"
    with pytest.raises(SettingsError, match="drift_athena=on"):
        Settings.from_context({"capture_sink": "logs", "capture_format": "parquet", "drift_athena": "off"})
    # left unset, Parquet captures are read through Athena, and the drift check is told so
    unset = Settings.from_context({"capture_sink": "logs", "capture_format": "parquet"})
    assert unset.drift_athena == "on"
    assert DriftSettings.from_env(unset.drift.to_env()).drift_athena == "on"
    assert Settings.from_context({"capture_sink": "logs", "capture_format": "json", "drift_athena": "auto"}).drift_athena == "auto"


def test_an_unknown_mode_is_refused_with_the_allowed_ones() -> None:
    with pytest.raises(SettingsError, match="auto"):
        Settings.from_context({"drift_athena": "sometimes"})
