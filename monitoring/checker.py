"""The drift check: one window of captured traffic against the reference profile.

:class:`DriftChecker` fits every check of :data:`DEFAULT_CHECKS` on the reference once
(:mod:`monitoring.check_protocol` says what a check is and how to add one), then ``check`` runs them
on a window and returns a :class:`~monitoring.report.DriftReport`:

- per-feature drift with multiplicity correction and the dataset-drift verdict (:mod:`monitoring.univariate`),
- MMD and PCA reconstruction error (:mod:`monitoring.multivariate`),
- prediction drift (:mod:`monitoring.prediction_drift`), and what moved it (:mod:`monitoring.attribution`),
- the Mahalanobis outlier rate (:mod:`monitoring.outliers`),
- data-quality expectations (:mod:`monitoring.expectations`),
- performance when labels are given (:mod:`monitoring.performance`),

plus reference/window histograms on shared bins for the HTML report. An empty window returns
``window_rows=0`` and ``dataset_drift=None``: only checks with ``needs_rows = False`` run on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from . import metric_names as M
from ._util import table_rows
from .attribution import AttributionCheck
from .check_protocol import Check, CheckResult, Reference, Window
from .config import DriftConfig, order_modules
from .estimated_performance import EstimatedPerformanceCheck
from .expectations import DataQualityCheck
from .multivariate import MMDCheck, ReconstructionCheck
from .outliers import OutlierCheck
from .performance import LabeledPredictions, PerformanceCheck
from .performance_drop import PerformanceDropCheck
from .prediction_drift import PredictionDriftCheck
from .profile import PredictionColumns, ReferenceProfile
from .report import REPORT_KEYS, DriftReport
from .target_drift import TargetDriftCheck
from .types import FeatureKind, RejectCounts, Table, WindowCounts
from .univariate import FeatureDriftCheck
from .window_histograms import feature_histograms, output_histograms

# the order is the order of the report's verdict table and JSON
DEFAULT_CHECKS: tuple[type[Check], ...] = (
    FeatureDriftCheck,
    MMDCheck,
    ReconstructionCheck,
    PredictionDriftCheck,
    AttributionCheck,
    OutlierCheck,
    DataQualityCheck,
    PerformanceCheck,
    PerformanceDropCheck,
    EstimatedPerformanceCheck,
    TargetDriftCheck,
)
order_modules(check.__module__ for check in DEFAULT_CHECKS)  # DriftConfig's keys follow the preset


def published_metric_names(checks: Sequence[type[Check]] = DEFAULT_CHECKS) -> tuple[str, ...]:
    """Every CloudWatch metric name a drift check with these checks can publish."""
    return (M.WINDOW_ROWS, *(name for check in checks for name in check.metric_names))


def feature_metric_names(checks: Sequence[type[Check]] = DEFAULT_CHECKS) -> frozenset[str]:
    """The published names that carry a Feature dimension."""
    return frozenset(name for check in checks for name in check.feature_metric_names)


class MissingColumnsError(KeyError):
    """The window lacks reference columns (``missing_column`` finding); names them and the window's unknown columns."""

    def __init__(self, missing: Sequence[str], unknown: Sequence[str] = ()) -> None:
        self.missing = tuple(missing)
        self.unknown = tuple(unknown)
        hint = f"; the window has columns the reference lacks: {list(self.unknown)}" if self.unknown else ""
        super().__init__(f"missing_column: the window lacks reference columns {list(self.missing)}{hint}")

    def __str__(self) -> str:
        return str(self.args[0])


class DriftChecker:
    """The checks fitted once on the reference; ``check`` windows."""

    def __init__(
        self, profile: ReferenceProfile, config: DriftConfig | None = None, checks: Sequence[type[Check]] = DEFAULT_CHECKS
    ) -> None:
        names = [c.name for c in checks]
        if len(set(names)) != len(names) or REPORT_KEYS & set(names):
            raise ValueError(f"check names must be unique and not a report field: {names}")
        self.profile = profile
        self.config = config or DriftConfig()
        self.reference = Reference(profile, self.config)
        # None: the check does not apply to this reference (its result is None in every report)
        self.checks: dict[str, Check | None] = {c.name: c.fit(self.reference) for c in checks}

    def window(
        self,
        target: Mapping[str, np.ndarray],
        predictions: PredictionColumns | None = None,
        labels: LabeledPredictions | None = None,
        rejects: RejectCounts | None = None,
        contributions: Mapping[str, np.ndarray] | None = None,
        counts: WindowCounts | None = None,
    ) -> tuple[Window, list[str]]:
        """The window and notes about it. A profiled feature the window lacks raises
        :class:`MissingColumnsError` naming it: a misspelt column must not become an all-null
        column that is then reported as drifted (pass the column all-null if it really is missing)."""
        features = self.profile.features
        present = {f.name: target[f.name] for f in features if f.name in target}
        n = table_rows(present) if present else (predictions.n_rows if predictions else 0)
        absent = [f.name for f in features if f.name not in target]
        if absent and (n or present):
            extra = sorted(set(target) - {f.name for f in features})
            raise MissingColumnsError(absent, extra)
        table: Table = dict(present)
        for f in features:
            if f.name not in table:  # an empty window without columns
                table[f.name] = np.full(n, None, dtype=object) if f.kind == FeatureKind.CATEGORICAL else np.full(n, np.nan)
        explained = None if contributions is None else {k: np.asarray(v, dtype=np.float64) for k, v in contributions.items()}
        return Window(self.reference, table, n, predictions, labels, rejects, contributions=explained, counts=counts), []

    def check(
        self,
        target: Mapping[str, np.ndarray],
        target_predictions: PredictionColumns | None = None,
        labels: LabeledPredictions | None = None,
        rejects: RejectCounts | None = None,
        contributions: Mapping[str, np.ndarray] | None = None,
        counts: WindowCounts | None = None,
    ) -> DriftReport:
        """``rejects``: the window's requests validation refused, counted by the caller (the data-quality
        check's reject rate). A window whose requests were all refused has no scored rows but is not
        empty: the checks that read rejects still run on it. ``contributions``: each feature's Shapley
        contributions in the window's explained rows (the attribution check). ``counts``: exact counts over
        the whole window when ``target`` is a sample of it (the data-quality expectations use them)."""
        window, window_notes = self.window(target, target_predictions, labels, rejects, contributions, counts)
        empty = window.n_rows == 0
        refused = rejects is not None and rejects.rejected_requests > 0
        results: dict[str, CheckResult | None] = {
            name: None if check is None or (empty and check.needs_rows and not (refused and check.reads_rejects)) else check.run(window)
            for name, check in self.checks.items()
        }
        if empty and refused:
            assert rejects is not None
            empty_note = [
                f"no scored rows: all {rejects.rejected_requests} requests of the window were refused by validation (no drift verdict)"
            ]
        else:
            empty_note = ["empty window: no drift verdict"] if empty else []
        notes = self.reference.notes + window_notes + empty_note
        return DriftReport(
            window_rows=window.n_rows,
            reference_rows=self.profile.n_rows,
            config=self.config,
            results=results,
            histograms=() if empty else feature_histograms(self.profile, window.table, window.counts),
            output_histograms=() if empty else output_histograms(self.profile, target_predictions),
            notes=tuple(notes),
        )


def run_drift_check(
    profile: ReferenceProfile,
    target: Mapping[str, np.ndarray],
    target_predictions: PredictionColumns | None = None,
    config: DriftConfig | None = None,
    labels: LabeledPredictions | None = None,
    rejects: RejectCounts | None = None,
) -> DriftReport:
    """Check one window against the reference. Never raises for empty windows, all-null
    columns, single rows or constant reference columns."""
    return DriftChecker(profile, config).check(target, target_predictions, labels, rejects)
