"""Warm-path cost of capture per request: the real inference handler with capture on vs off.

    python benchmarks/bench_capture.py                 # 1-row and 100-row requests
    python benchmarks/bench_capture.py --runs 9 --requests 100

S3 is moto, in-process (no network, no account): the figures are the CPU cost of capture in
this process (building the records, JSON + gzip, the botocore PutObject call path and moto's
handling of it), not S3's round trip, which adds its own latency in AWS (typically tens of ms
for a small PutObject in-region). For each configuration the handler module is imported once
(as Lambda's init) and warmed; then each run times ``--requests`` invocations with capture on
and off, interleaved, and takes the median; the figure is the median over runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from datetime import UTC
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BUCKET = "modelserve-bench-captures"


def _env(bundle_root: str, capture: bool) -> None:
    for k in list(os.environ):
        if k.startswith("MS_"):
            del os.environ[k]
    os.environ["MS_MODEL_BUNDLE_PATH"] = bundle_root
    if capture:  # what this measures is the s3 sink's PutObject
        os.environ["MS_CAPTURE_BUCKET"] = BUCKET
        os.environ["MS_CAPTURE_SINK"] = "s3"


def _bundle() -> Any:
    from devtools.sample_model import checkout_or_temporary_sample_bundle

    return checkout_or_temporary_sample_bundle()


def _time_one(handler: Any, ev: dict, ctx: Any) -> float:
    t0 = time.perf_counter()
    resp = handler(ev, ctx)
    dt = time.perf_counter() - t0
    assert resp["statusCode"] == 200, resp
    return dt


def bench(runs: int, requests: int) -> None:
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        os.environ[k] = v
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("AWS_PROFILE", None)

    import boto3
    from moto import mock_aws

    from devtools.local import LambdaContext, load_handler_module
    from modelserve.records import encode_jsonl_gz
    from tests.support import event

    bundle = _bundle()
    ref = [r["inputs"] for r in bundle.reference_rows()]
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        root = str(Path(bundle.root).resolve())
        _env(root, capture=False)
        off = load_handler_module("inference")
        _env(root, capture=True)
        on = load_handler_module("inference")
        ctx = LambdaContext.fresh("inference")
        print(
            f"model {bundle.manifest.model_name} {bundle.manifest.version}; {runs} runs x {requests} requests per configuration; "
            f"S3 = moto in-process"
        )
        sink = io.StringIO()  # EMF / log lines: printed as on Lambda, but not to the terminal
        for n_rows in (1, 100):
            body = {"instances": [ref[i % len(ref)] for i in range(n_rows)]}
            evs = [event("rest_v1", "POST", "/predict", body, request_id=f"bench-{n_rows}-{i}") for i in range(requests)]
            med_on, med_off, med_build, med_put = [], [], [], []
            with contextlib.redirect_stdout(sink):
                for mod in (off, on):  # warm: first-call costs (imports, connection setup) out of the figures
                    for ev in evs[:10]:
                        _time_one(mod.handler, ev, ctx)
                capturer = on.service.capturer
                table = on.service.validator.validate(body)
                pred = on.service.runner.predict(table)
                for _ in range(runs):
                    t_on, t_off = [], []
                    for ev in evs:
                        t_off.append(_time_one(off.handler, ev, ctx))
                        t_on.append(_time_one(on.handler, ev, ctx))
                    med_on.append(statistics.median(t_on))
                    med_off.append(statistics.median(t_off))
                    # breakdown: our CPU work (records + JSON + gzip) vs the PutObject call into moto
                    t_b, t_p = [], []
                    for i in range(min(requests, 50)):
                        t0 = time.perf_counter()
                        recs = capturer.records(f"b{i}", _now(), table, pred.labels, pred.probabilities)
                        data = encode_jsonl_gz(recs)
                        t1 = time.perf_counter()
                        capturer.sink.client.put_object(Bucket=BUCKET, Key=f"bench/{n_rows}/{i}", Body=data)
                        t2 = time.perf_counter()
                        t_b.append(t1 - t0)
                        t_p.append(t2 - t1)
                    med_build.append(statistics.median(t_b))
                    med_put.append(statistics.median(t_p))
                sink.seek(0)
                sink.truncate()
            m_on, m_off = statistics.median(med_on) * 1e3, statistics.median(med_off) * 1e3
            print(
                f"{n_rows:>3}-row request: capture off {m_off:7.3f} ms, on {m_on:7.3f} ms, "
                f"added {m_on - m_off:6.3f} ms/request, ratio on/off {m_on / m_off:5.2f}x "
                f"(run medians off {min(med_off) * 1e3:.3f}..{max(med_off) * 1e3:.3f}, "
                f"on {min(med_on) * 1e3:.3f}..{max(med_on) * 1e3:.3f} ms)"
            )
            print(
                f"      of which: records + JSON + gzip {statistics.median(med_build) * 1e3:6.3f} ms, "
                f"PutObject into moto {statistics.median(med_put) * 1e3:6.3f} ms (object {len(data):,} bytes)"
            )


def _now() -> Any:
    from datetime import datetime

    return datetime.now(UTC)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7, help="repeated runs; the figure is the median over runs")
    ap.add_argument("--requests", type=int, default=60, help="handler invocations per run and configuration")
    args = ap.parse_args()
    bench(args.runs, args.requests)


if __name__ == "__main__":
    main()
