"""Target drift: the labels that came back (``/feedback``) against the reference targets.

Classifiers: chi-squared test of homogeneity (``scipy.stats.chi2_contingency``) on the class counts
of the reference targets and of the window's labels; classes the reference never had are named
(``new_classes``: a new class always counts as drift), and so are reference classes absent from
the window although at least 5 labels were expected (``vanished_classes``). The labelled rows'
predicted vs observed class shares are reported side by side. Regressors: two-sample KS
(``scipy.stats.ks_2samp``) of the targets. No verdict below ``performance_min_labels`` labels.

P(y) moving is not a fault by itself (a seasonal class mix); it says the model's prior is stale,
and with the performance checks it separates "more hard cases" from "worse on the same cases".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import chi2_contingency, ks_2samp

from . import metric_names as M
from ._util import json_clean
from .check_protocol import Check, Metric, Reference, Verdict, Window, finite_metrics, fmt
from .types import Task

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
    new_classes: tuple[str, ...] = ()
    vanished_classes: tuple[str, ...] = ()
    reference_shares: dict[str, float] = field(default_factory=dict)
    observed_shares: dict[str, float] = field(default_factory=dict)
    predicted_shares: dict[str, float] = field(default_factory=dict)  # on the same labelled rows

    @property
    def drift(self) -> bool | None:
        if self.n_labels < self.min_labels or self.p_value is None:
            return None
        return bool(self.p_value < self.alpha or self.new_classes)

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
            detail += f"; statistic {fmt(self.statistic)}"
        return [Verdict("target_drift", self.statistic, self.p_value, self.alpha, self.drift, detail)]

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
            common = dict(task=self.task.value, n_labels=len(y), min_labels=cfg.performance_min_labels, alpha=cfg.alpha, test="two-sample KS")
            if len(y) == 0:
                return TargetDriftResult(**common)
            ks = ks_2samp(self.targets, y)
            return TargetDriftResult(**common, statistic=float(ks.statistic), p_value=float(ks.pvalue))
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
        statistic = p_value = None
        if n:
            table = np.array([[ref_counts[c] for c in classes], [win_counts[c] for c in classes]], dtype=np.float64)
            if table.shape[1] >= 2:
                test = chi2_contingency(table, correction=False)
                statistic, p_value = float(test.statistic), float(test.pvalue)
            else:
                statistic, p_value = 0.0, 1.0  # one class on both sides: nothing moved
        return TargetDriftResult(
            task=self.task.value,
            n_labels=n,
            min_labels=cfg.performance_min_labels,
            alpha=cfg.alpha,
            test="chi-squared (reference targets vs labels)",
            statistic=statistic,
            p_value=p_value,
            new_classes=new,
            vanished_classes=vanished,
            reference_shares=_shares(reference),
            observed_shares=_shares(observed),
            predicted_shares=_shares(predicted),
        )
