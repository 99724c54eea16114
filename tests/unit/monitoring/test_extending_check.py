"""A new drift check is one module plus one registration: the toy check below (its config, result and
check in this file, as they would be in its own module) registers its config, joins a report by being
listed with the default checks, and its finding takes the place its priority gives it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest

from monitoring import DriftChecker, DriftConfig, ReferenceProfile
from monitoring.check_protocol import PRIORITY_FEATURE_DRIFT, Finding, Metric, ProfileCheck, Verdict, Window, finite_metrics
from monitoring.checker import DEFAULT_CHECKS
from monitoring.config import CheckConfig, register_config, registered_configs, threshold, unregister_config
from monitoring.types import FeatureKind, FeatureSpec


@dataclass(frozen=True)
class MeanShiftConfig(CheckConfig):
    mean_shift_threshold: float = threshold(0.5, ge=0, le=10, help="Alarm when a feature's mean moves this many reference sds")


@dataclass(frozen=True)
class MeanShiftResult:
    shift: float  # |window mean - reference mean| / reference sd
    threshold: float
    priority: int

    def verdicts(self) -> list[Verdict]:
        return [Verdict("mean shift x", self.shift, None, self.threshold, self.shift > self.threshold)]

    def metrics(self) -> list[Metric]:
        return finite_metrics([("MeanShift", self.shift, None)])

    def to_dict(self) -> dict[str, Any]:
        return {"shift": self.shift, "threshold": self.threshold}

    def findings(self) -> list[Finding]:
        return [Finding(f"x mean moved {self.shift:.2f} reference sds", self.priority, "x")] if self.shift > self.threshold else []


class MeanShiftCheck(ProfileCheck):
    name = "mean_shift"
    metric_names = ("MeanShift",)
    priority: ClassVar[int] = 5  # before drifted features (20): the check claims to name their cause

    def run(self, window: Window) -> MeanShiftResult:
        reference = self.profile.sample["x"]
        shift = abs(float(np.nanmean(window.table["x"])) - float(np.nanmean(reference))) / float(np.nanstd(reference))
        return MeanShiftResult(shift, self.config.section(MeanShiftConfig).mean_shift_threshold, self.priority)


class TrailingMeanShiftCheck(MeanShiftCheck):
    name = "mean_shift_trailing"
    priority = 60  # after every built-in finding


@pytest.fixture
def registered() -> Iterator[None]:
    register_config(MeanShiftConfig)  # in its own module: @register_config on the class
    yield
    unregister_config(MeanShiftConfig)
    assert MeanShiftConfig not in registered_configs()


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    return ReferenceProfile.fit((FeatureSpec("x", FeatureKind.NUMERIC),), {"x": rng.normal(0, 1, 4000)})


def test_a_registered_threshold_is_part_of_drift_config(registered: None) -> None:
    assert DriftConfig().mean_shift_threshold == 0.5  # the declared default
    assert DriftConfig(mean_shift_threshold=2.0).section(MeanShiftConfig).mean_shift_threshold == 2.0
    assert DriftConfig.from_dict(DriftConfig(mean_shift_threshold=1.5).to_dict()).mean_shift_threshold == 1.5
    assert [spec.bounds.high for spec in DriftConfig.thresholds() if spec.name == "mean_shift_threshold"] == [10]
    with pytest.raises(ValueError, match=r"mean_shift_threshold must be in \[0, 10\]"):
        DriftConfig(mean_shift_threshold=11.0)
    with pytest.raises(TypeError, match="mean_shift_threshold"):
        DriftConfig(mean_shift_threshold="1")


def test_an_unregistered_threshold_is_refused_naming_it() -> None:
    with pytest.raises(TypeError, match="mean_shift_threshold"):
        DriftConfig(mean_shift_threshold=1.0)


def test_a_second_config_may_not_redeclare_a_threshold(registered: None) -> None:
    @dataclass(frozen=True)
    class Clash(CheckConfig):
        mean_shift_threshold: float = threshold(1.0, ge=0, help="the same name again")

    with pytest.raises(ValueError, match="already declared by MeanShiftConfig"):
        register_config(Clash)


def test_a_report_runs_the_listed_check_with_its_configured_threshold(registered: None, profile: ReferenceProfile) -> None:
    checks = (*DEFAULT_CHECKS, MeanShiftCheck)
    window = {"x": np.random.default_rng(1).normal(0.8, 1, 2000)}
    strict = DriftChecker(profile, DriftConfig(mmd_enabled=False), checks).check(window)
    lenient = DriftChecker(profile, DriftConfig(mmd_enabled=False, mean_shift_threshold=5.0), checks).check(window)

    result = strict.results["mean_shift"]
    assert isinstance(result, MeanShiftResult) and 0.7 < result.shift < 0.9 and result.threshold == 0.5
    assert strict.to_dict()["mean_shift"]["threshold"] == 0.5 and strict.to_dict()["config"]["mean_shift_threshold"] == 0.5
    assert "mean shift x" in strict.alarms and "mean shift x" not in lenient.alarms
    assert ("MeanShift", result.shift, None) in strict.metrics()


@pytest.mark.parametrize(("check", "place"), [(MeanShiftCheck, 0), (TrailingMeanShiftCheck, -1)])
def test_a_finding_ranks_by_the_priority_its_result_gives_it(registered: None, profile: ReferenceProfile, check, place) -> None:
    # x shifted by 0.8 sd: the feature-drift check finds it too (priority 20); the toy's priority decides the order
    window = {"x": np.random.default_rng(2).normal(0.8, 1, 2000)}
    report = DriftChecker(profile, DriftConfig(mmd_enabled=False), (*DEFAULT_CHECKS, check)).check(window)
    checks = [f.check for f in report.findings]
    assert "features" in checks and checks[place] == check.name
    assert report.findings[checks.index("features")].priority == PRIORITY_FEATURE_DRIFT
    if place == 0:
        assert report.root_cause == report.findings[0].text and report.root_cause.startswith("x mean moved 0.")
