"""The embedded default: local AWS (moto server on 127.0.0.1) and a local API gateway.

The gateway turns HTTP requests into API Gateway REST (v1) events and calls the real Lambda
handler module (``lambda/inference/handler.py``), so local runs and Lambda share one code path.

The helpers every local run shares live here too, so the demo, the comparison, the tests and the
benchmarks import one module and not each other: ``local_stack`` (local AWS + the handlers + the
gateway), ``post_json`` over loopback, ``read_s3_object``, ``sleep_to_next_second``.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import os
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_DIR = REPO_ROOT / "lambda"
LOCAL_REGION = "us-east-1"
LOCAL_BUCKET = "modelserve-local-captures"


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str = "local"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = ""
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:local"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    function_version: str = "$LATEST"
    deadline_ms: int = 0

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000)) if self.deadline_ms else 900_000

    @classmethod
    def fresh(cls, function_name: str = "local", timeout_s: int = 900) -> LambdaContext:
        return cls(
            function_name=function_name,
            aws_request_id=str(uuid.uuid4()),
            deadline_ms=int(time.time() * 1000) + timeout_s * 1000,
        )


def rest_v1_event(
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    stage: str = "prod",
    request_id: str | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway REST API proxy-integration event, as API Gateway builds it."""
    headers = dict(headers or {})
    is_b64 = False
    text: str | None = None
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, is_b64 = base64.b64encode(body).decode(), True
    now = datetime.now(UTC)
    rid = request_id or str(uuid.uuid4())
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourceId": "abc123",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "extendedRequestId": rid,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": "000000000000",
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": "localhost",
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": rid,
            "identity": {"sourceIp": source_ip, "userAgent": headers.get("user-agent", "")},
            "domainName": "localhost",
            "apiId": "local",
        },
        "body": text,
        "isBase64Encoded": is_b64,
    }


def load_handler_module(function: str) -> ModuleType:
    """Import lambda/<function>/handler.py as Lambda would (its folder is not a package)."""
    path = LAMBDA_DIR / function / "handler.py"
    name = f"lambda_{function}_handler"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


DRAIN_FACTOR = 4  # a body over the limit is still read up to this many times the limit, then the connection closed


class _GatewayRequestHandler(BaseHTTPRequestHandler):
    """One HTTP request through the gateway (``server.gateway``): body, stage check, event, handler, reply."""

    protocol_version = "HTTP/1.1"
    server: _GatewayServer

    def _read_body(self) -> bytes | None:
        max_body = self.server.gateway.max_body
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            return self._read_chunked(max_body)
        length = int(self.headers.get("content-length") or 0)
        if length > max_body:
            self._discard(length)
            raise ValueError("too long")
        return self.rfile.read(length) if length else None

    def _discard(self, length: int) -> None:
        """Read a refused body to its end (up to ``DRAIN_FACTOR`` times the limit), so the client, still
        sending, reads the 413 instead of a broken pipe; past that the connection is closed on it."""
        left = length if length <= DRAIN_FACTOR * self.server.gateway.max_body else 0
        while left > 0:
            got = len(self.rfile.read(min(left, 1 << 16)))
            if not got:
                return
            left -= got

    def _read_chunked(self, max_body: int) -> bytes | None:
        chunks, total = [], 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks) or None
            total += size
            if total > max_body:
                self._discard(size)  # this chunk; the rest of a chunked body is left: the connection closes
                raise ValueError("too long")
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _serve(self) -> None:
        gateway = self.server.gateway
        try:
            body = self._read_body()
        except ValueError:  # API Gateway's own payload limit answers before Lambda
            self.close_connection = True
            self._reply(413, {"content-type": "application/json"}, b'{"message":"Request Too Long"}')
            return
        url = urlsplit(self.path)
        path = url.path
        if not (path == f"/{gateway.stage}" or path.startswith(f"/{gateway.stage}/")):
            self._reply(404, {"content-type": "application/json"}, b'{"message":"Not Found"}')
            return
        path = path[len(gateway.stage) + 1 :] or "/"
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
        event = rest_v1_event(self.command, path, body, headers, dict(parse_qsl(url.query)), gateway.stage)
        try:
            result = gateway.invoke(event)
        except Exception as exc:  # what API Gateway answers when the function fails
            self._reply(502, {"content-type": "application/json"}, json.dumps({"message": f"Internal server error: {exc}"}).encode())
            return
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        self._reply(int(result.get("statusCode", 200)), result.get("headers") or {}, data)

    def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = _serve

    def __getattr__(self, name: str) -> Any:
        # any other method (QUERY, PROPFIND, ...) reaches the function too, as through API Gateway's ANY
        if name.startswith("do_") and name[3:].isalpha():
            return self._serve
        raise AttributeError(name)

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: the handler logs JSON
        return


class _GatewayServer(ThreadingHTTPServer):
    """The HTTP server, knowing the gateway its requests go through."""

    # the listen backlog: the default 5 reset connections of a burst of clients (24 at once reset 2-6 a minute)
    request_queue_size = 256

    def __init__(self, port: int, gateway: LocalGateway) -> None:
        self.gateway = gateway
        super().__init__(("127.0.0.1", port), _GatewayRequestHandler)


class LocalGateway:
    """HTTP on 127.0.0.1 -> REST v1 event -> Lambda handler -> HTTP response.

    Like API Gateway in front of Lambda: concurrent clients are served by up to ``concurrency``
    handler calls at once (Lambda runs one event per instance and scales out instances), every
    method reaches the function (HEAD and OPTIONS too), chunked request bodies are read, and a path
    outside ``/<stage>`` is a 404 from the gateway itself.
    """

    def __init__(
        self,
        handler: Callable[[dict[str, Any], Any], dict[str, Any]],
        stage: str,
        port: int = 8080,
        max_body: int = 10 * 1024 * 1024,
        concurrency: int = 4,
    ):
        self.handler = handler
        self.stage = stage
        self.max_body = max_body
        # each worker thread has its own event loop, as each Lambda instance has its own process
        self._worker = ThreadPoolExecutor(max_workers=concurrency, initializer=lambda: asyncio.set_event_loop(asyncio.new_event_loop()))
        self.server = _GatewayServer(port, self)
        self.port = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        """The handler's answer to one event, on one of the ``concurrency`` workers (a fresh context each)."""
        return self._worker.submit(self.handler, event, LambdaContext.fresh()).result()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.stage}"

    def start(self) -> LocalGateway:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._worker.shutdown(wait=False)


@contextmanager
def scoped_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# credentials that can reach no account: every local run, test and benchmark against moto uses them
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": LOCAL_REGION,
    "AWS_REGION": LOCAL_REGION,
}


@contextmanager
def moto_server(port: int = 0) -> Iterator[str]:
    """moto as a server on 127.0.0.1 (its endpoint URL), for processes of their own: the environment is untouched."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log lines from moto
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        host, bound = server.get_host_and_port()
        yield f"http://{host}:{bound}"
    finally:
        server.stop()


@contextmanager
def local_aws(port: int = 0) -> Iterator[str]:
    """Start moto server on 127.0.0.1 and point boto3 at it through the environment."""
    with moto_server(port) as endpoint, scoped_env({**FAKE_AWS_ENV, "AWS_ENDPOINT_URL": endpoint}):
        yield endpoint


def local_function_env(bundle_dir: str | Path) -> dict[str, str]:
    """What the stack would set on the functions, pointed at the local bundle and bucket; a request id key of
    this run's own (the stack's is a generated secret), so feedback is checked as it is when deployed."""
    from modelserve.settings import ENV_BUNDLE_PATH, ENV_CAPTURE_BUCKET, ENV_REQUEST_ID_KEY

    return {ENV_BUNDLE_PATH: str(Path(bundle_dir).resolve()), ENV_CAPTURE_BUCKET: LOCAL_BUCKET, ENV_REQUEST_ID_KEY: secrets.token_hex(24)}


def create_local_bucket(bucket: str = LOCAL_BUCKET) -> None:
    """The bucket the stack would create (encryption and TLS policy are the stack's job)."""
    import boto3

    boto3.client("s3").create_bucket(Bucket=bucket)


@contextmanager
def log_capture_path(bundle_dir: str | Path, bucket: str) -> Iterator[None]:
    """With the ``logs`` sink (the default, or ``MS_CAPTURE_SINK`` in the run's environment): the capture lines'
    path, local CloudWatch Logs -> subscription -> Firehose -> ``bucket`` (devtools/local_capture_logs.py);
    nothing for the ``s3`` and ``firehose`` sinks."""
    from modelserve.bundle import ModelBundle
    from modelserve.settings import SharedSettings

    if SharedSettings.from_env().capture_sink != "logs":
        yield
        return

    from .local_capture_logs import local_log_capture

    with local_log_capture(ModelBundle.load(bundle_dir).manifest, bucket):
        yield


@dataclass
class LocalStack:
    """What ``local_stack`` started: the moto endpoint, the handler modules and the gateway in front of inference."""

    endpoint: str
    bucket: str
    inference: ModuleType
    drift_check: ModuleType | None
    gateway: LocalGateway


@contextmanager
def local_stack(
    bundle_dir: str | Path,
    env: dict[str, str] | None = None,
    bucket: str = LOCAL_BUCKET,
    concurrency: int = 4,
    with_drift_check: bool = True,
) -> Iterator[LocalStack]:
    """Local AWS, the functions' environment (``env`` on top), the capture bucket, the real handlers
    loaded as Lambda loads them, and the gateway serving inference; all stopped on exit."""
    from modelserve.settings import ENV_CAPTURE_BUCKET

    function_env = {**local_function_env(bundle_dir), ENV_CAPTURE_BUCKET: bucket, **(env or {})}
    with local_aws() as endpoint, scoped_env(function_env), ExitStack() as path:
        create_local_bucket(bucket)
        path.enter_context(log_capture_path(bundle_dir, bucket))
        inference = load_handler_module("inference")
        drift_check = load_handler_module("drift_check") if with_drift_check else None
        gateway = LocalGateway(inference.handler, inference.serving.stage_name, port=0, concurrency=concurrency).start()
        try:
            yield LocalStack(endpoint, bucket, inference, drift_check, gateway)
        finally:
            gateway.stop()


# loopback only: never through an HTTP proxy the environment may name
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post_json(url: str, payload: Any, headers: dict[str, str] | None = None, timeout: float = 30.0) -> tuple[int, Any]:
    """POST ``payload`` as JSON over loopback; the status and the decoded answer (4xx/5xx included)."""
    sent = {"content-type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=sent, method="POST")
    try:
        with LOOPBACK.open(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def read_s3_object(bucket: str, s3_uri_or_key: str) -> bytes:
    """An object's bytes from (local) S3, by key or by ``s3://bucket/key`` as reports name them."""
    import boto3

    key = s3_uri_or_key.split("/", 3)[3] if s3_uri_or_key.startswith("s3://") else s3_uri_or_key
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def sleep_to_next_second() -> None:
    """Scheduled events carry whole seconds: step past this second so a window ending now holds every capture."""
    time.sleep(1.0 - (time.time() % 1.0) + 0.01)


def fmt_figure(x: Any) -> str:
    """A figure for the console, three significant digits; ``n/a`` when absent."""
    return "n/a" if x is None else f"{x:.3g}"
