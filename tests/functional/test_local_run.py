"""The README's first command: `python -m devtools run` serves the real handler on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_serves_predictions_docs_and_errors_on_loopback(sample_bundle) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MS_", "AWS_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools", "run", "--bundle", str(sample_bundle.root), "--port", str(port), "--seconds", "60"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 30
        lines = []
        while time.time() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Ctrl-C stops." in line or proc.poll() is not None:
                break
        printed = "".join(lines)
        assert f"http://127.0.0.1:{port}/prod" in printed, printed
        base = f"http://127.0.0.1:{port}/prod"
        row = sample_bundle.reference_rows()[0]["inputs"]
        req = urllib.request.Request(
            f"{base}/predict", data=json.dumps({"instances": [row]}).encode(), headers={"content-type": "application/json"}
        )
        with LOCAL.open(req, timeout=10) as resp:
            body = json.loads(resp.read())
            assert resp.status == 200 and resp.headers["x-model-version"] == sample_bundle.manifest.version
        assert body["predictions"] == [sample_bundle.reference_rows()[0]["prediction"]]
        with LOCAL.open(f"{base}/docs", timeout=10) as resp:
            assert "/prod/openapi.json" in resp.read().decode()
        bad = urllib.request.Request(f"{base}/predict", data=b'{"instances": []}', headers={"content-type": "application/json"})
        try:
            LOCAL.open(bad, timeout=10)
            raise AssertionError("an empty batch must be refused")
        except urllib.error.HTTPError as exc:
            assert exc.code == 422 and json.loads(exc.read())["error"] == "empty_batch"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
