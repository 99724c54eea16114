"""Lambda events to the ASGI app: Mangum (API Gateway REST v1, HTTP v2 and ALB events in, their answers
out), with each request's ASGI cycle run without an event loop when the app never waits on one.

The inference app never does: its request body is already in Mangum's queue, its answer goes into a
buffer, and nothing in it awaits I/O. Driving that coroutine to its end directly saves Mangum's per-call
task and loop iteration (a selector poll among them) on every request. If the app ever awaits a real
future, the rest of the cycle runs on the event loop, as Mangum would have run all of it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Coroutine
from io import BytesIO
from typing import Any

from mangum import Mangum
from mangum.protocols.http import HTTPCycle, HTTPCycleState
from mangum.types import ASGI, LambdaContext, LambdaEvent, Response


class DirectHTTPCycle(HTTPCycle):
    """Mangum's HTTP cycle (same messages, same 500 for an app that fails), run without a loop where it can be.

    The loop is set as the running one while the cycle runs (what asyncio code asks for with
    ``get_running_loop``, e.g. to set a timer), and the cycle runs in its own context, as a task would."""

    logger = logging.getLogger("mangum.http")  # Mangum's, looked up once rather than per request

    def __init__(self, scope: Any, body: bytes, loop: asyncio.AbstractEventLoop) -> None:
        # HTTPCycle.__init__'s state, with the request's messages in a ``_Messages`` instead of an asyncio.Queue
        self.scope, self.buffer, self.state = scope, BytesIO(), HTTPCycleState.REQUEST
        self.app_queue = _Messages(loop, {"type": "http.request", "body": body, "more_body": False})  # type: ignore[assignment]
        self.loop = loop

    def __call__(self, app: ASGI) -> Response:
        cycle, context = self.run(app), contextvars.copy_context()
        outer = asyncio.events._get_running_loop()  # None on Lambda; kept as it was whatever it is
        asyncio.events._set_running_loop(self.loop)
        try:
            waiting_on = context.run(cycle.send, None)
        except StopIteration:
            waiting_on = _DONE
        finally:
            asyncio.events._set_running_loop(outer)
        if waiting_on is not _DONE:  # it awaits something only the running loop completes
            self.loop.run_until_complete(self.loop.create_task(_finish(cycle, waiting_on), context=context))
        return {"status": self.status, "headers": self.headers, "body": self.body}


_DONE = object()


class _Messages:
    """What Mangum's cycle uses of its asyncio.Queue (``put``, ``put_nowait``, ``get``), without building one per
    request: the request's body first, the disconnect once the answer is complete. A ``get`` with nothing queued
    waits on a future of the loop, as the Queue's would, so the cycle goes on on the loop."""

    __slots__ = ("loop", "items", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, first: dict[str, Any]) -> None:
        self.loop, self.items = loop, deque([first])
        self.waiter: asyncio.Future[None] | None = None

    def put_nowait(self, message: dict[str, Any]) -> None:
        self.items.append(message)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def put(self, message: dict[str, Any]) -> None:
        self.put_nowait(message)

    async def get(self) -> dict[str, Any]:
        while not self.items:
            self.waiter = self.loop.create_future()
            await self.waiter
        return self.items.popleft()


async def _finish(cycle: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    """Go on with ``cycle`` on the running loop: wait for what it waits on, then resume it, to its end."""
    while True:
        if waiting_on is None:  # a bare yield: one turn of the loop
            await asyncio.sleep(0)
        else:  # its future: wait for it, without taking its result (the cycle does, raising its error if it failed)
            await asyncio.wait([waiting_on])
        try:
            waiting_on = cycle.send(None)
        except StopIteration:
            return


class LambdaAdapter(Mangum):
    """Mangum without lifespan (the model is loaded at init), each request's cycle a ``DirectHTTPCycle``."""

    def __init__(self, app: ASGI, api_gateway_base_path: str = "/", **kw: Any) -> None:
        super().__init__(app, lifespan="off", api_gateway_base_path=api_gateway_base_path, **kw)
        self.loop = asyncio.get_event_loop()  # the one Mangum set up

    def __call__(self, event: LambdaEvent, context: LambdaContext) -> dict[str, Any]:
        handler = self.infer(event, context)
        return handler(DirectHTTPCycle(handler.scope, handler.body, self.loop)(self.app))
