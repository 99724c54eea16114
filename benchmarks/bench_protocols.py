"""Request size and server time per protocol, through the real inference handler in-process.

    .venv/bin/python benchmarks/bench_protocols.py [--rows 1,100,1000,10000] [--repeats 15] [--profile "OIP binary"]

For each batch size, the same rows of the sample bundle's reference (cycled, nulls included) are sent
as `/predict` instances JSON, `/predict` dataframe_split JSON, OIP JSON tensors, OIP binary tensors
(Triton's extension; answer asked as binary) and an Arrow IPC stream (answer asked as Arrow). "bytes"
is the request body; "server ms" is the handler call on a REST v1 event (base64-decoding the body
where API Gateway encodes it, decoding, validation, scoring, encoding the answer; capture off), in
one process: one warm-up call per protocol, then --repeats rounds that call each protocol once in
turn (so machine noise hits them alike), the median per protocol. --profile NAME prints cProfile's
top functions for that protocol at the largest size.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402


def bodies(manifest, rows):  # type: ignore[no-untyped-def]
    names = manifest.feature_names
    out = {
        "instances JSON": (json.dumps({"instances": rows}).encode(), "application/json", {}),
        "split JSON": (
            json.dumps({"dataframe_split": {"columns": names, "data": [[r[n] for n in names] for r in rows]}}).encode(),
            "application/json",
            {},
        ),
    }
    tensors, binary = [], []
    for f in manifest.features:
        values = [r[f.name] for r in rows]
        if f.kind.value == "categorical":
            data = ["" if v is None else v for v in values]
            raw = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in data)
            tensors.append({"name": f.name, "shape": [len(rows), 1], "datatype": "BYTES", "data": data})
        else:
            arr = np.array([np.nan if v is None else v for v in values], dtype="<f4")
            raw = arr.tobytes()
            tensors.append(
                {"name": f.name, "shape": [len(rows), 1], "datatype": "FP32", "data": [None if v is None else v for v in values]}
            )
        binary.append((f.name, tensors[-1]["datatype"], raw))
    out["OIP JSON"] = (json.dumps({"inputs": tensors}).encode(), "application/json", {})
    head = json.dumps(
        {
            "inputs": [
                {"name": n, "shape": [len(rows), 1], "datatype": d, "parameters": {"binary_data_size": len(r)}} for n, d, r in binary
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    out["OIP binary"] = (
        head + b"".join(r for _, _, r in binary),
        "application/octet-stream",
        {"inference-header-content-length": str(len(head))},
    )
    sink = io.BytesIO()
    table = pa.Table.from_pylist(rows)
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    out["Arrow"] = (sink.getvalue(), "application/vnd.apache.arrow.stream", {"accept": "application/vnd.apache.arrow.stream"})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="1,100,1000,10000")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--profile", help="a protocol name of the table (e.g. 'OIP binary'): its cProfile at the largest size")
    args = ap.parse_args()
    from devtools.local import LambdaContext, load_handler_module
    from devtools.sample_model import build_sample_bundle
    from tests.support import event

    bundle = build_sample_bundle(Path(tempfile.mkdtemp()) / "sample")
    os.environ["MS_MODEL_BUNDLE_PATH"] = str(bundle.root)
    os.environ["MS_MAX_BATCH_ROWS"] = "10000"
    os.environ["MS_MAX_BODY_BYTES"] = "6291456"
    handler = load_handler_module("inference")
    m = bundle.manifest
    ref = [dict(r["inputs"]) for r in bundle.reference_rows()]
    print("| rows | protocol | request bytes | × instances | server ms (median) | × instances |")
    print("|---|---|---|---|---|---|")
    sizes = [int(x) for x in args.rows.split(",")]
    for n in sizes:
        rows = [ref[i % len(ref)] for i in range(n)]
        cases = bodies(m, rows)

        def call(name: str) -> float:
            body, ctype, extra = cases[name]
            path = f"/v2/models/{m.model_name}/infer" if name.startswith("OIP") else "/predict"
            ev = event("rest_v1", "POST", path, raw=body, headers={"content-type": ctype, **extra})
            t = time.perf_counter()
            resp = handler.handler(ev, LambdaContext.fresh("bench"))
            elapsed = (time.perf_counter() - t) * 1000
            assert resp["statusCode"] == 200, (name, resp["body"][:300])
            return elapsed

        times: dict[str, list[float]] = {name: [] for name in cases}
        for name in cases:
            call(name)  # warm-up: imports (nanoarrow on the first Arrow body), first-call caches
        for _ in range(args.repeats):
            for name in cases:
                times[name].append(call(name))
        base_bytes, base_ms = len(cases["instances JSON"][0]), statistics.median(times["instances JSON"])
        for name, (body, _, _) in cases.items():
            ms = statistics.median(times[name])
            print(
                f"| {n:,} | {name} | {len(body):,} | {base_bytes / len(body):.1f}× smaller | {ms:.2f} | {base_ms / ms:.2f}× faster |",
                flush=True,
            )
        if args.profile and n == sizes[-1]:
            profile = cProfile.Profile()
            profile.runcall(lambda: [call(args.profile) for _ in range(args.repeats)])
            pstats.Stats(profile).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
