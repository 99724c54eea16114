"""Post-response executors without Lambda: mode and budget settings, the bounded thread, drops.

The Lambda path (the internal extension under awslambdaric) is proven end to end in
tests/functional/test_post_response_capture.py.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from serving.capture import Capturer
from serving.post_response import (
    DEFAULT_CAPTURE_BUDGET_S,
    ENV_CAPTURE_BUDGET_S,
    ENV_CAPTURE_MODE,
    ExtensionCapture,
    ExtensionsApi,
    SyncCapture,
    ThreadCapture,
    capture_budget_s,
    capture_client_config,
    capture_mode,
    executor_from_env,
)
from tests.unit.test_capture_unit import MANIFEST, RecordingSink, T, _scored

# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "mode"),
    [
        ({}, "sync"),
        ({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}, "extension"),
        ({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", ENV_CAPTURE_MODE: "sync"}, "sync"),
        ({ENV_CAPTURE_MODE: "Thread"}, "thread"),
        ({ENV_CAPTURE_MODE: "auto"}, "sync"),
    ],
)
def test_capture_mode_auto_means_the_extension_only_where_lambda_runs(environ: dict[str, str], mode: str) -> None:
    assert capture_mode(environ) == mode


def test_unknown_capture_mode_is_an_error_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="extension"):
        capture_mode({ENV_CAPTURE_MODE: "later"})


@pytest.mark.parametrize("budget", [0.6, 3.0, DEFAULT_CAPTURE_BUDGET_S, 20.0])
def test_two_attempts_of_connect_plus_read_fit_the_budget_without_sdk_retries(budget: float) -> None:
    cfg = capture_client_config(capture_budget_s({ENV_CAPTURE_BUDGET_S: str(budget)}))
    assert 2 * (cfg.connect_timeout + cfg.read_timeout) == pytest.approx(budget)
    assert cfg.retries["total_max_attempts"] == 1


def test_default_budget_keeps_the_earlier_timeouts() -> None:
    cfg = capture_client_config(capture_budget_s({}))
    assert (cfg.connect_timeout, cfg.read_timeout) == pytest.approx((1.0, 2.0))


@pytest.mark.parametrize("raw", ["0", "-1", "29", "soon"])
def test_budget_out_of_range_is_an_error(raw: str) -> None:
    with pytest.raises(ValueError):
        capture_budget_s({ENV_CAPTURE_BUDGET_S: raw})


def test_extension_mode_without_a_reachable_api_falls_back_to_writing_before_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    executor = executor_from_env({"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}"})
    assert isinstance(executor, SyncCapture)
    assert "capture extension unavailable" in caplog.text


# --- the bounded background thread ---------------------------------------------------------------


def _capturer(executor: Any, sink: RecordingSink) -> Capturer:
    return Capturer(MANIFEST, sink, "prod", executor=executor)


def test_thread_writes_after_capture_returns_and_close_drains() -> None:
    gate = threading.Event()
    sink = RecordingSink()
    original = sink.write

    def slow_write(key: str, records: Any) -> None:
        gate.wait(5)
        original(key, records)

    sink.write = slow_write  # type: ignore[method-assign]
    executor = ThreadCapture(max_pending=10, writers=1)  # one writer: the writes in submission order
    c = _capturer(executor, sink)
    assert all(c.capture(f"r{i}", T, *_scored(2)) for i in range(3))
    assert sink.calls == []  # accepted, not yet written: capture() did not wait for the sink
    gate.set()
    assert executor.close(timeout=5)
    assert [len(records) for _, records in sink.calls] == [2, 2, 2]
    assert [records[0].request_id for _, records in sink.calls] == ["r0", "r1", "r2"]


def test_thread_queue_bound_drops_and_counts_the_excess() -> None:
    dropped: list[int] = []
    after: list[int] = []
    executor = ThreadCapture(max_pending=3, on_dropped=dropped.append, after_work=lambda: after.append(1), writers=1)
    release = threading.Event()
    sink = RecordingSink()
    original = sink.write

    def stalled_write(key: str, records: Any) -> None:
        release.wait(5)  # a stalled S3: the one writer holds the first capture
        original(key, records)

    sink.write = stalled_write  # type: ignore[method-assign]
    c = _capturer(executor, sink)
    results = [c.capture("r0", T, *_scored(1))]
    deadline = time.monotonic() + 5
    while executor._queue.qsize() and time.monotonic() < deadline:
        time.sleep(0.002)  # the writer has taken r0
    results.extend(c.capture(f"r{i}", T, *_scored(1)) for i in range(1, 8))
    assert results == [True] * 4 + [False] * 4  # 1 taken by the writer + 3 queued; the rest dropped
    assert dropped == [1] * 4 and executor.dropped == 4
    assert sink.calls == []
    release.set()
    assert executor.close(timeout=5)
    accepted = 4
    assert [records[0].request_id for _, records in sink.calls] == [f"r{i}" for i in range(accepted)]
    assert len(after) == accepted  # the metrics flush after each write


def test_invocations_run_concurrently_and_never_wait_for_a_stalled_writer() -> None:
    executor = ThreadCapture(max_pending=100, writers=2)
    release = threading.Event()
    sink = RecordingSink()
    original = sink.write

    def stalled_write(key: str, records: Any) -> None:
        release.wait(10)
        original(key, records)

    sink.write = stalled_write  # type: ignore[method-assign]
    c = _capturer(executor, sink)
    inside = threading.Barrier(4, timeout=5)  # four invocations inside the handler at once, or it times out

    @executor.invocation
    def handler(event: Any, context: Any) -> float:
        started = time.monotonic()
        c.capture(f"r{event}", T, *_scored(1))
        inside.wait()
        return time.monotonic() - started

    with ThreadPoolExecutor(4) as pool:
        took = list(pool.map(lambda i: handler(i, None), range(4)))
    assert max(took) < 2.0 and sink.calls == []  # answered while both writers are stalled
    release.set()
    assert executor.close(timeout=5)
    assert sorted(records[0].request_id for _, records in sink.calls) == ["r0", "r1", "r2", "r3"]


# --- the extension executor outside Lambda -------------------------------------------------------


class _BlockedApi(ExtensionsApi):
    """An Extensions API whose next event never comes (the worker stays alive, waiting)."""

    def __init__(self) -> None:
        super().__init__("unused:0")
        self.stop = threading.Event()

    def next_event(self, ext_id: str) -> dict[str, Any]:
        self.stop.wait(10)
        raise ConnectionError("closed")


def test_extension_bound_per_invocation_drops_and_counts() -> None:
    api = _BlockedApi()
    dropped: list[int] = []
    executor = ExtensionCapture(api, "ext-1", max_pending=2, on_dropped=dropped.append)
    executor._thread.start()
    try:
        c = _capturer(executor, RecordingSink())
        assert [c.capture(f"r{i}", T, *_scored(1)) for i in range(4)] == [True, True, False, False]
        assert dropped == [1, 1]
    finally:
        api.stop.set()
        executor._thread.join(5)
    assert not executor.alive  # the API gone: the worker ends (logged), and captures are written now


def test_extension_without_its_worker_writes_before_the_answer() -> None:
    executor = ExtensionCapture(_BlockedApi(), "ext-1")  # worker never started (or gone)
    sink = RecordingSink()
    c = _capturer(executor, sink)
    assert c.capture("r0", T, *_scored(2)) is True
    assert [records[0].request_id for _, records in sink.calls] == ["r0"]


def test_a_full_thread_queue_holds_the_invocation_up_to_its_wait_then_keeps_the_capture() -> None:
    """A burst beyond the writers: with ``full_wait_s`` the capture waits for a place (the answer is held, at
    most that long) instead of being dropped; without a free place in time it is dropped and counted."""
    dropped: list[int] = []
    executor = ThreadCapture(max_pending=1, on_dropped=dropped.append, writers=1, full_wait_s=2.0)
    release = threading.Event()
    sink = RecordingSink()
    original = sink.write

    def slow_write(key: str, records: Any) -> None:
        release.wait(5)
        original(key, records)

    sink.write = slow_write  # type: ignore[method-assign]
    c = _capturer(executor, sink)
    assert c.capture("r0", T, *_scored(1))
    deadline = time.monotonic() + 5
    while executor._queue.qsize() and time.monotonic() < deadline:
        time.sleep(0.002)  # the writer holds r0
    assert c.capture("r1", T, *_scored(1))  # queued: the one place
    threading.Timer(0.3, release.set).start()  # the writer frees up while r2 waits for a place
    started = time.monotonic()
    assert c.capture("r2", T, *_scored(1))
    waited = time.monotonic() - started
    assert 0.2 < waited < 2.0 and dropped == []
    assert executor.close(timeout=5)
    assert sorted(records[0].request_id for _, records in sink.calls) == ["r0", "r1", "r2"]

    stuck = ThreadCapture(max_pending=1, on_dropped=dropped.append, writers=1, full_wait_s=0.2)
    hold = threading.Event()
    stuck_sink = RecordingSink()
    stuck_sink.write = lambda key, records: hold.wait(5)  # type: ignore[method-assign]
    s = _capturer(stuck, stuck_sink)
    assert s.capture("s0", T, *_scored(1))
    deadline = time.monotonic() + 5
    while stuck._queue.qsize() and time.monotonic() < deadline:
        time.sleep(0.002)
    assert s.capture("s1", T, *_scored(1))
    assert not s.capture("s2", T, *_scored(1))  # no place within 0.2 s: dropped and counted
    assert dropped == [1] and stuck.dropped == 1
    hold.set()
    stuck.close(timeout=5)
