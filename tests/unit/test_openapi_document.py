"""The OpenAPI document is built without FastAPI, on first use, and says what FastAPI's generator said.

The app declares each route's documentation (``serving.openapi.Operation``); the same declarations given to a
real FastAPI app as routes produce, through FastAPI's own generator, the same document (FastAPI stays a
development dependency for this comparison). Init builds none of it: the document's builders run on the first
``/openapi.json``.
"""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.routing import Route

from modelserve.schema import BundleManifest, FeatureKind, FeatureSpec, InputDtype, LabelType, OutputSpec, Task
from serving import openapi
from serving.api import InferenceApp, StageRootPath, create_app
from serving.request_ids import RequestIds
from tests.infra.fake_bundle import fake_manifest
from tests.support import event, response_json


def _manifests() -> dict[str, BundleManifest]:
    base = fake_manifest()
    ints = dataclasses.replace(
        base,
        features=(*base.features, FeatureSpec("age", FeatureKind.NUMERIC, dtype=InputDtype.INT64, min=0, max=40)),
        outputs=OutputSpec(task=Task.CLASSIFICATION, classes=("0", "1"), label_type=LabelType.INTEGER),
    )
    regression = dataclasses.replace(base, outputs=OutputSpec(task=Task.REGRESSION, label_output="value", probability_output=None))
    return {"classifier": base, "integer labels": ints, "regression": regression}


def _app(m: BundleManifest, reject_unseen: bool = True, max_rows: int = 100) -> InferenceApp:
    # the routes and their documentation depend on the manifest and the service's limits only (no model is loaded)
    service = SimpleNamespace(
        manifest=m,
        max_batch_rows=max_rows,
        challenger=None,
        validator=SimpleNamespace(reject_unseen=reject_unseen),
        request_ids=RequestIds(None),
    )
    return create_app(service, max_body_bytes=1024)  # type: ignore[arg-type]


def _lambda_handler(app: InferenceApp) -> Any:
    """The app behind Mangum as the handler serves it (a REST API stage is its root path)."""
    from mangum import Mangum

    return Mangum(StageRootPath(app), lifespan="off", api_gateway_base_path="/prod")


def _fastapi_document(app: InferenceApp) -> dict[str, Any]:
    """The same routes and documentation on a FastAPI app, through FastAPI's generator."""
    fastapi_app = FastAPI(title=app.title, version=app.manifest.version, description=app.description)

    for op in app.operations:

        async def endpoint(request: Request) -> Response:
            raise AssertionError("documented, never called")

        endpoint.__name__ = op.name  # FastAPI's operation id is the endpoint's name + path + method
        fastapi_app.add_api_route(op.path, endpoint, methods=[op.method], **op.doc())
    document = fastapi_app.openapi()
    openapi.pin_served_model(document, app.manifest)
    return document


@pytest.mark.parametrize("reject_unseen", [True, False])
@pytest.mark.parametrize("kind", list(_manifests()))
def test_the_document_is_the_one_fastapi_generates_from_the_same_declarations(kind: str, reject_unseen: bool) -> None:
    app = _app(_manifests()[kind], reject_unseen)
    ours = app.openapi()
    assert ours == _fastapi_document(app)
    assert set(ours["paths"]) == {r.path for r in app.routes} - {app.docs_url, app.openapi_url}
    assert len({op["operationId"] for path in ours["paths"].values() for op in path.values()}) == len(app.operations)


def test_the_document_is_built_on_the_first_request_for_it_not_at_init(monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> None:
    built: list[str] = []
    real = openapi.predict_operation
    monkeypatch.setattr(openapi, "predict_operation", lambda *a, **k: built.append("predict") or real(*a, **k))
    app = _app(fake_manifest())
    assert built == []  # routes served, no documentation built

    handler = _lambda_handler(app)
    health = handler(event("alb", "GET", "/health"), lambda_context)
    assert health["statusCode"] != 404 and built == []
    served = response_json(handler(event("rest_v1", "GET", "/openapi.json"), lambda_context))
    assert built == ["predict"]
    assert served["servers"] == [{"url": "/prod"}]  # behind the REST API's stage
    assert {k: v for k, v in served.items() if k != "servers"} == json.loads(json.dumps(app.openapi()))
    handler(event("rest_v1", "GET", "/openapi.json"), lambda_context)
    assert built == ["predict"]  # once


def test_the_docs_page_loads_the_document_from_the_stage_and_cannot_be_scripted_through_the_title(lambda_context: Any) -> None:
    m = dataclasses.replace(fake_manifest(), model_name="</title><script>alert(1)</script>")
    resp = _lambda_handler(_app(m))(event("rest_v1", "GET", "/docs"), lambda_context)
    assert resp["statusCode"] == 200 and resp["headers"]["content-type"].startswith("text/html")
    assert 'url: "/prod/openapi.json"' in resp["body"]
    assert "<script>alert(1)" not in resp["body"] and "&lt;/title&gt;&lt;script&gt;" in resp["body"]


def test_every_route_is_starlettes_and_answers_head_where_it_answers_get() -> None:
    app = _app(fake_manifest())
    routes = [r for r in app.routes if isinstance(r, Route)]
    assert len(routes) == len(app.routes) == len(app.operations) + 2  # + /openapi.json and /docs
    assert all("HEAD" in r.methods for r in routes if "GET" in r.methods)
