"""False pages and detection of the verdicts that page (estimated performance, performance on labels)
and of those that inform (feature drift, target drift), with the library's defaults.

    python benchmarks/bench_paging_verdicts.py                  # every scenario
    python benchmarks/bench_paging_verdicts.py --trials 100     # control windows per size (default 200)

The world: one feature ``x`` the model reads and one ``z`` it does not; a binary model whose
probabilities are sharper than the world's (the estimate must calibrate them); labels drawn from the
world's P(y|x). The reference: 5,000 held-out rows with targets, their performance measured as the
export does. Scenarios:

- control: windows of 300 and 3,000 rows from the reference distribution, with labels: the rate of
  every verdict (a page for estimated performance and performance on labels; a report for the rest);
- quiet month: 720 hourly checks of a 24 h window (125 rows an hour, every row labelled), traffic from
  the reference distribution: raw paging verdicts, and pages after confirmation (the verdict holding
  in two consecutive checks, as an alarm with 2 of 2 datapoints would);
- covariate shift without labels: ``x`` spread narrower (sd 1.5 -> 1.2), rows nearer the boundary,
  accuracy 2-4 points lower: windows paged by the estimate;
- a shift the model does not feel: ``z`` moved by 0.5 sd: windows paged (none expected) and
  windows whose report names the drift (all expected).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitoring import DriftChecker, DriftConfig, LabeledPredictions, PredictionColumns, ReferenceProfile  # noqa: E402
from monitoring.estimated_performance import EstimatedPerformanceCheck  # noqa: E402
from monitoring.performance_drop import PerformanceDropCheck, measure_performance  # noqa: E402
from monitoring.target_drift import TargetDriftCheck  # noqa: E402
from monitoring.types import FeatureKind, FeatureSpec, Outputs, Task  # noqa: E402
from monitoring.univariate import FeatureDriftCheck  # noqa: E402

CLASSES = ("neg", "pos")
SPECS = [FeatureSpec("x", FeatureKind.NUMERIC), FeatureSpec("z", FeatureKind.NUMERIC)]
PAGES = ("estimated_performance", "performance_drop")
INFORMS = ("features", "target_drift")


def model(x: np.ndarray) -> PredictionColumns:
    p = 1 / (1 + np.exp(-4 * x))
    return PredictionColumns(labels=np.array(CLASSES, dtype=object)[(p > 0.5).astype(int)], probabilities=np.column_stack([1 - p, p]))


def world(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.array(CLASSES, dtype=object)[(rng.random(len(x)) < 1 / (1 + np.exp(-2 * x))).astype(int)]


def rows(rng: np.random.Generator, n: int, x_sd: float = 1.5, z_shift: float = 0.0) -> dict[str, np.ndarray]:
    return {"x": rng.normal(0, x_sd, n), "z": rng.normal(z_shift, 1.0, n)}


def fit(rng: np.random.Generator, paging_only: bool = False) -> DriftChecker:
    ref = rows(rng, 5000)
    pred, y = model(ref["x"]), world(ref["x"], rng)
    perf = measure_performance(Task.CLASSIFICATION, y, pred.labels, pred.probabilities, CLASSES, source="holdout")
    profile = ReferenceProfile.fit(SPECS, ref, pred, outputs=Outputs(Task.CLASSIFICATION, CLASSES), targets=y, reference_performance=perf)
    checks = (PerformanceDropCheck, EstimatedPerformanceCheck)
    if not paging_only:
        checks = (FeatureDriftCheck, *checks, TargetDriftCheck)
    return DriftChecker(profile, DriftConfig(), checks=checks)


def verdicts(c: DriftChecker, table: dict[str, np.ndarray], rng: np.random.Generator, labelled: bool = True) -> dict[str, bool]:
    pred = model(table["x"])
    labels = LabeledPredictions(world(table["x"], rng), pred) if labelled else None
    report = c.check(table, pred, labels)
    out = {}
    for name in (*PAGES, *INFORMS):
        r = report.results.get(name) if name in c.checks else None
        v = getattr(r, "dataset_drift", None) if name == "features" else getattr(r, "degraded", getattr(r, "drift", None))
        out[name] = bool(v)
    return out


def control(rng: np.random.Generator, trials: int) -> None:
    c = fit(rng)
    print("| verdict | kind | 300-row windows | 3,000-row windows |\n|---|---|---|---|")
    rates = {n: [verdicts(c, rows(rng, n), rng) for _ in range(trials)] for n in (300, 3000)}
    for name in (*PAGES, *INFORMS):
        kind = "page" if name in PAGES else "inform"
        cells = [f"{sum(v[name] for v in rates[n])}/{trials}" for n in (300, 3000)]
        print(f"| {name} | {kind} | {cells[0]} | {cells[1]} |")
    any_page = [f"{sum(any(v[p] for p in PAGES) for v in rates[n])}/{trials}" for n in (300, 3000)]
    print(f"| any paging verdict | page | {any_page[0]} | {any_page[1]} |")


def quiet_month(rng: np.random.Generator, checks: int = 720, per_hour: int = 125) -> None:
    c = fit(rng, paging_only=True)
    hours = [rows(rng, per_hour) for _ in range(checks + 23)]
    raw = {p: [] for p in PAGES}
    for t in range(checks):
        window = {k: np.concatenate([h[k] for h in hours[t : t + 24]]) for k in ("x", "z")}
        v = verdicts(c, window, rng)
        for p in PAGES:
            raw[p].append(v[p])
    print(f"quiet month: {checks} hourly checks of a 24 h window ({24 * per_hour} rows, all labelled)")
    for p in PAGES:
        r = np.array(raw[p])
        confirmed = r[1:] & r[:-1]
        episodes = int(np.sum(confirmed[1:] & ~confirmed[:-1]) + (confirmed[0] if len(confirmed) else 0))
        print(f"  {p}: checks with the verdict {int(r.sum())}; pages after two consecutive checks {episodes}")


def shifts(rng: np.random.Generator, trials: int = 20) -> None:
    c = fit(rng)
    reference_accuracy = np.mean([np.mean(model(t["x"]).labels == world(t["x"], rng)) for t in (rows(rng, 5000) for _ in range(10))])
    paged, drops = 0, []
    for _ in range(trials):
        t = rows(rng, 3000, x_sd=1.2)
        drops.append(reference_accuracy - np.mean(model(t["x"]).labels == world(t["x"], rng)))
        paged += verdicts(c, t, rng, labelled=False)["estimated_performance"]
    lower = f"accuracy {min(drops):.3f}-{max(drops):.3f} lower"
    print(f"covariate shift, no labels (3,000 rows, {lower}): paged by the estimate {paged}/{trials}")
    paged = informed = 0
    for _ in range(trials):
        v = verdicts(c, rows(rng, 3000, z_shift=0.5), rng, labelled=False)
        paged += any(v[p] for p in PAGES)
        informed += v["features"]
    print(
        f"z shifted 0.5 sd, accuracy unchanged (3,000 rows, no labels): paged {paged}/{trials}, feature drift reported {informed}/{trials}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--checks", type=int, default=720)
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    control(rng, args.trials)
    quiet_month(rng, args.checks)
    shifts(rng)


if __name__ == "__main__":
    main()
