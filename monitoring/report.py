"""The drift report: the results the checks gave for one window, and what follows from them.

Its verdict table, ``alarms``, CloudWatch ``metrics()`` and JSON form (``to_dict``) are the
concatenation of the results' own (see :mod:`monitoring.check_protocol`); the report adds the window
size, the histograms for the HTML page and the notes. ``dataset_drift`` / ``drift_share``, the
headline, come from the feature-drift result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from . import metric_names as M
from ._util import json_clean
from .check_protocol import CheckResult, Metric, Verdict
from .config import DriftConfig
from .expectations import DataQualityResult
from .root_cause import Finding, summary_line
from .root_cause import findings as root_cause_findings
from .univariate import FeatureDriftSummary
from .window_histograms import FeatureHistogram

R = TypeVar("R")

# the report's own top-level JSON keys; a check's name (its result's key) must be none of these
REPORT_KEYS = frozenset(
    {
        "window_rows",
        "reference_rows",
        "root_cause",
        "findings",
        "dataset_drift",
        "drift_share",
        "drifted_features",
        "new_values",
        "rejects",
        "config",
        "histograms",
        "output_histograms",
        "notes",
        "metrics",
    }
)


@dataclass(frozen=True, eq=False)
class DriftReport:
    window_rows: int
    reference_rows: int
    config: DriftConfig
    # check name -> its result, in the checker's order; None: the check did not apply or had nothing to check
    results: Mapping[str, CheckResult | None] = field(default_factory=dict)
    histograms: tuple[FeatureHistogram, ...] = ()  # the features, reference vs window
    output_histograms: tuple[FeatureHistogram, ...] = ()  # the model's outputs, reference vs window
    notes: tuple[str, ...] = ()

    def result(self, kind: type[R]) -> R | None:
        """The result of that type (e.g. ``report.result(MMDResult)``), None when its check did not run."""
        return next((r for r in self.results.values() if isinstance(r, kind)), None)

    @property
    def features(self) -> FeatureDriftSummary | None:
        return self.result(FeatureDriftSummary)

    @property
    def dataset_drift(self) -> bool | None:
        """At least ``drift_share_threshold`` of the features drifted; None when none could be tested."""
        return None if self.features is None else self.features.dataset_drift

    @property
    def drifted_features(self) -> list[str]:
        """The features whose drift verdict is True (empty when none, or when none was tested)."""
        return [] if self.features is None else self.features.drifted_features

    @cached_property
    def findings(self) -> list[Finding]:
        """Every finding, the most likely cause first (:mod:`monitoring.root_cause`)."""
        return root_cause_findings(self.results)

    @property
    def root_cause(self) -> str | None:
        """The finding the report leads with ("bill_depth_mm missing in 25% of rows, reference
        0.6%"), None when nothing fired."""
        return self.findings[0].text if self.findings else None

    @property
    def summary(self) -> str | None:
        """The root cause and how many more findings there are (the log line's and the notification's)."""
        return summary_line(self.findings)

    @property
    def new_values(self) -> dict[str, dict[str, int]]:
        """Feature -> {value never seen in training: window rows} (from the data-quality check)."""
        quality = self.result(DataQualityResult)
        return {} if quality is None else quality.new_values

    @property
    def rejects(self) -> dict[str, Any] | None:
        """The window's refused requests (counts by reason and by field, share of requests, threshold,
        verdict) when the caller counted them; from the data-quality check."""
        quality = self.result(DataQualityResult)
        return None if quality is None or quality.rejects is None else quality.to_dict().get("rejects")

    @property
    def drift_share(self) -> float | None:
        return None if self.features is None else self.features.drift_share

    def _present(self) -> list[CheckResult]:
        return [r for r in self.results.values() if r is not None]

    def verdicts(self) -> list[Verdict]:
        return [v for r in self._present() for v in r.verdicts()]

    def metrics(self) -> list[Metric]:
        """Flat ``(metric_name, value, feature_or_None)`` list to publish; metrics that could
        not be computed are omitted (an empty window publishes only ``WindowRows``)."""
        return [(M.WINDOW_ROWS, float(self.window_rows), None)] + [m for r in self._present() for m in r.metrics()]

    @property
    def alarms(self) -> list[str]:
        """Names of the checks whose verdict is True."""
        return [v.check for v in self.verdicts() if v.verdict]

    def to_dict(self) -> dict[str, Any]:
        return json_clean(
            {
                "window_rows": self.window_rows,
                "reference_rows": self.reference_rows,
                "root_cause": self.root_cause,
                "findings": [f.text for f in self.findings],
                "dataset_drift": self.dataset_drift,
                "drift_share": self.drift_share,
                "drifted_features": self.drifted_features,
                "new_values": self.new_values,
                "rejects": self.rejects,
                "config": self.config.to_dict(),
                **{name: None if r is None else r.to_dict() for name, r in self.results.items()},
                "histograms": [h.to_dict() for h in self.histograms],
                "output_histograms": [h.to_dict() for h in self.output_histograms],
                "notes": list(self.notes),
                "metrics": [list(m) for m in self.metrics()],
            }
        )
