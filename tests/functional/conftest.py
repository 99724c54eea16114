from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws


@pytest.fixture(autouse=True)
def _metrics_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests read the EMF lines Powertools prints: no test may inherit metrics switched off."""
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)


@pytest.fixture
def s3(aws_credentials: None) -> Iterator[Any]:
    """moto active for the whole test; the client is the test's own view of S3."""
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1")


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto as a server (its endpoint URL): functions run in subprocesses under the Lambda emulator."""
    from devtools.local import moto_server

    with moto_server() as url:
        yield url
