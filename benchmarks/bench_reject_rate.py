"""Calibration of the reject-rate verdict (the data-quality check's ``reject_rate`` and the RejectRate alarm).

    python benchmarks/bench_reject_rate.py                       # 1k and 10k requests, 1,000 windows each
    python benchmarks/bench_reject_rate.py --windows 200 --requests 1000 10000

Each window is ``n`` requests; each request is refused independently: at the healthy baseline share
(a random reason on a random feature, as clients' occasional bad rows are) and, in the broken-field
scenarios, additionally with the broken share (a null in one required feature, as when an upstream
pipeline stops filling it). The counts go through the real library (``DriftChecker`` with the
data-quality check, ``RejectCounts``) with the default thresholds (``reject_rate_threshold`` 5%,
``reject_min_requests`` 100). Reported: the share of windows whose verdict fired (false alarms for
the healthy baseline, detection for a broken field) and, for a broken field, the share of windows
whose root cause names it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools import synthetic as syn  # noqa: E402
from monitoring import DriftChecker, DriftConfig, RejectCounts  # noqa: E402
from monitoring.expectations import DataQualityCheck, DataQualityResult  # noqa: E402
from monitoring.profile import ReferenceProfile  # noqa: E402

BASELINE_REASONS = ("wrong_type", "unseen_category", "null_not_allowed", "not_finite")
BROKEN_FIELD = "num_a"
WINDOW_ROWS = 200  # scored rows handed to the check: they do not enter the reject verdict


def reject_counts(n: int, baseline: float, broken: float, rng: np.random.Generator, fields: list[str]) -> RejectCounts:
    """One window of ``n`` requests: who was refused, and why (a request with both problems names both)."""
    base = rng.random(n) < baseline
    broke = rng.random(n) < broken
    by_reason: Counter[str] = Counter()
    by_field: dict[str, Counter[str]] = {}
    for b, k in zip(base, broke):
        if not (b or k):
            continue
        errors = []
        if k:
            errors.append((BROKEN_FIELD, "null_not_allowed"))
        if b:
            errors.append((fields[int(rng.integers(len(fields)))], BASELINE_REASONS[int(rng.integers(len(BASELINE_REASONS)))]))
        by_reason[errors[0][1]] += 1
        for f, reason in set(errors):
            by_field.setdefault(f, Counter())[reason] += 1
    rejected = int((base | broke).sum())
    return RejectCounts(rejected, n - rejected, dict(by_reason), {f: dict(c) for f, c in by_field.items()})


def checker(seed: int = 0, config: DriftConfig | None = None) -> tuple[DriftChecker, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    ref = syn.make_table(2_000, rng)
    profile = ReferenceProfile.fit(syn.feature_specs(), ref, syn.make_predictions(ref, rng), outputs=syn.output_spec())
    return DriftChecker(profile, config or DriftConfig(), checks=(DataQualityCheck,)), syn.make_table(WINDOW_ROWS, rng)


def rates(n: int, baseline: float, broken: float, windows: int, seed: int = 0, config: DriftConfig | None = None) -> tuple[float, float]:
    """(share of windows whose reject verdict fired, share whose root cause names the broken field)."""
    check, table = checker(seed, config)
    rng = np.random.default_rng(seed + 1)
    fields = [f.name for f in syn.feature_specs()]
    fired = named = 0
    for _ in range(windows):
        report = check.check(table, rejects=reject_counts(n, baseline, broken, rng, fields))
        quality = report.result(DataQualityResult)
        assert quality is not None and quality.reject is not None
        if quality.reject.failed:
            fired += 1
            named += bool(report.root_cause and report.root_cause.startswith(f"{BROKEN_FIELD} null in"))
    return fired / windows, named / windows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=1000)
    ap.add_argument("--requests", type=int, nargs="+", default=[1_000, 10_000])
    ap.add_argument("--baselines", type=float, nargs="+", default=[0.01, 0.02, 0.04])
    ap.add_argument("--broken", type=float, nargs="+", default=[0.02, 0.04, 0.1, 0.5, 1.0])
    args = ap.parse_args()
    cfg = DriftConfig()
    print(f"reject_rate_threshold={cfg.reject_rate_threshold}, reject_min_requests={cfg.reject_min_requests}, {args.windows} windows each")
    print("| scenario | " + " | ".join(f"{n:,} requests" for n in args.requests) + " |")
    print("|---|" + "---|" * len(args.requests))
    for b in args.baselines:
        cells = [f"{rates(n, b, 0.0, args.windows)[0]:.1%}" for n in args.requests]
        print(f"| false alarms, healthy baseline {b:.0%} | " + " | ".join(cells) + " |")
    for k in args.broken:
        cells = []
        for n in args.requests:
            fired, named = rates(n, 0.02, k, args.windows)
            cells.append(f"{fired:.1%} (root cause names it {named:.1%})")
        print(f"| detected, `{BROKEN_FIELD}` null in {k:.0%} of requests, baseline 2% | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
