"""Load on `make run`'s local gateway: 20 concurrent clients, requests/s, p50/p99, errors, and
every successful prediction captured (objects in the capture bucket == 200 answers).

    python benchmarks/bench_load.py                       # 20 clients, 2000 requests
    python benchmarks/bench_load.py --clients 50 --requests 5000 --rows 10

Everything runs in this process as `make run` does: moto's S3 server on 127.0.0.1, the local
gateway (devtools/local.py: REST v1 events to the real Lambda handler, ``concurrency`` handler
calls at once, like Lambda instances) and an async httpx client. The figures are this machine's
(loopback, moto, the client sharing the CPU), not API Gateway + Lambda's; they show the gateway
serves concurrent clients and that no scored request goes uncaptured under load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _bundle_dir() -> Path:
    from devtools.sample_model import checkout_or_temporary_sample_bundle

    return checkout_or_temporary_sample_bundle().root


async def _load(url: str, bodies: list[bytes], clients: int, total: int) -> tuple[list[float], dict[int, int], float]:
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < total:
            i = next_index
            next_index += 1
            started = time.perf_counter()
            try:
                resp = await http.post(f"{url}/predict", content=bodies[i % len(bodies)], headers={"content-type": "application/json"})
                status = resp.status_code
            except httpx.HTTPError:
                status = 0  # no answer at all
            latencies.append((time.perf_counter() - started) * 1000.0)
            statuses[status] = statuses.get(status, 0) + 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
        await http.get(f"{url}/health")  # warm: the first call pays for imports on the handler's path
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return latencies, statuses, elapsed


def _captured_objects(bucket: str) -> int:
    import boto3

    n = 0
    for page in boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="captures/"):
        n += len(page.get("Contents", []))
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rows", type=int, default=1, help="rows per request")
    ap.add_argument("--concurrency", type=int, default=4, help="handler calls at once in the gateway (Lambda instances)")
    args = ap.parse_args()

    from devtools.local import local_stack

    env = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}
    with local_stack(_bundle_dir(), env, concurrency=args.concurrency, with_drift_check=False) as stack:
        ref = [r["inputs"] for r in stack.inference.bundle.reference_rows()]
        bodies = [json.dumps({"instances": [ref[(i + k) % len(ref)] for k in range(args.rows)]}).encode() for i in range(64)]
        latencies, statuses, elapsed = asyncio.run(_load(stack.gateway.url, bodies, args.clients, args.requests))
        captured = _captured_objects(stack.bucket)

    ok = statuses.get(200, 0)
    errors = args.requests - ok
    q = statistics.quantiles(latencies, n=100)
    print(
        f"{args.requests} POST /predict ({args.rows} row(s) each), {args.clients} clients, gateway concurrency {args.concurrency}, "
        f"cpus {os.cpu_count()}; S3 = moto server on loopback"
    )
    print(f"  requests/s      {args.requests / elapsed:8.1f}   ({elapsed:.1f} s)")
    print(f"  latency p50     {q[49]:8.1f} ms")
    print(f"  latency p99     {q[98]:8.1f} ms")
    print(f"  errors          {errors:8d}   statuses {dict(sorted(statuses.items()))}")
    print(f"  captured        {captured:8d}   objects, for {ok} successful requests")
    if errors or captured != ok:
        print("FAIL: errors under load, or a successful request without its capture object", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
