"""Target drift: the labels that came back (``/feedback``) against the reference targets.

Classifiers: chi-squared test of homogeneity (``scipy.stats.chi2_contingency``) on the class counts
of the reference targets and of the window's labels; classes the reference never had are named
(``new_classes``: a new class always counts as drift), and so are reference classes absent from
the window although at least 5 labels were expected (``vanished_classes``). The labelled rows'
predicted vs observed class shares are reported side by side. Regressors: two-sample KS
(``scipy.stats.ks_2samp``) of the targets. No verdict below ``performance_min_labels`` labels.

The test is the univariate drift detectors' (:class:`~monitoring.univariate.ChiSquareDrift`,
:class:`~monitoring.univariate.KSDrift`): drift needs p < ``alpha`` **and** an effect (Jensen-Shannon
distance of the class shares, normalised Wasserstein of the values) above the reference's own noise at
the window's size (the noise gate, floored at ``categorical_effect_threshold`` /
``numeric_effect_threshold``), so a large window's significant but tiny move of the class mix (a
positive rate 0.496 -> 0.505) is reported, not a verdict. A new class is drift whatever its effect.

P(y) moving is not a fault by itself (a seasonal class mix); it says the model's prior is stale,
and with the performance checks it separates "more hard cases" from "worse on the same cases".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import metric_names as M
from ._util import json_clean
from .check_protocol import PRIORITY_OUTPUT_DRIFT, Check, Finding, Metric, Reference, Verdict, Window, finite_metrics, fmt
from .types import Task
from .univariate import ChiSquareDrift, FeatureDriftConfig, KSDrift, UnivariateResult

MIN_EXPECTED_FOR_VANISHED = 5.0


@dataclass(frozen=True)
class TargetDriftResult:
    task: str
    n_labels: int
    min_labels: int
    alpha: float
    test: str
    statistic: float | None = None
    p_value: float | None = None
    effect_size: float | None = None
    effect_threshold: float | None = None  # the noise gate at this many labels (its floor when below)
    effect_measure: str = ""
    new_classes: tuple[str, ...] = ()
    vanished_classes: tuple[str, ...] = ()
    reference_shares: dict[str, float] = field(default_factory=dict)
    observed_shares: dict[str, float] = field(default_factory=dict)
    predicted_shares: dict[str, float] = field(default_factory=dict)  # on the same labelled rows

    @property
    def drift(self) -> bool | None:
        if self.n_labels < self.min_labels or self.p_value is None:
            return None
        effect_ok = self.effect_size is not None and self.effect_threshold is not None and self.effect_size >= self.effect_threshold
        return bool((self.p_value < self.alpha and effect_ok) or self.new_classes)

    @property
    def moved(self) -> str:
        """What moved, by how much, against what: the class shares (or the test) and the gate."""
        if self.task == Task.CLASSIFICATION.value:

            def move(c: str) -> float:
                return round(self.observed_shares.get(c, 0.0) - self.reference_shares.get(c, 0.0), 12)

            # the largest move first; of equal moves (two classes) the one that rose
            classes = sorted(set(self.reference_shares) | set(self.observed_shares), key=lambda c: (-abs(move(c)), -move(c), c))
            what = ", ".join(
                f"{c!r} {self.observed_shares.get(c, 0.0):.1%} vs reference {self.reference_shares.get(c, 0.0):.1%}" for c in classes[:3]
            )
        else:
            what = "target values moved"
        above = self.effect_size is not None and self.effect_threshold is not None and self.effect_size >= self.effect_threshold
        significant = self.p_value is not None and self.p_value < self.alpha
        return (
            f"{what}; effect {self.effect_measure} {fmt(self.effect_size)} {'>=' if above else '<'} noise gate "
            f"{fmt(self.effect_threshold)} at {self.n_labels} labels, p = {fmt(self.p_value)} {'<' if significant else '>='} {self.alpha:g}"
        )

    def to_dict(self) -> dict[str, Any]:
        return json_clean({**{k: getattr(self, k) for k in self.__dataclass_fields__}, "drift": self.drift})

    def verdicts(self) -> list[Verdict]:
        detail = f"{self.test} on {self.n_labels} labels"
        if self.new_classes:
            detail += f"; new classes {list(self.new_classes)}"
        if self.vanished_classes:
            detail += f"; vanished classes {list(self.vanished_classes)}"
        if self.drift is None:
            detail += f"; < {self.min_labels} labels, no verdict"
        else:
            detail += f"; {self.moved}"
        return [Verdict("target_drift", self.effect_size, self.p_value, self.effect_threshold, self.drift, detail)]

    def findings(self) -> list[Finding]:
        if not self.drift:
            return []
        if self.new_classes:
            return [Finding(f"labels name classes the reference never had: {list(self.new_classes)}", PRIORITY_OUTPUT_DRIFT)]
        what = "labels' class mix moved" if self.task == Task.CLASSIFICATION.value else "labels moved"
        return [Finding(f"{what}: {self.moved}", PRIORITY_OUTPUT_DRIFT)]

    def metrics(self) -> list[Metric]:
        if self.drift is None:
            return []
        return finite_metrics([(M.TARGET_DRIFT, float(self.drift), None), (M.TARGET_DRIFT_P_VALUE, self.p_value, None)])


def _shares(values: list[str]) -> dict[str, float]:
    counts = Counter(values)
    return {k: counts[k] / len(values) for k in sorted(counts)} if values else {}


class TargetDriftCheck(Check):
    """Labels from ``/feedback`` vs the reference targets."""

    name = "target_drift"
    metric_names = (M.TARGET_DRIFT, M.TARGET_DRIFT_P_VALUE)
    needs_rows = False

    def __init__(self, reference: Reference, task: Task, targets: np.ndarray) -> None:
        self.config = reference.config
        self.task = task
        self.targets = targets
        tests = reference.config.section(FeatureDriftConfig)
        common = dict(feature="target", alpha=tests.alpha, adaptive=tests.adaptive_effect_thresholds, seed=tests.seed)
        self.detector: KSDrift | ChiSquareDrift = (
            KSDrift(targets, effect_threshold=tests.numeric_effect_threshold, **common)  # type: ignore[arg-type]
            if task is Task.REGRESSION
            else ChiSquareDrift.from_levels(targets, effect_threshold=tests.categorical_effect_threshold, count_nulls=False, **common)
        )

    @staticmethod
    def _test(result: UnivariateResult) -> dict[str, Any]:
        if not result.tested:
            return {}
        return dict(
            statistic=result.statistic,
            p_value=result.p_value,
            effect_size=result.effect_size,
            effect_threshold=result.effect_threshold,
            effect_measure=result.effect_measure,
        )

    @classmethod
    def fit(cls, reference: Reference) -> TargetDriftCheck | None:
        profile = reference.profile
        task = profile.outputs.task
        targets = profile.sample_targets
        if task is None or targets is None:
            return None
        if task is Task.CLASSIFICATION:
            kept = np.array([str(v) for v in targets if v is not None], dtype=object)
        else:
            values = np.asarray(targets, dtype=np.float64)
            kept = values[np.isfinite(values)]
        return cls(reference, task, kept) if len(kept) else None

    def run(self, window: Window) -> TargetDriftResult | None:
        labels = window.labels
        if labels is None:
            return None
        cfg = self.config
        if self.task is Task.REGRESSION:
            y = np.array([np.nan if v is None else float(v) for v in labels.y_true], dtype=np.float64)
            y = y[np.isfinite(y)]
            common = dict(
                task=self.task.value, n_labels=len(y), min_labels=cfg.performance_min_labels, alpha=cfg.alpha, test="two-sample KS"
            )
            if len(y) == 0:
                return TargetDriftResult(**common)
            return TargetDriftResult(**common, **self._test(self.detector.predict(y)))
        keep = np.array([v is not None for v in labels.y_true], dtype=bool)
        observed = [str(v) for v in labels.y_true[keep]]
        predicted = [] if labels.predictions.labels is None else [str(v) for v in labels.predictions.labels[keep]]
        reference = [str(v) for v in self.targets]
        ref_counts, win_counts = Counter(reference), Counter(observed)
        classes = sorted(set(ref_counts) | set(win_counts))
        n = len(observed)
        new = tuple(c for c in classes if c not in ref_counts)
        vanished = tuple(
            c for c in classes if c in ref_counts and win_counts[c] == 0 and ref_counts[c] / len(reference) * n >= MIN_EXPECTED_FOR_VANISHED
        )
        return TargetDriftResult(
            task=self.task.value,
            n_labels=n,
            min_labels=cfg.performance_min_labels,
            alpha=cfg.alpha,
            test="chi-squared (reference targets vs labels)",
            **(self._test(self.detector.predict(np.array(observed, dtype=object))) if n else {}),
            new_classes=new,
            vanished_classes=vanished,
            reference_shares=_shares(reference),
            observed_shares=_shares(observed),
            predicted_shares=_shares(predicted),
        )
