"""Benchmark (and calibration) of the drift statistics in ``monitoring/``.

    python benchmarks/bench_drift_stats.py               # timing: run_drift_check, 1k / 10k rows
    python benchmarks/bench_drift_stats.py --calibrate   # false-alarm / detection evaluation
    python benchmarks/bench_drift_stats.py --short-window --trials 100   # the 1 h window next to the 24 h one

Timing: median of 5 runs of ``run_drift_check`` (full check incl. fitting the reference-side
state, MMD with the default 100 permutations on <= 1,000 rows per side, prediction drift,
outliers, histograms) against a 10,000-row reference profile of the synthetic 8-feature table
(:mod:`devtools.synthetic`).

Calibration: fresh reference (10,000 rows) and window per trial; reports the no-drift noise of
the effect sizes, false-alarm rates of every verdict and detection rates of the required
signals, at the given window sizes. These numbers back the defaults documented in
:mod:`monitoring.univariate` and :class:`monitoring.config.DriftConfig`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# Single-threaded BLAS, as on a 1-vCPU Lambda; oversubscribed BLAS threads on a shared machine
# make the small matrix products of the check 5-10x slower. Override by exporting the variable.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools import synthetic as syn  # noqa: E402
from monitoring import DriftChecker, DriftConfig, run_drift_check  # noqa: E402
from monitoring.expectations import DataQualityResult  # noqa: E402
from monitoring.multivariate import MMDResult, ReconstructionResult  # noqa: E402
from monitoring.outliers import OutlierResult  # noqa: E402
from monitoring.prediction_drift import PredictionDriftResult  # noqa: E402
from monitoring.profile import ReferenceProfile  # noqa: E402

REFERENCE_ROWS = 10_000


def _profile(rng: np.random.Generator) -> ReferenceProfile:
    ref = syn.make_table(REFERENCE_ROWS, rng)
    return ReferenceProfile.fit(syn.feature_specs(), ref, syn.make_predictions(ref, rng), outputs=syn.output_spec())


def bench(repeats: int = 5) -> None:
    rng = np.random.default_rng(0)
    profile = _profile(rng)
    config = DriftConfig()
    print(
        f"reference rows: {REFERENCE_ROWS}, features: {len(profile.features)}, "
        f"mmd_max_rows={config.mmd_max_rows}, mmd_permutations={config.mmd_permutations}"
    )
    for n in (1_000, 10_000):
        target = syn.make_table(n, rng, mean_shift={"num_a": 0.2})
        preds = syn.make_predictions(target, rng)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run_drift_check(profile, target, preds, config)
            times.append(time.perf_counter() - t0)
        print(
            f"run_drift_check target_rows={n:>6}: median {statistics.median(times) * 1000:7.1f} ms "
            f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}, n={repeats})"
        )
        # what the drift Lambda pays per run once warm: the checker (and its noise gates for this
        # window size, estimated on the first check) kept across runs
        checker = DriftChecker(profile, config)
        t0 = time.perf_counter()
        checker.check(target, preds)
        first = time.perf_counter() - t0
        warm = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            checker.check(target, preds)
            warm.append(time.perf_counter() - t0)
        print(
            f"DriftChecker.check   target_rows={n:>6}: first {first * 1000:7.1f} ms (incl. the noise gates of "
            f"this size), then median {statistics.median(warm) * 1000:7.1f} ms"
        )
    t0 = time.perf_counter()
    _profile(rng)
    print(f"ReferenceProfile.fit 10k rows: {(time.perf_counter() - t0) * 1000:.1f} ms")


def calibrate(trials: int, window_sizes: list[int], mmd_trials: int) -> None:
    no_mmd = DriftConfig(mmd_enabled=False)
    scenarios = {
        "no drift": {},
        "num_a +0.2sd": {"mean_shift": {"num_a": 0.2}},
        "num_skew +0.1sd (near the former 0.1 floor)": {"mean_shift": {"num_skew": 0.1}},
        "num_skew +0.06sd (small)": {"mean_shift": {"num_skew": 0.06}},
        "num_skew +0.2sd": {"mean_shift": {"num_skew": 0.2}},
        "num_heavy +0.2sd": {"mean_shift": {"num_heavy": 0.2}},
        "num_count +0.2sd": {"mean_shift": {"num_count": 0.2}},
        "cat_color new 10%": {"new_category": ("cat_color", "purple", 0.1)},
        "num_b missing 20%": {"missing": {"num_b": 0.2}},
        "corr(num_a,num_b) 0.6->0": {"correlation": 0.0},
    }
    for n in window_sizes:
        print(f"\n=== window {n} rows, reference {REFERENCE_ROWS}, {trials} trials per scenario ===")
        rng = np.random.default_rng(1000 + n)
        for name, kw in scenarios.items():
            alarms = {"dataset_drift": 0, "any_p_only": 0, "pred_drift": 0, "reconstruction": 0, "outliers": 0, "quality": 0}
            feature_hits: dict[str, int] = {}
            num_eff, cat_eff, ratios, out_rates = [], [], [], []
            for _ in range(trials):
                profile = _profile(rng)
                target = syn.make_table(n, rng, **kw)
                preds = syn.make_predictions(target, rng)
                rep = DriftChecker(profile, no_mmd).check(target, preds)
                alarms["dataset_drift"] += bool(rep.dataset_drift)
                # the verdict without effect-size thresholds: any Bonferroni-corrected p < alpha
                alarms["any_p_only"] += any(r.p_value_corrected < no_mmd.alpha for r in rep.features.results)
                alarms["pred_drift"] += bool(rep.result(PredictionDriftResult).is_drift)
                alarms["reconstruction"] += bool(rep.result(ReconstructionResult).is_drift)
                alarms["outliers"] += bool(rep.result(OutlierResult).is_drift)
                alarms["quality"] += rep.result(DataQualityResult).n_failed > 0
                for f in rep.features.drifted_features:
                    feature_hits[f] = feature_hits.get(f, 0) + 1
                for fq in rep.result(DataQualityResult).failed_checks():
                    key = f"{fq.check}:{fq.feature}"
                    feature_hits[key] = feature_hits.get(key, 0) + 1
                for r in rep.features.results:
                    (num_eff if r.test == "ks" else cat_eff).append(r.effect_size)
                ratios.append(rep.result(ReconstructionResult).ratio)
                out_rates.append(rep.result(OutlierResult).rate)
            rates = ", ".join(f"{k}={v / trials:.3f}" for k, v in alarms.items())
            hits = ", ".join(f"{k}={v / trials:.2f}" for k, v in sorted(feature_hits.items()))
            print(f"[{name}] {rates}\n    flagged: {hits or '-'}")
            if name == "no drift":
                q = lambda a, p: float(np.quantile(np.asarray(a), p))  # noqa: E731
                print(f"    effect noise numeric  p99={q(num_eff, 0.99):.4f} p99.9={q(num_eff, 0.999):.4f} max={max(num_eff):.4f}")
                print(f"    effect noise categor. p99={q(cat_eff, 0.99):.4f} p99.9={q(cat_eff, 0.999):.4f} max={max(cat_eff):.4f}")
                print(
                    f"    reconstruction ratio  p1={q(ratios, 0.01):.3f} p50={q(ratios, 0.5):.3f} "
                    f"p99={q(ratios, 0.99):.3f} max={max(ratios):.3f}"
                )
                print(f"    outlier rate          p50={q(out_rates, 0.5):.4f} p99={q(out_rates, 0.99):.4f} max={max(out_rates):.4f}")
                fa = alarms["any_p_only"] / trials
                sd = (0.05 * 0.95 / trials) ** 0.5
                print(f"    p-only FWER {fa:.3f} vs alpha 0.05 (+3sd = {0.05 + 3 * sd:.3f})")
        # MMD: false alarm and a moderate joint shift
        cfg = DriftConfig()
        for name, kw in (
            ("no drift", {}),
            ("joint +0.1sd", {"joint_shift": 0.1}),
            ("corr 0.6->-0.6", {"correlation": -0.6}),
            ("corr 0.6->0", {"correlation": 0.0}),
        ):
            if not mmd_trials:
                break
            hits = 0
            for _ in range(mmd_trials):
                profile = _profile(rng)
                target = syn.make_table(n, rng, **kw)
                hits += bool(DriftChecker(profile, cfg).check(target).result(MMDResult).is_drift)
            print(f"[MMD {name}] alarm rate {hits / mmd_trials:.3f} over {mmd_trials} trials")


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def short_window(trials: int, short_sizes: list[int], sample_cap: int = 10_000) -> None:
    """The short (1 h) window next to the main (24 h) one, as the drift check runs them.

    Traffic is steady: the last hour holds ``n`` rows and the 24 h window ``24 n`` rows, of which the
    check keeps a uniform sample of ``sample_cap`` (so ~1/24 of the long window's sample comes from the
    last hour). A shift that starts 1 h before the check changes every row of the short window and
    1/24 of the long one. Reported per scenario: the rate of dataset-drift (or data-quality) verdicts
    in the 24 h window, in the 1 h window, and of the alarm, which reads the larger of both (either).
    """
    config = DriftConfig(mmd_enabled=False)
    scenarios = {
        "no drift": {},
        "num_a +0.5sd from 1 h before the check": {"mean_shift": {"num_a": 0.5}},
        "num_a +0.25sd from 1 h before the check": {"mean_shift": {"num_a": 0.25}},
        "num_b missing 20% from 1 h before the check": {"missing": {"num_b": 0.2}},
        "cat_color new value 10% from 1 h before the check": {"new_category": ("cat_color", "purple", 0.1)},
    }
    for n in short_sizes:
        long_rows = min(sample_cap, 24 * n)
        short_rows = min(sample_cap, n)
        recent = max(1, round(long_rows / 24))  # the long window's sampled rows from the last hour
        print(
            f"\n=== short window {short_rows} rows (last hour), 24 h window sample {long_rows} rows "
            f"({recent} from the last hour), {trials} trials ==="
        )
        rng = np.random.default_rng(4200 + n)
        for name, kw in scenarios.items():
            drift = {"24h": 0, "1h": 0, "either": 0}
            quality = {"24h": 0, "1h": 0, "either": 0}
            for _ in range(trials):
                checker = DriftChecker(_profile(rng), config)
                short = syn.make_table(short_rows, rng, **kw)
                long = _concat([syn.make_table(long_rows - recent, rng), syn.make_table(recent, rng, **kw)])
                reports = {w: checker.check(t, syn.make_predictions(t, rng)) for w, t in (("24h", long), ("1h", short))}
                flags = {w: bool(r.dataset_drift) for w, r in reports.items()}
                bad = {w: r.result(DataQualityResult).n_failed > 0 for w, r in reports.items()}
                for w in ("24h", "1h"):
                    drift[w] += flags[w]
                    quality[w] += bad[w]
                drift["either"] += any(flags.values())
                quality["either"] += any(bad.values())
            fmt = lambda d: ", ".join(f"{k} {v / trials:.3f}" for k, v in d.items())  # noqa: E731
            print(f"[{name}] dataset drift: {fmt(drift)} | data quality: {fmt(quality)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--short-window", action="store_true", help="the 1 h window next to the 24 h one")
    ap.add_argument("--short-sizes", type=int, nargs="+", default=[1_000, 10_000], help="rows in the last hour")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--mmd-trials", type=int, default=50)
    ap.add_argument("--windows", type=int, nargs="+", default=[10_000, 1_000])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if args.short_window:
        short_window(args.trials, args.short_sizes)
    elif args.calibrate:
        calibrate(args.trials, args.windows, args.mmd_trials)
    else:
        bench(args.repeats)


if __name__ == "__main__":
    main()
