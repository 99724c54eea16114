"""Cold init against its floor: fresh processes, medians of interleaved runs, reported as a ratio.

    .venv/bin/python benchmarks/bench_cold_start.py [--runs 9] [--capture-sink s3|logs] [--emulator 5 [--baseline DIR]]

floor     a fresh process imports numpy and onnxruntime and opens the bundle's session: what any Python
          ONNX function pays before its first answer
handler   a fresh process imports lambda/inference/handler.py with capture on (a bucket named, fake
          credentials, no network): settings, bundle, session, metrics, the app, the capture executor;
          with the settings digest the stack sets (``MS_SETTINGS_DIGEST``: the deployed path, settings
          read without pydantic), and without it (a local run: pydantic validates them), alternately
Both time from the first line of the child to the end of init (the interpreter's own start is the same
in both and left out). ``--emulator N``: N fresh environments under tests/lambda_emulator.py (awslambdaric,
Runtime + Extensions API, capture on to moto server, capture extension registered), process spawn to
first /predict answer; with ``--baseline DIR`` (another checkout of the project) interleaved with it.
Each handler run is paired with the floor run next to it, so the ratio is of
one moment of this shared machine; the CPU-time ratio leaves out the waits for a core other processes hold.
Then one ``python -X importtime`` of the handler: the import time
per top-level package, and which modules the first answer does not need were loaded anyway.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devtools.sample_model import ensure_sample_bundle  # noqa: E402
from modelserve.settings import ENV_SETTINGS_DIGEST, ServingSettings  # noqa: E402
from modelserve.settings_env import env_name, settings_digest  # noqa: E402

# each child prints its init's wall time and its CPU time (ms): on a shared machine the CPU time is what init
# costs, without the waits for a core another process holds
FLOOR = """
import time; t, c = time.perf_counter(), time.process_time()
import numpy, onnxruntime
s = onnxruntime.InferenceSession({model!r}, providers=["CPUExecutionProvider"])
print((time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000)
"""
HANDLER = """
import time; t, c = time.perf_counter(), time.process_time()
import sys; sys.path.insert(0, {repo!r})
import importlib.util
spec = importlib.util.spec_from_file_location("handler", {handler!r})
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
print((time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000)
print(",".join(m for m in {not_needed!r} if m in sys.modules))
"""
# loaded at init although the first answer needs none of them (boto3: the first capture, after the answer)
NOT_NEEDED = ("boto3", "botocore.session", "pydantic", "pydantic.v1", "fastapi", "opentelemetry", "serving.openapi")
PACKAGES = (
    "fastapi",
    "starlette",
    "pydantic",
    "pydantic_core",
    "numpy",
    "onnxruntime",
    "boto3",
    "botocore",
    "s3transfer",
    "mangum",
    "asyncio",
    "aws_lambda_powertools",
    "opentelemetry",
    "orjson",
    "modelserve",
    "serving",
)


def child_env(bundle_root: Path, capture_sink: str = "s3") -> dict[str, str]:
    # bytecode written and read, as the asset ships it (compiled at bundling): a PYTHONDONTWRITEBYTECODE
    # from the caller's shell would have every handler run compile the project's changed modules
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MS_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        {
            "MS_MODEL_BUNDLE_PATH": str(bundle_root),
            "MS_CAPTURE_BUCKET": "bench-captures",
            "MS_CAPTURE_SINK": capture_sink,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
    return env


def with_settings_digest(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the digest of its settings variables, as the stack computes it (cdk/serving.py)."""
    names = [env_name(field) for field in ServingSettings.model_fields]
    return {**env, ENV_SETTINGS_DIGEST: settings_digest(env, names, lambda value: False)}


def run(code: str, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *flags, "-c", code], env=env, capture_output=True, text=True, check=True)


def import_times(stderr: str) -> dict[str, float]:
    """Cumulative ms per top-level package from ``-X importtime`` (each module's own time, summed by package)."""
    per_package: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line[len("import time:") :].split("|")
        per_package[name.strip().split(".")[0]] += int(self_us) / 1000
    return per_package


def emulator_first_answers(bundle: Any, rounds: int, checkouts: dict[str, Path]) -> dict[str, list[float]]:
    """Spawn -> first /predict answer (s) of fresh emulated environments, per checkout, interleaved round by round."""
    import boto3

    from devtools.local import moto_server
    from tests.lambda_emulator import LambdaEmulator
    from tests.support import event

    body = {"instances": [bundle.reference_rows()[0]["inputs"]]}
    firsts: dict[str, list[float]] = {name: [] for name in checkouts}
    with moto_server() as endpoint:
        creds = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t").create_bucket(
            Bucket="bench-cold"
        )
        for _ in range(rounds):
            for name, root in checkouts.items():
                env = with_settings_digest(
                    {
                        **creds,
                        "AWS_ENDPOINT_URL": endpoint,
                        "MS_MODEL_BUNDLE_PATH": str(bundle.root),
                        "MS_CAPTURE_BUCKET": "bench-cold",
                        "PYTHONPATH": str(root),
                    }
                )
                with LambdaEmulator(env, cwd=root / "lambda" / "inference") as emu:
                    inv = emu.invoke(event("rest_v1", "POST", "/predict", body, request_id="cold"))
                    assert inv.responded_at is not None and inv.payload and inv.payload["statusCode"] == 200, inv.payload
                    firsts[name].append(inv.responded_at - emu.spawned_at)
    return firsts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--emulator", type=int, default=0, help="fresh environments under the Lambda emulator (0: skip)")
    ap.add_argument("--baseline", type=Path, help="another checkout, measured interleaved under the emulator")
    ap.add_argument("--capture-sink", default="s3", choices=["s3", "firehose", "logs"], help="the capture_sink setting of the handler")
    args = ap.parse_args()
    bundle = ensure_sample_bundle(REPO / "models" / "sample")
    validated_env = child_env(bundle.root, args.capture_sink)  # no digest: pydantic validates the settings
    env = with_settings_digest(validated_env)  # the deployed path
    floor_code = FLOOR.format(model=str(bundle.model_path))
    handler_code = HANDLER.format(repo=str(REPO), handler=str(REPO / "lambda" / "inference" / "handler.py"), not_needed=NOT_NEEDED)
    run(handler_code, env)  # bytecode written once, as the asset ships it
    floors, handlers, cpu_floors, cpu_handlers = [], {"digest": [], "validated": []}, [], {"digest": [], "validated": []}
    ratios, cpu_ratios, loaded = {"digest": [], "validated": []}, {"digest": [], "validated": []}, {}
    for _ in range(args.runs):
        f, f_cpu = map(float, run(floor_code, env).stdout.split()[:2])
        floors.append(f)
        cpu_floors.append(f_cpu)
        for mode, mode_env in (("digest", env), ("validated", validated_env)):
            out = run(handler_code, mode_env).stdout.splitlines()
            (h, h_cpu), loaded[mode] = map(float, out[0].split()), (out[1] if len(out) > 1 else "")
            handlers[mode].append(h)
            cpu_handlers[mode].append(h_cpu)
            ratios[mode].append(h / f)
            cpu_ratios[mode].append(h_cpu / f_cpu)
    print(f"cold init, medians of {args.runs} interleaved fresh processes (capture on, bytecode cached):")
    print(f"  floor (numpy + onnxruntime + session)   {statistics.median(floors):7.1f} ms, CPU {statistics.median(cpu_floors):7.1f} ms")
    for mode, label in (("digest", "settings digest (deployed)"), ("validated", "no digest (pydantic)")):
        r, cr, cpu = ratios[mode], cpu_ratios[mode], statistics.median(cpu_handlers[mode])
        print(f"  handler init, {label:<27}{statistics.median(handlers[mode]):7.1f} ms, CPU {cpu:7.1f} ms")
        print(f"    handler / floor                        {statistics.median(r):7.2f}x  (per-pair range {min(r):.2f}-{max(r):.2f})")
        print(f"    handler / floor, CPU time              {statistics.median(cr):7.2f}x  (per-pair range {min(cr):.2f}-{max(cr):.2f})")
        print(f"    loaded at init, not needed by the first answer: {loaded[mode] or 'none'}")
    if args.emulator:
        checkouts = {"this checkout": REPO, **({f"baseline {args.baseline}": args.baseline.resolve()} if args.baseline else {})}
        firsts = emulator_first_answers(bundle, args.emulator, checkouts)
        print(f"under the Lambda emulator (awslambdaric, capture extension on), spawn -> first answer, median of {args.emulator}:")
        for name, values in firsts.items():
            print(f"  {name:<40} {statistics.median(values) * 1000:7.0f} ms")
    times = import_times(run(handler_code, env, "-X", "importtime").stderr)
    total = sum(times.values())
    print(f"python -X importtime of the handler (one run): {total:.0f} ms of imports")
    for name in sorted(PACKAGES, key=lambda p: -times.get(p, 0.0)):
        if times.get(name):
            print(f"  {name:<22} {times[name]:7.1f} ms  {100 * times[name] / total:4.1f}%")


if __name__ == "__main__":
    main()
