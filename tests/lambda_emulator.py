"""A small local Lambda: the Runtime API and the Extensions API over HTTP on 127.0.0.1.

It runs a real handler under ``awslambdaric`` (the runtime interface client of Lambda's own Python
images) in a subprocess, and follows Lambda's lifecycle where it matters for post-response work:

- init ends when the runtime and every registered extension have asked for the next event;
  extensions may register only during init;
- an invocation starts when the event is handed to the runtime (and INVOKE to the extensions
  registered for it); it *ends* only when the runtime has posted its answer and the runtime and
  every extension have asked for the next event;
- between invocations the environment is frozen (SIGSTOP, as Lambda's cgroup freezer), and thawed
  (SIGCONT) for the next one; shutdown sends SHUTDOWN to the extensions registered for it, then
  SIGTERM to the runtime and SIGKILL after a grace period.

Per invocation it records when the answer was posted (``response_s``) and when the invocation
ended (``end_s``), both from the moment the event was handed over. ``DelayProxy`` puts a fixed
delay (or failures, or a hang) in front of an HTTP endpoint such as moto server.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
RUNTIME = "/2018-06-01/runtime"
EXTENSION = "/2020-01-01/extension"


def _read_body(req: BaseHTTPRequestHandler) -> bytes:
    if req.headers.get("transfer-encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            size = int(req.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                req.rfile.readline()
                return bytes(out)
            out += req.rfile.read(size)
            req.rfile.readline()
    n = int(req.headers.get("content-length") or 0)
    return req.rfile.read(n) if n else b""


def _reply(req: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
    req.send_response(status)
    for k, v in (headers or {}).items():
        req.send_header(k, v)
    req.send_header("Content-Length", str(len(body)))
    req.end_headers()
    req.wfile.write(body)


class _QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and 100-continue for clients that expect it
    disable_nagle_algorithm = True  # headers and body go in separate writes: no 40 ms delayed-ACK stalls

    def log_message(self, fmt: str, *args: Any) -> None:
        return


# --- the S3 delay proxy --------------------------------------------------------------------------


@dataclass
class ProxiedCall:
    method: str
    path: str
    status: int
    received_at: float  # perf_counter when the request arrived
    answered_at: float  # perf_counter when the answer was ready to go back (just before sending it)


class DelayProxy:
    """HTTP reverse proxy adding ``delay_s`` before forwarding each request to ``upstream``.

    ``mode``: "ok" forwards; "fail" answers writes (PUT/POST) with S3's 503 SlowDown; "hang" holds
    writes unanswered for ``hang_s`` (a stuck S3), then closes the connection.
    """

    def __init__(self, upstream: str, delay_s: float = 0.02, mode: str = "ok", hang_s: float = 30.0) -> None:
        self.upstream = urlsplit(upstream).netloc
        self.delay_s = delay_s
        self.mode = mode
        self.hang_s = hang_s
        self.calls: list[ProxiedCall] = []
        self._closing = threading.Event()
        proxy = self

        class Handler(_QuietHandler):
            def _forward(self) -> None:
                received = time.perf_counter()
                body = _read_body(self)
                write = self.command in ("PUT", "POST")
                if write and proxy.mode == "hang":
                    proxy._closing.wait(proxy.hang_s)
                    self.close_connection = True
                    return
                time.sleep(proxy.delay_s)
                if write and proxy.mode == "fail":
                    status, headers, data = (
                        503,
                        {"Content-Type": "application/xml"},
                        (b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"),
                    )
                else:
                    conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                    try:
                        fwd = {
                            k: v
                            for k, v in self.headers.items()
                            if k.lower() not in ("host", "transfer-encoding", "content-length", "expect")
                        }
                        fwd["Host"] = proxy.upstream
                        fwd["Content-Length"] = str(len(body))
                        conn.request(self.command, self.path, body=body, headers=fwd)
                        resp = conn.getresponse()
                        status, data = resp.status, resp.read()
                        headers = {
                            k: v for k, v in resp.getheaders() if k.lower() not in ("content-length", "transfer-encoding", "connection")
                        }
                    finally:
                        conn.close()
                answered = time.perf_counter()  # before sending: the client cannot have the answer earlier
                proxy.calls.append(ProxiedCall(self.command, self.path, status, received, answered))
                _reply(self, status, data, headers)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def writes(self) -> list[ProxiedCall]:
        return [c for c in self.calls if c.method in ("PUT", "POST")]

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()


# --- the emulator --------------------------------------------------------------------------------


@dataclass
class Invocation:
    request_id: str
    dispatched_at: float
    responded_at: float | None = None
    ended_at: float | None = None
    payload: Any = None
    error: Any = None

    @property
    def response_s(self) -> float:
        """(a) From the event handed to the runtime to its answer posted."""
        assert self.responded_at is not None
        return self.responded_at - self.dispatched_at

    @property
    def end_s(self) -> float:
        """(b) From the event handed over to the end of the invocation (what Lambda bills)."""
        assert self.ended_at is not None
        return self.ended_at - self.dispatched_at


@dataclass
class _Extension:
    name: str
    events: list[str]
    waiting: bool = False
    pending: dict[str, Any] | None = None


@dataclass
class _State:
    extensions: dict[str, _Extension] = field(default_factory=dict)
    runtime_waiting: bool = False
    runtime_started: bool = False  # the runtime asked for its first event: registration closes
    pending: tuple[str, bytes, dict[str, str]] | None = None
    current: Invocation | None = None
    init_error: Any = None
    closing: bool = False


class LambdaEmulator:
    """One Lambda execution environment running ``handler`` under awslambdaric (see module doc)."""

    def __init__(
        self,
        function_env: Mapping[str, str],
        handler: str = "handler.handler",
        cwd: Path = REPO / "lambda" / "inference",
        timeout_s: int = 10,
        freeze: bool = True,
        shutdown_grace_s: float = 0.5,
        log_path: Path | None = None,
    ) -> None:
        self.function_env = dict(function_env)
        self.handler = handler
        self.cwd = cwd
        self.timeout_s = timeout_s
        self.freeze = freeze
        self.shutdown_grace_s = shutdown_grace_s
        self.log_path = log_path
        self.invocations: list[Invocation] = []
        self.spawned_at = 0.0
        self.init_s: float | None = None  # spawn -> runtime and extensions ready
        self._cond = threading.Condition()
        self._st = _State()
        self._frozen = False
        self._proc: subprocess.Popen[bytes] | None = None
        emu = self

        class Handler(_QuietHandler):
            def do_GET(self) -> None:
                if self.path == f"{RUNTIME}/invocation/next":
                    emu._runtime_next(self)
                elif self.path == f"{EXTENSION}/event/next":
                    emu._extension_next(self)
                else:
                    _reply(self, 404)

            def do_POST(self) -> None:
                body = _read_body(self)
                parts = self.path.split("/")
                if self.path == f"{EXTENSION}/register":
                    emu._register(self, body)
                elif self.path.startswith(f"{RUNTIME}/invocation/") and parts[-1] in ("response", "error"):
                    emu._answer(self, parts[-2], parts[-1], body)
                elif self.path == f"{RUNTIME}/init/error":
                    with emu._cond:
                        emu._st.init_error = json.loads(body or b"null")
                        emu._cond.notify_all()
                    _reply(self, 202, b"{}")
                else:
                    _reply(self, 404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    # --- the API side (server threads) ---
    def _idle(self) -> bool:
        st = self._st
        return st.runtime_waiting and all(e.waiting for e in st.extensions.values())

    def _maybe_end(self) -> None:
        inv = self._st.current
        if inv is not None and inv.ended_at is None and (inv.responded_at is not None or inv.error is not None) and self._idle():
            inv.ended_at = time.perf_counter()
        self._cond.notify_all()

    def _runtime_next(self, req: BaseHTTPRequestHandler) -> None:
        with self._cond:
            st = self._st
            st.runtime_started = True
            st.runtime_waiting = True
            self._maybe_end()
            self._cond.wait_for(lambda: st.pending is not None or st.closing)
            if st.pending is None:
                req.close_connection = True
                return
            rid, body, headers = st.pending
            st.pending = None
        _reply(req, 200, body, headers)

    def _extension_next(self, req: BaseHTTPRequestHandler) -> None:
        ext_id = req.headers.get("Lambda-Extension-Identifier", "")
        with self._cond:
            ext = self._st.extensions.get(ext_id)
            if ext is None:
                _reply(req, 403, b'{"errorMessage":"unknown extension identifier","errorType":"Extension.InvalidExtensionIdentifier"}')
                return
            ext.waiting = True
            self._maybe_end()
            self._cond.wait_for(lambda: ext.pending is not None or self._st.closing)
            event, ext.pending = ext.pending, None
        if event is None:
            req.close_connection = True
            return
        _reply(req, 200, json.dumps(event).encode(), {"Content-Type": "application/json"})

    def _register(self, req: BaseHTTPRequestHandler, body: bytes) -> None:
        name = req.headers.get("Lambda-Extension-Name")
        events = (json.loads(body or b"{}") or {}).get("events") or []
        with self._cond:
            if self._st.runtime_started:  # Lambda accepts registrations during init only
                _reply(req, 403, b'{"errorMessage":"registration after init","errorType":"Extension.InvalidRegistration"}')
                return
            if not name or any(e not in ("INVOKE", "SHUTDOWN") for e in events):
                _reply(req, 400, b'{"errorMessage":"bad registration","errorType":"InvalidRequest"}')
                return
            ext_id = str(uuid.uuid4())
            self._st.extensions[ext_id] = _Extension(name, list(events))
        info = {
            "functionName": self.function_env.get("AWS_LAMBDA_FUNCTION_NAME", "emulated"),
            "functionVersion": "$LATEST",
            "handler": self.handler,
        }
        _reply(req, 200, json.dumps(info).encode(), {"Lambda-Extension-Identifier": ext_id, "Content-Type": "application/json"})

    def _answer(self, req: BaseHTTPRequestHandler, rid: str, kind: str, body: bytes) -> None:
        now = time.perf_counter()
        with self._cond:
            inv = self._st.current
            if inv is None or inv.request_id != rid:
                _reply(req, 400, b'{"errorMessage":"unknown request id","errorType":"InvalidRequestID"}')
                return
            if kind == "response":
                inv.responded_at, inv.payload = now, json.loads(body or b"null")
            else:
                inv.error = json.loads(body or b"null")
            self._maybe_end()
        _reply(req, 202, b'{"status":"OK"}', {"Content-Type": "application/json"})

    # --- the caller's side ---
    def registered(self) -> list[tuple[str, list[str]]]:
        """(name, events) of every extension that registered during init."""
        with self._cond:
            return [(e.name, list(e.events)) for e in self._st.extensions.values()]

    def start(self, init_timeout_s: float = 60.0) -> LambdaEmulator:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(REPO),
            "LAMBDA_TASK_ROOT": str(self.cwd),
            "AWS_LAMBDA_RUNTIME_API": self.address,
            "AWS_LAMBDA_FUNCTION_NAME": "emulated-inference",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/emulated-inference",
            "AWS_LAMBDA_LOG_STREAM_NAME": "emulated",
            "_HANDLER": self.handler,
            **self.function_env,
        }
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
        self.spawned_at = time.perf_counter()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", self.handler], cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        if log is not subprocess.DEVNULL:
            log.close()
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._idle() or self._st.init_error is not None or self._proc.poll() is not None, init_timeout_s
            )
            if self._st.init_error is not None or not ok or not self._idle():
                raise RuntimeError(f"init failed: {self._st.init_error or 'runtime not ready'}; see {self.log_path}")
            self.init_s = time.perf_counter() - self.spawned_at
        return self

    def invoke(self, event: Any, timeout_s: float | None = None) -> Invocation:
        """Hand ``event`` to the runtime; return once the invocation has ended (then freeze)."""
        assert self._proc is not None
        rid = str(uuid.uuid4())
        body = json.dumps(event).encode()
        deadline_ms = int(time.time() * 1000) + self.timeout_s * 1000
        with self._cond:
            st = self._st
            if not self._idle():
                raise RuntimeError("the environment is busy")
            if self._frozen:
                os.kill(self._proc.pid, signal.SIGCONT)
                self._frozen = False
            inv = Invocation(rid, time.perf_counter())
            st.current = inv
            self.invocations.append(inv)
            st.runtime_waiting = False
            st.pending = (
                rid,
                body,
                {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": rid,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:emulated-inference",
                    "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]};Sampled=0",
                },
            )
            for ext in st.extensions.values():
                if "INVOKE" in ext.events:  # the others take no part in invocations
                    ext.waiting = False
                    ext.pending = {
                        "eventType": "INVOKE",
                        "deadlineMs": deadline_ms,
                        "requestId": rid,
                        "invokedFunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:emulated-inference",
                        "tracing": {"type": "X-Amzn-Trace-Id", "value": st.pending[2]["Lambda-Runtime-Trace-Id"]},
                    }
            self._cond.notify_all()
            ended = self._cond.wait_for(lambda: inv.ended_at is not None or self._proc.poll() is not None, timeout_s or self.timeout_s)
            if not ended or inv.ended_at is None:
                raise TimeoutError(f"invocation {rid} did not end (runtime exited: {self._proc.poll()})")
            if self.freeze:
                os.kill(self._proc.pid, signal.SIGSTOP)
                self._frozen = True
        return inv

    def shutdown(self) -> int | None:
        """SHUTDOWN to the extensions registered for it, SIGTERM, SIGKILL after the grace period."""
        proc = self._proc
        with self._cond:
            st = self._st
            if proc is not None and proc.poll() is None:
                if self._frozen:
                    os.kill(proc.pid, signal.SIGCONT)
                    self._frozen = False
                for ext in st.extensions.values():
                    if "SHUTDOWN" in ext.events:
                        ext.pending = {"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": int(time.time() * 1000) + 2000}
                self._cond.notify_all()
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(self.shutdown_grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        with self._cond:
            self._st.closing = True
            self._cond.notify_all()
        self.server.shutdown()
        self.server.server_close()
        return code

    def __enter__(self) -> LambdaEmulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
