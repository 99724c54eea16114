"""The local gateway (`make run`) behaves like API Gateway in front of Lambda, over real loopback HTTP."""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devtools.local import LocalGateway


class EchoFunction:
    """A Lambda function that answers with what it received and records how many ran at once."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s, self.running, self.most_at_once = delay_s, 0, 0
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.delay_s)
        with self.lock:
            self.running -= 1
        body = json.dumps({"method": event["httpMethod"], "path": event["path"], "body": event["body"]})
        return {"statusCode": 200, "headers": {"content-type": "application/json", "x-echo": "1"}, "body": body}


@pytest.fixture
def gateway() -> Any:
    fn = EchoFunction(delay_s=0.2)
    gw = LocalGateway(fn, "prod", port=0, concurrency=4).start()
    yield gw, fn
    gw.stop()


def _request(
    gw: LocalGateway, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        chunked = "chunked" in (headers or {}).get("Transfer-Encoding", "")
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_concurrent_clients_are_served_concurrently(gateway: Any) -> None:
    gw, fn = gateway
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: _request(gw, "GET", "/prod/health")[0], range(8)))
    assert statuses == [200] * 8
    assert fn.most_at_once > 1


def test_head_and_options_reach_the_function_and_head_has_no_body(gateway: Any) -> None:
    gw, _ = gateway
    status, headers, data = _request(gw, "HEAD", "/prod/health")
    assert status == 200 and headers["x-echo"] == "1" and data == b""
    status, _, data = _request(gw, "OPTIONS", "/prod/predict")
    assert status == 200 and json.loads(data)["method"] == "OPTIONS"


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "PROPFIND"])
def test_any_method_reaches_the_function(gateway: Any, method: str) -> None:
    gw, _ = gateway
    status, _, data = _request(gw, method, "/prod/predict")
    assert status == 200 and json.loads(data)["method"] == method


def test_a_chunked_body_reaches_the_function_whole(gateway: Any) -> None:
    gw, _ = gateway
    payload = b'{"instances": [' + b",".join(b'{"a": 1}' for _ in range(500)) + b"]}"
    chunks = (payload[i : i + 700] for i in range(0, len(payload), 700))
    status, _, data = _request(gw, "POST", "/prod/predict", body=chunks, headers={"Transfer-Encoding": "chunked"})  # type: ignore[arg-type]
    assert status == 200 and json.loads(data)["body"].encode() == payload


def test_paths_outside_the_stage_are_a_gateway_404(gateway: Any) -> None:
    gw, fn = gateway
    status, _, data = _request(gw, "POST", "/predict", body=b"{}")
    assert status == 404 and json.loads(data) == {"message": "Not Found"}
    status, _, data = _request(gw, "GET", "/prod/model")
    assert status == 200 and json.loads(data)["path"] == "/model"


def test_a_body_over_the_limit_is_answered_413_not_a_broken_pipe() -> None:
    gw = LocalGateway(EchoFunction(), "prod", port=0).start()  # the default limit: 10 MB, as API Gateway's
    try:
        for _ in range(2):  # a 413, and the next client is served as usual
            conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
            conn.request("POST", "/prod/predict", body=b"x" * (11 * 1024 * 1024), headers={"content-type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 413 and json.loads(resp.read()) == {"message": "Request Too Long"}
            conn.close()
            ok = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
            ok.request("POST", "/prod/predict", body=b"{}")
            assert ok.getresponse().status == 200
            ok.close()
    finally:
        gw.stop()


def test_a_burst_of_clients_connecting_at_once_is_never_reset() -> None:
    gw = LocalGateway(EchoFunction(delay_s=0.01), "prod", port=0, concurrency=4).start()
    start = threading.Barrier(64)

    def one(i: int) -> int:
        start.wait()  # every client connects in the same instant: more than a default listen backlog of 5
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=60)
        conn.request("POST", "/prod/predict", body=json.dumps({"i": i}).encode())
        status = conn.getresponse().status
        conn.close()
        return status

    try:
        with ThreadPoolExecutor(64) as pool:
            assert list(pool.map(one, range(64))) == [200] * 64
    finally:
        gw.stop()


def test_48_kept_alive_clients_are_each_served_on_their_one_connection_without_a_reset() -> None:
    gw = LocalGateway(EchoFunction(delay_s=0.002), "prod", port=0, concurrency=4).start()
    start = threading.Barrier(48)

    def one(i: int) -> list[int]:
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=60)
        start.wait()
        statuses = []
        for n in range(10):  # HTTP/1.1 keep-alive: every request on the same socket, as load tools and SDKs send them
            conn.request("POST", "/prod/predict", body=json.dumps({"i": i, "n": n}).encode(), headers={"content-type": "application/json"})
            resp = conn.getresponse()
            assert json.loads(resp.read())["body"] == json.dumps({"i": i, "n": n})
            statuses.append(resp.status)
            assert conn.sock is not None  # kept open: a close would make http.client reconnect silently
        conn.close()
        return statuses

    try:
        with ThreadPoolExecutor(48) as pool:
            assert [s for ss in pool.map(one, range(48)) for s in ss] == [200] * 480
    finally:
        gw.stop()
