"""What one byte of captures costs the drift check's Lambda path to decode: the constant behind
``driftcheck.read_path`` (``drift_athena=auto`` estimates a window's read time from the listing's bytes).

    python benchmarks/bench_read_estimate.py                 # 200 objects of 1,000 rows (gzip JSON Lines)
    python benchmarks/bench_read_estimate.py --rows-per-object 10 --objects 5000

Objects as the logs and Firehose sinks write them (gzip JSON Lines of the sample model's capture records),
each decoded and routed to its hour slice as ``window_reader.read_hours`` does (``_Slices.route``), timed
in-process: no S3 here (its GET latency is the other term of the estimate, per object).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

START = datetime(2026, 11, 25, 10, tzinfo=UTC)


def main() -> None:
    from driftcheck.window_reader import _Slices
    from modelserve.bundle import ModelBundle
    from modelserve.records import CaptureRecord, encode_jsonl_gz, utc_iso

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--rows-per-object", type=int, default=1000)
    parser.add_argument("--bundle", default=str(REPO / "models" / "sample"))
    args = parser.parse_args()

    bundle = ModelBundle.load(Path(args.bundle))
    m, reference = bundle.manifest, bundle.reference_rows()
    rng = random.Random(1)
    objects = []
    for i in range(args.objects):
        at = START + timedelta(seconds=3600 * i / args.objects)
        records = [
            CaptureRecord(
                f"r{i}", j, utc_iso(at), m.model_name, m.version, "bench", dict(ref["inputs"]), ref["prediction"], ref["probabilities"]
            )
            for j, ref in enumerate(rng.choice(reference) for _ in range(args.rows_per_object))
        ]
        objects.append(encode_jsonl_gz(records))
    router = _Slices([(START, START + timedelta(hours=1))])
    size = sum(len(o) for o in objects)
    rows = args.objects * args.rows_per_object
    started = time.perf_counter()
    routed = sum(len(router.route(o)) for o in objects)
    seconds = time.perf_counter() - started
    assert routed == rows
    print(f"{args.objects} objects x {args.rows_per_object} rows: {size / rows:.1f} bytes a row (gzip JSON Lines)")
    print(f"decode + route: {seconds:.2f} s, {1e6 * seconds / rows:.2f} us a row, {1e9 * seconds / size:.1f} ns a byte")


if __name__ == "__main__":
    main()
