"""The local server (``make run``'s path: the real handler behind the local gateway, captures on the writer
pool, moto S3 in-process) under concurrent clients: answers, errors, connection errors (resets, refusals,
broken pipes: per minute too), captures against answers, p50/p99; then the same with the local S3 stalled
(every capture PUT held at the boto level, as a SIGSTOPped S3 holds its connections) for a stretch in the
middle of the run. The clients run in a process of their own, a new connection per request (as urllib and
curl) or one kept-alive connection each (as load tools and SDKs).

    .venv/bin/python benchmarks/bench_local_load.py                      # 24 clients, 60 s, S3 stalled 20 s, 3 runs
    .venv/bin/python benchmarks/bench_local_load.py --seconds 20 --runs 1
    .venv/bin/python benchmarks/bench_local_load.py --clients 24 48 --connections new keep-alive --stall-s 0   # resets only
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.local import local_stack, post_json  # noqa: E402
from devtools.sample_model import resolve_bundle  # noqa: E402

DRAIN_LIMIT_S = 900.0  # how long the captures still queued when the clients stop may take to be written
ENV = {"MS_CAPTURE_MODE": "thread", "POWERTOOLS_METRICS_DISABLED": "true"}  # as `make run` sets them


def _post_new_connection(url: str, payload: Any) -> int:
    status, _ = post_json(url, payload, timeout=60)
    return status


class _KeptAlive:
    """One client's HTTP/1.1 connection, reused from request to request; reopened after a connection error."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
        self.conn: http.client.HTTPConnection | None = None

    def post(self, url: str, payload: Any) -> int:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            self.conn.request("POST", urlsplit(url).path, body=json.dumps(payload), headers={"content-type": "application/json"})
            resp = self.conn.getresponse()
            resp.read()
            return resp.status
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise


def _clients(url: str, clients: int, seconds: float, keep_alive: bool, rows: list[dict[str, Any]], out: Any) -> None:
    """``clients`` threads posting one-row requests until ``seconds`` have passed: (status, seconds) of each,
    status 0 for a connection error (reset, refused, broken pipe, a connection closed without an answer)."""
    from concurrent.futures import ThreadPoolExecutor

    deadline = time.monotonic() + seconds

    def client(c: int) -> list[tuple[int, float]]:
        post = _KeptAlive(url).post if keep_alive else _post_new_connection
        done, i = [], 0
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                status = post(f"{url}/predict", {"instances": [rows[(c + i) % len(rows)]]})
            except (OSError, http.client.HTTPException):
                status = 0
            done.append((status, time.monotonic() - started))
            i += 1
        return done

    with ThreadPoolExecutor(clients) as pool:
        out.send([r for rs in pool.map(client, range(clients)) for r in rs])


def _captures(bucket: str) -> int:
    import boto3

    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="captures/")
    return sum(page.get("KeyCount", 0) for page in pages)


def one_run(bundle: Path, clients: int, seconds: float, stall_s: float, n: int, keep_alive: bool = False) -> dict[str, float]:
    rows = [dict(r["inputs"]) for r in __import__("modelserve.bundle").bundle.ModelBundle.load(bundle).reference_rows()[:100]]
    bucket = f"bench-local-load-{n}-{int(stall_s)}-{clients}-{int(keep_alive)}"
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
        proc = ctx.Process(target=_clients, args=(stack.gateway.url, clients, seconds, keep_alive, rows, send))
        proc.start()
        results = receive.recv()
        proc.join()
        executor = stack.inference.capture_executor
        # the writers may lag a burst (the queue holds up to 20,000): wait for them, and say how long it took
        drain_started = time.monotonic()
        drained = executor.close(timeout=DRAIN_LIMIT_S)
        drain_s = time.monotonic() - drain_started if drained else float("inf")
        latencies = sorted(t for _, t in results)
        connection_errors = sum(status == 0 for status, _ in results)
        return {
            "answers": sum(status == 200 for status, _ in results),
            "errors": sum(status not in (0, 200) for status, _ in results),
            "connection_errors": connection_errors,
            "connection_errors_per_min": connection_errors * 60 / seconds,
            "captures": _captures(bucket),
            "dropped": executor.dropped,
            "drain_s": drain_s,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
            "max_ms": 1000 * latencies[-1],
            "budget_s": budget,
        }


def _row(label: str, run: str, r: dict[str, float]) -> str:
    return (
        f"| {label} | {run} | {r['answers']:,.0f} | {r['errors']:,.0f} | {r['connection_errors']:,.0f} "
        f"| {r['connection_errors_per_min']:.1f} | {r['captures']:,.0f} | {r['dropped']:,.0f} "
        f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.0f} | {r['drain_s']:.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[24])
    ap.add_argument("--connections", nargs="+", choices=["new", "keep-alive"], default=["new"])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--stall-s", type=float, default=20.0, help="0: the healthy scenario only")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bundle", default=None)
    args = ap.parse_args(argv)
    bundle = Path(resolve_bundle(args.bundle))
    stalls = [0.0] + ([args.stall_s] if args.stall_s else [])
    print(
        f"{args.seconds:.0f} s per run, {args.runs} runs"
        + (f"; S3 stalled {args.stall_s:.0f} s mid-run in the second" if args.stall_s else "")
    )
    print("| clients, conns, S3 | run | answers | errors | conn. errors | /min | captures | dropped | p50 ms | p99 ms | max ms | drain s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for clients in args.clients:
        for connections in args.connections:
            for stall in stalls:
                label = f"{clients}, {connections}, " + (f"stalled {stall:.0f} s" if stall else "healthy")
                runs = []
                for n in range(args.runs):
                    runs.append(one_run(bundle, clients, args.seconds, stall, n, keep_alive=connections == "keep-alive"))
                    print(_row(label, str(n + 1), runs[-1]), flush=True)
                print(_row(label, "median", {k: statistics.median(r[k] for r in runs) for k in runs[0]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
