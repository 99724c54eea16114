"""Each function's asset holds what that function runs: its handler, its packages and the bundle.

The asset is assembled by the real bundling code (``cdk.bundling.assemble``) from a fake dependency
cache (no network); every module of ours in it is parsed and each import, including the lazy ones
inside functions, must resolve to a module in the same asset, the standard library, the Lambda
runtime (boto3) or a package the function's requirements.txt installs.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from cdk import bundling
from cdk.bundling import (
    ASSET_PACKAGES,
    CHALLENGER_DIR_IN_ASSET,
    DRIFT_CHECK_CHALLENGER_EXCLUDE,
    AssetSpec,
    assemble,
    dependency_key,
    resolve_requirements,
    source_hash,
)
from modelserve.schema import MANIFEST_FILE, MODEL_FILE, REFERENCE_FILE
from tests.infra.conftest import ROOT
from tests.infra.fake_bundle import write_fake_bundle

FIRST_PARTY = ("modelserve", "serving", "driftcheck", "monitoring", "devtools", "cdk", "tests", "benchmarks")
LAMBDA_RUNTIME = {"boto3", "botocore", "snapshot_restore_py"}  # provided by the python3.x runtime (SnapStart hooks: 3.12+)
# import names of what each requirements.txt installs (and of what those pull in)
REQUIREMENT_MODULES = {
    "inference": {"onnxruntime", "numpy", "starlette", "mangum", "orjson", "aws_lambda_powertools", "pydantic", "nanoarrow"},
    "drift_check": {"numpy", "scipy", "aws_lambda_powertools", "pydantic"},
}
NEVER_SHIPPED = ("devtools", "cdk", "tests", "benchmarks", "lambda")


def _assemble(name: str, tmp_path: Path, **spec_fields: Any) -> Path:
    spec = AssetSpec(
        name=name,
        handler_dir=ROOT / "lambda" / name,
        packages=tuple(ROOT / p for p in ASSET_PACKAGES[name]),
        bundle_dir=write_fake_bundle(tmp_path / "bundle"),
        python_version="3.12",
        architecture="arm64",
        **spec_fields,
    )
    cache = tmp_path / "cache"
    deps = cache / dependency_key(spec, resolve_requirements(spec.requirements, "3.12", "arm64"), bytecode=False)
    deps.mkdir(parents=True)
    (deps / ".modelserve-deps.json").write_text(json.dumps({"bytecode_python": None, "trimmed_bytes": 0}))
    with mock.patch.object(bundling, "find_python", return_value=None):
        assemble(spec, tmp_path / "asset", cache, log=lambda _m: None)
    return tmp_path / "asset"


def _own_files(asset: Path) -> list[str]:
    return sorted(
        str(p.relative_to(asset)) for p in asset.rglob("*") if p.is_file() and not str(p.relative_to(asset)).startswith("bundle/")
    )


def _imports(path: Path) -> set[tuple[str, int]]:
    """(module, level) of every import in the file, nested ones included."""
    out: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {(a.name, 0) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            out.add((node.module or "", node.level))
    return out


def _resolves(asset: Path, module: str) -> bool:
    parts = module.split(".")
    return (asset.joinpath(*parts).with_suffix(".py")).is_file() or (asset.joinpath(*parts) / "__init__.py").is_file()


@pytest.mark.parametrize("name", sorted(ASSET_PACKAGES))
def test_asset_holds_its_handler_its_packages_and_nothing_else(name: str, tmp_path: Path) -> None:
    asset = _assemble(name, tmp_path)
    files = _own_files(asset)
    tops = {f.split("/")[0] for f in files}
    assert tops == {"handler.py", *ASSET_PACKAGES[name]}, files
    assert not [f for f in files if f.split("/")[0] in NEVER_SHIPPED or "synthetic" in f or "test" in f]
    assert (asset / "bundle" / "manifest.json").is_file()
    if name == "inference":
        assert not any(f.startswith(("monitoring/", "driftcheck/")) for f in files)
    else:
        assert not any(f.startswith("serving/") for f in files)


@pytest.mark.parametrize(("name", "exclude"), [("inference", ()), ("drift_check", DRIFT_CHECK_CHALLENGER_EXCLUDE)])
def test_with_a_challenger_each_asset_carries_what_its_function_reads_of_it(name: str, exclude: tuple[str, ...], tmp_path: Path) -> None:
    """The inference function scores the challenger (its graph too); the drift check writes its drift
    report from its manifest and reference sample and never scores it (no graph)."""
    challenger = write_fake_bundle(tmp_path / "challenger")
    asset = _assemble(name, tmp_path, challenger_dir=challenger, challenger_exclude=exclude)
    carried = sorted(p.name for p in (asset / CHALLENGER_DIR_IN_ASSET).iterdir())
    wanted = [MANIFEST_FILE, REFERENCE_FILE] + ([MODEL_FILE] if name == "inference" else [])
    assert carried == sorted(wanted)
    for f in carried:
        assert (asset / CHALLENGER_DIR_IN_ASSET / f).read_bytes() == (challenger / f).read_bytes()
    assert (asset / "bundle" / MODEL_FILE).is_file()  # the champion's bundle stays whole
    if exclude:  # what is left out does not make the asset change either
        spec = AssetSpec(
            name, ROOT / "lambda" / name, (), tmp_path / "bundle", "3.12", "arm64", challenger_dir=challenger, challenger_exclude=exclude
        )
        before = source_hash(spec)
        (challenger / MODEL_FILE).write_bytes(b"another graph")
        assert source_hash(spec) == before
        (challenger / REFERENCE_FILE).write_bytes(b"another sample")
        assert source_hash(spec) != before


@pytest.mark.parametrize("name", sorted(ASSET_PACKAGES))
def test_every_import_in_an_asset_resolves_inside_it(name: str, tmp_path: Path) -> None:
    asset = _assemble(name, tmp_path)
    unresolved = []
    for rel in _own_files(asset):
        if not rel.endswith(".py"):
            continue
        path = asset / rel
        package = ".".join(Path(rel).parent.parts)
        for module, level in _imports(path):
            if level:  # relative: resolve against the file's package
                base = package.split(".")[: len(package.split(".")) - (level - 1)] if package else []
                target = ".".join([*base, module] if module else base)
                if not _resolves(asset, target):
                    unresolved.append(f"{rel}: from {'.' * level}{module}")
                continue
            top = module.split(".")[0]
            if top in FIRST_PARTY:
                if not _resolves(asset, module):
                    unresolved.append(f"{rel}: {module}")
            elif top not in sys.stdlib_module_names and top != "__future__" and top not in LAMBDA_RUNTIME | REQUIREMENT_MODULES[name]:
                unresolved.append(f"{rel}: {module} (not in lambda/{name}/requirements.txt)")
    assert not unresolved, "\n".join(unresolved)


@pytest.mark.skipif(os.environ.get("MS_REAL_BUNDLING") != "1", reason="needs the assets `make assets` builds")
@pytest.mark.parametrize("name", sorted(ASSET_PACKAGES))
def test_real_asset_holds_every_third_party_package_its_code_imports(name: str) -> None:
    asset = ROOT / ".build" / "bench-assets" / "arm64" / name
    assert asset.is_dir(), "run `make assets` first"
    missing = sorted(
        m for m in REQUIREMENT_MODULES[name] if not ((asset / m).is_dir() or any(asset.glob(f"{m}.py")) or any(asset.glob(f"{m}.*.so")))
    )
    assert not missing
    assert not (asset / "devtools").exists() and not (asset / "cdk").exists()


def test_pre_traffic_hook_asset_is_its_handler_alone_on_the_runtime() -> None:
    """lambda/pre_traffic ships as is (Code.from_asset, no bundling): handler.py and nothing it can't import."""
    folder = ROOT / "lambda" / "pre_traffic"
    assert sorted(p.name for p in folder.iterdir() if p.name != "__pycache__") == ["handler.py"]
    outside = sorted(
        m for m, _ in _imports(folder / "handler.py") if m.split(".")[0] not in sys.stdlib_module_names | LAMBDA_RUNTIME | {"__future__"}
    )
    assert outside == []
