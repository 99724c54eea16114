"""`python -m devtools web` without a browser: onnxruntime-web in Node scores whole reference samples like
the API, refuses what it cannot run by naming the operator, and the page's validation says what the API says."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper

from devtools.cli import main
from devtools.web import ASSETS, ORT_FILES, PAGE_FILES, WebBuildError, build_site
from modelserve.bundle import ModelBundle, write_bundle
from modelserve.schema import MANIFEST_FILE, MODEL_FILE, BundleManifest
from serving.validation import RequestError, Validator
from tests.functional.web_support import export_bool_nullable_bundle, needs_node_ort


def _api_answer(bundle: ModelBundle) -> tuple[list[Any], np.ndarray]:
    """What the inference function's model runner answers for the whole reference sample."""
    from modelserve.schema import rows_to_table
    from serving.model import ModelRunner

    rows = [r["inputs"] for r in bundle.reference_rows()]
    pred = ModelRunner.from_path(bundle.manifest, bundle.model_path).predict(rows_to_table(bundle.manifest.features, rows))
    assert pred.probabilities is not None
    return pred.labels.tolist(), pred.probabilities


@needs_node_ort
def test_the_sample_site_is_written_after_node_scores_the_reference_sample_like_the_api(sample_bundle, tmp_path, capsys) -> None:
    out = tmp_path / "site"
    rc = main(["web", "--bundle", str(sample_bundle.root), "--out", str(out), "--api-url", "https://api.example/prod/"])
    assert rc == 0, capsys.readouterr().err
    for name in (*PAGE_FILES, MODEL_FILE, MANIFEST_FILE, "config.json", *(f"ort/{f}" for f in ORT_FILES)):
        assert (out / name).is_file(), name
    assert (out / MODEL_FILE).read_bytes() == sample_bundle.model_path.read_bytes()
    assert BundleManifest.from_dict(json.loads((out / MANIFEST_FILE).read_text())) == sample_bundle.manifest
    config = json.loads((out / "config.json").read_text())
    pinned = json.loads((Path(__file__).resolve().parents[2] / "package.json").read_text())["devDependencies"]["onnxruntime-web"]
    assert config == {"api_url": "https://api.example/prod", "api_key": None, "onnxruntime_web": pinned}
    # the page imports nothing from outside the site (no CDN)
    for name in ("index.html", "app.mjs"):
        assert "http://" not in (out / name).read_text() and "https://" not in (out / name).read_text()
    assert "344 reference rows, labels identical" in capsys.readouterr().out


@needs_node_ort
@pytest.mark.parametrize("which", ["sample", "boolean_nullable_trees"])
def test_onnxruntime_web_in_node_matches_the_api_on_the_whole_reference_sample(which, sample_bundle, tmp_path) -> None:
    bundle = sample_bundle if which == "sample" else export_bool_nullable_bundle(tmp_path / "bundle")
    if which != "sample":
        kinds = {(f.kind.value, f.nullable) for f in bundle.manifest.features}
        assert ("boolean", True) in kinds and ("numeric", True) in kinds
        assert any(r["inputs"]["heavy"] is None for r in bundle.reference_rows())
    site = build_site(bundle.root, tmp_path / "site")
    labels, probabilities = _api_answer(bundle)
    assert site.check.rows == len(labels) == len(bundle.reference_rows())
    assert site.check.labels == labels
    assert site.check.probabilities is not None
    assert np.abs(site.check.probabilities - probabilities).max() <= 1e-5


def _bundle_with_custom_operator(sample_bundle: ModelBundle, root: Path) -> ModelBundle:
    """The sample with its Normalizer swapped for an operator from a domain no runtime knows."""
    model = onnx.load(str(sample_bundle.model_path))
    node = next(n for n in model.graph.node if n.op_type == "Normalizer")
    node.op_type, node.domain = "Frobnicate", "com.example"
    del node.attribute[:]
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    rows = sample_bundle.reference_rows()[:5]
    return write_bundle(root, model.SerializeToString(), sample_bundle.manifest, rows)


@needs_node_ort
def test_an_operator_onnxruntime_web_cannot_run_fails_the_command_by_name_before_writing(sample_bundle, tmp_path, capsys) -> None:
    bundle = _bundle_with_custom_operator(sample_bundle, tmp_path / "bundle")
    out = tmp_path / "site"
    with pytest.raises(WebBuildError, match=r"operator com\.example:Frobnicate is not supported by onnxruntime-web"):
        build_site(bundle.root, out)
    assert not out.exists()
    assert main(["web", "--bundle", str(bundle.root), "--out", str(out)]) == 1
    assert "com.example:Frobnicate" in capsys.readouterr().err


# --------------------------------------------------------------- the page's validation, run in Node

BAD_ROWS: list[dict[str, Any]] = [
    {"bill_length_mm": "39.1"},  # a string where a number belongs
    {"bill_length_mm": True},  # bool is not a number
    {"bill_length_mm": [1]},
    {"flipper_length_mm": None},  # not nullable
    {"bill_length_mm": 1e400},  # overflows to infinity
    {"island": "Atlantis"},
    {"island": 'it\'s "odd"\n'},  # Python repr quoting in the message
    {"island": 3},
    {"island": None},
    {"is_adult": 1},
    {"is_adult": 0.5},
    {"is_adult": "yes"},
    {"is_adult": None},
    {"bill_length_mm": "x", "island": "Atlantis", "is_adult": {}},  # several problems: all listed, first named
]


def _good_row() -> dict[str, Any]:
    return {"bill_length_mm": 40.0, "flipper_length_mm": 190.0, "island": "Dream", "is_adult": True}


def _node_validate(manifest: BundleManifest, payloads: list[Any], tmp_path: Path) -> list[Any]:
    script = tmp_path / "validate.mjs"
    script.write_text(
        f'import {{ validateRow }} from "{(ASSETS / "score.mjs").as_uri()}";\n'
        'import { readFileSync } from "node:fs";\n'
        "const [manifest, rows] = JSON.parse(readFileSync(process.argv[2], 'utf8'));\n"
        "console.log(JSON.stringify(rows.map((r) => validateRow(manifest, r))));\n"
    )
    # 1e400 must reach JavaScript as a number literal, as it reaches the API: write the JSON by hand
    data = tmp_path / "rows.json"
    data.write_text(json.dumps([manifest.to_dict(), payloads]).replace("Infinity", "1e400"))
    proc = subprocess.run(["node", str(script), str(data)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


@needs_node_ort
def test_the_page_rejects_bad_rows_with_the_apis_reason_codes_and_messages(tmp_path) -> None:
    from tests.infra.fake_bundle import fake_manifest

    manifest = fake_manifest()  # numeric, nullable numeric, categorical and boolean features
    validator = Validator(manifest, max_rows=10)
    payloads: list[Any] = [{**_good_row(), **bad} for bad in BAD_ROWS]
    payloads += [
        {k: v for k, v in _good_row().items() if k != "island"},  # missing feature
        {**_good_row(), "beak_colour": "red"},  # unknown feature
        {**_good_row(), "bill_length_mm": None},  # nullable: fine
        _good_row(),
        ["not", "an", "object"],
    ]
    page = _node_validate(manifest, payloads, tmp_path)
    for payload, from_page in zip(payloads, page, strict=True):
        try:
            validator.validate({"instances": [payload]})
            expected = None
        except RequestError as exc:
            expected = exc.body()
        assert from_page == expected, payload
    reasons = {p["error"] for p in page if p}
    assert reasons == {"wrong_type", "not_finite", "null_not_allowed", "unseen_category", "missing_feature", "unknown_feature", "bad_shape"}


def _zipmap_bundle(root: Path) -> ModelBundle:
    """A RandomForest with classes 1..3 converted with skl2onnx's default ZipMap probability output."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier

    from devtools.export import export_onnx

    data = load_wine(as_frame=True)
    x, y = data.data.rename(columns=lambda c: c.replace("/", "_")), data.target + 1
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(x.to_numpy(np.float32), y)
    onx = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, x.shape[1]]))], target_opset=17)
    root.mkdir(parents=True)
    (root / "zipmap.onnx").write_bytes(onx.SerializeToString())
    schema = {
        "model_name": "zipmap",
        "features": [{"name": c} for c in x.columns],
        "input_layout": "single_tensor",
        "outputs": {"task": "classification", "label_output": "output_label", "probability_output": "output_probability"},
    }
    return export_onnx(root / "zipmap.onnx", schema, x.assign(y=y), root / "bundle", target="y", allow_small_reference=True)


@needs_node_ort
def test_a_zipmap_output_is_explained_and_served_as_a_tensor_when_asked(tmp_path, capsys) -> None:
    bundle = _zipmap_bundle(tmp_path / "zipmap")
    with pytest.raises(WebBuildError, match=r"'output_probability' is a sequence of maps \(a ZipMap node") as excinfo:
        build_site(bundle.root, tmp_path / "site")
    assert "--tensor-probabilities" in str(excinfo.value) and "Reading data" not in str(excinfo.value)
    assert not (tmp_path / "site").exists()

    assert main(["web", "--bundle", str(bundle.root), "--out", str(tmp_path / "site"), "--tensor-probabilities"]) == 0, (
        capsys.readouterr().err
    )
    assert "178 reference rows, labels identical" in capsys.readouterr().out
    served = BundleManifest.from_dict(json.loads((tmp_path / "site" / MANIFEST_FILE).read_text()))
    assert served.outputs.probability_output != "output_probability" and set(served.outputs.classes) == {"1", "2", "3"}
    graph = onnx.load(str(tmp_path / "site" / MODEL_FILE))
    assert "ZipMap" not in {n.op_type for n in graph.graph.node}
    # the bundle itself is untouched: the API keeps serving its own graph
    assert "ZipMap" in {n.op_type for n in onnx.load(str(bundle.model_path)).graph.node}
