"""Docker-free bundling logic without the network: tags, markers, trimming, cache reuse, modes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from unittest import mock

import pytest

from cdk import asset_trim, bundling
from cdk.bundling import AssetSpec, assemble, dependency_key, platform_tags, resolve_mode, resolve_requirements
from tests.infra.fake_bundle import write_fake_bundle


def test_platform_tags_stop_at_the_runtime_glibc() -> None:
    al2 = platform_tags("3.11", "arm64")  # python3.11: Amazon Linux 2, glibc 2.26
    assert al2[0] == "manylinux_2_26_aarch64" and "manylinux2014_aarch64" in al2
    assert "manylinux_2_28_aarch64" not in al2
    al2023 = platform_tags("3.12", "x86_64")
    assert al2023[0] == "manylinux_2_34_x86_64" and "manylinux_2_28_x86_64" in al2023 and "manylinux1_x86_64" in al2023


def test_markers_are_evaluated_for_the_lambda_target(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# comment\n"
        "numpy==1.26.4 ; python_version < '3.12'\n"
        "numpy==2.2.6 ; python_version >= '3.12'  # newest\n"
        "onnxruntime==1.20.0\n"
        "uvloop==0.21.0 ; platform_machine == 'x86_64'\n"
        "pywin32==306 ; sys_platform == 'win32'\n"
        "-r other.txt\n"
    )
    out = resolve_requirements(req, "3.12", "arm64").splitlines()
    assert out == ["numpy==2.2.6", "onnxruntime==1.20.0", f"-r {(tmp_path / 'other.txt').resolve()}"]
    assert "numpy==1.26.4" in resolve_requirements(req, "3.11", "x86_64")
    assert "uvloop==0.21.0" in resolve_requirements(req, "3.11", "x86_64")


def _spec(tmp_path: Path, **kw) -> AssetSpec:
    handler = tmp_path / "lambda" / "inference"
    handler.mkdir(parents=True, exist_ok=True)
    (handler / "handler.py").write_text("def handler(event, context):\n    return 1\n")
    (handler / "requirements.txt").write_text("orjson==3.10.0\n")
    pkg = tmp_path / "modelserve"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "__pycache__").mkdir(exist_ok=True)
    (pkg / "__pycache__" / "stale.cpython-311.pyc").write_bytes(b"x")
    bundle = write_fake_bundle(tmp_path / "bundle")
    return AssetSpec("inference", handler, (pkg,), bundle, kw.get("python_version", "3.12"), kw.get("architecture", "arm64"))


def test_dependency_key_changes_with_what_matters(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    req = resolve_requirements(spec.requirements, spec.python_version, spec.architecture)
    k = dependency_key(spec, req, bytecode=True)
    assert k == dependency_key(spec, req, bytecode=True)
    assert k != dependency_key(spec, req + "fastapi==0.1\n", bytecode=True)
    assert k != dependency_key(_spec(tmp_path, architecture="x86_64"), req, bytecode=True)
    assert k != dependency_key(_spec(tmp_path, python_version="3.13"), req, bytecode=True)
    assert k != dependency_key(spec, req, bytecode=False)


def test_assemble_reuses_the_cache_without_pip(tmp_path: Path) -> None:
    """A second synth copies the cached dependency folder: pip never runs."""
    spec = _spec(tmp_path)
    cache = tmp_path / "cache"
    req = resolve_requirements(spec.requirements, spec.python_version, spec.architecture)
    deps = cache / dependency_key(spec, req, bytecode=False)
    (deps / "orjson").mkdir(parents=True)
    (deps / "orjson" / "__init__.py").write_text("VERSION = 'fake'\n")
    (deps / ".modelserve-deps.json").write_text(json.dumps({"bytecode_python": None, "trimmed_bytes": 0}))
    with (
        mock.patch.object(bundling, "find_python", return_value=None),
        mock.patch.object(bundling.subprocess, "run", side_effect=AssertionError("pip must not run")),
    ):
        res = assemble(spec, tmp_path / "out", cache, log=lambda _m: None)
    out = tmp_path / "out"
    assert res.cache_hit
    assert (out / "orjson" / "__init__.py").is_file()
    assert (out / "handler.py").is_file() and not (out / "requirements.txt").exists()
    assert (out / "modelserve" / "__init__.py").is_file()
    assert not (out / "modelserve" / "__pycache__" / "stale.cpython-311.pyc").exists()
    assert (out / "bundle" / "manifest.json").is_file() and (out / "bundle" / "model.onnx").is_file()
    assert not (out / ".modelserve-deps.json").exists()


def test_pip_failure_explains_the_runtime_glibc(tmp_path: Path) -> None:
    spec = _spec(tmp_path, python_version="3.11")
    failed = mock.Mock(returncode=1, stderr="ERROR: No matching distribution found for onnxruntime==1.32.0", stdout="")
    with (
        mock.patch.object(bundling.subprocess, "run", return_value=failed),
        mock.patch.object(bundling, "find_python", return_value=None),
        pytest.raises(bundling.BundlingError) as err,
    ):
        assemble(spec, tmp_path / "out", tmp_path / "cache", log=lambda _m: None)
    msg = str(err.value)
    assert "No matching distribution" in msg and "Amazon Linux 2 (glibc 2.26)" in msg and "3.12+" in msg


def test_trim_removes_what_lambda_never_loads(tmp_path: Path) -> None:
    root = tmp_path / "deps"
    files = [
        "boto3/__init__.py",
        "boto3-1.0.dist-info/METADATA",
        "botocore/__init__.py",
        "onnxruntime/__init__.py",
        "onnxruntime/transformers/x.py",
        "onnxruntime/tools/y.py",
        "onnxruntime/quantization/z.py",
        "onnxruntime/training/t.py",
        "onnxruntime/capi/onnxruntime_pybind11_state.cpython-312-aarch64-linux-gnu.so",
        "onnxruntime/capi/libonnxruntime.so.1.32.0",
        "onnxruntime/capi/libonnxruntime_providers_shared.so",
        "google/protobuf/__init__.py",
        "protobuf-6.0.dist-info/METADATA",
        "numpy/__init__.py",
        "numpy/tests/test_a.py",
        "numpy/_core/include/numpy/ndarray.h",
        "numpy/__init__.pyi",
        "numpy/f2py/__init__.py",
        "bin/f2py",
        "pkg/__pycache__/m.cpython-311.pyc",
        "pkg/m.py",
        "jmespath/__init__.py",
    ]
    for f in files:
        p = root / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\x7fELF no dynamic deps" if f.endswith(".so") else b"x")
    rep = asset_trim.trim(root, extra=("numpy/f2py",))
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert left == sorted(
        [
            "onnxruntime/__init__.py",
            "onnxruntime/capi/onnxruntime_pybind11_state.cpython-312-aarch64-linux-gnu.so",
            "onnxruntime/capi/libonnxruntime_providers_shared.so",
            "numpy/__init__.py",
            "pkg/m.py",
            "jmespath/__init__.py",
        ]
    )
    assert rep.removed_files == len(files) - len(left)


def test_trim_keeps_libonnxruntime_when_the_extension_needs_it(tmp_path: Path) -> None:
    capi = tmp_path / "onnxruntime" / "capi"
    capi.mkdir(parents=True)
    (capi / "onnxruntime_pybind11_state.so").write_bytes(b"\x7fELF NEEDED libonnxruntime.so.1")
    (capi / "libonnxruntime.so.1").write_bytes(b"lib")
    asset_trim.trim(tmp_path)
    assert (capi / "libonnxruntime.so.1").exists()


def test_mode_from_environment_and_context(tmp_path: Path) -> None:
    node = mock.Mock()
    node.try_get_context.side_effect = lambda k: {"modelserve:bundling": "docker"}.get(k)
    with mock.patch.dict(os.environ, {}, clear=True):
        assert resolve_mode(node) == ("docker", None)
    with mock.patch.dict(os.environ, {"MS_SKIP_BUNDLING": "1"}, clear=True):
        assert resolve_mode(node)[0] == "skip"
    with mock.patch.dict(os.environ, {"MS_PREBUILT_ASSETS": str(tmp_path)}, clear=True):
        assert resolve_mode(node) == ("prebuilt", tmp_path.resolve())
    node.try_get_context.side_effect = lambda k: {"modelserve:bundling": "podman"}.get(k)
    with mock.patch.dict(os.environ, {}, clear=True), pytest.raises(ValueError, match="podman"):
        resolve_mode(node)


def test_find_python_accepts_this_interpreter() -> None:
    here = "%d.%d" % sys.version_info[:2]
    assert bundling.find_python(here) is not None
    assert bundling.find_python("2.9") is None
