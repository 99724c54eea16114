"""Test helpers: real-shaped Lambda events (from AWS's documented examples in tests/events/)."""

from __future__ import annotations

import base64
import copy
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).parent / "events"
EVENT_KINDS = ("rest_v1", "http_v2", "alb")


def event(
    kind: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    b64: bool = False,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An event of the given kind for ``method path`` with a JSON body (or raw bytes) and extra headers."""
    ev = copy.deepcopy(json.loads((EVENTS / f"{kind}.json").read_text()))
    _stamp_now(ev)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if data is not None and not b64:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            b64 = True  # API Gateway base64-encodes bodies that are not text
    text = None if data is None else (base64.b64encode(data).decode() if b64 else data.decode())
    if kind == "rest_v1":
        ev.update(httpMethod=method, path=path, pathParameters={"proxy": path.lstrip("/")}, body=text, isBase64Encoded=b64)
        ev["requestContext"].update(httpMethod=method, path=f"/{ev['requestContext']['stage']}{path}")
        if request_id:
            ev["requestContext"]["requestId"] = request_id
    elif kind == "http_v2":
        ev.update(rawPath=path, body=text, isBase64Encoded=b64)
        ev["requestContext"]["http"].update(method=method, path=path)
        ev["headers"]["content-length"] = str(len(data or b""))
        if request_id:
            ev["requestContext"]["requestId"] = request_id
    elif kind == "alb":
        ev.update(httpMethod=method, path=path, body=text or "", isBase64Encoded=b64)
    else:
        raise ValueError(kind)
    for k, v in (headers or {}).items():
        if ev.get("headers") is not None:
            ev["headers"][k.lower()] = v
        if ev.get("multiValueHeaders") is not None:
            ev["multiValueHeaders"][k.lower()] = [v]
    return ev


def _stamp_now(ev: dict[str, Any]) -> None:
    """API Gateway stamps each request with its arrival time; so do we (captures are dated by it)."""
    ctx = ev.get("requestContext") or {}
    now = datetime.now(UTC)
    ms = int(now.timestamp() * 1000)
    if "requestTimeEpoch" in ctx:
        ctx["requestTimeEpoch"] = ms
        ctx["requestTime"] = now.strftime("%d/%b/%Y:%H:%M:%S +0000")
    if "timeEpoch" in ctx:
        ctx["timeEpoch"] = ms
        ctx["time"] = now.strftime("%d/%b/%Y:%H:%M:%S +0000")


def response_json(resp: dict[str, Any]) -> Any:
    body = resp.get("body") or ""
    if resp.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body)


def header(resp: dict[str, Any], name: str) -> str | None:
    for k, v in (resp.get("headers") or {}).items():
        if k.lower() == name.lower():
            return v
    for k, v in (resp.get("multiValueHeaders") or {}).items():
        if k.lower() == name.lower():
            return v[0]
    return None


def read_jsonl_gz(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(data).decode().splitlines() if line.strip()]


def arrow_stream(table: Any, max_chunksize: int = 64) -> bytes:
    """An Arrow IPC stream of ``table`` (a pyarrow Table) in several record batches."""
    import io

    import pyarrow as pa

    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=max_chunksize):
            writer.write_batch(batch)
    return sink.getvalue()


def arrow_answer(resp: dict[str, Any]) -> Any:
    """The pyarrow Table of an Arrow answer (base64 through API Gateway, or raw)."""
    import pyarrow as pa

    body = base64.b64decode(resp["body"]) if resp.get("isBase64Encoded") else resp["body"].encode("latin-1")
    return pa.ipc.open_stream(body).read_all()
