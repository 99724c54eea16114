"""The drift check: one window of captured traffic against the reference profile.

``run_drift_check(profile, target, target_predictions, config, labels)`` runs

- data-quality expectations (:mod:`monitoring.expectations`),
- per-feature drift tests with multiplicity correction and the dataset-drift verdict
  (:mod:`monitoring.univariate`),
- MMD and PCA reconstruction error (:mod:`monitoring.multivariate`),
- prediction drift (:mod:`monitoring.prediction_drift`),
- the Mahalanobis outlier rate (:mod:`monitoring.outliers`),
- performance when labels are given (:mod:`monitoring.performance`),
- per-feature reference/target histograms on shared bins (for the HTML report),

and returns a :class:`DriftReport` (JSON-safe ``to_dict``; ``metrics()`` for CloudWatch).
An empty window returns ``window_rows=0`` and ``dataset_drift=None`` without running tests.
:class:`DriftChecker` fits the reference-side state once for checking many windows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from . import metric_names as M
from ._util import categorical_levels, coerce_column, json_clean, table_rows
from .expectations import DataQualityResult, check_expectations
from .multivariate import (
    DEFAULT_MMD_MAX_ROWS,
    DEFAULT_MMD_PERMUTATIONS,
    DEFAULT_RECONSTRUCTION_RATIO_THRESHOLD,
    DEFAULT_RECONSTRUCTION_VARIANCE,
    MMDDrift,
    MMDResult,
    PCAReconstruction,
    ReconstructionResult,
    TabularEncoder,
)
from .outliers import DEFAULT_OUTLIER_RATE_THRESHOLD, MahalanobisOutlierDetector, OutlierResult
from .performance import LabeledPredictions, PerformanceResult, evaluate_performance
from .prediction_drift import LABEL_OUTPUT, VALUE_OUTPUT, PredictionDriftResult, detect_prediction_drift, probability_output
from .profile import PredictionColumns, ReferenceProfile
from .types import FeatureKind
from .univariate import (
    BONFERRONI,
    DEFAULT_ALPHA,
    DEFAULT_CATEGORICAL_EFFECT_THRESHOLD,
    DEFAULT_NUMERIC_EFFECT_THRESHOLD,
    FDR,
    FeatureDriftSummary,
    TabularDrift,
)


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds of the drift check. Defaults and their evidence: see the module docstrings of
    :mod:`monitoring.univariate` (effect thresholds), :mod:`monitoring.multivariate`,
    :mod:`monitoring.outliers` and :mod:`monitoring.expectations`.

    ``drift_share_threshold``: dataset drift when at least one feature drifted and
    drifted/tested >= this share. The default 0.0 means "any feature drifted": with Bonferroni
    this is a family-wise test whose false-alarm rate is at most ``alpha`` (Evidently's
    convention is 0.5, i.e. "half the features drifted"; raise it for very wide tables).
    """

    alpha: float = DEFAULT_ALPHA
    correction: str = BONFERRONI  # "bonferroni" | "fdr"
    numeric_effect_threshold: float = DEFAULT_NUMERIC_EFFECT_THRESHOLD  # Wasserstein / reference sd
    categorical_effect_threshold: float = DEFAULT_CATEGORICAL_EFFECT_THRESHOLD  # Jensen-Shannon distance
    drift_share_threshold: float = 0.0
    mmd_enabled: bool = True
    mmd_max_rows: int = DEFAULT_MMD_MAX_ROWS
    mmd_permutations: int = DEFAULT_MMD_PERMUTATIONS
    mmd_pca_components: int | None = None
    reconstruction_variance: float = DEFAULT_RECONSTRUCTION_VARIANCE
    reconstruction_ratio_threshold: float = DEFAULT_RECONSTRUCTION_RATIO_THRESHOLD
    outlier_rate_threshold: float = DEFAULT_OUTLIER_RATE_THRESHOLD
    missing_rate_tolerance: float = 0.05
    missing_rate_z: float = 3.0
    out_of_range_threshold: float = 0.01
    unseen_category_threshold: float = 0.01
    wrong_type_threshold: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.correction not in (BONFERRONI, FDR):
            raise ValueError(f"correction must be {BONFERRONI!r} or {FDR!r}, got {self.correction!r}")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if self.mmd_max_rows < 2:
            raise ValueError("mmd_max_rows must be >= 2")

    def to_dict(self) -> dict[str, Any]:
        return json_clean(asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DriftConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class FeatureHistogram:
    feature: str
    kind: str  # "numeric" | "categorical"
    labels: tuple[str, ...]
    reference_counts: tuple[int, ...]
    target_counts: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return json_clean(asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureHistogram:
        return cls(
            feature=str(d["feature"]),
            kind=str(d["kind"]),
            labels=tuple(str(x) for x in d["labels"]),
            reference_counts=tuple(int(x) for x in d["reference_counts"]),
            target_counts=tuple(int(x) for x in d["target_counts"]),
        )


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
class DriftReport:
    window_rows: int
    reference_rows: int
    dataset_drift: bool | None
    drift_share: float | None
    config: DriftConfig
    features: FeatureDriftSummary | None = None
    data_quality: DataQualityResult | None = None
    mmd: MMDResult | None = None
    reconstruction: ReconstructionResult | None = None
    prediction_drift: PredictionDriftResult | None = None
    outliers: OutlierResult | None = None
    performance: PerformanceResult | None = None
    histograms: tuple[FeatureHistogram, ...] = ()
    output_histograms: tuple[FeatureHistogram, ...] = ()  # the model's outputs, reference vs window
    notes: tuple[str, ...] = ()

    # ----------------------------------------------------------------------------------------
    def verdicts(self) -> list[Verdict]:
        out: list[Verdict] = []
        f = self.features
        if f is not None:
            out.append(
                Verdict(
                    "dataset drift",
                    self.drift_share,
                    None,
                    f.drift_share_threshold,
                    self.dataset_drift,
                    f"{f.n_drifted}/{f.n_tested} features drifted ({f.correction}, alpha={f.alpha:g})"
                    + (": " + ", ".join(f.drifted_features) if f.drifted_features else ""),
                )
            )
            for r in f.results:
                out.append(
                    Verdict(
                        f"feature {r.feature} ({r.test})",
                        r.statistic,
                        r.p_value_corrected,
                        r.effect_threshold,
                        r.is_drift if r.tested else None,
                        f"drift when p < {r.alpha:g} and effect {r.effect_measure}={_fmt(r.effect_size)} "
                        f">= threshold" + (f"; {r.note}" if r.note else ""),
                    )
                )
        if self.mmd is not None:
            m = self.mmd
            out.append(
                Verdict("MMD (multivariate)", m.statistic, m.p_value, m.alpha, m.is_drift,
                        f"n={m.n_reference}/{m.n_target}, sigma={_fmt(m.sigma)}" + (f"; {m.note}" if m.note else ""))
            )
        if self.reconstruction is not None:
            r = self.reconstruction
            out.append(
                Verdict("PCA reconstruction ratio", r.ratio, None, r.threshold, r.is_drift,
                        f"{r.n_components} components" + (f"; {r.note}" if r.note else ""))
            )
        if self.prediction_drift is not None:
            p = self.prediction_drift
            out.append(Verdict("prediction drift", None, None, p.alpha, p.is_drift, f"{len(p.results)} output tests"))
            for r in p.results:
                out.append(
                    Verdict(f"output {r.feature} ({r.test})", r.statistic, r.p_value_corrected, r.effect_threshold,
                            r.is_drift if r.tested else None,
                            f"drift when p < {r.alpha:g} and effect {r.effect_measure}={_fmt(r.effect_size)} >= threshold")
                )
        if self.outliers is not None:
            o = self.outliers
            out.append(
                Verdict("outlier rate", o.rate, None, o.rate_threshold, o.is_drift,
                        f"{o.n_outliers}/{o.n_target} rows beyond the reference 99th percentile distance")
            )
        if self.data_quality is not None:
            for e in self.data_quality.results:
                out.append(
                    Verdict(f"{e.check} {e.feature}", e.share, None, e.threshold, e.failed if e.n_rows else None,
                            f"{e.n_flagged}/{e.n_rows} rows")
                )
        return out

    def metrics(self) -> list[tuple[str, float, str | None]]:
        """Flat ``(metric_name, value, feature_or_None)`` list to publish; metrics that could
        not be computed are omitted (an empty window publishes only ``WindowRows``)."""
        out: list[tuple[str, float, str | None]] = []

        def add(name: str, value: Any, feature: str | None = None) -> None:
            if value is None:
                return
            v = float(value)
            if math.isfinite(v):
                out.append((name, v, feature))

        if self.dataset_drift is not None:
            add(M.DATASET_DRIFT, int(self.dataset_drift))
        add(M.DRIFT_SHARE, self.drift_share)
        if self.features is not None:
            for r in self.features.results:
                add(M.FEATURE_P_VALUE, r.p_value_corrected, r.feature)
                add(M.FEATURE_EFFECT_SIZE, r.effect_size, r.feature)
        if self.mmd is not None:
            add(M.MMD_P_VALUE, self.mmd.p_value)
        if self.reconstruction is not None:
            add(M.PCA_RECONSTRUCTION_RATIO, self.reconstruction.ratio)
        if self.prediction_drift is not None and self.prediction_drift.is_drift is not None:
            add(M.PREDICTION_DRIFT, int(self.prediction_drift.is_drift))
        if self.outliers is not None:
            add(M.OUTLIER_RATE, self.outliers.rate)
        if self.data_quality is not None:
            add(M.MISSING_RATE, self.data_quality.missing_rate)
            add(M.OUT_OF_RANGE_RATE, self.data_quality.out_of_range_rate)
            add(M.UNSEEN_CATEGORY_RATE, self.data_quality.unseen_category_rate)
            add(M.DATA_QUALITY_FAILURES, self.data_quality.n_failed)
        add(M.WINDOW_ROWS, self.window_rows)
        p = self.performance
        if p is not None and p.n_labels > 0:
            add(M.LABELED_ROWS, p.n_labels)
            add(M.ACCURACY, p.accuracy)
            add(M.F1, p.f1_macro)
            add(M.AUC, p.auc)
            add(M.MAE, p.mae)
            add(M.RMSE, p.rmse)
        return out

    @property
    def alarms(self) -> list[str]:
        """Names of the checks whose verdict is True."""
        return [v.check for v in self.verdicts() if v.verdict]

    def to_dict(self) -> dict[str, Any]:
        return json_clean(
            {
                "window_rows": self.window_rows,
                "reference_rows": self.reference_rows,
                "dataset_drift": self.dataset_drift,
                "drift_share": self.drift_share,
                "config": self.config.to_dict(),
                "features": None if self.features is None else self.features.to_dict(),
                "data_quality": None if self.data_quality is None else self.data_quality.to_dict(),
                "mmd": None if self.mmd is None else self.mmd.to_dict(),
                "reconstruction": None if self.reconstruction is None else self.reconstruction.to_dict(),
                "prediction_drift": None if self.prediction_drift is None else self.prediction_drift.to_dict(),
                "outliers": None if self.outliers is None else self.outliers.to_dict(),
                "performance": None if self.performance is None else self.performance.to_dict(),
                "histograms": [h.to_dict() for h in self.histograms],
                "output_histograms": [h.to_dict() for h in self.output_histograms],
                "notes": list(self.notes),
                "metrics": [list(m) for m in self.metrics()],
            }
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DriftReport:
        def opt(key: str, typ: Any) -> Any:
            return None if d.get(key) is None else typ.from_dict(d[key])

        return cls(
            window_rows=int(d["window_rows"]),
            reference_rows=int(d["reference_rows"]),
            dataset_drift=d.get("dataset_drift"),
            drift_share=d.get("drift_share"),
            config=DriftConfig.from_dict(d["config"]),
            features=opt("features", FeatureDriftSummary),
            data_quality=opt("data_quality", DataQualityResult),
            mmd=opt("mmd", MMDResult),
            reconstruction=opt("reconstruction", ReconstructionResult),
            prediction_drift=opt("prediction_drift", PredictionDriftResult),
            outliers=opt("outliers", OutlierResult),
            performance=opt("performance", PerformanceResult),
            histograms=tuple(FeatureHistogram.from_dict(h) for h in d.get("histograms", ())),
            output_histograms=tuple(FeatureHistogram.from_dict(h) for h in d.get("output_histograms", ())),
            notes=tuple(d.get("notes", ())),
        )


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.4g}"


def tabular_drift(profile: ReferenceProfile, config: DriftConfig) -> TabularDrift:
    """The per-feature detectors with the config's thresholds (one mapping, used by the checker and
    by the calibration tests, so they measure what production runs)."""
    return TabularDrift(
        profile,
        alpha=config.alpha,
        correction=config.correction,
        numeric_effect_threshold=config.numeric_effect_threshold,
        categorical_effect_threshold=config.categorical_effect_threshold,
        drift_share_threshold=config.drift_share_threshold,
    )


# --------------------------------------------------------------------------------------------
class DriftChecker:
    """Reference-side state (detectors, encoder, PCA, covariance) fitted once; ``check`` windows."""

    def __init__(self, profile: ReferenceProfile, config: DriftConfig | None = None) -> None:
        self.profile = profile
        self.config = config = config or DriftConfig()
        self.tabular = tabular_drift(profile, config)
        self.encoder = TabularEncoder(profile.features).fit(profile.sample)
        x_ref = self.encoder.transform(profile.sample)
        self.multivariate_ok = profile.sample_rows >= 2 and x_ref.shape[1] > 0
        self.notes: list[str] = []
        self.mmd: MMDDrift | None = None
        self.reconstruction: PCAReconstruction | None = None
        self.outliers: MahalanobisOutlierDetector | None = None
        if self.multivariate_ok:
            if config.mmd_enabled:
                self.mmd = MMDDrift(
                    x_ref,
                    max_rows=config.mmd_max_rows,
                    n_permutations=config.mmd_permutations,
                    pca_components=config.mmd_pca_components,
                    alpha=config.alpha,
                    seed=config.seed,
                )
            self.reconstruction = PCAReconstruction(
                x_ref, variance=config.reconstruction_variance, ratio_threshold=config.reconstruction_ratio_threshold
            )
            self.outliers = MahalanobisOutlierDetector(x_ref, rate_threshold=config.outlier_rate_threshold)
        else:
            self.notes.append("reference sample too small for multivariate checks")

    def check(
        self,
        target: Mapping[str, np.ndarray],
        target_predictions: PredictionColumns | None = None,
        labels: LabeledPredictions | None = None,
    ) -> DriftReport:
        cfg = self.config
        profile = self.profile
        present = {f.name: target[f.name] for f in profile.features if f.name in target}
        n = table_rows(present) if present else (target_predictions.n_rows if target_predictions else 0)
        notes = list(self.notes)
        absent = [f.name for f in profile.features if f.name not in target]
        if absent and n:
            notes.append(f"window lacks features {absent} (treated as all-null)")
        table: dict[str, np.ndarray] = dict(present)
        for f in profile.features:
            if f.name not in table:
                table[f.name] = np.full(n, None, dtype=object) if f.kind == FeatureKind.CATEGORICAL else np.full(n, np.nan)

        performance = None
        if labels is not None:
            performance = evaluate_performance(profile.outputs.task, labels, profile.outputs.classes)

        if n == 0:
            notes.append("empty window: no drift verdict")
            return DriftReport(
                window_rows=0,
                reference_rows=profile.n_rows,
                dataset_drift=None,
                drift_share=None,
                config=cfg,
                performance=performance,
                notes=tuple(notes),
            )

        features = self.tabular.predict(table)
        quality = check_expectations(
            profile,
            table,
            missing_rate_tolerance=cfg.missing_rate_tolerance,
            missing_rate_z=cfg.missing_rate_z,
            out_of_range_threshold=cfg.out_of_range_threshold,
            unseen_category_threshold=cfg.unseen_category_threshold,
            wrong_type_threshold=cfg.wrong_type_threshold,
        )
        mmd = reconstruction = outliers = None
        if self.multivariate_ok:
            x = self.encoder.transform(table)
            if self.mmd is not None:
                mmd = self.mmd.predict(x)
            assert self.reconstruction is not None and self.outliers is not None
            reconstruction = self.reconstruction.predict(x)
            outliers = self.outliers.predict(x)
        prediction = None
        if target_predictions is not None and not target_predictions.is_empty:
            prediction = detect_prediction_drift(
                profile,
                target_predictions,
                alpha=cfg.alpha,
                correction=cfg.correction,
                numeric_effect_threshold=cfg.numeric_effect_threshold,
                categorical_effect_threshold=cfg.categorical_effect_threshold,
            )
        return DriftReport(
            window_rows=n,
            reference_rows=profile.n_rows,
            dataset_drift=features.dataset_drift,
            drift_share=features.drift_share,
            config=cfg,
            features=features,
            data_quality=quality,
            mmd=mmd,
            reconstruction=reconstruction,
            prediction_drift=prediction,
            outliers=outliers,
            performance=performance,
            histograms=feature_histograms(profile, table),
            output_histograms=output_histograms(profile, target_predictions),
            notes=tuple(notes),
        )


def feature_histograms(profile: ReferenceProfile, table: Mapping[str, np.ndarray]) -> tuple[FeatureHistogram, ...]:
    out = []
    for spec in profile.features:
        fp = profile[spec.name]
        values, null, wrong = coerce_column(spec, table[spec.name])
        bins = fp.histogram
        if bins.kind == "categorical":
            levels = categorical_levels(spec, values)
            levels = np.where(wrong, None, levels) if wrong.any() else levels
            counts = bins.count(levels, null)
        else:
            counts = bins.count(values, null)
        out.append(
            FeatureHistogram(
                feature=spec.name,
                kind=bins.kind,
                labels=tuple(bins.labels()),
                reference_counts=tuple(int(c) for c in fp.histogram_counts),
                target_counts=tuple(int(c) for c in counts),
            )
        )
    return tuple(out)


PROBABILITY_BINS = 10


def output_histograms(profile: ReferenceProfile, target: PredictionColumns | None) -> tuple[FeatureHistogram, ...]:
    """Reference vs window histograms of the model's outputs: predicted-class shares and binned
    class probabilities (classifiers), values on reference-decile bins (regression)."""
    ref = profile.sample_predictions
    if target is None or target.is_empty or ref is None or ref.is_empty:
        return ()
    out: list[FeatureHistogram] = []
    classes = list(profile.outputs.classes)
    if ref.labels is not None and target.labels is not None and classes:
        levels = classes + ["(other)"]

        def class_counts(labels: np.ndarray) -> tuple[int, ...]:
            known = {c: 0 for c in levels}
            for v in labels:
                known[v if v in known else "(other)"] += 1
            return tuple(known[c] for c in levels)

        out.append(FeatureHistogram(LABEL_OUTPUT, "categorical", tuple(levels), class_counts(ref.labels), class_counts(target.labels)))
    if ref.probabilities is not None and target.probabilities is not None and classes:
        edges = np.linspace(0.0, 1.0, PROBABILITY_BINS + 1)
        labels = tuple(f"[{a:.1f}, {b:.1f})" for a, b in zip(edges[:-1], edges[1:]))
        for k, c in enumerate(classes):
            if k >= ref.probabilities.shape[1] or k >= target.probabilities.shape[1]:
                break
            r = np.histogram(np.clip(ref.probabilities[:, k], 0, 1), bins=edges)[0]
            t = np.histogram(np.clip(target.probabilities[:, k], 0, 1), bins=edges)[0]
            out.append(FeatureHistogram(probability_output(c), "numeric", labels, tuple(int(x) for x in r), tuple(int(x) for x in t)))
    if ref.values is not None and target.values is not None:
        rv, tv = ref.values[np.isfinite(ref.values)], target.values[np.isfinite(target.values)]
        if rv.size:
            inner = np.unique(np.quantile(rv, np.linspace(0.1, 0.9, 9)))
            edges = np.concatenate(([-np.inf], inner, [np.inf]))
            labels = tuple([f"< {inner[0]:.4g}"] + [f"[{a:.4g}, {b:.4g})" for a, b in zip(inner[:-1], inner[1:])] + [f">= {inner[-1]:.4g}"])
            r = np.histogram(rv, bins=edges)[0]
            t = np.histogram(tv, bins=edges)[0]
            out.append(FeatureHistogram(VALUE_OUTPUT, "numeric", labels, tuple(int(x) for x in r), tuple(int(x) for x in t)))
    return tuple(out)


def run_drift_check(
    profile: ReferenceProfile,
    target: Mapping[str, np.ndarray],
    target_predictions: PredictionColumns | None = None,
    config: DriftConfig | None = None,
    labels: LabeledPredictions | None = None,
) -> DriftReport:
    """Check one window against the reference. Never raises for empty windows, all-null
    columns, single rows or constant reference columns."""
    return DriftChecker(profile, config).check(target, target_predictions, labels)


__all__ = [
    "DriftChecker",
    "DriftConfig",
    "DriftReport",
    "FeatureHistogram",
    "LabeledPredictions",
    "PredictionColumns",
    "Verdict",
    "feature_histograms",
    "run_drift_check",
]
