"""The browser page's explanations (devtools/web_assets/explain.mjs, run by onnxruntime-web's WASM backend
in Node, as in the page) equal the API's ``"explain": true`` answer for the same rows, with the background
rows ``python -m devtools web`` writes next to the page."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devtools.web import NODE_MODULES, REPO_ROOT, background_rows
from tests.functional.test_web_page import api  # noqa: F401 - the fixture: the real handler behind the local gateway
from tests.support import event, response_json

PARITY = 1e-5
pytestmark = pytest.mark.slow  # Node + onnxruntime-web start, and 25,600 mixed rows in WASM

SCRIPT = """
import { readFile } from "node:fs/promises";
import * as ort from "onnxruntime-web/wasm";
import { explainRow } from "./devtools/web_assets/explain.mjs";
ort.env.wasm.numThreads = 1;
ort.env.logLevel = "error";
const [modelPath, manifestPath, inputPath] = process.argv.slice(1);
const manifest = JSON.parse(await readFile(manifestPath, "utf8"));
const { rows, background, predicted } = JSON.parse(await readFile(inputPath, "utf8"));
const session = await ort.InferenceSession.create(new Uint8Array(await readFile(modelPath)), { executionProviders: ["wasm"] });
const out = [];
for (let i = 0; i < rows.length; i++) out.push(await explainRow(ort, session, manifest, rows[i], background, predicted[i]));
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None or not (NODE_MODULES / "onnxruntime-web").is_dir(), reason="needs Node and npm ci")
def test_the_pages_explanations_equal_the_apis(load_inference, sample_bundle, lambda_context, tmp_path: Path) -> None:
    mod = load_inference()
    ref = sample_bundle.reference_rows()
    rows: list[dict[str, Any]] = [dict(ref[(i * 71) % len(ref)]["inputs"]) for i in range(4)]
    answer = response_json(mod.handler(event("rest_v1", "POST", "/predict", {"instances": rows, "explain": True}), lambda_context))
    background = background_rows(sample_bundle)
    assert len(background) == mod.function.service.explainer.background_size == 100
    (tmp_path / "input.json").write_text(json.dumps({"rows": rows, "background": background, "predicted": answer["predictions"]}))
    manifest = Path(sample_bundle.root, "manifest.json")
    proc = subprocess.run(
        ["node", "--input-type=module", "-e", SCRIPT, str(sample_bundle.model_path), str(manifest), str(tmp_path / "input.json")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = json.loads(proc.stdout.strip().splitlines()[-1])
    for got, want in zip(page, answer["explanations"], strict=True):
        assert got["class"] == want["class"]
        assert got["base_value"] == pytest.approx(want["base_value"], abs=PARITY)
        assert got["output"] == pytest.approx(want["output"], abs=PARITY)
        for name, value in want["values"].items():
            assert got["values"][name] == pytest.approx(value, abs=PARITY), name


def test_the_page_shows_the_explanation_next_to_its_score_and_agrees_with_the_api(sample_bundle, api, tmp_path: Path) -> None:  # noqa: F811
    from cdk.web import content_security_policy
    from devtools.web import build_site
    from tests.functional.test_web_page import CHROMIUM, SiteServer, _fill, _playwright, _post, _submit

    sync_playwright = _playwright()
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    server = SiteServer(site_dir, content_security_policy(), api_key="test-key")
    server.api_base = api.url
    manifest = sample_bundle.manifest
    build_site(sample_bundle.root, site_dir, api_url=f"{server.url}/prod/", api_key="test-key")
    ref = sample_bundle.reference_rows()
    rows = [ref[0]["inputs"], ref[200]["inputs"]]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(server.url + "/")
            page.wait_for_selector("body[data-ready]", state="attached", timeout=60_000)
            for row in rows:
                _fill(page, manifest, row)
                _submit(page, "#score")
                status, answer = _post(api.url, {"instances": [row], "explain": True})
                assert status == 200, answer
                want = answer["explanations"][0]["values"]
                shown = {
                    tr.get_attribute("data-feature"): float(tr.get_attribute("data-value"))
                    for tr in page.query_selector_all("#explanation tbody tr")
                }
                assert set(shown) == set(want)
                assert max(abs(shown[k] - v) for k, v in want.items()) <= PARITY
                assert page.get_attribute("#explain-agreement", "data-agree") == "true", page.text_content("#api")
            browser.close()
    finally:
        server.stop()
