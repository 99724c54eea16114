"""Inference benchmark: medians of repeated runs in one process, reported as ratios.

    .venv/bin/python benchmarks/bench_inference.py [--repeats 7] [--iterations 300]

Each repeat runs the three in turn; a ratio is the median over the repeats of the ratio within each repeat.

Compares, for 1-row and 1,000-row requests, and 1,000 rows with 3% of the nullable features' values null:
  bare onnxruntime      session.run on prebuilt tensors (the floor)
  bare JSON handler     json.loads -> numpy -> onnxruntime -> json.dumps, no validation (the limit any JSON API reaches)
  full handler          REST v1 event -> Mangum -> Starlette router -> validation -> ONNX -> JSON (capture off)
and cold init (fresh process: import the handler module + load the bundle), median of 5.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devtools.local import LambdaContext, load_handler_module, rest_v1_event  # noqa: E402
from devtools.sample_model import ensure_sample_bundle  # noqa: E402
from modelserve.schema import CATEGORICAL_NULL_TOKEN, FeatureKind  # noqa: E402
from serving.model import make_session  # noqa: E402


def per_call_ms(fns, iterations: int, repeats: int) -> list[list[float]]:
    """ms per call of each of ``fns``, one run of each in turn per repeat: a ratio of two of them is taken within a
    repeat (the same moment of a shared machine), then its median over the repeats."""
    runs: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, runs):
            t = time.perf_counter()
            for _ in range(iterations):
                fn()
            out.append((time.perf_counter() - t) * 1000 / iterations)
    return runs


def median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--iterations", type=int, default=300)
    args = ap.parse_args()

    bundle = ensure_sample_bundle(REPO / "models" / "sample")
    os.environ.update({"MS_MODEL_BUNDLE_PATH": str(bundle.root), "POWERTOOLS_METRICS_DISABLED": "false"})
    handler_mod = load_handler_module("inference")
    gc.freeze()  # what the handler does at the end of init under Lambda (AWS_LAMBDA_RUNTIME_API set)
    features = bundle.manifest.features
    ref = [r["inputs"] for r in bundle.reference_rows()]
    session = make_session(bundle.model_path)

    def feed_of(rows):
        feed = {}
        for f in features:
            vals = [r[f.name] for r in rows]
            if f.kind is FeatureKind.CATEGORICAL:
                feed[f.name] = np.array([CATEGORICAL_NULL_TOKEN if v is None else v for v in vals], dtype=object).reshape(-1, 1)
            else:
                feed[f.name] = np.array([np.nan if v is None else v for v in vals], dtype=np.float32).reshape(-1, 1)
        return feed

    def bare_json(body: str) -> str:
        rows = json.loads(body)["instances"]
        labels, probs = session.run(None, feed_of(rows))
        return json.dumps({"predictions": labels.tolist(), "probabilities": probs.tolist()})

    ctx = LambdaContext.fresh()
    print(f"model {bundle.manifest.model_name} {bundle.manifest.version}; medians of {args.repeats} runs")
    print(f"{'rows':>14} {'bare ort ms':>12} {'bare JSON ms':>13} {'handler ms':>11} {'handler/ort':>12} {'handler/JSON':>13}")
    nullable = [f.name for f in features if f.nullable]
    for n, null_share in ((1, 0.0), (1000, 0.0), (1000, 0.03)):
        rows = [dict(ref[i % len(ref)]) for i in range(n)]
        rng = np.random.default_rng(0)
        for r in rows:
            for name in nullable:
                if rng.random() < null_share:
                    r[name] = None
        body = json.dumps({"instances": rows})
        feed = feed_of(rows)
        event = rest_v1_event("POST", "/predict", body.encode(), {"content-type": "application/json"})
        iters = args.iterations if n == 1 else max(10, args.iterations // 10)
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink):  # the EMF lines Lambda would log
            assert handler_mod.handler(event, ctx)["statusCode"] == 200
            ort, bare, full = per_call_ms(
                [lambda: session.run(None, feed), lambda: bare_json(body), lambda: handler_mod.handler(event, ctx)], iters, args.repeats
            )
            sink.truncate(0)
        label = f"{n}" if not null_share else f"{n}, {null_share:.0%} null"
        ort_ms, json_ms, handler_ms = map(statistics.median, (ort, bare, full))
        print(
            f"{label:>14} {ort_ms:>12.4f} {json_ms:>13.4f} {handler_ms:>11.4f} {median_ratio(full, ort):>12.2f} "
            f"{median_ratio(full, bare):>13.2f}"
        )

    code = (
        f"import time,sys; t=time.perf_counter(); sys.path.insert(0, {str(REPO)!r});"
        "from devtools.local import load_handler_module; load_handler_module('inference');"
        "print((time.perf_counter()-t)*1000)"
    )
    env = dict(os.environ, MS_MODEL_BUNDLE_PATH=str(bundle.root))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode written once and read, as the asset ships it
    subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)  # writes the bytecode
    colds = []
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        colds.append(float(out.stdout.strip().splitlines()[-1]))
    print(f"cold init (import handler + load bundle, warm bytecode cache): median {statistics.median(colds):.0f} ms of 5")
    with tempfile.TemporaryDirectory() as tmp:  # no usable bytecode: what Lambda pays if .pyc is not shipped
        env_nobc = dict(env, PYTHONPYCACHEPREFIX=tmp, PYTHONDONTWRITEBYTECODE="1")
        colds = []
        for _ in range(3):
            out = subprocess.run([sys.executable, "-c", code], env=env_nobc, capture_output=True, text=True, check=True)
            colds.append(float(out.stdout.strip().splitlines()[-1]))
    print(f"cold init without bytecode (every import compiled): median {statistics.median(colds):.0f} ms of 3")


if __name__ == "__main__":
    main()
