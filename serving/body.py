"""Reading a request body: its media type, its size (declared and read), gzip decompressed within the
same limit. Every problem is a ``RequestError`` (415, 413, or 400 for a corrupt gzip body)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from starlette.requests import Request

from .validation import BODY_TOO_LARGE, MALFORMED_JSON, UNSUPPORTED_MEDIA_TYPE, RequestError, echo

# media types a JSON body may be sent as: JSON, and curl's default for -d (the body must still be JSON)
JSON_MEDIA = ("application/json", "application/x-www-form-urlencoded")


def media_type(content_type: str | None) -> str:
    """The media type of a content-type header, lowercased, without parameters ("" when absent)."""
    return (content_type or "").split(";")[0].strip().lower()


def is_json_media(media: str) -> bool:
    return media in JSON_MEDIA or media.endswith("+json")


def unsupported_media(content_type: str, accepted: Sequence[str]) -> RequestError:
    return RequestError(UNSUPPORTED_MEDIA_TYPE, f"content-type {echo(content_type, 100)!r} is not accepted: send {' or '.join(accepted)}")


async def read_body(request: Request, max_body: int) -> bytes:
    """The request body, at most ``max_body`` bytes; a gzip content-encoding decompressed to at most ``max_body`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_body:
        raise RequestError(BODY_TOO_LARGE, f"request body over {max_body} bytes")
    body = await request.body()
    if len(body) > max_body:
        raise RequestError(BODY_TOO_LARGE, f"request body over {max_body} bytes")
    encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return gunzip_capped(body, max_body)
    if encoding != "identity":
        raise RequestError(UNSUPPORTED_MEDIA_TYPE, f"content-encoding {echo(encoding, 100)!r} is not accepted: send gzip or none")
    return body


def gunzip_capped(data: bytes, max_bytes: int) -> bytes:
    """Decompress a gzip body (any number of members) to at most ``max_bytes``: a gzip bomb is a 413,
    found after decompressing ``max_bytes`` + 1 bytes, never more."""
    out = bytearray()
    rest = data
    try:
        while rest:
            d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            out += d.decompress(rest, max_bytes + 1 - len(out))
            if len(out) > max_bytes or d.unconsumed_tail:
                raise RequestError(BODY_TOO_LARGE, f"request body over {max_bytes} bytes once decompressed")
            if not d.eof:
                raise RequestError(MALFORMED_JSON, "the gzip body is truncated")
            rest = d.unused_data
    except zlib.error as exc:
        raise RequestError(MALFORMED_JSON, f"the body is not valid gzip: {exc}") from None
    return bytes(out)
