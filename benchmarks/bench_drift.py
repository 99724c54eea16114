"""Time and peak memory of the drift check over a 24 h window of 10k, 100k and 1M captured rows.

    python benchmarks/bench_drift.py                                   # 10k, 100k, 1M rows in 1,000-row objects
                                                                       # + 100k rows in 100-row objects
    python benchmarks/bench_drift.py --sizes 10000,100000 --small-objects ''
    python benchmarks/bench_drift.py --sizes 1000000 --rows-per-object 500 --runs 2

S3 and CloudWatch are a moto server in a separate process on 127.0.0.1 (``python -m
moto.server``), so its copy of the objects is not counted in the check's memory. The parent
fills one bucket per case with capture objects of the sample penguins model (records built from
the bundle's reference rows with the numeric inputs jittered by ~1%, keys from ``capture_key``,
objects spread evenly over the 24 hours of the window; ``--rows-per-object`` rows each, on the
small side of a Firehose flush (1M rows a day with a 300 s buffer is ~3,500 rows an object), and
``--small-rows-per-object`` for the ``--small-objects``
sizes to show the per-object cost). Each case then runs in a FRESH subprocess (like a cold
Lambda): it builds ``DriftService`` exactly as the drift-check handler does (bundle, settings,
boto3 clients against the moto endpoint), records its RSS after init, runs
``DriftService.run({"time": <window end>}, read_budget_s=...)`` once (``--runs`` times: the
later runs show whether a warm instance's memory keeps growing) and reports:

- read s: ``read_window`` (listing + parallel GETs + gunzip/JSON parse + reservoir sample) and
  ``read_feedback`` (the feedback labels of the sampled rows);
  within it "list s" (the per-hour LIST calls) and "parse s" (gunzip + JSON of each object, on
  the consuming thread; the GETs overlap it on worker threads);
- check s: building the columns of the sampled rows + ``DriftChecker.check``;
- out s: CloudWatch ``PutMetricData`` + rendering the HTML report + the two report PUTs;
- memory: "init" the RSS of the subprocess after the service was built, "init pk" its
  ``ru_maxrss`` then (imports + fitting the reference profile); the peak is then reset
  (``/proc/self/clear_refs``) so "run pk" is ``ru_maxrss`` of the run alone, and "+run" what
  the run added over the RSS it started with;
- CPU: user+sys seconds of the check process and of the moto server during the run (they
  share the machine's cores, so moto's cost of serving the GETs is part of the wall time here,
  while in AWS it is S3's and the GETs' latency is network round trips).

The read budget defaults to what the handler gives a Lambda with the default
``drift_timeout_s`` (600 s - 60 s reserve = 540 s); a case that runs past it is reported
"partial". BLAS is single-threaded (``OPENBLAS_NUM_THREADS=1``) as on a 1-2 vCPU Lambda.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from devtools.local import FAKE_AWS_ENV as AWS_ENV  # noqa: E402 - after the sys.path line

# the window: the 24 h ending at this EventBridge event time
WINDOW_END = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
WINDOW_HOURS = 24
STAGE = "prod"
POOL = 4096  # distinct pre-serialised (inputs, prediction, probabilities) fragments
MIB = 1024 * 1024


# ---------------------------------------------------------------- helpers


def _bundle_root() -> Path:
    from devtools.sample_model import checkout_or_temporary_sample_bundle

    return Path(checkout_or_temporary_sample_bundle().root)


def _rss_now_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM, which ``ru_maxrss`` reads) to its current RSS
    (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _proc_cpu_s(pid: int) -> float:
    """user + sys CPU seconds of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_moto() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
            return proc, endpoint
        except Exception:  # noqa: BLE001 - not up yet
            if proc.poll() is not None:
                raise RuntimeError("moto server exited at start")
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start")


def _s3(endpoint: str, workers: int = 32) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, config=Config(max_pool_connections=workers), **_creds())


def _creds() -> dict[str, str]:
    return {
        "region_name": AWS_ENV["AWS_REGION"],
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": AWS_ENV["AWS_SESSION_TOKEN"],
    }


# ---------------------------------------------------------------- filling the window


def _fragments(reference_rows: list[dict[str, Any]], seed: int = 7) -> list[str]:
    """Pre-serialised ``"inputs":...,"prediction":...,"probabilities":...`` tails of a capture
    line (the key order of ``CaptureRecord.to_json``), from the reference rows with the
    numeric inputs jittered by ~1%: not an exact copy of the reference, no drift either."""
    rng = random.Random(seed)
    out = []
    for i in range(POOL):
        r = reference_rows[i % len(reference_rows)]
        inputs = {k: (round(v * (1 + rng.gauss(0, 0.01)), 2) if isinstance(v, float) else v) for k, v in r["inputs"].items()}
        tail = json.dumps(
            {"inputs": inputs, "prediction": r["prediction"], "probabilities": r["probabilities"]},
            separators=(",", ":"),
            allow_nan=False,
        )
        out.append(tail[1:])  # without the opening brace; keeps the closing one
    return out


def _object_bodies(model: str, version: str, rows: int, per_object: int, frags: list[str], seed: int):
    """(key, gzip body) per object: ``rows`` rows in objects of ``per_object`` rows, spread
    evenly over the window's hours; each object's rows a few ms apart from its key's time."""
    from modelserve.records import capture_key

    rng = random.Random(seed)
    n_objects = -(-rows // per_object)
    start = WINDOW_END - timedelta(hours=WINDOW_HOURS)
    span_us = WINDOW_HOURS * 3600 * 10**6
    head = f'"model_name":"{model}","model_version":"{version}","stage":"{STAGE}",'
    left = rows
    for o in range(n_objects):
        n = min(per_object, left)
        left -= n
        # object times evenly over the window, at least 1 s before the end for the rows after it
        t0 = start + timedelta(microseconds=(o * (span_us - 10**6)) // n_objects)
        request_id = f"{seed:02d}{o:08d}-bench"
        lines = []
        for i in range(n):
            ts = (t0 + timedelta(microseconds=i * 500)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            lines.append(f'{{"request_id":"{request_id}","row":{i},"event_time":"{ts}",{head}{frags[rng.randrange(POOL)]}\n')
        body = gzip.compress("".join(lines).encode(), compresslevel=5, mtime=0)
        yield capture_key(model, version, t0, request_id), body


def fill_bucket(
    endpoint: str, bucket: str, model: str, version: str, rows: int, per_object: int, frags: list[str], seed: int
) -> tuple[int, int]:
    """Create ``bucket`` and upload the window; returns (objects, gzip bytes)."""
    s3 = _s3(endpoint)
    s3.create_bucket(Bucket=bucket)
    objects = size = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        pending: set = set()
        for key, body in _object_bodies(model, version, rows, per_object, frags, seed):
            if len(pending) >= 32:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    f.result()
            pending.add(pool.submit(s3.put_object, Bucket=bucket, Key=key, Body=body))
            objects += 1
            size += len(body)
        for f in pending:
            f.result()
    return objects, size


# ---------------------------------------------------------------- the check, in a fresh process


def child(args: argparse.Namespace) -> None:
    """One case, in its own process: init as the handler does, then ``--runs`` runs; one JSON line out."""
    os.environ.update(AWS_ENV)
    os.environ["AWS_ENDPOINT_URL"] = args.endpoint
    t_init = time.perf_counter()
    import boto3

    from driftcheck import drift_service as ds
    from driftcheck import window_reader
    from modelserve.bundle import ModelBundle
    from modelserve.settings import DriftSettings

    settings = DriftSettings(sample_cap=args.sample_cap, window_hours=WINDOW_HOURS)
    bundle = ModelBundle.load(args.bundle)
    service = ds.DriftService(bundle, settings, boto3.client("s3"), boto3.client("cloudwatch"), args.bucket)
    init_s = time.perf_counter() - t_init
    rss_init = _rss_now_kib()
    peak_init = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    resettable = _reset_peak()  # from here ru_maxrss is the run's own peak, not init's

    # timing wrappers around the stages (one run: no second read of the window for the split)
    acc: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                acc[name] = acc.get(name, 0.0) + time.perf_counter() - t0

        return wrapper

    ds.read_window = timed("read", ds.read_window)
    ds.read_feedback = timed("read", ds.read_feedback)
    window_reader.list_slice_keys = timed("list", window_reader.list_slice_keys)
    # the per-object parse (gunzip + JSON), on the consuming thread
    window_reader.decode_jsonl = timed("parse", window_reader.decode_jsonl)
    ds.scored_sample = timed("check", ds.scored_sample)
    service.checker.check = timed("check", service.checker.check)
    service.publish = timed("out", service.publish)
    ds.render_html = timed("out", ds.render_html)
    service._put = timed("out", service._put)

    runs = []
    for _ in range(args.runs):
        acc.clear()
        _reset_peak()
        rss_before = _rss_now_kib()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        moto0 = _proc_cpu_s(args.moto_pid)
        t0 = time.perf_counter()
        run = service.run({"time": WINDOW_END.strftime("%Y-%m-%dT%H:%M:%SZ")}, read_budget_s=args.read_budget)
        total = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        s = run.summary(args.bucket)
        runs.append(
            {
                "total_s": total,
                **{f"{k}_s": v for k, v in acc.items()},
                "rows_seen": s["rows_seen"],
                "rows_checked": s["rows_checked"],
                "objects_read": s["objects_read"],
                "objects_listed": run.window.objects_listed,
                "corrupt_objects": s["corrupt_objects"],
                "partial": s["partial_window"],
                "dataset_drift": s["dataset_drift"],
                "drift_share": s["drift_share"],
                "cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
                "moto_cpu_s": _proc_cpu_s(args.moto_pid) - moto0,
                "rss_before_kib": rss_before,
                "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "rss_after_kib": _rss_now_kib(),
            }
        )
    print(json.dumps({"init_s": init_s, "rss_init_kib": rss_init, "peak_init_kib": peak_init, "peak_reset": resettable, "runs": runs}))


# ---------------------------------------------------------------- driver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000", help="window sizes in rows, comma-separated")
    ap.add_argument("--rows-per-object", type=int, default=1000, help="rows per capture object (Firehose-sized)")
    ap.add_argument("--small-objects", default="100000", help="sizes also run with --small-rows-per-object ('' for none)")
    ap.add_argument("--small-rows-per-object", type=int, default=100, help="rows per object of the --small-objects cases")
    ap.add_argument("--sample-cap", type=int, default=10_000, help="DriftSettings.sample_cap (reservoir size)")
    ap.add_argument("--runs", type=int, default=1, help="drift-check runs per fresh process (later runs: warm instance)")
    ap.add_argument("--read-budget", type=float, default=540.0, help="read_budget_s (handler: timeout 600 s - 60 s reserve)")
    ap.add_argument("--json", help="also write the raw results to this file")
    # internal: one case in a fresh process
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--endpoint", help=argparse.SUPPRESS)
    ap.add_argument("--bucket", help=argparse.SUPPRESS)
    ap.add_argument("--bundle", help=argparse.SUPPRESS)
    ap.add_argument("--moto-pid", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    cases = [(int(s), args.rows_per_object) for s in args.sizes.split(",") if s.strip()]
    cases += [(int(s), args.small_rows_per_object) for s in args.small_objects.split(",") if s.strip()]

    from modelserve.bundle import ModelBundle

    bundle_root = _bundle_root()
    bundle = ModelBundle.load(bundle_root)
    model, version = bundle.manifest.model_name, bundle.manifest.version
    frags = _fragments(bundle.reference_rows())
    moto, endpoint = _start_moto()
    results = []
    try:
        print(
            f"model {model} {version}; moto server pid {moto.pid} at {endpoint}; "
            f"window {WINDOW_HOURS} h ending {WINDOW_END:%Y-%m-%dT%H:%MZ}"
        )
        print(
            f"sample_cap {args.sample_cap}, read budget {args.read_budget:.0f} s, "
            f"{args.runs} run(s) per fresh process, {os.cpu_count()} CPUs"
        )
        for n, (rows, per_object) in enumerate(cases):
            bucket = f"bench-drift-{rows}-r{per_object}"
            t0 = time.perf_counter()
            objects, size = fill_bucket(endpoint, bucket, model, version, rows, per_object, frags, seed=n)
            fill_s = time.perf_counter() - t0
            print(f"filled {bucket}: {rows:,} rows in {objects:,} objects, {size / MIB:.1f} MiB gzip, {fill_s:.1f} s", flush=True)
            cmd = [
                sys.executable,
                __file__,
                "--child",
                "--endpoint",
                endpoint,
                "--bucket",
                bucket,
                "--bundle",
                str(bundle_root),
                "--moto-pid",
                str(moto.pid),
                "--sample-cap",
                str(args.sample_cap),
                "--runs",
                str(args.runs),
                "--read-budget",
                str(args.read_budget),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **AWS_ENV})
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                raise SystemExit(f"case {bucket} failed")
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            out.update(rows=rows, per_object=per_object, objects=objects, gzip_mib=size / MIB, fill_s=fill_s)
            for r in out["runs"]:
                if r["rows_seen"] != rows or r["corrupt_objects"]:
                    why = "partial window: read budget reached" if r["partial"] else "unexpected"
                    print(f"  WARNING: run saw {r['rows_seen']:,} of {rows:,} rows, {r['corrupt_objects']} corrupt objects ({why})")
            results.append(out)
            _print_row(out)
            # the next case's bucket is filled while this one's objects stay in moto: free them
            _empty_bucket(endpoint, bucket)
    finally:
        moto.terminate()
        moto.wait(timeout=10)
    print()
    _print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def _empty_bucket(endpoint: str, bucket: str) -> None:
    s3 = _s3(endpoint)
    keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in p.get("Contents", [])]
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True})


HEADER = (
    f"{'rows':>9} {'objects':>7} {'rows/obj':>8} | {'read s':>7} {'list s':>6} {'parse s':>7} {'check s':>7} {'out s':>6} "
    f"{'total s':>7} {'rows/s':>8} | {'init MiB':>8} {'init pk':>7} {'run pk MiB':>10} {'+run MiB':>8} | "
    f"{'CPU s':>6} {'moto CPU s':>10} | partial"
)


def _fmt(out: dict[str, Any], r: dict[str, Any]) -> str:
    g = lambda k: r.get(k, 0.0)  # noqa: E731
    return (
        f"{out['rows']:>9,} {out['objects']:>7,} {out['per_object']:>8,} | {g('read_s'):7.2f} {g('list_s'):6.2f} {g('parse_s'):7.2f} "
        f"{g('check_s'):7.2f} {g('out_s'):6.2f} {r['total_s']:7.2f} {r['rows_seen'] / r['total_s']:8,.0f} | "
        f"{out['rss_init_kib'] / 1024:8.1f} {out['peak_init_kib'] / 1024:7.1f} {r['peak_kib'] / 1024:10.1f} "
        f"{(r['peak_kib'] - r['rss_before_kib']) / 1024:8.1f} | "
        f"{r['cpu_s']:6.1f} {r['moto_cpu_s']:10.1f} | {r['partial']}"
    )


def _print_row(out: dict[str, Any]) -> None:
    for i, r in enumerate(out["runs"]):
        print(f"  run {i + 1}: {_fmt(out, r)}", flush=True)


def _print_table(results: list[dict[str, Any]]) -> None:
    print(HEADER)
    for out in results:
        for r in out["runs"]:
            print(_fmt(out, r))
    print(
        "read = list + GETs + parse + reservoir sample; check = columns of the sample + DriftChecker.check; "
        "out = PutMetricData + HTML + report PUTs;\ninit = RSS of the fresh check process after DriftService init, "
        "init pk = its ru_maxrss then (peak of imports + init);\nrun pk = ru_maxrss of the run alone (peak reset "
        "before it), +run = run pk - RSS before the run; rows/s = rows read / total s"
    )


if __name__ == "__main__":
    main()
