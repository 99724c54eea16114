"""The default max_body_bytes fits Lambda's 6 MiB invoke payload once API Gateway escapes the body into
the event, whatever the body holds: otherwise bodies in between become gateway 5xx (Api5xxRate, rollback)."""

from __future__ import annotations

import base64
import json

import pytest

from modelserve.settings import ServingSettings
from tests.support import EVENT_KINDS, event

LAMBDA_INVOKE_PAYLOAD = 6 * 1024 * 1024


def _worst_case_bodies(n: int) -> dict[str, bytes]:
    return {
        # every character escaped: a JSON body of quotes doubles in the event's "body" string
        "quotes": b'{"instances": [{"s": "' + b'\\"' * ((n - 40) // 2) + b'"}]}',
        # backslashes double too; control characters grow sixfold but are not valid in a JSON body
        "backslashes": b'{"instances": [{"s": "' + b"\\\\" * ((n - 40) // 2) + b'"}]}',
        "numbers": b'{"instances": [' + b",".join(b'{"a": 1.25}' for _ in range(n // 12)) + b"]}",
        "binary": bytes(range(256)) * (n // 256),  # base64 in the event: 4/3
    }


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_a_body_of_the_default_limit_fits_the_invoke_payload_after_escaping(kind: str) -> None:
    limit = ServingSettings().max_body_bytes
    for name, body in _worst_case_bodies(limit).items():
        body = body[:limit]
        ev = event(kind, "POST", "/predict", raw=body, b64=name == "binary")
        size = len(json.dumps(ev).encode())
        assert size <= LAMBDA_INVOKE_PAYLOAD, f"{name}: {size} bytes of event for a {len(body)}-byte body"


def test_the_old_default_did_not_fit() -> None:
    """The check can fail: 6,000,000 bytes (the previous default) overflow once escaped."""
    body = _worst_case_bodies(6_000_000)["quotes"]
    ev = event("rest_v1", "POST", "/predict", raw=body)
    assert len(json.dumps(ev).encode()) > LAMBDA_INVOKE_PAYLOAD
    assert len(base64.b64encode(b"x" * 6_000_000)) > LAMBDA_INVOKE_PAYLOAD
