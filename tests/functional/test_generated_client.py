"""A client generated from the served OpenAPI document works: ``openapi-python-client`` generates it at
test time from ``/openapi.json`` of the local server (the real handler behind the local gateway, local
S3 on moto), and its typed calls predict, send feedback for the answer, and read the model and health."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devtools.local import LOOPBACK, local_stack

PACKAGE = "modelserve_generated_client"
ARROW = "application/vnd.apache.arrow.stream"
# the one thing the generator leaves out: a request body of a media type it has no writer for (Arrow is sent
# with pyarrow, docs/protocols.md; its content_type_overrides setting writes code that fails to import in 0.29.1)
SKIPPED_ARROW = f"Unsupported content type {ARROW}"


def _generate(document: bytes, where: Path) -> Any:
    """The client package generated from ``document``, imported; generation must not drop an operation."""
    spec = where / "openapi.json"
    spec.write_bytes(document)
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(spec),
            "--output-path",
            str(where / PACKAGE),
            "--meta",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},  # its formatting step runs the pinned ruff
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    # an operation or answer the generator could not read is left out of the client: none may be, but Arrow's body
    assert out.count("WARNING") == out.count(SKIPPED_ARROW), out
    sys.path.insert(0, str(where))
    try:
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))


@pytest.mark.slow
def test_a_client_generated_from_the_served_document_predicts_sends_feedback_and_reads_the_model(
    sample_bundle: Any, tmp_path: Path
) -> None:
    row = dict(sample_bundle.reference_rows()[0]["inputs"])
    m = sample_bundle.manifest
    with local_stack(sample_bundle.root, {"POWERTOOLS_METRICS_DISABLED": "true"}, with_drift_check=False) as stack:
        with LOOPBACK.open(f"{stack.gateway.url}/openapi.json", timeout=30) as resp:
            client_pkg = _generate(resp.read(), tmp_path)
        api = importlib.import_module(f"{PACKAGE}.api.default")
        models = importlib.import_module(f"{PACKAGE}.models")
        predict = importlib.import_module(f"{PACKAGE}.api.default.predict_predict_post")
        feedback = importlib.import_module(f"{PACKAGE}.api.default.feedback_feedback_post")
        model = importlib.import_module(f"{PACKAGE}.api.default.model_model_get")
        health = importlib.import_module(f"{PACKAGE}.api.default.health_health_get")
        assert api is not None
        client = client_pkg.Client(base_url=stack.gateway.url, raise_on_unexpected_status=True)

        body = models.PredictPredictPostJsonBodyType0.from_dict({"instances": [row]})
        answered = predict.sync_detailed(client=client, body=body)
        assert answered.status_code == 200
        answer = answered.parsed
        assert isinstance(answer, models.PredictPredictPostResponse200)
        assert answer.model_version == m.version and answer.predictions[0] in m.outputs.classes
        assert answered.headers["x-request-id"] == answer.request_id
        assert abs(sum(answer.probabilities[0]) - 1.0) < 1e-5

        item = models.FeedbackFeedbackPostBodyType0.from_dict({"request_id": answer.request_id, "row": 0, "label": answer.predictions[0]})
        stored = feedback.sync_detailed(client=client, body=item)
        assert stored.status_code == 202 and isinstance(stored.parsed, models.FeedbackFeedbackPostResponse202)
        assert stored.parsed.accepted == 1
        # a row the request did not hold: the documented 422, parsed as the error shape
        wrong = models.FeedbackFeedbackPostBodyType0.from_dict({"request_id": answer.request_id, "row": 1, "label": answer.predictions[0]})
        refused = feedback.sync(client=client, body=wrong)
        assert isinstance(refused, models.FeedbackFeedbackPostResponse422) and refused.error == "row_out_of_range"

        info = model.sync(client=client)
        assert isinstance(info, models.ModelModelGetResponse200)
        assert info.model_name == m.model_name and [f.to_dict()["name"] for f in info.features] == m.feature_names
        alive = health.sync(client=client)
        assert isinstance(alive, models.HealthHealthGetResponse200) and alive.status == "ok"
        assert json.loads(json.dumps(alive.to_dict()))["model_version"] == m.version
