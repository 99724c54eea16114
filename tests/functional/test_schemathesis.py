"""The API matches its own OpenAPI document: schemathesis against the local server, every check.

The local gateway (devtools/local.py) serves the real Lambda handler over loopback with captures
to moto's S3 server, as ``make run`` does; schemathesis (its CLI, in a subprocess) reads
``/prod/openapi.json`` from it (every operation: /predict, /feedback, /health, /model and the Open
Inference Protocol /v2 routes) and runs all its phases (examples, coverage, fuzzing, stateful) with
``--checks all``: no 5xx, every status and content type documented, response bodies matching their
schemas, schema-valid requests accepted (2xx) and schema-invalid ones refused (4xx), 405 with an
``Allow`` header for undocumented methods.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from devtools.local import LocalGateway, local_aws

BUCKET = "schemathesis-captures"
REQUEST_ID_KEY = "schemathesis-request-id-key"
MAX_EXAMPLES = 150  # per operation in the fuzzing phase (valid and invalid bodies)
SEED = 20261127  # reproducible: a failure here is a failure on the next run too
ST = Path(sys.executable).with_name("st")
CONFIG = Path(__file__).with_name("schemathesis.toml")  # what is tuned for the OIP infer operations, and why


@pytest.fixture
def local_server(load_inference: Any) -> Any:
    with local_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        # signed request ids, as every deployment and `make run` issue them (the document then declares their form);
        # explain: true fuzzed cheaply
        api = load_inference(capture_bucket=BUCKET, max_batch_rows="50", explain_background_rows="10", request_id_key=REQUEST_ID_KEY)
        gateway = LocalGateway(api.handler, api.serving.stage_name, port=0, concurrency=2).start()
        try:
            yield gateway
        finally:
            gateway.stop()


@pytest.mark.slow
def test_schemathesis_finds_nothing_with_all_checks(local_server: LocalGateway, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    cmd = [
        str(ST),
        "--config-file",
        str(CONFIG),
        "run",
        f"{local_server.url}/openapi.json",
        "--url",
        local_server.url,
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--request-timeout",
        "10",
    ]
    started = time.perf_counter()
    # cwd: schemathesis keeps a .schemathesis/ cache in its working directory, never in the repo
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "NO_COLOR": "1"}, cwd=tmp_path)
    elapsed = time.perf_counter() - started
    summary = done.stdout[-9000:]
    assert done.returncode == 0, f"schemathesis failed after {elapsed:.0f} s:\n{summary}\n{done.stderr[-2000:]}"
    assert "Errors:" not in done.stdout and "Failures:" not in done.stdout, summary
    counts = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert counts and int(counts[1]) == int(counts[2]) >= 4 * MAX_EXAMPLES, (
        summary
    )  # POST /predict, /feedback and the two OIP infer routes fuzzed in full
    if report.exists():
        json.loads(report.read_text())  # the run report is well formed (kept for a failing run's reader)
    print(f"schemathesis: {elapsed:.1f} s\n{summary}")
