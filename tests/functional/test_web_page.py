"""The generated page in a real browser (Debian's Chromium, headless, through Playwright): it fills the form,
scores with onnxruntime-web, and matches the real inference handler's /predict; bad input shows the API's
reason and message. The site is served under the deployed content-security policy (cdk/web.py), with
/prod/* passed on to the local gateway as one CloudFront distribution would, so the page calls its own origin."""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devtools.local import LocalGateway
from devtools.web import build_site
from tests.functional.web_support import CHROMIUM, needs_node_ort

pytestmark = [pytest.mark.slow, needs_node_ort]

BUCKET = "web-page-captures"
STAGE_PREFIX = "/prod/"
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def _playwright() -> Any:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (make setup does) to run the browser test")
    from playwright.sync_api import sync_playwright  # pinned in requirements-dev.txt: never skipped for its absence

    return sync_playwright


class SiteServer:
    """http.server for the site with the deployed CSP; /prod/* goes on to the API gateway, with an API key required."""

    def __init__(self, root: Path, csp: str, api_key: str) -> None:
        self.api_base: str | None = None
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def end_headers(self) -> None:
                if not self.path.startswith(STAGE_PREFIX):
                    self.send_header("content-security-policy", csp)
                    self.send_header("x-content-type-options", "nosniff")
                super().end_headers()

            def do_POST(self) -> None:
                assert server.api_base and self.path.startswith(STAGE_PREFIX)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("x-api-key") != api_key:  # what API Gateway answers without the usage plan's key
                    self.send_response(403)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", "24")
                    self.end_headers()
                    self.wfile.write(b'{"message":"Forbidden"}\n')
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "x-api-key")}
                req = urllib.request.Request(
                    server.api_base + self.path[len(STAGE_PREFIX) - 1 :], data=body, headers=headers, method="POST"
                )
                try:
                    with LOCAL.open(req, timeout=30) as resp:
                        status, data, ctype = resp.status, resp.read(), resp.headers["content-type"]
                except urllib.error.HTTPError as exc:
                    status, data, ctype = exc.code, exc.read(), exc.headers["content-type"]
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api(load_inference, monkeypatch) -> Iterator[LocalGateway]:
    """The real inference handler behind the local gateway, capturing to moto's S3."""
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        inference = load_inference(capture_bucket=BUCKET)
        gateway = LocalGateway(inference.handler, inference.serving.stage_name, port=0).start()
        try:
            yield gateway
        finally:
            gateway.stop()


def _post(url: str, payload: Any) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(f"{url}/predict", data=json.dumps(payload).encode(), headers={"content-type": "application/json"})
    try:
        with LOCAL.open(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _fill(page: Any, manifest: Any, row: dict[str, Any]) -> None:
    for i, spec in enumerate(manifest.features):
        v = row[spec.name]
        if spec.kind.value == "numeric":  # what a person types: text, "nan" for NaN
            page.fill(f"#feature-{i}", "" if v is None else v if isinstance(v, str) else "nan" if v != v else repr(v))
        else:
            page.select_option(f"#feature-{i}", "" if v is None else str(v).lower() if isinstance(v, bool) else str(v))


def _submit(page: Any, button: str) -> None:
    runs = int(page.get_attribute("body", "data-runs") or 0)
    page.click(button)
    # selectors, not wait_for_function: the page's CSP forbids the eval that would need
    page.wait_for_selector(f"body[data-runs='{runs + 1}']", state="attached", timeout=30_000)


def test_the_page_scores_like_the_api_and_rejects_bad_input_with_its_messages(sample_bundle, api, tmp_path) -> None:
    from cdk.web import content_security_policy

    sync_playwright = _playwright()
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    server = SiteServer(site_dir, content_security_policy(), api_key="test-key")
    server.api_base = api.url
    manifest = sample_bundle.manifest
    build_site(sample_bundle.root, site_dir, api_url=f"{server.url}/prod/", api_key="test-key")

    reference = sample_bundle.reference_rows()
    with_nulls = [r for r in reference if any(v is None for v in r["inputs"].values())]
    by_label: dict[str, dict[str, Any]] = {}
    for r in reference:
        by_label.setdefault(r["prediction"], r)
    rows = [r["inputs"] for r in [*by_label.values(), *with_nulls[:2], *reference[100:103]]]
    assert len(by_label) == 3 and with_nulls

    console: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            started = time.perf_counter()
            page.goto(server.url + "/")
            page.wait_for_selector("body[data-ready]", state="attached", timeout=60_000)
            ready_ms = (time.perf_counter() - started) * 1000
            assert page.get_attribute("body", "data-ready") == "true", console
            model_load_ms = float(page.get_attribute("#status", "data-load-ms"))

            # every field has a label the accessibility tree reads
            for i, spec in enumerate(manifest.features):
                assert page.get_by_label(spec.name, exact=True).get_attribute("id") == f"feature-{i}"

            browser_ms, api_ms = [], []
            for row in rows:
                _fill(page, manifest, row)
                _submit(page, "#score")
                status, answer = _post(api.url, {"instances": [row]})
                assert status == 200, answer
                assert page.text_content("#label") == answer["predictions"][0], row
                shown = {
                    tr.get_attribute("data-class"): float(tr.get_attribute("data-probability"))
                    for tr in page.query_selector_all("#probabilities tbody tr")
                }
                assert list(shown) == answer["classes"]
                assert max(abs(shown[c] - p) for c, p in zip(answer["classes"], answer["probabilities"][0], strict=True)) <= 1e-5
                # the page's own comparison with the API, through the same-origin /prod path
                assert page.get_attribute("#agreement", "data-agree") == "true", page.text_content("#api")
                browser_ms.append(float(page.get_attribute("#timing", "data-ms")))
                api_ms.append(float(page.get_attribute("#api-result", "data-ms")))
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

            # bad input: the form and the JSON box give the API's reason and message
            bad_rows = [
                {**rows[0], "bill_length_mm": "abc"},  # typed into a number field
                {**rows[0], "body_mass_g": float("nan")},  # "nan" typed
                {**rows[0], "island": None},  # island is not nullable: "(choose)" left selected
            ]
            for bad in bad_rows:
                _fill(page, manifest, bad)
                _submit(page, "#score")
                status, answer = _post(api.url, {"instances": [bad]})  # NaN goes as the JSON literal, as a client may send it
                assert status == 422
                assert page.get_attribute("#errors", "data-reason") == answer["error"]
                assert page.text_content("#error-message") == answer["message"]
                field = answer["details"][0]["field"]
                assert page.get_attribute(f"#feature-{manifest.feature_names.index(field)}", "aria-invalid") == "true"
                assert page.is_hidden("#result")
            page.screenshot(path=str(tmp_path / "page-bad-input.png"), full_page=True)

            page.click("summary")
            unseen = {**rows[0], "island": "Atlantis"}
            page.fill("#row-json", json.dumps(unseen))
            _submit(page, "#score-json")
            status, answer = _post(api.url, {"instances": [unseen]})
            assert status == 422 and answer["error"] == "unseen_category"
            assert page.get_attribute("#errors", "data-reason") == "unseen_category"
            assert page.text_content("#error-message") == answer["message"]
            browser.close()
    finally:
        server.stop()
    assert not [c for c in console if c.startswith(("error", "pageerror"))], console
    figures = {
        "page_ready_ms": round(ready_ms, 1),
        "model_load_ms": round(model_load_ms, 1),
        "browser_score_ms_median": round(statistics.median(browser_ms), 3),
        "api_round_trip_ms_median": round(statistics.median(api_ms), 2),
        "rows": len(rows),
    }
    (tmp_path / "figures.json").write_text(json.dumps(figures))
    print("web page figures:", json.dumps(figures))
