"""Real Docker-free bundling of both Lambda assets, with sizes, times and an import check.

    python benchmarks/bench_bundle_size.py [--arch arm64 x86_64] [--fresh] [--out .build/bench-assets]

Needs the package index (pip downloads the wheels). For each architecture it builds the
inference and drift-check assets exactly as ``cdk synth`` does (cdk/bundling.py), reports
the unzipped size against the targets (serving <= 90 MiB, drift check <= 200 MiB) and the
time with a cold and a warm dependency cache. arm64 binaries cannot be imported on an x86_64
machine, so the x86_64 assets are imported in a subprocess (PYTHONPATH=<asset>) with an
interpreter of the runtime's version: onnxruntime, numpy, starlette, mangum (serving) and numpy,
scipy (drift check), then each handler module with a fake model bundle where needed.

The built folders can be deployed as they are: MS_PREBUILT_ASSETS=<out>/<arch> npx cdk deploy.
Exit status 1 when a size target or an import fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cdk.asset_trim import SERVING_PRUNE  # noqa: E402
from cdk.bundling import ASSET_PACKAGES, AssetSpec, assemble, find_python  # noqa: E402
from modelserve.settings import Settings  # noqa: E402

TARGET_MIB = {"inference": 90, "drift_check": 200}
IMPORTS = {
    "inference": [
        "onnxruntime",
        "numpy",
        "starlette",
        "mangum",
        "orjson",
        "pydantic",
        "aws_lambda_powertools",
        "aws_lambda_powertools.metrics",
        "aws_lambda_powertools.logging.utils",
    ],
    "drift_check": [
        "numpy",
        "scipy",
        "scipy.stats",
        "scipy.linalg",
        "scipy.spatial",
        "pydantic",
        "aws_lambda_powertools",
        "aws_lambda_powertools.metrics",
    ],
}


def settings_from_cdk_json() -> Settings:
    ctx = json.loads((ROOT / "cdk.json").read_text()).get("context", {})
    return Settings.from_context(ctx)


def import_check(asset: Path, python: str, modules: list[str]) -> tuple[bool, str]:
    code = (
        "import importlib, sys, time\n"
        "t = time.perf_counter()\n"
        f"mods = {modules!r}\n"
        "for m in mods:\n"
        "    mod = importlib.import_module(m)\n"
        "    assert getattr(mod, '__file__', '').startswith(sys.argv[1]), (m, mod.__file__)\n"
        "extra = ''\n"
        "if 'onnxruntime' in mods:\n"
        "    import onnxruntime as ort; extra += ' onnxruntime ' + ort.__version__ + ' ' + ','.join(ort.get_available_providers())\n"
        "if 'scipy' in mods:\n"
        "    import scipy, scipy.stats; extra += ' scipy ' + scipy.__version__ "
        "+ ' ks=' + str(round(scipy.stats.ks_2samp([1,2,3],[1,2,4]).pvalue, 3))\n"
        "import numpy; extra += ' numpy ' + numpy.__version__\n"
        "print(f'imported {len(mods)} modules in {time.perf_counter() - t:.2f} s;' + extra)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(asset)
    env["PYTHONNOUSERSITE"] = "1"
    proc = subprocess.run(
        [python, "-s", "-c", code.replace("sys.argv[1]", repr(str(asset)))], capture_output=True, text=True, env=env, cwd=str(asset)
    )
    text = (proc.stdout + proc.stderr).strip()
    return proc.returncode == 0, text.splitlines()[-1] if text else ""


SMOKE = r"""
import gzip, json, sys, time
t = time.perf_counter()
import handler
init = time.perf_counter() - t
rows = [json.loads(l) for l in gzip.open("bundle/reference.jsonl.gz", "rt")][:3]
class Ctx:
    function_name = "smoke"; memory_limit_in_mb = 1024; aws_request_id = "req-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:smoke"
    def get_remaining_time_in_millis(self): return 10000
def event(method, path, body=None):
    return {"resource": path, "path": path, "httpMethod": method, "headers": {"Host": "smoke", "content-type": "application/json"},
            "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
            "pathParameters": None, "stageVariables": None, "body": body, "isBase64Encoded": False,
            "requestContext": {"resourcePath": path, "httpMethod": method, "path": "/prod" + path, "stage": "prod",
                               "requestId": "req-1", "identity": {"sourceIp": "127.0.0.1"}}}
h = handler.handler(event("GET", "/health"), Ctx())
p = handler.handler(event("POST", "/predict", json.dumps({"instances": [r["inputs"] for r in rows]})), Ctx())
assert h["statusCode"] == 200 and p["statusCode"] == 200, (h, p)
# an Arrow body and answer: nanoarrow imports and works from the asset
import base64, io
import nanoarrow as na, nanoarrow.ipc as ipc
names = list(rows[0]["inputs"])
cols = [[r["inputs"][n] for r in rows] for n in names]
kinds = [na.string() if any(isinstance(v, str) for v in c) else na.float64() for c in cols]
batch = na.c_array_from_buffers(na.struct(dict(zip(names, kinds)), nullable=False), length=len(rows), buffers=[None],
                                children=[na.c_array(c, k) for c, k in zip(cols, kinds)])
out = io.BytesIO(); w = ipc.StreamWriter.from_writable(out); w.write_stream(na.c_array_stream(batch)); w.close()
ev = event("POST", "/predict", base64.b64encode(out.getvalue()).decode())
ev["isBase64Encoded"] = True
ev["headers"].update({"content-type": "application/vnd.apache.arrow.stream", "accept": "application/vnd.apache.arrow.stream"})
a = handler.handler(ev, Ctx())
assert a["statusCode"] == 200, a
answer = na.ArrayStream.from_readable(base64.b64decode(a["body"])).read_all()
assert answer.child(0).to_pylist() == json.loads(p["body"])["predictions"], (answer.child(0).to_pylist(), p["body"])
print(f"handler init {init:.2f} s; /health 200; /predict 200 (JSON and Arrow) {p['body'][:120]}")
"""


def handler_smoke(asset: Path, python: str) -> tuple[bool, str]:
    """Import the inference handler from the asset (real bundle, no AWS) and answer /health and /predict."""
    if not (asset / "bundle" / "reference.jsonl.gz").is_file():
        return True, "skipped (bundle has no reference sample)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MS_", "AWS_"))}
    env.update(
        PYTHONPATH=str(asset),
        PYTHONNOUSERSITE="1",
        LAMBDA_TASK_ROOT=str(asset),
        MS_MODEL_BUNDLE_PATH="bundle",
        MS_STAGE_NAME="prod",
        POWERTOOLS_SERVICE_NAME="inference",
        POWERTOOLS_METRICS_NAMESPACE="Smoke",
        AWS_DEFAULT_REGION="us-east-1",
    )
    proc = subprocess.run([python, "-s", "-c", SMOKE], capture_output=True, text=True, env=env, cwd=str(asset))
    # the verdict line is the script's last stdout line; warnings (e.g. "capture is off") go to stderr
    text = (proc.stdout if proc.returncode == 0 else proc.stdout + proc.stderr).strip()
    lines = [l for l in text.splitlines() if not l.startswith("{")]  # drop JSON log / EMF lines
    return proc.returncode == 0, (lines[-1] if lines else text[-300:])


DRIFT_SMOKE = r"""
import json, time
t = time.perf_counter()
import handler
init = time.perf_counter() - t
class Ctx:
    function_name = "smoke"; memory_limit_in_mb = 2048; aws_request_id = "req-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:smoke"
    def get_remaining_time_in_millis(self): return 600000
out = handler.handler({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events",
                       "time": "2026-01-01T00:00:00Z", "detail": {}}, Ctx())
assert out["rows_seen"] == 0 and out["dataset_drift"] is None and out["report_html"].startswith("s3://"), out
print(f"drift handler init {init:.2f} s; empty window checked, report {out['report_html']}")
"""

# pure-Python packages the Lambda runtime provides (so the assets leave them out)
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


def drift_handler_smoke(asset: Path, python: str) -> tuple[bool, str]:
    """Run the drift-check handler from its asset on an empty window, against a local moto server,
    with boto3 taken from this environment as Lambda's runtime would provide it."""
    import boto3
    from moto.server import ThreadedMotoServer

    site = Path(boto3.__file__).resolve().parent.parent
    runtime = Path(tempfile.mkdtemp(prefix="ms-lambda-runtime-"))
    for name in RUNTIME_PROVIDED:
        if (site / name).exists():
            (runtime / name).symlink_to(site / name)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        creds = dict(AWS_ACCESS_KEY_ID="smoke", AWS_SECRET_ACCESS_KEY="smoke", AWS_DEFAULT_REGION="us-east-1")
        boto3.client(
            "s3", endpoint_url=endpoint, **{k.lower(): v for k, v in creds.items() if k != "AWS_DEFAULT_REGION"}, region_name="us-east-1"
        ).create_bucket(Bucket="smoke-captures")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MS_", "AWS_"))}
        env.update(
            PYTHONPATH=f"{asset}{os.pathsep}{runtime}",
            PYTHONNOUSERSITE="1",
            LAMBDA_TASK_ROOT=str(asset),
            MS_MODEL_BUNDLE_PATH="bundle",
            MS_CAPTURE_BUCKET="smoke-captures",
            AWS_ENDPOINT_URL=endpoint,
            POWERTOOLS_SERVICE_NAME="drift-check",
            **creds,
        )
        proc = subprocess.run([python, "-s", "-c", DRIFT_SMOKE], capture_output=True, text=True, env=env, cwd=str(asset))
    finally:
        server.stop()
        shutil.rmtree(runtime, ignore_errors=True)
    text = (proc.stdout + proc.stderr).strip()
    lines = [l for l in text.splitlines() if not l.startswith("{")]
    return proc.returncode == 0, (lines[-1] if lines else text[-300:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", nargs="+", default=["arm64", "x86_64"], choices=["arm64", "x86_64"])
    ap.add_argument("--fresh", action="store_true", help="use an empty dependency cache (measures a cold build)")
    ap.add_argument("--out", default=str(ROOT / ".build" / "bench-assets"))
    ap.add_argument("--bundle", default=None, help="model bundle folder (default: the model_bundle_path setting)")
    args = ap.parse_args()

    settings = settings_from_cdk_json()
    bundle = Path(args.bundle or settings.model_bundle_path)
    bundle = bundle if bundle.is_absolute() else ROOT / bundle
    if not (bundle / "manifest.json").is_file():
        print(f"no model bundle at {bundle}: run `python -m devtools build-sample` or pass --bundle", file=sys.stderr)
        return 2
    cache_ctx = tempfile.TemporaryDirectory(prefix="ms-asset-cache-") if args.fresh else None
    cache_root = Path(cache_ctx.name) if cache_ctx else ROOT / ".build" / "asset-cache"
    out = Path(args.out)
    rows, ok = [], True
    for arch in args.arch:
        for name in ("inference", "drift_check"):
            spec = AssetSpec(
                name=name,
                handler_dir=ROOT / "lambda" / name,
                packages=tuple(ROOT / p for p in ASSET_PACKAGES[name]),
                bundle_dir=bundle,
                python_version=settings.python_runtime,
                architecture=arch,
                prune=SERVING_PRUNE if name == "inference" else (),
            )
            dest = out / arch / name
            shutil.rmtree(dest, ignore_errors=True)
            t0 = time.monotonic()
            res = assemble(spec, dest, cache_root)
            cold = time.monotonic() - t0
            # second build: what a re-synth costs with the cache warm
            dest2 = out / arch / f"{name}.rebuild"
            shutil.rmtree(dest2, ignore_errors=True)
            t1 = time.monotonic()
            assemble(spec, dest2, cache_root, log=lambda _m: None)
            warm = time.monotonic() - t1
            shutil.rmtree(dest2, ignore_errors=True)
            mib = res.bytes / 2**20
            size_ok = mib <= TARGET_MIB[name]
            if arch == "arm64":  # the targets are for the default architecture; x86_64 is reported only
                ok &= size_ok
            row = {
                "arch": arch,
                "asset": name,
                "python": settings.python_runtime,
                "MiB": round(mib, 1),
                "target_MiB": TARGET_MIB[name],
                "files": res.files,
                "trimmed_MiB": round(res.trimmed_bytes / 2**20, 1),
                "first_build_s": round(cold, 1),
                "first_build_cache_hit": res.cache_hit,
                "rebuild_s": round(warm, 1),
                "bytecode": bool(res.bytecode_python),
            }
            if arch == "x86_64" and os.uname().machine == "x86_64":
                py = find_python(settings.python_runtime)
                if py:
                    imp_ok, msg = import_check(dest, py, IMPORTS[name])
                    row["import_check"] = ("ok: " if imp_ok else "FAILED: ") + msg
                    ok &= imp_ok
                    smoke = handler_smoke if name == "inference" else drift_handler_smoke
                    sm_ok, sm = smoke(dest, py)
                    row["handler_smoke"] = ("ok: " if sm_ok else "FAILED: ") + sm
                    ok &= sm_ok
                else:
                    row["import_check"] = f"skipped: no python{settings.python_runtime} found"
            rows.append(row)
            print(json.dumps(row), flush=True)
    if cache_ctx:
        cache_ctx.cleanup()
    print("\n| arch | asset | MiB (target) | files | first build s | rebuild s | import check |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['arch']} | {r['asset']} | {r['MiB']} (<= {r['target_MiB']}) | {r['files']} | "
            f"{r['first_build_s']}{' (cache hit)' if r['first_build_cache_hit'] else ''} | {r['rebuild_s']} | "
            f"{r.get('import_check', '-')} {r.get('handler_smoke', '')} |"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
