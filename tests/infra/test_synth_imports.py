"""A synth loads no drift statistics: the CDK app reads metric names from the metric catalogue
(``modelserve/metric_catalogue.py``, standard library only), never from ``monitoring`` (whose package
loads numpy and scipy). Each module is imported in a fresh interpreter, so nothing another test
imported earlier can hide what it loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.infra.conftest import ROOT

_PROBE = "import importlib, json, sys; importlib.import_module(sys.argv[1]); print(json.dumps(sorted(sys.modules)))"


def loaded_by(module: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after importing ``module``."""
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "1", "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}
    out = subprocess.run([sys.executable, "-c", _PROBE, module], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in json.loads(out.stdout.strip().splitlines()[-1])}


def test_the_alarm_specs_load_neither_numpy_nor_scipy_nor_the_drift_library() -> None:
    # the local demo and the docs test evaluate these specs too: pure Python on the catalogue
    assert not loaded_by("cdk.alarms") & {"scipy", "numpy", "monitoring", "aws_cdk"}


@pytest.mark.parametrize("module", ["cdk.dashboard", "cdk.alerting", "cdk.application"])
def test_the_stack_modules_load_no_scipy_and_no_drift_library(module: str) -> None:
    # numpy may come with the bundle schema (modelserve/schema.py); scipy and the detectors never
    loaded = loaded_by(module)
    assert "aws_cdk" in loaded  # the probe imported the module for real
    assert not loaded & {"scipy", "monitoring", "sklearn", "onnxruntime"}
