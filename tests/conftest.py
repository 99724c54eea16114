from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.local import LambdaContext, load_handler_module
from modelserve.bundle import ModelBundle

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sample_bundle(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    """The real sample bundle (penguins classifier), exported once per test session."""
    from devtools.sample_model import build_sample_bundle

    return build_sample_bundle(tmp_path_factory.mktemp("bundle") / "sample")


@pytest.fixture(scope="session")
def challenger_bundle(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    """A second version of the sample model (a random forest on the same data), exported once per session."""
    from devtools.sample_model import build_challenger_bundle

    return build_challenger_bundle(tmp_path_factory.mktemp("bundle") / "challenger")


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials so no test can reach a real account."""
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def pinned_capture_sink(request: pytest.FixtureRequest) -> str | None:
    """The sink a test pins with ``@pytest.mark.capture_sink("s3")`` (or ``pytestmark`` of its module): tests
    about what one sink writes, e.g. the ``s3`` sink's object per request, say so instead of taking the default."""
    marker = request.node.get_closest_marker("capture_sink")
    return str(marker.args[0]) if marker else None


@pytest.fixture(autouse=True)
def _pinned_capture_sink(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both functions of a test pinned to a sink read it from the environment, as the stack passes it."""
    sink = pinned_capture_sink(request)
    if sink:
        monkeypatch.setenv("MS_CAPTURE_SINK", sink)


@pytest.fixture
def load_inference(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, sample_bundle: ModelBundle, aws_credentials: None
) -> Callable[..., Any]:
    """Import lambda/inference/handler.py afresh with the given MS_* environment (as Lambda's init would);
    the test's pinned capture sink unless ``capture_sink`` is given."""
    pinned = pinned_capture_sink(request)

    def _load(bundle: ModelBundle | None = None, **env: str) -> Any:
        for k in list(os.environ):
            if k.startswith("MS_"):
                monkeypatch.delenv(k)
        if pinned and "capture_sink" not in env and "MS_CAPTURE_SINK" not in env:
            monkeypatch.setenv("MS_CAPTURE_SINK", pinned)
        monkeypatch.setenv("MS_MODEL_BUNDLE_PATH", str((bundle or sample_bundle).root))
        for k, v in env.items():
            monkeypatch.setenv(k if k.startswith("MS_") else "MS_" + k.upper(), str(v))
        return load_handler_module("inference")

    return _load


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext.fresh("inference")
