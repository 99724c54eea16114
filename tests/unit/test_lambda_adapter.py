"""The Lambda adapter answers every event as Mangum does, without running an event loop for the inference app.

The same events (API Gateway REST v1, HTTP v2, ALB) through Mangum and through ``LambdaAdapter`` give the same
answers from the real app; the app's cycle never reaches the event loop; an app that does await a real future
is finished on the loop; an app that fails gets Mangum's 500.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from mangum import Mangum

from serving.api import StageRootPath, create_app
from serving.lambda_adapter import LambdaAdapter
from serving.request_ids import RequestIds
from tests.infra.fake_bundle import fake_manifest
from tests.support import event

REQUESTS = [
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("HEAD", "/v2"),
    ("GET", "/v2/models/penguins/ready"),
    ("GET", "/v2/models/other"),
    ("GET", "/nowhere"),
    ("POST", "/docs"),
    ("GET", "/v2/health/live/"),
]


@pytest.fixture
def app() -> Any:
    service = SimpleNamespace(
        manifest=fake_manifest(),
        max_batch_rows=10,
        challenger=None,
        validator=SimpleNamespace(reject_unseen=True),
        request_ids=RequestIds(None),
    )
    return StageRootPath(create_app(service, max_body_bytes=1024, cors_origins=["https://page.example"]))  # type: ignore[arg-type]


def _comparable(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer without what differs per call (ALB events carry no request id: a fresh one each time)."""
    answer = json.loads(json.dumps(answer))
    for headers in (answer.get("headers") or {}, answer.get("multiValueHeaders") or {}):
        headers.pop("x-request-id", None)
    try:
        body = json.loads(answer["body"])
        if isinstance(body, dict):
            body.pop("request_id", None)
        answer["body"] = body
    except ValueError:
        pass
    return answer


@pytest.mark.parametrize("kind", ["rest_v1", "http_v2", "alb"])
def test_every_event_kind_gets_mangums_answer(app: Any, kind: str, lambda_context: Any) -> None:
    mangum, adapter = Mangum(app, lifespan="off", api_gateway_base_path="/prod"), LambdaAdapter(app, api_gateway_base_path="/prod")
    for method, path in REQUESTS:
        ev = event(kind, method, path, headers={"origin": "https://page.example"})
        theirs, ours = mangum(ev, lambda_context), adapter(ev, lambda_context)
        assert _comparable(ours) == _comparable(theirs), (kind, method, path)
        assert ours["statusCode"] in (200, 404, 405)


def test_the_inference_app_is_answered_without_running_the_event_loop(app: Any, monkeypatch: pytest.MonkeyPatch, lambda_context) -> None:
    def no_loop(self: Any, future: Any) -> Any:
        raise AssertionError("the event loop ran")

    adapter = LambdaAdapter(app, api_gateway_base_path="/prod")
    monkeypatch.setattr(asyncio.BaseEventLoop, "run_until_complete", no_loop)
    answer = adapter(event("rest_v1", "GET", "/v2/models/penguins"), lambda_context)
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["name"] == "penguins"
    with pytest.raises(AssertionError, match="the event loop ran"):
        Mangum(app, lifespan="off")(event("rest_v1", "GET", "/v2/models/penguins"), lambda_context)


async def _waits_on_the_loop(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await asyncio.sleep(0.01)  # a timer: only a running loop completes it
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(done.set_result, b"waited")
    await asyncio.sleep(0)  # a bare yield too
    body = await done
    await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def _fails_after_waiting(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await asyncio.sleep(0.001)
    raise RuntimeError("a bug")


async def _fails_at_once(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise RuntimeError("a bug")


def test_an_app_that_awaits_the_loop_is_finished_on_it(lambda_context: Any) -> None:
    answer = LambdaAdapter(_waits_on_the_loop)(event("http_v2", "POST", "/x", {"a": 1}), lambda_context)
    assert answer["statusCode"] == 201 and answer["body"] == "waited"


@pytest.mark.parametrize("app", [_fails_at_once, _fails_after_waiting])
def test_an_app_that_fails_gets_mangums_500(app: Any, lambda_context: Any) -> None:
    ev = event("rest_v1", "GET", "/x")
    ours, theirs = LambdaAdapter(app)(ev, lambda_context), Mangum(app, lifespan="off")(ev, lambda_context)
    assert ours == theirs and ours["statusCode"] == 500 and ours["body"] == "Internal Server Error"


async def _listens_for_the_disconnect(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the body, then listens for the disconnect while it answers (as a streaming answer does): the
    listener waits on an empty inbox until the answer is complete."""
    request = await receive()
    listener = asyncio.ensure_future(receive())
    await asyncio.sleep(0)  # the listener is waiting now
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": request["body"]})
    assert (await listener) == {"type": "http.disconnect"}


def test_a_receive_after_the_body_gets_the_disconnect_once_the_answer_is_complete(lambda_context: Any) -> None:
    ev = event("http_v2", "POST", "/x", {"a": 1})
    ours = LambdaAdapter(_listens_for_the_disconnect)(ev, lambda_context)
    theirs = Mangum(_listens_for_the_disconnect, lifespan="off")(ev, lambda_context)
    assert ours == theirs and ours["statusCode"] == 200 and json.loads(ours["body"]) == {"a": 1}
