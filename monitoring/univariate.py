"""Univariate drift detectors (Alibi-Detect style: fit on the reference once, ``predict`` windows).

Tests
-----
- numeric features: two-sample Kolmogorov-Smirnov (``scipy.stats.ks_2samp``; ``method="auto"``
  up to n_ref * n_window = 1e6, asymptotic beyond) on the non-null values; nulls are ignored
  here (the missing-rate expectation handles missingness).
- categorical and boolean features: chi-squared test of homogeneity on the 2 x K contingency
  table "reference counts vs window counts" (``scipy.stats.chi2_contingency``, no Yates
  correction). Levels: every category observed in the reference (nulls left out, as in the KS
  test: rising nulls are one finding, the missing-rate expectation's; the predicted-label test
  keeps null as its own level), and
  one "other/unseen" bucket pooling every category the reference never had. Levels whose
  expected count is below ``min_expected`` (5) are merged greedily (smallest first).
  The homogeneity test (rather than a goodness-of-fit test with the reference frequencies taken
  as the truth) accounts for the sampling noise of the reference itself: with a 10,000-row
  reference and a 10,000-row window a goodness-of-fit test doubles the statistic under the null
  and false-alarms far more often than ``alpha``.

Effect sizes (a statistically significant but tiny difference is not drift at 10k rows)
------------------------------------------------------------------------------------------
- numeric: Wasserstein-1 distance (``scipy.stats.wasserstein_distance``) divided by the
  reference scale (sd; IQR/1.349 if sd is 0; 1 if both are 0). A pure location shift of
  ``d`` reference sds gives an effect of exactly ``d``.
- categorical / boolean: Jensen-Shannon *distance* (``scipy.spatial.distance.jensenshannon``,
  base 2, in [0, 1]) between reference and window level frequencies (same levels as the test,
  before merging). Chosen over PSI because it is bounded and well defined when a level is
  empty on one side (a brand-new category), where PSI needs an arbitrary epsilon.

A feature is drifted when ``corrected p < alpha`` **and** ``effect >= effect threshold``, where
the threshold is the feature's own no-drift effect quantile at the window's size
(:class:`NoiseGate`, estimated by resampling the reference, cached per size bucket) with the
configured threshold as its floor. Numeric effects compare values clipped to the reference's
[0.1%, 99.9%] quantiles widened by three scales (:data:`EFFECT_CLIP_QUANTILES`), so a single
extreme row cannot dominate a small window.
Multiple testing across features: Bonferroni (default, controls the family-wise error rate,
so the "any feature drifted" rule false-alarms at most ``alpha``) or Benjamini-Hochberg FDR
(``scipy.stats.false_discovery_control``).

Former fixed thresholds and the evaluation that set them (``adaptive_effect_thresholds=False``)
---------------------------------------------------------------------------------------------
``DEFAULT_NUMERIC_EFFECT_THRESHOLD = 0.1`` (Wasserstein/sd) and
``DEFAULT_CATEGORICAL_EFFECT_THRESHOLD = 0.1`` (JS distance) -- the values Evidently uses for
its normed Wasserstein and JS-distance tests. Evaluated with ``benchmarks/bench_drift_stats.py
--calibrate`` on :mod:`devtools.synthetic` (5 numeric incl. a skewed, a heavy-tailed and an
integer one, 2 categorical, 1 boolean, nullable columns): fresh 10,000-row reference and fresh
window per trial, 200 trials per scenario, alpha 0.05, Bonferroni over 8 features, dataset
drift = any feature drifted (``drift_share_threshold=0``).

Window 10,000 rows (the default: the drift Lambda reservoir-samples to 10,000 rows):

- no-drift effect noise: numeric p99 0.040, p99.9 0.051, max 0.070; categorical p99 0.027,
  p99.9 0.031, max 0.032 -- the 0.1 thresholds sit at ~2x the worst no-drift value.
- false alarms: dataset drift 0/200; with the effect thresholds removed (p-values alone) 8/200
  = 0.040 <= alpha, i.e. the corrected p-values are calibrated.
- detections (each 200/200): a 0.2-sd mean shift in ``num_a``, ``num_skew``, ``num_heavy``
  or ``num_count`` is flagged on exactly that feature (effect ~0.2 = 2x the threshold); a
  new category in 10% of ``cat_color`` rows is flagged (JS distance ~0.23, hand value 0.228)
  together with the unseen-category expectation; nulls 10% -> 20% in ``num_b`` fail the
  missing-rate expectation (the KS test ignores nulls by design).
- a significant but negligible shift (0.06 sd) is *not* drift: that is what the effect
  threshold is for -- at 10k rows KS alone flags shifts of ~0.06 sd.

Window 1,000 rows: numeric effect noise p99 0.10, p99.9 0.13 (the p-value then does the work);
dataset-drift false alarms 1/200, p-values alone 10/200 = 0.050; 0.2-sd shifts detected in
199-200/200, the new category 200/200, missing 10% -> 20% 189/200 (the missing-rate threshold
includes a 3-sigma sampling margin).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial.distance import jensenshannon

from . import metric_names as M
from ._util import categorical_levels, coerce_column, json_clean, level_counts, null_mask, table_rows
from .check_protocol import PRIORITY_FEATURE_DRIFT, Check, Finding, Metric, Reference, Verdict, Window, finite_metrics, fmt
from .config import CheckConfig, DriftConfig, register_config, threshold
from .profile import FeatureProfile, ReferenceProfile
from .types import FeatureKind, WindowCounts

DEFAULT_ALPHA = 0.05
# the floors of the noise gates (with adaptive_effect_thresholds=False: the fixed thresholds; 0.1 is
# then Evidently's and this library's former default)
DEFAULT_NUMERIC_EFFECT_THRESHOLD = 0.03
DEFAULT_CATEGORICAL_EFFECT_THRESHOLD = 0.02
DEFAULT_MIN_EXPECTED = 5.0
# exact KS p-values (scipy "auto") up to n_ref * n_window = 1e6 (e.g. 10k x 100); beyond, the
# asymptotic distribution is accurate and the exact computation costs ~30 ms per 10k x 10k test
KS_EXACT_MAX_PRODUCT = 1_000_000

# effect sizes compare values clipped to the reference's [0.1%, 99.9%] quantiles widened by three
# reference scales: one extreme row (1243 against a median near 3) then moves a 300-row window's
# effect by at most ~(q99.9 + 3 scale - median) / (300 scale)
EFFECT_CLIP_QUANTILES = (0.001, 0.999)
# the effect gate from the reference's own noise: NOISE_RESAMPLES resamples of the window's size
# (a size bucket: NOISE_BUCKETS_PER_DOUBLING per doubling, rounded down, so the gate is never looser
# than at the true size), the effect's NOISE_QUANTILE quantile, times sqrt(1 + n/N) for the
# reference's own sampling noise (a resample is compared with the reference it came from)
NOISE_RESAMPLES = 1000
NOISE_QUANTILE = 0.995
NOISE_BUCKETS_PER_DOUBLING = 2
NOISE_ATOMS = 1000  # a numeric reference is resampled as at most this many equal-mass atoms (its quantiles)

KS = "ks"
CHI2 = "chi2"
WASSERSTEIN_SD = "wasserstein_sd"
JENSEN_SHANNON = "jensen_shannon"
BONFERRONI = "bonferroni"
FDR = "fdr"

NULL_LEVEL = "\x00null"  # internal keys: cannot collide with user categories in practice
UNSEEN_LEVEL = "\x00unseen"


# --------------------------------------------------------------------------------------------
# statistics helpers
# --------------------------------------------------------------------------------------------
def correct_p_values(p_values: Sequence[float], method: str = BONFERRONI) -> np.ndarray:
    """Multiplicity-corrected p-values. NaN entries (tests that could not run) stay NaN and do
    not count towards the number of tests."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    if method == BONFERRONI:
        out[ok] = np.minimum(1.0, p[ok] * m)
    elif method == FDR:
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    else:
        raise ValueError(f"unknown correction {method!r} (use {BONFERRONI!r} or {FDR!r})")
    return out


def wasserstein_effect(reference: np.ndarray, target: np.ndarray, scale: float) -> float:
    """Wasserstein-1 distance in units of the reference scale."""
    if len(reference) == 0 or len(target) == 0:
        return float("nan")
    scale = scale if (np.isfinite(scale) and scale > 0) else 1.0
    return float(stats.wasserstein_distance(reference, target) / scale)


def js_distance(p: npt.ArrayLike, q: npt.ArrayLike) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two count or frequency vectors."""
    pa = np.asarray(p, dtype=np.float64)
    qa = np.asarray(q, dtype=np.float64)
    if pa.sum() <= 0 or qa.sum() <= 0:
        return float("nan")
    d = float(jensenshannon(pa / pa.sum(), qa / qa.sum(), base=2))
    return 0.0 if math.isnan(d) else min(max(d, 0.0), 1.0)


def size_bucket(n: int) -> int:
    """The window size the noise gate is estimated at: ``n`` rounded down to a step of
    :data:`NOISE_BUCKETS_PER_DOUBLING` per doubling (a smaller size has more noise: a safe gate)."""
    if n <= 1:
        return 1
    k = math.floor(math.log2(n) * NOISE_BUCKETS_PER_DOUBLING) / NOISE_BUCKETS_PER_DOUBLING
    return max(1, min(n, int(2**k)))


def noise_quantile(effects: np.ndarray, m: int, n_reference: int) -> float:
    """The gate from resampled no-drift effects at size ``m``: their :data:`NOISE_QUANTILE`
    quantile, widened by ``sqrt(1 + m / n_reference)`` for the reference's own sampling noise."""
    finite = effects[np.isfinite(effects)]
    if finite.size == 0:
        return 0.0
    return float(np.quantile(finite, NOISE_QUANTILE) * math.sqrt(1.0 + m / max(n_reference, 1)))


def resampled_wasserstein(sorted_reference: np.ndarray, m: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Wasserstein effects of :data:`NOISE_RESAMPLES` size-``m`` resamples of the reference
    (represented by :data:`NOISE_ATOMS` equal-mass atoms) against the reference itself:
    ``W = sum_i |F_resample(a_i) - F_ref(a_i)| (a_{i+1} - a_i)``, all resamples at once."""
    # at most one atom per 10 resampled rows: finer atoms add nothing the resample could resolve
    n_atoms = int(min(NOISE_ATOMS, max(100, m // 10)))
    atoms = np.quantile(sorted_reference, (np.arange(n_atoms) + 0.5) / n_atoms)
    # Poissonised bootstrap: independent Poisson(m / atoms) counts per atom (a multinomial of m draws
    # conditioned on its total); from 10 expected rows per atom on, their normal approximation,
    # ~10x cheaper to draw
    lam = m / n_atoms
    if lam < 10:
        counts = rng.poisson(lam, size=(NOISE_RESAMPLES, n_atoms)).astype(np.float64)
    else:
        counts = np.maximum(lam + math.sqrt(lam) * rng.standard_normal((NOISE_RESAMPLES, n_atoms)), 0.0)
    totals = np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    cdf = np.cumsum(counts, axis=1)[:, :-1] / totals
    ref_cdf = np.arange(1, n_atoms) / n_atoms
    widths = np.diff(atoms)
    scale = scale if (np.isfinite(scale) and scale > 0) else 1.0
    return np.abs(cdf - ref_cdf) @ widths / scale


def resampled_js(reference_counts: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """Jensen-Shannon distances of :data:`NOISE_RESAMPLES` size-``m`` multinomial resamples of the
    reference level frequencies against them, all at once."""
    p = reference_counts / reference_counts.sum()
    q = rng.multinomial(m, p, size=NOISE_RESAMPLES) / m
    mid = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * np.log2(a / b), 0.0)
        return terms.sum(axis=-1)

    return np.sqrt(np.clip((kl(p[None, :], mid) + kl(q, mid)) / 2, 0.0, 1.0))


class NoiseGate:
    """The effect gate per window-size bucket, estimated on first use and cached (a bounded cost:
    one vectorised resampling of :data:`NOISE_RESAMPLES` x :data:`NOISE_ATOMS` values per feature
    and size bucket, ~20-60 ms; ``benchmarks/bench_drift_stats.py`` times the first and the warm check)."""

    def __init__(self, resample: Any, n_reference: int, floor: float, seed: int) -> None:
        self.resample = resample  # (m, rng) -> resampled effects
        self.n_reference = n_reference
        self.floor = float(floor)
        self.seed = seed
        self.cache: dict[int, float] = {}

    def noise(self, n: int) -> float:
        m = size_bucket(n)
        if m not in self.cache:
            rng = np.random.default_rng([self.seed, m])
            self.cache[m] = noise_quantile(self.resample(m, rng), m, self.n_reference)
        return self.cache[m]

    def threshold(self, n: int) -> tuple[float, float]:
        """``(gate, noise)``: the effect threshold for an n-row window (the noise quantile, the
        fixed floor as a minimum) and the noise quantile itself."""
        noise = self.noise(n) if self.n_reference and n else 0.0
        return max(self.floor, noise), noise


def merge_sparse_levels(
    reference_counts: npt.ArrayLike, target_counts: npt.ArrayLike, min_expected: float = DEFAULT_MIN_EXPECTED
) -> tuple[np.ndarray, np.ndarray]:
    """Merge levels of a 2 x K count table until every expected count is >= ``min_expected``.

    Empty levels are dropped; then the two levels with the smallest totals are pooled until
    the smallest level is large enough (or only one level is left)."""
    r = np.asarray(reference_counts, dtype=np.float64)
    t = np.asarray(target_counts, dtype=np.float64)
    keep = (r + t) > 0
    cols = [[ri, ti] for ri, ti in zip(r[keep], t[keep])]
    n_r, n_t = r.sum(), t.sum()
    n = n_r + n_t
    if n_r <= 0 or n_t <= 0:
        return np.array([c[0] for c in cols]), np.array([c[1] for c in cols])
    need = min_expected * n / min(n_r, n_t)  # a level's total needed for all expected >= min
    cols.sort(key=lambda c: c[0] + c[1])
    while len(cols) > 1 and cols[0][0] + cols[0][1] < need:
        a, b = cols.pop(0), cols.pop(0)
        merged = [a[0] + b[0], a[1] + b[1]]
        # re-insert keeping the ascending order
        i = 0
        while i < len(cols) and cols[i][0] + cols[i][1] < merged[0] + merged[1]:
            i += 1
        cols.insert(i, merged)
    return np.array([c[0] for c in cols]), np.array([c[1] for c in cols])


def chi2_homogeneity(
    reference_counts: npt.ArrayLike, target_counts: npt.ArrayLike, min_expected: float = DEFAULT_MIN_EXPECTED
) -> tuple[float, float, int]:
    """Chi-squared test of homogeneity of two count vectors over the same levels, after merging
    sparse levels. Returns ``(statistic, p_value, dof)``; ``(0, 1, 0)`` when fewer than two
    levels remain and ``(nan, nan, 0)`` when one side is empty."""
    r, t = merge_sparse_levels(reference_counts, target_counts, min_expected)
    if r.sum() <= 0 or t.sum() <= 0:
        return float("nan"), float("nan"), 0
    if len(r) < 2:
        return 0.0, 1.0, 0
    res = stats.chi2_contingency(np.vstack([r, t]), correction=False)
    return float(res.statistic), float(res.pvalue), int(res.dof)


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnivariateResult:
    feature: str
    test: str  # "ks" | "chi2"
    statistic: float
    p_value: float
    p_value_corrected: float
    effect_size: float
    effect_threshold: float
    alpha: float
    is_drift: bool
    effect_measure: str = ""  # "wasserstein_sd" | "jensen_shannon"
    n_reference: int = 0
    n_target: int = 0
    note: str | None = None  # why a test could not run
    noise_threshold: float | None = None  # the no-drift effect quantile at this window size (the gate unless below the floor)

    @property
    def tested(self) -> bool:
        return not math.isnan(self.p_value)

    def with_corrected(self, p_corrected: float) -> UnivariateResult:
        drift = bool(
            not math.isnan(p_corrected)
            and p_corrected < self.alpha
            and not math.isnan(self.effect_size)
            and self.effect_size >= self.effect_threshold
        )
        return replace(self, p_value_corrected=float(p_corrected), is_drift=drift)

    def to_dict(self) -> dict[str, Any]:
        return json_clean({k: getattr(self, k) for k in self.__dataclass_fields__})

    def as_verdict(self, check: str) -> Verdict:
        """This test's row of the verdict table."""
        return Verdict(
            check,
            self.statistic,
            self.p_value_corrected,
            self.effect_threshold,
            self.is_drift if self.tested else None,
            f"drift when p < {self.alpha:g} and effect {self.effect_measure}={fmt(self.effect_size)} >= threshold"
            + (f" (no-drift noise {fmt(self.noise_threshold)} at this size)" if self.noise_threshold is not None else "")
            + (f"; {self.note}" if self.note else ""),
        )


def _untested(feature: str, test: str, measure: str, thr: float, alpha: float, n_ref: int, n_t: int, note: str):
    nan = float("nan")
    return UnivariateResult(feature, test, nan, nan, nan, nan, thr, alpha, False, measure, n_ref, n_t, note)


# --------------------------------------------------------------------------------------------
# detectors
# --------------------------------------------------------------------------------------------
class _UnivariateDetector:
    """What the KS and chi-squared detectors share: the effect gate at a window size and the result."""

    feature: str
    alpha: float
    effect_threshold: float
    gate: NoiseGate | None

    def threshold(self, n: int) -> tuple[float, float | None]:
        """(effect gate, the reference's own no-drift quantile or None) at a window of ``n`` rows."""
        if self.gate is None:
            return self.effect_threshold, None
        return self.gate.threshold(n)

    def _tested(self, test: str, measure: str, statistic: float, p: float, effect: float, n_ref: int, n_t: int) -> UnivariateResult:
        gate, noise = self.threshold(n_t)
        r = UnivariateResult(
            feature=self.feature,
            test=test,
            statistic=statistic,
            p_value=p,
            p_value_corrected=p,
            effect_size=effect,
            effect_threshold=gate,
            noise_threshold=noise,
            alpha=self.alpha,
            is_drift=False,
            effect_measure=measure,
            n_reference=n_ref,
            n_target=n_t,
        )
        return r.with_corrected(p)


class KSDrift(_UnivariateDetector):
    """Two-sample KS drift detector for one numeric variable (NaN ignored)."""

    def __init__(
        self,
        x_ref: np.ndarray,
        *,
        feature: str = "",
        scale: float | None = None,
        alpha: float = DEFAULT_ALPHA,
        effect_threshold: float = DEFAULT_NUMERIC_EFFECT_THRESHOLD,
        adaptive: bool = True,
        seed: int = 0,
    ) -> None:
        x = np.asarray(x_ref, dtype=np.float64).reshape(-1)
        self.x_ref = np.sort(x[np.isfinite(x)])
        self.feature = feature
        if scale is None:
            sd = float(self.x_ref.std(ddof=1)) if self.x_ref.size > 1 else 0.0
            if not sd > 0 and self.x_ref.size:
                q75, q25 = np.quantile(self.x_ref, [0.75, 0.25])
                sd = float(q75 - q25) / 1.349
            scale = sd if sd > 0 else 1.0
        self.scale = float(scale)
        self.alpha = float(alpha)
        self.effect_threshold = float(effect_threshold)
        if self.x_ref.size:
            lo, hi = np.quantile(self.x_ref, EFFECT_CLIP_QUANTILES)
            # three reference scales beyond the extreme quantiles: a shift past the reference's range still shows
            self.clip = (float(lo) - 3 * self.scale, float(hi) + 3 * self.scale)
        else:
            self.clip = (-np.inf, np.inf)
        self.x_ref_clipped = np.clip(self.x_ref, *self.clip)
        self.gate: NoiseGate | None = None
        if adaptive and self.x_ref.size:
            self.gate = NoiseGate(
                lambda m, rng: resampled_wasserstein(self.x_ref_clipped, m, self.scale, rng),
                self.x_ref.size,
                self.effect_threshold,
                seed,
            )

    def effect(self, x: np.ndarray) -> float:
        """Wasserstein / reference scale, both sides clipped to the reference's extreme quantiles."""
        return wasserstein_effect(self.x_ref_clipped, np.clip(x, *self.clip), self.scale)

    def predict(self, x: np.ndarray) -> UnivariateResult:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        x = x[np.isfinite(x)]
        n_ref, n_t = len(self.x_ref), len(x)
        if n_ref == 0 or n_t == 0:
            note = "no reference values" if n_ref == 0 else "no window values"
            return _untested(self.feature, KS, WASSERSTEIN_SD, self.effect_threshold, self.alpha, n_ref, n_t, note)
        method = "auto" if n_ref * n_t <= KS_EXACT_MAX_PRODUCT else "asymp"
        with warnings.catch_warnings():
            # "auto" falls back to the asymptotic p-value when the exact one underflows
            warnings.filterwarnings("ignore", message="ks_2samp: Exact calculation unsuccessful")
            res = stats.ks_2samp(self.x_ref, x, method=method)
        return self._tested(KS, WASSERSTEIN_SD, float(res.statistic), float(res.pvalue), self.effect(x), n_ref, n_t)


class ChiSquareDrift(_UnivariateDetector):
    """Chi-squared homogeneity drift detector for one categorical variable.

    ``reference_counts`` maps each reference category to its count; ``reference_nulls`` is the
    number of null reference rows. ``predict`` takes an object array of str/None."""

    def __init__(
        self,
        reference_counts: Mapping[str, int],
        reference_nulls: int = 0,
        *,
        feature: str = "",
        alpha: float = DEFAULT_ALPHA,
        effect_threshold: float = DEFAULT_CATEGORICAL_EFFECT_THRESHOLD,
        min_expected: float = DEFAULT_MIN_EXPECTED,
        count_nulls: bool = True,
        adaptive: bool = True,
        seed: int = 0,
    ) -> None:
        self.feature = feature
        self.count_nulls = count_nulls
        self.levels: list[str] = [k for k, v in reference_counts.items() if v > 0]
        self.ref_counts = np.array(
            [reference_counts[k] for k in self.levels] + [int(reference_nulls) if count_nulls else 0, 0], dtype=np.float64
        )
        self.alpha = float(alpha)
        self.effect_threshold = float(effect_threshold)
        self.min_expected = float(min_expected)
        self._index = {k: i for i, k in enumerate(self.levels)}
        n_ref = int(self.ref_counts.sum())
        self.gate: NoiseGate | None = None
        if adaptive and n_ref:
            self.gate = NoiseGate(lambda m, rng: resampled_js(self.ref_counts, m, rng), n_ref, self.effect_threshold, seed)

    @classmethod
    def from_levels(cls, levels: Iterable[Any], **kwargs: Any) -> ChiSquareDrift:
        levels = np.asarray(list(levels), dtype=object)
        return cls(level_counts(levels), int(null_mask(levels).sum()), **kwargs)

    @property
    def level_names(self) -> list[str]:
        return self.levels + [NULL_LEVEL, UNSEEN_LEVEL]

    def count(self, levels: np.ndarray) -> np.ndarray:
        return self.count_of(level_counts(levels), int(null_mask(levels).sum()))

    def count_of(self, counts: Mapping[str, int], nulls: int = 0) -> np.ndarray:
        """The test's level vector from level -> rows and the null rows (levels the reference never had pooled)."""
        k = len(self.levels)
        out = np.zeros(k + 2, dtype=np.float64)
        for lvl, c in counts.items():
            out[self._index.get(lvl, k + 1)] += c
        out[k] = int(nulls) if self.count_nulls else 0
        return out

    def predict(self, levels: np.ndarray) -> UnivariateResult:
        levels = np.asarray(levels, dtype=object).reshape(-1)
        return self.predict_counts(self.count(levels))

    def predict_counts(self, tgt: np.ndarray) -> UnivariateResult:
        """The test on the window's level vector (``count`` of its rows, or ``count_of`` exact counts over a
        window the rows are only a sample of)."""
        n_ref, n_t = int(self.ref_counts.sum()), int(tgt.sum())
        if n_ref == 0 or n_t == 0:
            note = "no reference rows" if n_ref == 0 else "no window rows"
            return _untested(self.feature, CHI2, JENSEN_SHANNON, self.effect_threshold, self.alpha, n_ref, n_t, note)
        stat, p, _ = chi2_homogeneity(self.ref_counts, tgt, self.min_expected)
        return self._tested(CHI2, JENSEN_SHANNON, stat, p, js_distance(self.ref_counts, tgt), n_ref, n_t)


def drift_findings(results: Sequence[UnivariateResult], what: str, priority: int) -> list[Finding]:
    """The drifted columns as findings, the largest effect first ("bill_depth_mm shifted: effect ...")."""
    drifted = sorted((r for r in results if r.is_drift), key=lambda r: -r.effect_size)
    return [
        Finding(
            f"{what}{r.feature} shifted: effect {fmt(r.effect_size)} ({r.effect_measure}) >= threshold "
            f"{fmt(r.effect_threshold)}, p = {fmt(r.p_value_corrected)} < {r.alpha:g} corrected",
            priority,
            r.feature,
        )
        for r in drifted
    ]


# --------------------------------------------------------------------------------------------
# all features
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureDriftSummary:
    results: tuple[UnivariateResult, ...]
    correction: str
    alpha: float
    drift_share_threshold: float
    n_tested: int
    n_drifted: int
    drift_share: float | None  # drifted / tested (None when nothing could be tested)
    dataset_drift: bool | None  # None when nothing could be tested

    def get(self, feature: str) -> UnivariateResult:
        for r in self.results:
            if r.feature == feature:
                return r
        raise KeyError(feature)

    @property
    def drifted_features(self) -> list[str]:
        return [r.feature for r in self.results if r.is_drift]

    def to_dict(self) -> dict[str, Any]:
        return json_clean(
            {
                "results": [r.to_dict() for r in self.results],
                "correction": self.correction,
                "alpha": self.alpha,
                "drift_share_threshold": self.drift_share_threshold,
                "n_tested": self.n_tested,
                "n_drifted": self.n_drifted,
                "drift_share": self.drift_share,
                "dataset_drift": self.dataset_drift,
                "drifted_features": self.drifted_features,
            }
        )

    def verdicts(self) -> list[Verdict]:
        drifted = ": " + ", ".join(self.drifted_features) if self.drifted_features else ""
        dataset = Verdict(
            "dataset drift",
            self.drift_share,
            None,
            self.drift_share_threshold,
            self.dataset_drift,
            f"{self.n_drifted}/{self.n_tested} features drifted ({self.correction}, alpha={self.alpha:g}){drifted}",
        )
        return [dataset] + [r.as_verdict(f"feature {r.feature} ({r.test})") for r in self.results]

    def findings(self) -> list[Finding]:
        return drift_findings(self.results, "", PRIORITY_FEATURE_DRIFT)

    def metrics(self) -> list[Metric]:
        per_feature = [
            (name, value, r.feature)
            for r in self.results
            for name, value in ((M.FEATURE_P_VALUE, r.p_value_corrected), (M.FEATURE_EFFECT_SIZE, r.effect_size))
        ]
        return finite_metrics([(M.DATASET_DRIFT, self.dataset_drift, None), (M.DRIFT_SHARE, self.drift_share, None), *per_feature])


def apply_correction(results: Sequence[UnivariateResult], method: str) -> tuple[UnivariateResult, ...]:
    corrected = correct_p_values([r.p_value for r in results], method)
    return tuple(r.with_corrected(float(pc)) for r, pc in zip(results, corrected))


def dataset_drift_verdict(n_tested: int, n_drifted: int, drift_share_threshold: float) -> tuple[float | None, bool | None]:
    """``(drift_share, dataset_drift)``: drift when at least one feature drifted and
    ``drifted / tested >= drift_share_threshold``; ``(None, None)`` when nothing was tested."""
    if n_tested == 0:
        return None, None
    share = n_drifted / n_tested
    return share, bool(n_drifted >= 1 and share >= drift_share_threshold)


class TabularDrift:
    """Per-feature detectors for every feature of a reference profile; ``predict`` a window."""

    def __init__(
        self,
        profile: ReferenceProfile,
        *,
        alpha: float = DEFAULT_ALPHA,
        correction: str = BONFERRONI,
        numeric_effect_threshold: float = DEFAULT_NUMERIC_EFFECT_THRESHOLD,
        categorical_effect_threshold: float = DEFAULT_CATEGORICAL_EFFECT_THRESHOLD,
        drift_share_threshold: float = 0.0,
        min_expected: float = DEFAULT_MIN_EXPECTED,
        adaptive: bool = True,
        seed: int = 0,
    ) -> None:
        if correction not in (BONFERRONI, FDR):
            raise ValueError(f"unknown correction {correction!r}")
        self.profile = profile
        self.alpha = alpha
        self.correction = correction
        self.drift_share_threshold = drift_share_threshold
        self.detectors: dict[str, KSDrift | ChiSquareDrift] = {}
        for spec in profile.features:
            fp: FeatureProfile = profile[spec.name]
            common: dict[str, Any] = {"feature": spec.name, "alpha": alpha, "adaptive": adaptive, "seed": seed}
            if spec.kind == FeatureKind.NUMERIC:
                self.detectors[spec.name] = KSDrift(
                    profile.sample[spec.name], scale=fp.scale, effect_threshold=numeric_effect_threshold, **common
                )
            else:
                self.detectors[spec.name] = ChiSquareDrift(
                    fp.category_counts,
                    fp.n_missing,
                    effect_threshold=categorical_effect_threshold,
                    min_expected=min_expected,
                    count_nulls=False,  # like KS: missingness is the missing-rate expectation's finding
                    **common,
                )

    def predict(self, table: Mapping[str, np.ndarray], counts: WindowCounts | None = None) -> FeatureDriftSummary:
        """``counts``: exact counts over the whole window when ``table`` is a sample of it; a categorical feature
        in ``counts.categories`` is tested on them (its nulls from ``counts.nulls``), the others on ``table``."""
        n = table_rows({k: table[k] for k in self.detectors if k in table})
        raw: list[UnivariateResult] = []
        for spec in self.profile.features:
            det = self.detectors[spec.name]
            if isinstance(det, ChiSquareDrift) and counts is not None and spec.name in counts.categories:
                raw.append(det.predict_counts(det.count_of(counts.categories[spec.name], int(counts.nulls.get(spec.name, 0)))))
                continue
            col = table.get(spec.name)
            if col is None:
                col = np.full(n, None, dtype=object) if spec.kind == FeatureKind.CATEGORICAL else np.full(n, np.nan)
            values, _null, wrong = coerce_column(spec, col)
            if isinstance(det, KSDrift):
                raw.append(det.predict(values))
            else:
                levels = categorical_levels(spec, values)
                raw.append(det.predict(levels[~wrong]))
        results = apply_correction(raw, self.correction)
        n_tested = sum(r.tested for r in results)
        n_drifted = sum(r.is_drift for r in results)
        share, verdict = dataset_drift_verdict(n_tested, n_drifted, self.drift_share_threshold)
        return FeatureDriftSummary(
            results=results,
            correction=self.correction,
            alpha=self.alpha,
            drift_share_threshold=self.drift_share_threshold,
            n_tested=n_tested,
            n_drifted=n_drifted,
            drift_share=share,
            dataset_drift=verdict,
        )


def tabular_drift(profile: ReferenceProfile, config: DriftConfig) -> TabularDrift:
    """The per-feature detectors with the config's thresholds (one mapping, used by the check and
    by the calibration tests, so they measure what production runs)."""
    return TabularDrift(profile, **config.arguments_for(TabularDrift, adaptive="adaptive_effect_thresholds"))


@register_config
@dataclass(frozen=True)
class FeatureDriftConfig(CheckConfig):
    """The statistical tests' settings (features, and the model outputs and targets tested the same way)."""

    alpha: float = threshold(DEFAULT_ALPHA, gt=0, lt=1, setting=True, help="Significance level of the drift tests (family-wise)")
    correction: str = threshold(BONFERRONI, choices=(BONFERRONI, FDR), setting="p_value_correction", help="Multiple-testing correction")
    # the floors of the noise gates (NoiseGate); with adaptive_effect_thresholds=False the fixed thresholds
    numeric_effect_threshold: float = threshold(
        DEFAULT_NUMERIC_EFFECT_THRESHOLD, ge=0, setting=True, help="Smallest drift effect of a numeric feature: normalised Wasserstein"
    )
    categorical_effect_threshold: float = threshold(
        DEFAULT_CATEGORICAL_EFFECT_THRESHOLD,
        ge=0,
        le=1,
        setting=True,
        help="Smallest drift effect of a categorical feature: Jensen-Shannon distance",
    )
    # Evidently's convention is 0.5 ("half the features drifted"); 0 with Bonferroni is a family-wise test
    drift_share_threshold: float = threshold(
        0.0, ge=0, le=1, setting=True, help="Dataset drift when the share of drifted features reaches this (0: any feature)"
    )
    adaptive_effect_thresholds: bool = threshold(
        True, help="Effect gates from the reference's own noise at the window's size (the effect thresholds are then their floor)"
    )
    seed: int = threshold(0, ge=0, help="Seed of every resampling: noise gates, MMD permutations, bootstraps")


class FeatureDriftCheck(Check):
    """Per-feature drift with multiple-testing correction and the dataset-drift verdict."""

    name = "features"
    metric_names = (M.DATASET_DRIFT, M.DRIFT_SHARE, M.FEATURE_P_VALUE, M.FEATURE_EFFECT_SIZE)
    feature_metric_names = (M.FEATURE_P_VALUE, M.FEATURE_EFFECT_SIZE)

    def __init__(self, detectors: TabularDrift) -> None:
        self.detectors = detectors

    @classmethod
    def fit(cls, reference: Reference) -> FeatureDriftCheck:
        return cls(tabular_drift(reference.profile, reference.config))

    def run(self, window: Window) -> FeatureDriftSummary:
        return self.detectors.predict(window.table, window.counts)
