"""Capture after the response: when a capture's write runs, chosen once at init.

``MS_CAPTURE_MODE`` picks the executor the ``Capturer`` hands its writes to:

- ``extension``: a Lambda *internal extension* (a thread in the runtime process, registered through
  the Extensions API for INVOKE events). The handler scores, queues the invocation's capture and
  returns; the runtime posts the answer; the extension's worker writes, and only then asks for the
  next event. Lambda ends an invocation (and may freeze or shut down the environment) only when
  the runtime *and* every extension have asked for the next event, so no write is cut short:
  the post-response pattern AWS documents for internal extensions.
- ``thread``: a pool of writer threads behind a bounded queue, for the local gateway (no freezing
  there): invocations run concurrently and never wait for a write.
- ``sync``: the write happens before the answer leaves (as before this module).
- ``auto`` (default): ``extension`` where the Extensions API is (``AWS_LAMBDA_RUNTIME_API`` set),
  else ``sync``; ``extension`` falls back to ``sync`` when registration fails.

Bounds: the capture clients' timeouts come from ``MS_CAPTURE_BUDGET_S`` (``capture_client_config``),
so a hung S3 or Firehose holds an environment at most that long after an answer; a write that
fails is counted (CaptureErrors) by the Capturer; work over the queue bound is dropped and
counted (CaptureDropped).
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .capture import SynchronousExecutor

logger = logging.getLogger(__name__)

# settings read from the function's environment (candidates for modelserve.settings.Settings)
ENV_CAPTURE_MODE = "MS_CAPTURE_MODE"
ENV_CAPTURE_BUDGET_S = "MS_CAPTURE_BUDGET_S"
CAPTURE_MODES = ("auto", "extension", "thread", "sync")
DEFAULT_CAPTURE_MODE = "auto"
# 2 attempts x (1 s connect + 2 s read): the capture clients' timeouts before this setting existed
DEFAULT_CAPTURE_BUDGET_S = 6.0
DEFAULT_MAX_PENDING = 100  # captures waiting for the writer; more are dropped and counted
# the local gateway's writer pool: 24 clients' captures at a PUT round trip each, and the queue an S3 stall
# of ``capture_budget_s`` fills at the local server's rate (about 500 answers a second on 2 cores)
DEFAULT_LOCAL_WRITERS = 16
DEFAULT_LOCAL_MAX_PENDING = 20_000

EXTENSION_NAME = "modelserve-capture"
EXTENSIONS_API = "/2020-01-01/extension"
# stop waiting for the handler's work this long before the invocation's deadline
HANDOVER_MARGIN_S = 0.2

Work = Callable[[], bool]
Hook = Callable[[], None]


def _no_drop(n: int) -> None:
    return None


def _nothing() -> None:
    return None


# --- settings ------------------------------------------------------------------------------------


def capture_mode(environ: Mapping[str, str]) -> str:
    """The executor to use: ``auto`` resolved by whether the Lambda Runtime API is there."""
    mode = (environ.get(ENV_CAPTURE_MODE) or DEFAULT_CAPTURE_MODE).strip().lower()
    if mode not in CAPTURE_MODES:
        raise ValueError(f"{ENV_CAPTURE_MODE} = {mode!r}: must be one of {CAPTURE_MODES}")
    if mode == "auto":
        return "extension" if environ.get("AWS_LAMBDA_RUNTIME_API") else "sync"
    return mode


def capture_budget_s(environ: Mapping[str, str]) -> float:
    """Longest a capture may take, retry included (seconds); must leave room in the function timeout."""
    raw = environ.get(ENV_CAPTURE_BUDGET_S)
    budget = DEFAULT_CAPTURE_BUDGET_S if raw in (None, "") else float(raw)
    if not 0.1 <= budget <= 28.0:
        raise ValueError(f"{ENV_CAPTURE_BUDGET_S} = {raw!r}: must be between 0.1 and 28 seconds")
    return budget


def capture_client_config(budget_s: float = DEFAULT_CAPTURE_BUDGET_S) -> Any:
    """botocore Config of the capture clients: the worst case of a capture is within ``budget_s``.

    No SDK retries (botocore's ``total_max_attempts`` counts attempts): the Capturer's one retry is
    the only one, so a capture makes at most 2 attempts of (connect + read) = budget / 2 each,
    a third of it to connect. The default (6 s) gives the 1 s + 2 s of earlier versions.
    """
    from botocore.config import Config

    per_attempt = budget_s / 2
    return Config(
        connect_timeout=per_attempt / 3,
        read_timeout=per_attempt * 2 / 3,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )


# --- executors -----------------------------------------------------------------------------------


class SyncCapture(SynchronousExecutor):
    """The write before the answer (local runs, tests, hosts without the Extensions API)."""

    mode = "sync"
    flushes_after_answer = False  # the handler flushes its metrics itself

    def invocation(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return fn

    def close(self, timeout: float = 0.0) -> bool:
        return True


def _run_work(work: Work) -> None:
    try:
        work()
    except Exception:  # noqa: BLE001 - the Capturer's write never raises; a bug must not kill the worker
        logger.exception("capture work failed")


class ThreadCapture:
    """A pool of writer threads behind a bounded queue (the local gateway: nothing freezes the process).

    Invocations run concurrently, as Lambda's environments do, and never wait for a write: a slow or
    stalled S3 holds its writers, not the answers. ``writers`` threads write at once (sized for the
    gateway's concurrency: a capture takes a PUT round trip, scoring a fraction of one). With ``max_pending``
    waiting, an invocation waits up to ``full_wait_s`` (the capture budget: what an answer may be held) for a
    place, so a burst beyond the writers slows its answers instead of losing captures; past that it is dropped
    and counted (CaptureDropped).
    """

    mode = "thread"
    flushes_after_answer = False

    def __init__(
        self,
        max_pending: int = DEFAULT_MAX_PENDING,
        on_dropped: Callable[[int], None] = _no_drop,
        after_work: Hook = _nothing,
        writers: int = DEFAULT_LOCAL_WRITERS,
        full_wait_s: float = 0.0,
    ) -> None:
        self._queue: queue.Queue[Work | None] = queue.Queue(maxsize=max_pending)
        self.full_wait_s = full_wait_s
        self.on_dropped = on_dropped
        self.after_work = after_work
        self.dropped = 0
        self._threads = [threading.Thread(target=self._run, name=f"capture-writer-{i}", daemon=True) for i in range(writers)]
        for t in self._threads:
            t.start()

    def submit(self, work: Work) -> bool:
        try:
            if self.full_wait_s > 0:
                self._queue.put(work, timeout=self.full_wait_s)
            else:
                self._queue.put_nowait(work)
        except queue.Full:
            self.dropped += 1
            logger.error("capture queue full (%d waiting): capture dropped", self._queue.maxsize)
            _safe(self.on_dropped, 1)
            return False
        return True

    def invocation(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return fn

    def _run(self) -> None:
        while True:
            work = self._queue.get()
            try:
                if work is None:
                    return
                _run_work(work)
                _safe(self.after_work)
            finally:
                self._queue.task_done()

    def close(self, timeout: float = 5.0) -> bool:
        """Write what is queued (up to ``timeout``) and stop the writers. Returns whether all was written."""
        deadline = time.monotonic() + timeout
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                return False
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)


class ExtensionsApiError(RuntimeError):
    pass


class ExtensionsApi:
    """The two calls of Lambda's Extensions API an internal extension needs (stdlib HTTP)."""

    def __init__(self, address: str) -> None:
        self.address = address  # host:port, from AWS_LAMBDA_RUNTIME_API

    def _call(self, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> tuple[dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.address)  # no timeout: next-event is a long poll
        try:
            conn.request(method, EXTENSIONS_API + path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise ExtensionsApiError(f"{method} {path}: HTTP {resp.status} {data[:200]!r}")
            return {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def register(self, name: str, events: list[str]) -> str:
        headers, _ = self._call(
            "POST",
            "/register",
            {"Lambda-Extension-Name": name, "Content-Type": "application/json"},
            json.dumps({"events": events}).encode(),
        )
        ext_id = headers.get("lambda-extension-identifier")
        if not ext_id:
            raise ExtensionsApiError("register: no Lambda-Extension-Identifier in the answer")
        return ext_id

    def next_event(self, ext_id: str) -> dict[str, Any]:
        _, data = self._call("GET", "/event/next", {"Lambda-Extension-Identifier": ext_id})
        return json.loads(data)


class ExtensionCapture:
    """Post-response writes through a Lambda internal extension (see the module docstring).

    The handler's captures collect in a list (one invocation at a time); ``invocation`` hands them
    to the worker when the handler returns, tagged with the request id. The worker, woken by the
    INVOKE event of that request, writes them, then asks for the next event, which ends the
    invocation. A handler that hands nothing over (it crashed, or the runtime never called it)
    releases the worker at the invocation's deadline.
    """

    mode = "extension"

    def __init__(
        self,
        api: ExtensionsApi,
        ext_id: str,
        max_pending: int = DEFAULT_MAX_PENDING,
        on_dropped: Callable[[int], None] = _no_drop,
        after_work: Hook = _nothing,
    ) -> None:
        self.api = api
        self.ext_id = ext_id
        self.max_pending = max_pending
        self.on_dropped = on_dropped
        self.after_work = after_work
        self.dropped = 0
        self._current: list[Work] = []
        self._handed: queue.Queue[tuple[str | None, list[Work]]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=EXTENSION_NAME, daemon=True)

    @classmethod
    def register(cls, address: str, name: str = EXTENSION_NAME, **kw: Any) -> ExtensionCapture:
        """Register for INVOKE events (during init, as Lambda requires) and start the worker."""
        api = ExtensionsApi(address)
        executor = cls(api, api.register(name, ["INVOKE"]), **kw)
        executor._thread.start()  # its first next-event call tells Lambda the extension is ready
        return executor

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def flushes_after_answer(self) -> bool:
        """Whether ``after_work`` (the metrics flush) runs once per invocation, after the answer and its captures."""
        return self.alive

    def submit(self, work: Work) -> bool:
        if not self.alive:  # the worker is gone (logged): write now rather than lose the capture
            return work()
        if len(self._current) >= self.max_pending:
            self.dropped += 1
            logger.error("capture queue full (%d this invocation): capture dropped", self.max_pending)
            _safe(self.on_dropped, 1)
            return False
        self._current.append(work)
        return True

    def end_invocation(self, request_id: str | None) -> None:
        batch, self._current = self._current, []
        if self.alive:
            self._handed.put((request_id, batch))
        else:
            for work in batch:
                _run_work(work)

    def invocation(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(event: Any, context: Any) -> Any:
            try:
                return fn(event, context)
            finally:
                self.end_invocation(getattr(context, "aws_request_id", None))

        return wrapper

    def _run(self) -> None:
        while True:
            try:
                event = self.api.next_event(self.ext_id)
            except Exception:  # noqa: BLE001 - without the API there is nothing more to wait for
                logger.exception("capture extension: next event failed; capturing before the answer from now on")
                return
            kind = event.get("eventType")
            if kind == "INVOKE":
                self._serve(event.get("requestId"), event.get("deadlineMs"))
            elif kind == "SHUTDOWN":
                self._serve(None, None, wait=False)
                return

    def _serve(self, request_id: str | None, deadline_ms: Any, wait: bool = True) -> None:
        """Write the work the handler hands over for ``request_id`` (and any handed over before it)."""
        wrote = False
        while True:
            if wait:
                timeout = (float(deadline_ms) / 1000.0 - time.time() - HANDOVER_MARGIN_S) if deadline_ms else 30.0
                try:
                    rid, batch = self._handed.get(timeout=max(0.0, timeout))
                except queue.Empty:
                    logger.warning("capture extension: no hand-over from the handler for request %s", request_id)
                    break
            else:
                try:
                    rid, batch = self._handed.get_nowait()
                except queue.Empty:
                    break
            for work in batch:
                _run_work(work)
                wrote = True
            if wait and rid == request_id:
                break
        if wrote or wait:  # every invocation's one flush: its metrics and its captures', after the answer
            _safe(self.after_work)

    def close(self, timeout: float = 0.0) -> bool:
        return True  # the worker ends with the environment; each invocation's writes end before it does


CaptureRunner = SyncCapture | ThreadCapture | ExtensionCapture


def executor_from_env(
    environ: Mapping[str, str],
    on_dropped: Callable[[int], None] = _no_drop,
    after_work: Hook = _nothing,
    max_pending: int = DEFAULT_MAX_PENDING,
    mode: str | None = None,
    full_wait_s: float = 0.0,
) -> CaptureRunner:
    """The executor ``mode`` (the ``capture_mode`` setting; else ``MS_CAPTURE_MODE``) asks for;
    ``after_work`` runs after writes (e.g. a metrics flush); ``full_wait_s``: how long a local invocation
    waits for a place in a full capture queue before its capture is dropped (the capture budget)."""
    mode = mode or capture_mode(environ)
    if mode == "auto":
        mode = "extension" if environ.get("AWS_LAMBDA_RUNTIME_API") else "sync"
    if mode == "thread":
        return ThreadCapture(max(max_pending, DEFAULT_LOCAL_MAX_PENDING), on_dropped, after_work, full_wait_s=full_wait_s)
    if mode == "extension":
        address = environ.get("AWS_LAMBDA_RUNTIME_API")
        try:
            if not address:
                raise ExtensionsApiError("AWS_LAMBDA_RUNTIME_API is not set")
            return ExtensionCapture.register(address, max_pending=max_pending, on_dropped=on_dropped, after_work=after_work)
        except Exception as exc:  # noqa: BLE001 - capture goes on, before the answer
            logger.error("capture extension unavailable (%s): capturing before the answer", exc)
    return SyncCapture()


def _safe(hook: Callable[..., Any], *args: Any) -> None:
    try:
        hook(*args)
    except Exception:  # noqa: BLE001 - metrics must not turn into a failed capture or a dead worker
        logger.exception("capture hook failed")
