"""Log bytes per request besides the capture lines: what CloudWatch Logs ingests ($0.50/GB) for each request.

    .venv/bin/python benchmarks/bench_log_bytes.py [--requests 200]

Loads the real inference handler in-process with the default settings (moto for S3), sends API Gateway REST
events (1, 10 and 100 rows) and reads everything the function writes to stdout and stderr during each invocation
(the file descriptors, so the Powertools logger's handler, bound at import, is read too). Lines carrying the capture
marker (modelserve/records.py: RECORD_TYPE_FIELD) are counted apart: capture_cost.py bills them under "capture".
Added per request, not written by the function:
  Lambda's platform lines  START / END / REPORT in their documented text format (the function's default log
                           format), a real-length request id, typical values, X-Ray fields (the function traces)
  the stage's access log   one line of cdk.serving.ACCESS_LOG_FIELDS (JSON) with realistic values, to its own group
Prints the median bytes per request by part (message bytes, UTF-8; CloudWatch also counts 26 bytes per event
towards PutLogEvents' batch size, not added here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cdk.serving import ACCESS_LOG_FIELDS  # noqa: E402
from modelserve.records import CAPTURE_RECORD_TYPE, RECORD_TYPE_FIELD  # noqa: E402

BATCH_SIZES = (1, 10, 100)
DEPLOYMENT = "ModelServe-penguins"


def is_capture_line(line: str) -> bool:
    """A capture line (counted under capture): a JSON object whose marker field names the captures."""
    if not line.startswith("{"):
        return False
    try:
        return json.loads(line).get(RECORD_TYPE_FIELD) == CAPTURE_RECORD_TYPE
    except ValueError:
        return False


def split_lines(text: str) -> tuple[list[str], list[str]]:
    """(capture lines, other lines) of what the function wrote; Lambda makes each stdout line one log event."""
    lines = [line for line in text.splitlines() if line.strip()]
    captures = [line for line in lines if is_capture_line(line)]
    return captures, [line for line in lines if not is_capture_line(line)]


def platform_lines(request_id: str, duration_ms: float = 2.75, memory_mb: int = 1024, used_mb: int = 180) -> list[str]:
    """Lambda's own lines for one invocation, text format (AWS docs: "Lambda function logs", REPORT with tracing)."""
    billed = max(1, round(duration_ms + 0.5))
    return [
        f"START RequestId: {request_id} Version: $LATEST",
        f"END RequestId: {request_id}",
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {billed} ms\t"
        f"Memory Size: {memory_mb} MB\tMax Memory Used: {used_mb} MB\t\n"
        "XRAY TraceId: 1-67a2f1c3-5f0e2b7c9d1a4e6f8b3c0d21\tSegmentId: 3f8a9c1d2e4b5a60\tSampled: true\t",
    ]


def access_log_line(request_id: str, rows: int) -> str:
    """The stage's access log line of one answered POST /predict (ACCESS_LOG_FIELDS, as the stack formats it)."""
    values = {
        "$context.requestId": request_id,
        "$context.requestTime": "06/Dec/2026:13:14:07 +0000",
        "$context.httpMethod": "POST",
        "$context.resourcePath": "/{proxy+}",
        "$context.path": "/prod/predict",
        "$context.protocol": "HTTP/1.1",
        "$context.status": "200",
        "$context.responseLength": str(40 + 60 * rows),
        "$context.responseLatency": "18",
        "$context.integrationLatency": "12",
        "$context.identity.sourceIp": "203.0.113.7",
        "$context.identity.userAgent": "python-requests/2.32.3",
        "$context.identity.apiKeyId": "k3xmpl9a2b",
        "$context.identity.caller": "-",
        "$context.identity.user": "-",
        "$context.identity.userArn": "-",
        "$context.error.responseType": "-",
        "$context.error.message": "-",
        "$context.wafResponseCode": "-",
    }
    return json.dumps({**{k: values[v] for k, v in ACCESS_LOG_FIELDS.items()}, "deployment": DEPLOYMENT})


def written_during(call: Callable[[], Any]) -> str:
    """What the process wrote to stdout and stderr (the file descriptors Lambda reads) while ``call`` ran."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            call()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        out.seek(0)
        return out.read().decode()


def nbytes(lines: list[str]) -> int:
    return sum(len(line.encode()) for line in lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200, help="requests per batch size")
    args = ap.parse_args()

    import boto3
    from moto import mock_aws

    from devtools.local import LambdaContext, load_handler_module, rest_v1_event
    from devtools.sample_model import ensure_sample_bundle

    bundle = ensure_sample_bundle(REPO / "models" / "sample")
    for k in [k for k in os.environ if k.startswith("MS_")]:
        del os.environ[k]  # the default settings, as the stack leaves them
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "MS_MODEL_BUNDLE_PATH": str(bundle.root),
            "MS_CAPTURE_BUCKET": "bench-log-bytes",
            "MS_DEPLOYMENT": DEPLOYMENT,
            "POWERTOOLS_SERVICE_NAME": "inference",
            "POWERTOOLS_METRICS_NAMESPACE": "ModelServing",
            "POWERTOOLS_METRICS_DISABLED": "false",
        }
    )
    reference = [r["inputs"] for r in bundle.reference_rows()]
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="bench-log-bytes")
        mod = load_handler_module("inference")
        print(
            f"capture sink: {type(mod.service.capturer.sink).__name__}; {args.requests} requests per batch size; median bytes per request"
        )
        print(f"{'rows':>5} {'capture lines':>14} {'function (other)':>17} {'platform':>9} {'access log':>11} {'other total':>12}")
        for n in BATCH_SIZES:
            body = json.dumps({"instances": [reference[i % len(reference)] for i in range(n)]}).encode()
            parts: dict[str, list[int]] = {"capture": [], "function": [], "platform": [], "access": []}
            sample_other: list[str] = []
            for _ in range(args.requests):
                rid = str(uuid.uuid4())
                event = rest_v1_event("POST", "/predict", body, {"content-type": "application/json"}, request_id=rid)
                ctx = LambdaContext.fresh("inference")
                ctx.aws_request_id = str(uuid.uuid4())  # Lambda's request id (the platform lines'), not the API's
                answer: dict[str, Any] = {}
                text = written_during(lambda: answer.update(mod.handler(event, ctx)))  # called at once, in this iteration
                assert answer["statusCode"] == 200, answer
                captures, other = split_lines(text)
                assert len(captures) == n, (len(captures), n)
                sample_other = other
                parts["capture"].append(nbytes(captures))
                parts["function"].append(nbytes(other))
                parts["platform"].append(nbytes(platform_lines(ctx.aws_request_id)))
                parts["access"].append(len(access_log_line(rid, n).encode()))
            med = {k: statistics.median(v) for k, v in parts.items()}
            other_total = med["function"] + med["platform"] + med["access"]
            print(
                f"{n:>5} {med['capture']:>14,.0f} {med['function']:>17,.0f} {med['platform']:>9,.0f} {med['access']:>11,.0f} "
                f"{other_total:>12,.0f}"
            )
            for line in sample_other:
                print(f"        function line ({len(line.encode())} B): {line[:160]}{'...' if len(line) > 160 else ''}")


if __name__ == "__main__":
    main()
