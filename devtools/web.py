"""``python -m devtools web``: the bundle as a static page that scores in the browser (onnxruntime-web, WASM).

The site is self-contained: the bundle's ``model.onnx`` and ``manifest.json``, onnxruntime-web's
WASM build copied from ``node_modules`` (pinned in package.json, never a CDN), and a page with no
build step (``index.html``, ``app.mjs``, ``score.mjs``, ``style.css``) plus ``config.json`` (the
optional API URL and key).

Before anything is written the model is loaded and run in Node by onnxruntime-web itself, with
the page's own ``score.mjs`` on the bundle's whole reference sample: an operator or type the WASM
backend cannot run fails the command there, named as onnxruntime-web names it (a list of supported
operators kept here would drift from the pinned version; loading the model is the ground truth),
and the answers must match onnxruntime on the server (the inference function's ``ModelRunner``)
to ``PARITY_TOLERANCE`` with the same labels.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from modelserve.bundle import ModelBundle
from modelserve.schema import MANIFEST_FILE, MODEL_FILE, rows_to_table

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS = Path(__file__).resolve().parent / "web_assets"
NODE_MODULES = REPO_ROOT / "node_modules"
ORT_PACKAGE = "onnxruntime-web"
# the WASM-only ES module build (glue bundled in) and its one binary; numThreads=1 in the page,
# so no SharedArrayBuffer and no cross-origin isolation headers are needed
ORT_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")
PAGE_FILES = ("index.html", "app.mjs", "score.mjs", "explain.mjs", "style.css")
PARITY_TOLERANCE = 1e-5
CONFIG_FILE = "config.json"
BACKGROUND_FILE = "background.json"  # the explanations' background rows, as the API takes them (serving/explain.py)
# protobuf refuses a message over 2 GiB, and onnxruntime-web copies the model into its 32-bit WASM heap
# (4 GiB in all, the session's own memory included): past this the page cannot load the model at all
WEB_MODEL_LIMIT_BYTES = 2**31 - 1
# every visitor downloads model.onnx before the page answers: past this it opens slowly (--size-budget-mib)
WEB_MODEL_BUDGET_MIB = 50.0


class WebBuildError(Exception):
    """The bundle cannot be served as a browser page; the message says why."""


@dataclass(frozen=True)
class NodeCheck:
    rows: int
    labels: list[Any]
    probabilities: np.ndarray | None
    load_ms: float
    run_ms: float
    max_abs_diff: float


@dataclass(frozen=True)
class Site:
    root: Path
    ort_version: str
    check: NodeCheck
    warnings: tuple[str, ...] = ()


def page_size_problems(model_bytes: int, budget_mib: float = WEB_MODEL_BUDGET_MIB) -> tuple[str | None, str | None]:
    """(why the page cannot load the model at all, or None; a warning when every visitor's download exceeds the budget, or None)."""
    size = f"model.onnx is {model_bytes / 2**20:.1f} MiB"
    if model_bytes > WEB_MODEL_LIMIT_BYTES:
        return (
            f"{size}, over the {WEB_MODEL_LIMIT_BYTES / 2**30:.0f} GiB onnxruntime-web can load (protobuf's limit, in a 32-bit WASM heap): "
            "shrink the model (--quantize, fewer trees) or serve it from the API only",
            None,
        )
    if model_bytes > budget_mib * 2**20:
        return None, (
            f"{size}, over the page's budget of {budget_mib:g} MiB (--size-budget-mib): every visitor downloads it before the "
            "first answer; shrink the model (--quantize, fewer trees) or raise the budget"
        )
    return None, None


def ort_dist(node_modules: Path = NODE_MODULES) -> tuple[Path, str]:
    """onnxruntime-web's dist folder and version, as installed by ``npm ci`` from package-lock.json."""
    pkg = node_modules / ORT_PACKAGE / "package.json"
    if not pkg.exists():
        raise WebBuildError(f"{ORT_PACKAGE} is not installed in {node_modules}: run `npm ci` (make setup does)")
    return pkg.parent / "dist", str(json.loads(pkg.read_text())["version"])


_MISSING_KERNEL = re.compile(r"Could not find an implementation for (\S+?)\((\d+)\) node with name '([^']*)'")
_UNREGISTERED_OP = re.compile(r"([\w.]*:?\w+)\((-?\d+)\) is not a registered function/op")


def unsupported_operator(message: str) -> str | None:
    """The operator onnxruntime-web refused, from its error message (None if the message names none)."""
    m = _MISSING_KERNEL.search(message)
    if m:
        node = f" (node {m.group(3)!r})" if m.group(3) else ""
        return f"{m.group(1)} (opset {m.group(2)}){node}"
    m = _UNREGISTERED_OP.search(message)
    if m:
        return m.group(1)
    return None


# what onnxruntime-web says when an output is not a tensor (ZipMap's sequence of maps)
_ZIPMAP_REFUSED = "Reading data from non-tensor typed value is not supported"


def zipmap_explanation(output: str | None) -> str:
    return (
        f"the probability output {output!r} is a sequence of maps (a ZipMap node: one {{class: probability}} per row), which "
        "onnxruntime-web cannot read; export the probabilities as a tensor (skl2onnx options={'zipmap': False}, onnxmltools "
        "zipmap=False), or run `python -m devtools web --tensor-probabilities` for a page whose graph has the ZipMap removed"
    )


def without_zipmap(bundle: ModelBundle, out: Path) -> ModelBundle:
    """A copy of the bundle in ``out`` whose graph answers the ZipMap's input (the probabilities as a
    [N, K] tensor) instead of its sequence of maps; the classes follow the ZipMap's column order.
    The bundle itself when its probability output is not a ZipMap."""
    import onnx
    from onnx import TensorProto, helper

    from modelserve.bundle import write_bundle

    model = onnx.load(str(bundle.model_path))
    outputs = bundle.manifest.outputs
    zipmap = next((n for n in model.graph.node if n.op_type == "ZipMap" and outputs.probability_output in n.output), None)
    if zipmap is None:
        return bundle
    labels = [a for a in zipmap.attribute if a.name in ("classlabels_strings", "classlabels_int64s")][0]
    in_order = [v.decode() for v in labels.strings] if labels.strings else list(labels.ints)
    classes = tuple(outputs.class_for(v) or str(v) for v in in_order)
    tensor_name = zipmap.input[0]
    model.graph.node.remove(zipmap)
    kept = [o for o in model.graph.output if o.name != outputs.probability_output]
    del model.graph.output[:]
    model.graph.output.extend([*kept, helper.make_tensor_value_info(tensor_name, TensorProto.FLOAT, [None, len(classes)])])
    manifest = replace(bundle.manifest, outputs=replace(outputs, classes=classes, probability_output=tensor_name))
    return write_bundle(out, model.SerializeToString(), manifest, bundle.reference_rows())


def check_in_node(bundle: ModelBundle, node: str = "node") -> NodeCheck:
    """Score the reference sample with onnxruntime-web in Node; compare with onnxruntime on the server."""
    from serving.model import ModelRunner

    if shutil.which(node) is None:
        raise WebBuildError(f"{node!r} not found: Node.js runs the build-time check of the model in onnxruntime-web")
    ort_dist()  # a clear message when npm ci has not run
    rows = [r["inputs"] for r in bundle.reference_rows()]
    if not rows:
        raise WebBuildError("the bundle has no reference rows to check the browser runtime on")
    with tempfile.TemporaryDirectory() as tmp:
        rows_path = Path(tmp) / "rows.json"
        rows_path.write_text(json.dumps(rows))
        # check_model.mjs imports onnxruntime-web by package name: Node finds it in the repo's node_modules
        proc = subprocess.run(
            [node, str(ASSETS / "check_model.mjs"), str(bundle.model_path), str(bundle.root / MANIFEST_FILE), str(rows_path)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    if proc.returncode != 0:
        raise WebBuildError(f"the onnxruntime-web check could not run in Node: {proc.stderr.strip()[-2000:]}")
    verdict = json.loads(proc.stdout.strip().splitlines()[-1])
    if not verdict["ok"]:
        if _ZIPMAP_REFUSED in verdict["error"]:
            raise WebBuildError(zipmap_explanation(bundle.manifest.outputs.probability_output))
        op = unsupported_operator(verdict["error"])
        what = f"operator {op} is not supported by onnxruntime-web (WASM)" if op else "onnxruntime-web cannot run this model"
        raise WebBuildError(f"{what}; {verdict['stage']} failed with: {verdict['error'][:1000]}")

    expected = ModelRunner.from_path(bundle.manifest, bundle.model_path).predict(rows_to_table(bundle.manifest.features, rows))
    labels = verdict["labels"]
    outputs = bundle.manifest.outputs
    # the API's labels, in their own type (JSON integers, booleans or strings): the page's must be the very same values
    wrong = []
    if outputs.task.value == "classification":
        served = [outputs.label_value(c) for c in expected.labels.tolist()]
        wrong = [i for i, (a, b) in enumerate(zip(labels, served, strict=True)) if type(a) is not type(b) or a != b]
    probabilities = None if verdict["probabilities"] is None else np.asarray(verdict["probabilities"], dtype=np.float64)
    if expected.probabilities is not None and probabilities is not None:
        diff = float(np.max(np.abs(probabilities - expected.probabilities)))
    elif bundle.manifest.outputs.task.value == "regression":
        diff = float(np.max(np.abs(np.asarray(labels, dtype=np.float64) - expected.labels)))
        wrong = []
    else:
        diff = 0.0
    if wrong or not diff <= PARITY_TOLERANCE:
        raise WebBuildError(
            f"onnxruntime-web disagrees with onnxruntime on the reference sample: {len(wrong)} label(s) differ "
            f"(first rows {wrong[:5]}), largest probability difference {diff:.3g} (tolerance {PARITY_TOLERANCE})"
        )
    return NodeCheck(len(rows), labels, probabilities, float(verdict["load_ms"]), float(verdict["run_ms"]), diff)


def build_site(
    bundle_dir: str | Path,
    out: str | Path,
    api_url: str | None = None,
    api_key: str | None = None,
    node: str = "node",
    tensor_probabilities: bool = False,
    background: int | None = None,
    size_budget_mib: float = WEB_MODEL_BUDGET_MIB,
) -> Site:
    """Check the bundle in onnxruntime-web, then write the static site to ``out`` (replacing its files).

    ``tensor_probabilities``: serve a graph whose ZipMap output is replaced by its probability tensor
    (onnxruntime-web reads tensors only); checked against the API like any other. A model the page
    cannot load is refused before anything runs; one past ``size_budget_mib`` is built with a warning."""
    bundle = ModelBundle.load(bundle_dir)
    refusal, warning = page_size_problems(bundle.model_path.stat().st_size, size_budget_mib)
    if refusal:
        raise WebBuildError(refusal)
    dist, version = ort_dist()
    with tempfile.TemporaryDirectory() as tmp:
        if tensor_probabilities:
            bundle = without_zipmap(bundle, Path(tmp) / "bundle")
        check = check_in_node(bundle, node)
        site = _write_site(bundle, Path(out), dist, version, check, api_url, api_key, background)
        return replace(site, warnings=(warning,) if warning else ())


def _write_site(
    bundle: ModelBundle,
    root: Path,
    dist: Path,
    version: str,
    check: NodeCheck,
    api_url: str | None,
    api_key: str | None,
    background: int | None = None,
) -> Site:
    root.mkdir(parents=True, exist_ok=True)
    for name in PAGE_FILES:
        shutil.copy(ASSETS / name, root / name)
    shutil.copy(bundle.model_path, root / MODEL_FILE)
    (root / MANIFEST_FILE).write_text(bundle.manifest.to_json())
    (root / "ort").mkdir(exist_ok=True)
    for name in ORT_FILES:
        shutil.copy(dist / name, root / "ort" / name)
    config: dict[str, Any] = {"api_url": api_url.rstrip("/") if api_url else None, "api_key": api_key or None, "onnxruntime_web": version}
    (root / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    (root / BACKGROUND_FILE).write_text(json.dumps(background_rows(bundle, background)))
    return Site(root, version, check)


def background_rows(bundle: ModelBundle, wanted: int | None = None) -> list[dict[str, Any]]:
    """The rows the API explains against (``explain_background_rows`` of the reference sample, evenly spaced),
    as JSON rows: the page computes the same explanations with them (explain.mjs)."""
    from modelserve.settings import ServingSettings
    from serving.explain import background_positions

    rows = [r["inputs"] for r in bundle.reference_rows()]
    n = wanted if wanted is not None else ServingSettings().explain_background_rows
    return [rows[i] for i in background_positions(len(rows), n).tolist()]


def main(
    bundle: str | None,
    out: str,
    api_url: str | None,
    api_key: str | None,
    tensor_probabilities: bool = False,
    size_budget_mib: float | None = None,
) -> int:
    import sys

    from .sample_model import resolve_bundle

    try:
        site = build_site(
            resolve_bundle(bundle),
            out,
            api_url,
            api_key,
            tensor_probabilities=tensor_probabilities,
            size_budget_mib=WEB_MODEL_BUDGET_MIB if size_budget_mib is None else size_budget_mib,
        )
    except WebBuildError as exc:
        print(f"web: {exc}", file=sys.stderr)
        return 1
    for warning in site.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    c = site.check
    print(f"site written to {site.root} (onnxruntime-web {site.ort_version})")
    print(
        f"checked in Node: {c.rows} reference rows, labels identical, largest probability difference {c.max_abs_diff:.2g} "
        f"(load {c.load_ms:.0f} ms, scoring {c.run_ms:.1f} ms)"
    )
    if api_key:
        print("note: the API key is in config.json, readable by anyone who can load the page", file=sys.stderr)
    print(f"try:  python -m http.server --bind 127.0.0.1 --directory {site.root} 8000   then open http://127.0.0.1:8000/")
    return 0
