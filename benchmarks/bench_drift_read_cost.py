"""A drift check's time and S3 requests as unrelated traffic and feedback grow.

    python benchmarks/bench_drift_read_cost.py                      # 10k rows in the 24 h window; unrelated x0, x2, x8
    python benchmarks/bench_drift_read_cost.py --rows 5000 --unrelated 0,4,16

In-process moto (``mock_aws``). The window: the 24 h ending at a past half hour, ``--rows`` capture
rows of the sample penguins model in 10-row objects, spread evenly. "Unrelated" traffic, k times the
window's: captures in the same bucket outside the window (the day before it) and feedback objects
received outside the label span (days before the window and after the span). Each case runs the
check (``DriftService.run``, both windows: 24 h and 1 h, reports, metrics) three times on one
service (a warm Lambda instance keeps it): "cold" (no hour samples or labels objects stored yet, the
noise gates of the window's sizes not fitted yet) and "warm" twice (what every later scheduled run pays).
S3 requests are counted with botocore's ``before-call`` event hook on the service's client. BLAS single-threaded, as on Lambda.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from devtools.local import FAKE_AWS_ENV  # noqa: E402 - after the sys.path line

os.environ.update(FAKE_AWS_ENV)  # never a real account

BUCKET = "bench-read-cost"
END = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
ROWS_PER_OBJECT = 10


def put_captures(s3: Any, bundle: Any, start: datetime, end: datetime, rows: int, rng: random.Random) -> None:
    from modelserve.records import CaptureRecord, capture_key, encode_jsonl_gz, utc_iso

    m, reference = bundle.manifest, bundle.reference_rows()
    n = max(1, rows // ROWS_PER_OBJECT)
    step = (end - start) / n
    for i in range(n):
        at = start + step * i
        rid = f"r{rng.random():.12f}"
        records = [
            CaptureRecord(
                rid, j, utc_iso(at), m.model_name, m.version, "bench", dict(ref["inputs"]), ref["prediction"], ref["probabilities"]
            )
            for j, ref in enumerate(rng.choice(reference) for _ in range(ROWS_PER_OBJECT))
        ]
        s3.put_object(Bucket=BUCKET, Key=capture_key(m.model_name, m.version, at, rid), Body=encode_jsonl_gz(records))


def put_feedback(s3: Any, bundle: Any, at: datetime, n: int, rng: random.Random) -> None:
    from modelserve.records import FeedbackRecord, encode_jsonl_gz, feedback_key, utc_iso

    name = bundle.manifest.model_name
    records = [FeedbackRecord(f"other-{rng.random()}", 0, "Adelie", utc_iso(at), name) for _ in range(n)]
    s3.put_object(Bucket=BUCKET, Key=feedback_key(name, at, f"fb{rng.random():.12f}"), Body=encode_jsonl_gz(records))


def case(bundle: Any, rows: int, unrelated: int) -> list[dict[str, Any]]:
    import boto3
    from moto import mock_aws

    from driftcheck.drift_service import DriftService
    from modelserve.settings import DriftSettings

    rng = random.Random(unrelated)
    out = []
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        put_captures(s3, bundle, END - timedelta(hours=24), END, rows, rng)
        for k in range(unrelated):
            put_captures(s3, bundle, END - timedelta(hours=48), END - timedelta(hours=24), rows, rng)  # the day before
            for h in range(24):  # feedback received outside the label span [window start, end + 1 day)
                put_feedback(s3, bundle, END - timedelta(days=3, hours=h, minutes=k), rows // 240, rng)
                put_feedback(s3, bundle, END + timedelta(days=2, hours=h, minutes=k), rows // 240, rng)
        client = boto3.client("s3")
        calls: Counter[str] = Counter()
        client.meta.events.register("before-call.s3", lambda model, **_: calls.update([model.name]))
        # one service for both runs, as a warm Lambda instance keeps it (and its per-size noise gates)
        service = DriftService(
            bundle, DriftSettings(metrics_namespace="Bench", audit_sample_rows=0), client, boto3.client("cloudwatch"), BUCKET
        )
        for label in ("cold", "warm", "warm"):
            calls.clear()
            t0 = time.perf_counter()
            run = service.run({"time": END.strftime("%Y-%m-%dT%H:%M:%SZ")})
            seconds = time.perf_counter() - t0
            out.append(
                {
                    "unrelated": unrelated,
                    "run": label,
                    "rows": run.window.rows_seen,
                    "s": seconds,
                    "GET": calls["GetObject"],
                    "LIST": calls["ListObjectsV2"],
                    "HEAD": calls["HeadObject"],
                    "PUT": calls["PutObject"],
                }
            )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000, help="capture rows in the 24 h window")
    p.add_argument("--unrelated", default="0,2,8", help="unrelated traffic and feedback, as multiples of the window's")
    args = p.parse_args()

    import tempfile

    from devtools.sample_model import build_sample_bundle

    bundle = build_sample_bundle(Path(tempfile.mkdtemp()) / "sample")
    print(f"{'unrelated':>9} {'run':>5} {'rows':>6} {'check s':>8} {'GET':>5} {'LIST':>5} {'HEAD':>5} {'PUT':>4}")
    for k in (int(x) for x in args.unrelated.split(",")):
        for r in case(bundle, args.rows, k):
            print(
                f"{'x' + str(r['unrelated']):>9} {r['run']:>5} {r['rows']:>6} {r['s']:>8.2f} "
                f"{r['GET']:>5} {r['LIST']:>5} {r['HEAD']:>5} {r['PUT']:>4}"
            )


if __name__ == "__main__":
    main()
