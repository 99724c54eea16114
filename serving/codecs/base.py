"""The request pipeline: one ``Codec`` per request format, registered by route and media type.

A codec writes only its own part: ``decode`` (body -> what the service validates), ``encode`` (the
service's answer -> a response) and, where its protocol has its own error shape, ``error``. The public
``Codec.handle`` owns the steps every format shares, as Powertools' ``BaseProvider.get`` does for its
providers: the media type and size checks, gzip, the format's own read errors wrapped as a refusal
(400, the codec's ``malformed_reason``), scoring, and the one reject call of the service
(``InferenceService.reject``: ValidationRejects and the rejects capture) for every refusal.

Adding a format: a ``Codec`` subclass in its own module and ``CODECS.register(TheCodec)``
(docs/development.md#extending).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from modelserve.schema import BundleManifest

from ..body import media_type, read_body, unsupported_media
from ..explain import EXPLAIN_KEY, EXPLAIN_UNAVAILABLE
from ..http_exchange import json_response, request_id_of, request_time_of, status_of
from ..service import InferenceService
from ..validation import RequestError

# the scoring routes; also the ``route`` of a refusal's capture record
PREDICT = "predict"
OIP = "oip"


@dataclass(frozen=True)
class Decoded:
    """A request body as its codec read it."""

    payload: Any  # what the service validates: a parsed JSON body, or a ColumnBatch
    context: Any = None  # what the codec needs again to answer (OIP: the outputs asked for)
    explain: Mapping[str, Any] | None = None  # the request's explain / explain_class options, as sent (serving/explain.py)


@dataclass(frozen=True)
class Problem:
    """A refused request, as a codec answers it."""

    refusal: RequestError
    status: int
    request_id: str
    model_version: str
    headers: dict[str, str]  # x-model-name, x-model-version, x-request-id

    def body(self) -> dict[str, Any]:
        """The API's error body: reason, message, details naming row and field, request id, model version."""
        return {**self.refusal.body(), "request_id": self.request_id, "model_version": self.model_version}


class Codec(ABC):
    """One request format on one route. Subclasses set the class attributes and write ``decode`` and
    ``encode``; ``error`` answers the API's JSON error body unless the protocol has its own."""

    route: ClassVar[str]  # PREDICT, OIP, or a route of its own
    media_types: ClassVar[tuple[str, ...]]  # the content-types it reads (named in a 415's message)
    answer_media: ClassVar[str | None] = None  # answers in this format when the client's Accept names it
    is_default: ClassVar[bool] = False  # the route's codec for a body without content-type, and for answers
    malformed_reason: ClassVar[str] = "malformed_body"  # the reason of a body ``decode`` cannot read (400)
    read_errors: ClassVar[tuple[type[Exception], ...]] = ()  # what ``decode`` raises for such a body
    openapi_note: ClassVar[str | None] = None  # its format, in the route's OpenAPI description (the default's is the schema)
    answers_explanations: ClassVar[bool] = False  # its answer format carries explanations (serving/explain.py)

    def __init__(self, manifest: BundleManifest) -> None:
        self.manifest = manifest

    def reads(self, media: str) -> bool:
        """Whether it reads a body of this media type (lowercased, no parameters)."""
        return media in self.media_types

    def answer_schema(self) -> dict[str, Any]:
        """The OpenAPI schema of its 200 answer in ``answer_media`` (for the served model: a format may type its columns by it)."""
        return {"type": "string", "format": "binary"}

    def openapi_body(self, max_rows: int) -> dict[str, dict[str, Any]]:
        """The request bodies it reads besides the route's JSON schema (``openapi.py``), as OpenAPI media type objects by media type."""
        return {}

    def openapi_parameters(self) -> list[dict[str, Any]]:
        """The request headers its format reads (OIP binary: ``Inference-Header-Content-Length``), as OpenAPI parameters."""
        return []

    @abstractmethod
    def decode(self, body: bytes, headers: Mapping[str, str]) -> Decoded:
        """The body (decompressed, within the size limit) as the service's payload."""

    @abstractmethod
    def encode(self, answer: dict[str, Any], decoded: Decoded, headers: dict[str, str]) -> Response:
        """The service's answer as a 200 response carrying ``headers``. ``decoded``: the request as
        read (by this codec, or by another codec of the route when the Accept header chose this one)."""

    def error(self, problem: Problem) -> Response:
        return json_response(problem.body(), problem.status, problem.headers)

    async def handle(self, request: Request, route: CodecRoute) -> Response:
        """Read, score and answer one request; every refusal counted, captured and answered by ``error``."""
        rid = request_id_of(request)
        decoded: Decoded | None = None
        try:
            content_type = request.headers.get("content-type")
            if content_type is not None and not self.reads(media_type(content_type)):
                raise unsupported_media(content_type, route.media_types)
            decoded = self._decode(await read_body(request, route.max_body), request.headers)
            answering = route.answering(request.headers.get("accept"))
            if decoded.explain and decoded.explain.get(EXPLAIN_KEY) is True and not answering.answers_explanations:
                raise RequestError(
                    EXPLAIN_UNAVAILABLE, f"explanations are answered as JSON, not as {answering.answer_media}: drop that Accept header"
                )
            answer = route.service.predict(
                decoded.payload,
                rid,
                event_time=request_time_of(request),
                client_id=request.headers.get("x-client-id"),
                explain=decoded.explain,
            )
        except RequestError as exc:
            status = status_of(exc)
            payload = decoded.payload if decoded is not None else None
            route.service.reject(exc, rid, status, payload, self.route, request_time_of(request))
            return self.error(Problem(exc, status, rid, self.manifest.version, {**route.served_headers, "x-request-id": rid}))
        # the version that answered: with a challenger deployed, either one (docs/versions.md)
        # the id the service issued for the answer: the one feedback names (serving/request_ids.py)
        headers = {**route.served_headers, "x-model-version": answer.body["model_version"], "x-request-id": answer.request_id}
        return answering.encode(answer.body, decoded, headers)

    def _decode(self, body: bytes, headers: Mapping[str, str]) -> Decoded:
        try:
            return self.decode(body, headers)
        except self.read_errors as exc:
            raise RequestError(self.malformed_reason, str(exc), status=400) from None


class CodecRoute:
    """The codecs of one route for one service: which reads a request, which writes an answer."""

    def __init__(self, name: str, codecs: list[Codec], service: InferenceService, max_body: int) -> None:
        defaults = [c for c in codecs if c.is_default]
        if len(defaults) != 1:
            raise ValueError(f"route {name!r} needs exactly one default codec, has {len(defaults)}")
        self.name, self.codecs, self.default = name, codecs, defaults[0]
        self.service, self.max_body = service, max_body
        self.served_headers = {"x-model-version": service.manifest.version, "x-model-name": service.manifest.model_name}
        self.media_types = list(dict.fromkeys(t for c in [self.default, *codecs] for t in c.media_types))  # the default's first

    def reading(self, content_type: str | None) -> Codec:
        """The codec for this content-type; the default one when none reads it (its ``handle`` answers the 415)."""
        media = media_type(content_type)
        return next((c for c in self.codecs if content_type is not None and c.reads(media)), self.default)

    def answering(self, accept: str | None) -> Codec:
        """The codec whose answer format the Accept header names, else the default one."""
        named = [c for c in self.codecs if c.answer_media and c.answer_media in (accept or "")]
        return next((c for c in named if c is not self.default), named[0] if named else self.default)

    def openapi_notes(self) -> list[str]:
        """What the other codecs say of their formats, for the route's OpenAPI description."""
        return [c.openapi_note for c in self.codecs if c is not self.default and c.openapi_note]

    def openapi_bodies(self, max_rows: int) -> dict[str, dict[str, Any]]:
        """The request bodies the codecs read besides the route's JSON schema, by media type, for the route's OpenAPI document."""
        return {media: body for c in self.codecs for media, body in c.openapi_body(max_rows).items()}

    def openapi_parameters(self) -> list[dict[str, Any]]:
        """The request headers the codecs read, as OpenAPI parameters (each once)."""
        by_name = {p["name"].lower(): p for c in self.codecs for p in c.openapi_parameters()}
        return list(by_name.values())

    async def __call__(self, request: Request) -> Response:
        return await self.reading(request.headers.get("content-type")).handle(request, self)


C = TypeVar("C", bound=type[Codec])


class CodecRegistry:
    """Codec classes by route, in registration order; a media type is read by one codec per route."""

    def __init__(self) -> None:
        self._by_route: dict[str, list[type[Codec]]] = {}

    def register(self, codec: C) -> C:
        """Add a codec class (usable as a class decorator). Refuses a media type another codec of the route reads."""
        registered = self._by_route.setdefault(codec.route, [])
        if codec in registered:
            return codec
        clash = {t for c in registered for t in c.media_types}.intersection(codec.media_types)
        if clash:
            raise ValueError(f"route {codec.route!r} already reads {sorted(clash)}")
        registered.append(codec)
        return codec

    def unregister(self, codec: type[Codec]) -> None:
        self._by_route.get(codec.route, []).remove(codec)

    def route(self, name: str, service: InferenceService, max_body: int) -> CodecRoute:
        """The route's codecs, built for the service's bundle."""
        return CodecRoute(name, [cls(service.manifest) for cls in self._by_route.get(name, [])], service, max_body)


CODECS = CodecRegistry()  # the built-in codecs register here (serving/codecs/__init__.py), a new one too
