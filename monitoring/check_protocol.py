"""What a drift check is: fitted once on the reference, run on each window (Alibi Detect's
fit + predict), and its result says its verdicts, its metrics and its JSON form (Evidently's
metric; the list of checks in :data:`monitoring.checker.DEFAULT_CHECKS` is the preset).

- :class:`Check`: ``fit(reference)`` builds the reference-side state once (``None``: the check does
  not apply to this reference); ``run(window)`` checks one window (``None``: nothing to check).
- :class:`CheckResult`: a frozen result with ``verdicts()`` (rows of the report's verdict table,
  ``verdict`` True = a problem), ``metrics()`` (``(name, value, feature_or_None)`` to publish) and
  ``to_dict()`` (JSON-safe; it becomes ``report[check.name]``); optionally ``findings()``: what fired,
  as sentences with a priority (:class:`Finding`; without it, every failed verdict is a finding of
  :data:`PRIORITY_OTHER`). The report leads with the finding of the lowest priority.
- :class:`Reference`: the profile, the thresholds and the state several checks share (the encoder).
- :class:`Window`: one window's table, model outputs and labels (and its encoding, computed once).
- :class:`ProfileCheck`, :class:`EncodedCheck`: bases for a check with nothing to fit and for a
  detector on the encoded table.

The report (:class:`monitoring.report.DriftReport`) holds the results it was given: its JSON, its
verdict table, its ``alarms`` and its CloudWatch metrics are the concatenation of the results'
own, and the list of names a drift check can publish
(:func:`monitoring.checker.published_metric_names`) is the union of the checks' ``metric_names``.

Adding a check
--------------
1. One module: the detector, a frozen result type with ``verdicts`` / ``metrics`` / ``to_dict`` (and
   ``findings`` with a priority), its config (a frozen :class:`~monitoring.config.CheckConfig` of
   ``threshold(...)`` fields, decorated ``@register_config``: its thresholds join ``DriftConfig``) and a
   ``Check`` subclass with ``name``, ``metric_names`` (and ``feature_metric_names`` for metrics with a
   Feature dimension), ``fit`` and ``run``, reading ``reference.config.section(ItsConfig)``.
2. Register the class in the preset: append it to ``DEFAULT_CHECKS`` in :mod:`monitoring.checker`
   (and name its CloudWatch metrics in the metric catalogue).
3. A threshold declared ``setting=True`` is a deploy setting: ``python -m devtools.settings_table --write
   docs/deploy.md`` regenerates the settings' drift thresholds and the docs' table from the declaration.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Protocol, Self

import numpy as np

from .config import DriftConfig
from .encoding import TabularEncoder
from .profile import LabeledPredictions, PredictionColumns, ReferenceProfile
from .types import RejectCounts, Table, WindowCounts

Metric = tuple[str, float, str | None]  # (CloudWatch metric name, value, Feature dimension or None)
MIN_COMPLETE_ROWS = 20  # reference rows without nulls the outlier and PCA checks need

# the cause order of the report's findings (lowest first): refused requests, then a broken input,
# explain whatever the scored rows show; then the model's performance (the impact the on-call engineer
# acts on, explained by the findings after it); drifted features explain drifted outputs; the
# multivariate and outlier verdicts rarely have a cause of their own once those are accounted for
PRIORITY_REJECTS = 0
PRIORITY_DATA_QUALITY = 10
PRIORITY_PERFORMANCE = 15
PRIORITY_FEATURE_DRIFT = 20
PRIORITY_OUTPUT_DRIFT = 30
PRIORITY_OTHER = 50


@dataclass(frozen=True)
class Verdict:
    """One row of the verdict table."""

    check: str
    statistic: float | None
    p_value: float | None
    threshold: float | None
    verdict: bool | None  # True = problem detected, None = not evaluated
    detail: str = ""


@dataclass(frozen=True)
class Finding:
    """One thing that fired, as a sentence. ``priority``: its place in the cause order (``PRIORITY_*``,
    lowest first; a result lists its own findings in order); ``check``: the report key of its result."""

    text: str
    priority: int = PRIORITY_OTHER
    feature: str | None = None
    check: str = ""


def verdict_findings(verdicts: Iterable[Verdict], priority: int = PRIORITY_OTHER) -> list[Finding]:
    """The findings of a result without its own: each failed verdict, as "check 0.12 > threshold 0.05
    (p = 0.001; detail)": the statistic against its threshold, never a statistic against an alpha."""
    found = []
    for v in verdicts:
        if not v.verdict:
            continue
        said = [f"p = {fmt(v.p_value)}"] if v.p_value is not None else []
        said += [v.detail] if v.detail else []
        found.append(
            Finding(f"{v.check} {fmt(v.statistic)} > threshold {fmt(v.threshold)}" + (f" ({'; '.join(said)})" if said else ""), priority)
        )
    return found


def finite_metrics(candidates: Iterable[tuple[str, float | None, str | None]]) -> list[Metric]:
    """The candidates whose value is a finite number (booleans become 0/1): a metric that could
    not be computed is not published, and CloudWatch rejects NaN."""
    out: list[Metric] = []
    for name, value, feature in candidates:
        if value is not None and math.isfinite(float(value)):
            out.append((name, float(value), feature))
    return out


def fmt(x: float | None) -> str:
    """A statistic for a verdict's detail text."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.4g}"


@dataclass
class Reference:
    """What the checks are fitted on. ``notes`` collects what fitting had to skip (shown in every report)."""

    profile: ReferenceProfile
    config: DriftConfig
    notes: list[str] = field(default_factory=list)

    @cached_property
    def encoder(self) -> TabularEncoder:
        """The one numeric encoding the multivariate checks share (fitted on the reference sample)."""
        return TabularEncoder(self.profile.features).fit(self.profile.sample)

    @cached_property
    def encoded_sample(self) -> np.ndarray:
        return self.encoder.transform(self.profile.sample)

    @cached_property
    def complete_encoder(self) -> TabularEncoder:
        """The encoding of the outlier and PCA checks: complete rows only, robust scale (so that
        missing values and single extreme rows do not count as the window's structure changing)."""
        return TabularEncoder(self.profile.features, complete_rows=True).fit(self.profile.sample)

    @cached_property
    def complete_sample(self) -> np.ndarray:
        """The reference sample's complete rows, in :attr:`complete_encoder` space."""
        sample = self.profile.sample
        return self.complete_encoder.transform(sample)[self.complete_encoder.complete_mask(sample)]

    def supports_multivariate(self) -> bool:
        """Enough reference rows and encoded columns for the multivariate checks (notes it when not)."""
        ok = self.profile.sample_rows >= 2 and self.encoded_sample.shape[1] > 0
        if not ok:
            self.note("reference sample too small for multivariate checks")
        return ok

    def supports_complete_rows(self) -> bool:
        """Enough complete reference rows for the outlier and PCA checks (notes it when not)."""
        ok = self.supports_multivariate() and len(self.complete_sample) >= MIN_COMPLETE_ROWS and self.complete_sample.shape[1] > 0
        if not ok:
            self.note(f"fewer than {MIN_COMPLETE_ROWS} complete reference rows: no outlier or PCA check")
        return ok

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


@dataclass(frozen=True, eq=False)
class Window:
    """One window to check. ``table`` has every profiled feature (a feature the window lacks is all-null)."""

    reference: Reference
    table: Table
    n_rows: int
    predictions: PredictionColumns | None = None
    labels: LabeledPredictions | None = None
    rejects: RejectCounts | None = None  # requests of the window validation refused (counted by the caller)
    # each feature's Shapley contributions in the window's explained rows (monitoring.attribution); None: none
    contributions: Table | None = None
    counts: WindowCounts | None = None  # exact counts over the whole window when ``table`` is a sample of it

    @cached_property
    def encoded(self) -> np.ndarray:
        """The table in the reference encoder's space (computed once, shared by the multivariate checks)."""
        return self.reference.encoder.transform(self.table)

    @cached_property
    def complete_encoded(self) -> np.ndarray:
        """The window's complete rows in the reference's :attr:`Reference.complete_encoder` space."""
        encoder = self.reference.complete_encoder
        return encoder.transform(self.table)[encoder.complete_mask(self.table)]


class CheckResult(Protocol):
    def verdicts(self) -> list[Verdict]: ...

    def metrics(self) -> list[Metric]: ...

    def to_dict(self) -> dict[str, Any]: ...


class Check(Protocol):
    """A drift check. Subclass it (for the defaults) or match it structurally."""

    name: ClassVar[str]  # its result's key in the report JSON
    metric_names: ClassVar[tuple[str, ...]]  # every CloudWatch metric its results may publish
    feature_metric_names: ClassVar[tuple[str, ...]] = ()  # those published per feature (Feature dimension)
    needs_rows: ClassVar[bool] = True  # False: also runs on an empty window (performance on late labels)
    # True: also runs on a window without scored rows whose requests were all refused (the reject share)
    reads_rejects: ClassVar[bool] = False

    @classmethod
    def fit(cls, reference: Reference) -> Self | None:
        """The check fitted on the reference, or None when it does not apply (optionally with a note)."""
        ...

    def run(self, window: Window) -> CheckResult | None:
        """The result for one window, or None when the window gives the check nothing to check."""
        ...


class ProfileCheck(Check):
    """A check with nothing to fit: it reads the profile and the config on every window."""

    def __init__(self, reference: Reference) -> None:
        self.profile = reference.profile
        self.config = reference.config

    @classmethod
    def fit(cls, reference: Reference) -> Self | None:
        return cls(reference)


class EncodedDetector(Protocol):
    def predict(self, x: np.ndarray) -> CheckResult: ...


class EncodedCheck(Check):
    """A detector fitted on the encoded reference sample (``fit`` builds it), run on the encoded window."""

    def __init__(self, detector: EncodedDetector) -> None:
        self.detector = detector

    def run(self, window: Window) -> CheckResult:
        return self.detector.predict(window.encoded)


class CompleteRowsCheck(EncodedCheck):
    """A detector fitted on the reference's complete rows (robust encoding), run on the window's
    complete rows: missingness is the data-quality check's finding, not an extreme point."""

    def run(self, window: Window) -> CheckResult:
        return self.detector.predict(window.complete_encoded)
