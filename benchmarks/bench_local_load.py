"""The local server (``make run``'s path: the real handler behind the local gateway, captures on the writer
pool, moto S3 in-process) under concurrent clients: answers, errors, captures against answers, p50/p99;
then the same with the local S3 stalled (every capture PUT held at the boto level, as a SIGSTOPped S3
holds its connections) for a stretch in the middle of the run. The clients run in a process of their own.

    .venv/bin/python benchmarks/bench_local_load.py                      # 24 clients, 60 s, S3 stalled 20 s, 3 runs
    .venv/bin/python benchmarks/bench_local_load.py --seconds 20 --runs 1
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.local import local_stack, post_json  # noqa: E402
from devtools.sample_model import resolve_bundle  # noqa: E402

ENV = {"MS_CAPTURE_MODE": "thread", "POWERTOOLS_METRICS_DISABLED": "true"}  # as `make run` sets them


def _clients(url: str, clients: int, seconds: float, rows: list[dict[str, Any]], out: Any) -> None:
    """``clients`` threads posting one-row requests until ``seconds`` have passed: (ok, seconds) of each."""
    from concurrent.futures import ThreadPoolExecutor

    deadline = time.monotonic() + seconds

    def client(c: int) -> list[tuple[bool, float]]:
        done, i = [], 0
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                status, _ = post_json(f"{url}/predict", {"instances": [rows[(c + i) % len(rows)]]}, timeout=60)
            except OSError:  # a reset or refused connection
                status = 0
            done.append((status == 200, time.monotonic() - started))
            i += 1
        return done

    with ThreadPoolExecutor(clients) as pool:
        out.send([r for rs in pool.map(client, range(clients)) for r in rs])


def _captures(bucket: str) -> int:
    import boto3

    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="captures/")
    return sum(page.get("KeyCount", 0) for page in pages)


def one_run(bundle: Path, clients: int, seconds: float, stall_s: float, n: int) -> dict[str, float]:
    rows = [dict(r["inputs"]) for r in __import__("modelserve.bundle").bundle.ModelBundle.load(bundle).reference_rows()[:100]]
    bucket = f"bench-local-load-{n}-{int(stall_s)}"
    with local_stack(bundle, ENV, bucket=bucket, with_drift_check=False) as stack:
        budget = stack.inference.serving.capture_budget_s
        if stall_s:
            start = time.monotonic() + (seconds - stall_s) / 2
            end = start + stall_s

            def stalled(**_: Any) -> None:
                now = time.monotonic()
                if start <= now < end:
                    time.sleep(end - now)

            stack.inference.service.capturer.sink.client.get().meta.events.register("before-send.s3.PutObject", stalled)
        ctx = mp.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_clients, args=(stack.gateway.url, clients, seconds, rows, send))
        proc.start()
        results = receive.recv()
        proc.join()
        executor = stack.inference.capture_executor
        executor.close(timeout=120)
        latencies = sorted(t for _, t in results)
        return {
            "answers": sum(ok for ok, _ in results),
            "errors": sum(not ok for ok, _ in results),
            "captures": _captures(bucket),
            "dropped": executor.dropped,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
            "max_ms": 1000 * latencies[-1],
            "budget_s": budget,
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--stall-s", type=float, default=20.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bundle", default=None)
    args = ap.parse_args(argv)
    bundle = Path(resolve_bundle(args.bundle))
    print(f"{args.clients} clients, {args.seconds:.0f} s per run, {args.runs} runs; S3 stalled {args.stall_s:.0f} s mid-run in the second")
    print("| S3 | run | answers | errors | captures | dropped | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, stall in (("healthy", 0.0), (f"stalled {args.stall_s:.0f} s", args.stall_s)):
        runs = []
        for n in range(args.runs):
            r = one_run(bundle, args.clients, args.seconds, stall, n)
            runs.append(r)
            print(
                f"| {label} | {n + 1} | {r['answers']:,} | {r['errors']:,} | {r['captures']:,} | {r['dropped']:,} "
                f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.0f} |",
                flush=True,
            )
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"| {label} | median | {med['answers']:,.0f} | {med['errors']:,.0f} | {med['captures']:,.0f} | {med['dropped']:,.0f} "
            f"| {med['p50_ms']:.1f} | {med['p99_ms']:.1f} | {med['max_ms']:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
