"""Capture before vs after the answer, under the real Lambda runtime client (awslambdaric).

    python benchmarks/bench_post_response.py                      # 1,000 invocations per mode, 20 ms S3
    python benchmarks/bench_post_response.py --invocations 200 --delay-ms 50

The real inference handler runs under awslambdaric in a subprocess, against the local Lambda of
tests/lambda_emulator.py (Runtime API + Extensions API on 127.0.0.1, the process frozen between
invocations as Lambda does). S3 is moto server behind a proxy adding a fixed delay per request,
standing in for an in-Region PutObject. Per invocation, measured by the emulator from the moment
it hands the event over:
  (a) answer  - the runtime posted the response (what API Gateway waits for)
  (b) end     - the runtime and every extension asked for the next event (what Lambda bills;
                the environment takes no other request until then)
Modes: capture off (no bucket), sync (write before the answer), extension (post-response), logs
(``capture_sink=logs``: one line per row on stdout, written before the answer; no network call).
For logs, "captures stored" counts the capture lines of each measured request in the function's
output (what Lambda forwards to CloudWatch Logs): every 200 must leave exactly one line per row.
Invocations start at a fixed period (``--period-ms``), as requests arrive apart: back to back, a
process that was never idle answers faster (warm caches) and the modes would not compare.
Cold start: process start -> init done (runtime and extension ready) -> first answer, through
awslambdaric, next to the in-process figure (a fresh process importing the handler module).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.local import FAKE_AWS_ENV as AWS_ENV  # noqa: E402 - after the sys.path line

MODES = ("off", "sync", "extension", "logs")


def _bundle() -> Any:
    from devtools.sample_model import checkout_or_temporary_sample_bundle

    return checkout_or_temporary_sample_bundle()


def _env(bundle: Any, proxy_url: str, bucket: str, mode: str) -> dict[str, str]:
    env = {**AWS_ENV, "AWS_ENDPOINT_URL": proxy_url, "MS_MODEL_BUNDLE_PATH": str(bundle.root)}
    if mode == "logs":
        env |= {"MS_CAPTURE_BUCKET": bucket, "MS_CAPTURE_SINK": "logs", "MS_CAPTURE_MODE": "sync"}
    elif mode != "off":  # sync and extension: the s3 sink's PutObject, before or after the answer
        env |= {"MS_CAPTURE_BUCKET": bucket, "MS_CAPTURE_SINK": "s3", "MS_CAPTURE_MODE": mode}
    return env


def _lines_per_request(log: Path, mode: str) -> dict[str, int]:
    """Capture lines per measured request id in the function's output (capture_sink=logs)."""
    import json

    counts: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith('{"record_type":"captures"'):
            rid = json.loads(line)["request_id"]
            if rid.startswith(f"{mode}-"):
                counts[rid] = counts.get(rid, 0) + 1
    return counts


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def _ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1e3:7.2f}  p99 {_p(values, 99) * 1e3:7.2f}"


def _in_process_init(bundle: Any, bucket: str) -> float:
    """A fresh Python importing the handler module (bundle, ONNX session, clients): the in-process figure."""
    code = (
        f"import time,sys; t=time.perf_counter(); sys.path.insert(0, {str(REPO)!r});"
        "from devtools.local import load_handler_module; load_handler_module('inference');"
        "print((time.perf_counter()-t)*1000)"
    )
    env = dict(
        os.environ, **AWS_ENV, MS_MODEL_BUNDLE_PATH=str(bundle.root), MS_CAPTURE_BUCKET=bucket, AWS_ENDPOINT_URL="http://127.0.0.1:9"
    )
    env.pop("AWS_LAMBDA_RUNTIME_API", None)
    return float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()[-1])


def bench(args: argparse.Namespace) -> None:
    from devtools.local import moto_server

    with moto_server() as endpoint:
        bench_against(args, endpoint)


def bench_against(args: argparse.Namespace, endpoint: str) -> None:
    """The benchmark with S3 = the moto server at ``endpoint`` behind the delay proxy."""
    import boto3

    from modelserve.records import model_capture_prefix
    from tests.lambda_emulator import DelayProxy, LambdaEmulator
    from tests.support import event

    bundle = _bundle()
    m = bundle.manifest
    ref = [r["inputs"] for r in bundle.reference_rows()]
    body = {"instances": [ref[i % len(ref)] for i in range(args.rows)]}
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    proxy = DelayProxy(endpoint, args.delay_ms / 1000)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-post-response-"))
    print(
        f"model {m.model_name} {m.version}; {args.rows}-row requests; S3 = moto server behind a {args.delay_ms:g} ms proxy; "
        f"{args.invocations} invocations per mode, one every {args.period_ms:g} ms, after {args.warmup} warm-up; "
        "awslambdaric, environment frozen between invocations"
    )
    results: dict[str, tuple[list[float], list[float]]] = {}
    try:
        print(f"\n{'mode':<10} {'(a) answer posted, ms':<32} {'(b) invocation end, ms':<32} captures stored")
        for mode in MODES:
            bucket = f"bench-{uuid.uuid4().hex[:10]}"
            s3.create_bucket(Bucket=bucket)
            with LambdaEmulator(_env(bundle, proxy.url, bucket, mode), log_path=log_dir / f"{mode}.log") as emu:
                for i in range(args.warmup):
                    emu.invoke(event("rest_v1", "POST", "/predict", body, request_id=f"warm-{i}"))
                invs = []
                start = time.perf_counter()
                for i in range(args.invocations):
                    time.sleep(max(0.0, start + i * args.period_ms / 1000 - time.perf_counter()))
                    inv = emu.invoke(event("rest_v1", "POST", "/predict", body, request_id=f"{mode}-{i}"))
                    assert inv.payload and inv.payload["statusCode"] == 200, inv.payload
                    invs.append(inv)
            # counted after the environment was shut down, right after its last invocation
            keys = [
                o["Key"]
                for page in s3.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=model_capture_prefix(m.model_name, m.version)
                )
                for o in page.get("Contents", [])
            ]
            stored = sum(1 for k in keys if not k.rsplit("/", 1)[-1].split("-", 1)[-1].startswith("warm-"))
            if mode == "logs":
                lines = _lines_per_request(log_dir / f"{mode}.log", mode)
                stored = sum(1 for i in range(len(invs)) if lines.get(f"{mode}-{i}") == args.rows)
            a, b = [i.response_s for i in invs], [i.end_s for i in invs]
            results[mode] = (a, b)
            print(f"{mode:<10} {_ms(a):<32} {_ms(b):<32} {'-' if mode == 'off' else f'{stored} of {len(invs)}'}")
        off_a = statistics.median(results["off"][0])
        off_b = statistics.median(results["off"][1])
        for mode in ("sync", "extension", "logs"):
            a, b = results[mode]
            print(
                f"capture ({mode}) adds {statistics.median(a) * 1e3 - off_a * 1e3:+.2f} ms to (a) "
                f"and {statistics.median(b) * 1e3 - off_b * 1e3:+.2f} ms to (b) at the median"
            )

        # interleaved, round by round: this machine's load drifts more than the modes differ
        print(f"\ncold start (median of {args.cold} fresh environments per mode, interleaved; spawn = process start)")
        inits: dict[str, list[float]] = {"sync": [], "extension": []}
        firsts: dict[str, list[float]] = {"sync": [], "extension": []}
        in_process: list[float] = []
        for _ in range(args.cold):
            for mode in inits:
                bucket = f"bench-{uuid.uuid4().hex[:10]}"
                s3.create_bucket(Bucket=bucket)
                with LambdaEmulator(_env(bundle, proxy.url, bucket, mode), log_path=log_dir / f"cold-{mode}.log") as emu:
                    inv = emu.invoke(event("rest_v1", "POST", "/predict", body, request_id="cold"))
                    assert emu.init_s is not None and inv.responded_at is not None
                    inits[mode].append(emu.init_s)
                    firsts[mode].append(inv.responded_at - emu.spawned_at)
            in_process.append(_in_process_init(bundle, "bench"))
        for mode in inits:
            print(
                f"  awslambdaric, {mode:<10} spawn -> init done {statistics.median(inits[mode]) * 1e3:6.0f} ms; "
                f"spawn -> first answer {statistics.median(firsts[mode]) * 1e3:6.0f} ms"
            )
        print(f"  in-process: a fresh python importing the handler module {statistics.median(in_process):6.0f} ms (no runtime client)")
    finally:
        proxy.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--invocations", type=int, default=1000, help="measured invocations per mode")
    ap.add_argument("--warmup", type=int, default=20, help="invocations per mode before measuring")
    ap.add_argument("--delay-ms", type=float, default=20.0, help="what the proxy adds in front of moto per request")
    ap.add_argument("--period-ms", type=float, default=60.0, help="one invocation starts every this often (when the last has ended)")
    ap.add_argument("--rows", type=int, default=1, help="rows per request")
    ap.add_argument("--cold", type=int, default=3, help="fresh environments for the cold-start figure")
    args = ap.parse_args()
    t0 = time.perf_counter()
    bench(args)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
