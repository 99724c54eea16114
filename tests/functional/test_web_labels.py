"""The browser page keeps labels in their own type and checks the model's size: `python -m devtools web`
on models trained on boolean, integer and text labels runs the page's own score.mjs in onnxruntime-web
(Node) and gets the very values the API answers (JSON booleans, integers, strings); a model the page
cannot load is refused in one line before anything runs, and one past the page's budget is built with a
one-line warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from devtools.cli import main
from devtools.export import export_sklearn, prepare_frame
from devtools.web import WEB_MODEL_LIMIT_BYTES, WebBuildError, build_site
from modelserve.bundle import ModelBundle
from modelserve.schema import infer_feature_specs
from tests.functional.web_support import needs_node_ort
from tests.support import event, response_json

N = 300

LABELS = {
    "boolean": (lambda score: score > 0, bool),
    "integer": (lambda score: np.where(score > 0, 7, -2), int),
    # integer classes 1..3: a label value is not a class position (1 is the first class, not the second)
    "integer_from_one": (lambda score: np.digitize(score, [-0.5, 0.5]) + 1, int),
    "string": (lambda score: np.where(score > 0, "yes", "no"), str),
}


def _bundle(tmp: Path, kind: str) -> tuple[ModelBundle, Any]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    x = pd.DataFrame({"a": rng.normal(size=N), "b": rng.normal(size=N)})
    y = LABELS[kind][0](x["a"] + 0.3 * rng.normal(size=N))
    prepared = prepare_frame(x, infer_feature_specs({c: x[c] for c in x.columns}))
    model = LogisticRegression().fit(prepared, y)
    return export_sklearn(model, x.assign(y=y), "y", kind.replace("_", "-"), tmp / kind), model


@needs_node_ort
@pytest.mark.parametrize("kind", list(LABELS))
def test_the_page_answers_labels_in_the_type_the_api_answers(kind, tmp_path, load_inference, lambda_context) -> None:
    bundle, model = _bundle(tmp_path, kind)
    site = build_site(bundle.root, tmp_path / "site")

    rows = [r["inputs"] for r in bundle.reference_rows()]
    python_type = LABELS[kind][1]
    assert site.check.rows == len(rows) and all(type(label) is python_type for label in site.check.labels)
    # scikit-learn's own labels, in their own type
    expected = [v.item() for v in model.predict(pd.DataFrame(rows).astype(np.float32))]
    assert site.check.labels == expected
    # and the API's JSON answer for the same rows: the same values of the same types
    mod = load_inference(bundle)
    answer = response_json(mod.handler(event("rest_v1", "POST", "/predict", {"instances": rows}), lambda_context))
    assert [(type(v), v) for v in site.check.labels] == [(type(v), v) for v in answer["predictions"]]


def _sample_copy(sample_bundle: ModelBundle, root: Path) -> Path:
    import shutil

    shutil.copytree(sample_bundle.root, root)
    return root


@needs_node_ort
def test_a_model_past_the_pages_budget_is_built_with_one_warning(sample_bundle, tmp_path, capsys) -> None:
    out = tmp_path / "site"
    assert main(["web", "--bundle", str(sample_bundle.root), "--out", str(out), "--size-budget-mib", "0.001"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    size = sample_bundle.model_path.stat().st_size / 2**20
    assert warnings == [
        f"warning: model.onnx is {size:.1f} MiB, over the page's budget of 0.001 MiB (--size-budget-mib): every visitor downloads "
        "it before the first answer; shrink the model (--quantize, fewer trees) or raise the budget"
    ]
    assert (out / "model.onnx").is_file()
    # within the default budget: no warning
    assert main(["web", "--bundle", str(sample_bundle.root), "--out", str(tmp_path / "quiet")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_model_the_page_cannot_load_is_refused_in_one_line_before_anything_runs(sample_bundle, tmp_path, capsys) -> None:
    big = _sample_copy(sample_bundle, tmp_path / "big")
    with open(big / "model.onnx", "ab") as f:  # a sparse tail: over 2 GiB on paper, nothing on disk
        f.truncate(WEB_MODEL_LIMIT_BYTES + 1)
    with pytest.raises(WebBuildError, match=r"^model.onnx is 2048.0 MiB, over the 2 GiB onnxruntime-web can load"):
        build_site(big, tmp_path / "site", node="no-such-node")  # refused before Node would run
    assert main(["web", "--bundle", str(big), "--out", str(tmp_path / "site")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("web: model.onnx is 2048.0 MiB, over the 2 GiB")
    assert not (tmp_path / "site").exists()
