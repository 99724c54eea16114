"""What an explanation costs (serving/explain.py), and how it compares with the ``shap`` package.

    .venv/bin/python benchmarks/bench_explain.py [--repeats 21] [--background 100] [--no-shap] [--capture-only]

1. The sample model (6 features) through the real inference handler in-process (REST v1 events, capture
   off): a plain 1-row ``/predict``, the same with ``"explain": true``, and the model alone scoring a batch
   of as many mixed rows as the explanation scores (2^6 coalitions x the background rows) with
   ``ModelRunner.predict``: the explanation's overhead beyond its model call.
2. Models of M = 6..14 numeric features (scikit-learn pipelines exported to ONNX: a logistic regression
   and a 30-tree random forest on the wine data's first M columns): explaining 1 row, exact up to 12
   features, sampled beyond; and the batch predict of as many rows.
3. shap's exact explainer (``shap.explainers.Exact`` with an ``Independent`` masker on the same background,
   calling the same ONNX model) on 1 row of the sample model (its categories travel to shap as codes and
   back: tests/explain_support.py) and of the 10-feature logistic regression (numbers only), after a
   warm-up call (numba compiles once).

4. Explanations kept with the capture (``capture_explanations``): the sample model's service scoring and
   capturing a 10-row request (synchronous capture, a sink that discards the records, so the figure is the
   work the post-response executor does), without explanations and with every row explained for the
   capture (``explain_capture_fraction=1``). ``--capture-only`` runs this part alone.

Medians of --repeats calls, one process, after a warm-up call each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

import numpy as np  # noqa: E402


def median_ms(fn: Any, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
    return statistics.median(times)


def sample_bundle(tmp: Path) -> Any:
    from modelserve.bundle import ModelBundle

    if (REPO / "models/sample/manifest.json").is_file():
        return ModelBundle.load(REPO / "models/sample")
    from devtools.sample_model import build_sample_bundle

    return build_sample_bundle(tmp / "sample")


def handler_figures(bundle: Any, background: int, repeats: int) -> dict[str, float]:
    from devtools.local import LambdaContext, load_handler_module
    from tests.support import event

    for k in [k for k in os.environ if k.startswith("MS_")]:
        del os.environ[k]
    os.environ.update(
        {"MS_MODEL_BUNDLE_PATH": str(bundle.root), "MS_EXPLAIN_BACKGROUND_ROWS": str(background), "AWS_DEFAULT_REGION": "us-east-1"}
    )
    mod = load_handler_module("inference")
    ctx = LambdaContext.fresh("inference")
    row = dict(bundle.reference_rows()[0]["inputs"])
    plain = event("rest_v1", "POST", "/predict", {"instances": [row]})
    explained = event("rest_v1", "POST", "/predict", {"instances": [row], "explain": True})
    assert mod.handler(explained, ctx)["statusCode"] == 200
    explainer = mod.function.service.explainer
    runner = mod.function.service.runner
    from modelserve.schema import rows_to_table

    mixed = explainer.mixed_rows(rows_to_table(bundle.manifest.features, [row]))
    return {
        "predict_1_row_ms": median_ms(lambda: mod.handler(plain, ctx), repeats),
        "predict_1_row_explain_ms": median_ms(lambda: mod.handler(explained, ctx), repeats),
        "mixed_rows": float(len(next(iter(mixed.values())))),
        "batch_predict_mixed_rows_ms": median_ms(lambda: runner.predict(mixed), repeats),
    }


def wine_bundle(tmp: Path, m: int, kind: str) -> Any:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from devtools.export.onnx_model import export_onnx

    data = load_wine(as_frame=True)
    x = data.data.rename(columns=lambda c: c.replace("/", "_")).iloc[:, :m]
    x = x.assign(**{f"extra_{i}": x.iloc[:, i % x.shape[1]] * 1.01 for i in range(max(0, m - x.shape[1]))})
    y = data.target.to_numpy()
    if kind == "logistic":
        model: Any = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    else:
        model = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0)
    model.fit(x.to_numpy(np.float32), y)
    onx = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, x.shape[1]]))], target_opset=17, options={"zipmap": False})
    path = tmp / f"wine_{kind}_{m}.onnx"
    path.write_bytes(onx.SerializeToString())
    schema = {
        "model_name": f"wine_{kind}_{m}",
        "features": [{"name": c} for c in x.columns],
        "outputs": {"task": "classification"},
        "input_layout": "single_tensor",
    }
    return export_onnx(path, schema, x.assign(target=y), tmp / f"wine_{kind}_{m}", target="target", allow_small_reference=True)


def model_figures(bundle: Any, background: int, repeats: int) -> dict[str, Any]:
    from modelserve.schema import rows_to_table
    from serving.explain import Explainer, ExplainRequest
    from serving.model import ModelRunner

    m = bundle.manifest
    runner = ModelRunner.from_path(m, bundle.model_path)
    reference = rows_to_table(m.features, [r["inputs"] for r in bundle.reference_rows()])
    explainer = Explainer(m, runner, lambda: reference, background, 10**9)
    row = {k: v[:1] for k, v in reference.items()}
    classes = explainer.explained_classes(runner.predict(row).labels, ExplainRequest())
    mixed = explainer.mixed_rows(row)
    return {
        "features": len(m.features),
        "method": explainer.method,
        "mixed_rows": len(next(iter(mixed.values()))),
        "explain_1_row_ms": median_ms(lambda: explainer.explain(row, classes), repeats),
        "batch_predict_mixed_rows_ms": median_ms(lambda: runner.predict(mixed), repeats),
    }


def shap_figures(bundle: Any, background: int, repeats: int) -> dict[str, float]:
    from modelserve.schema import rows_to_table
    from serving.explain import Explainer, ExplainRequest
    from serving.model import ModelRunner
    from tests.explain_support import ShapReference

    m = bundle.manifest
    runner = ModelRunner.from_path(m, bundle.model_path)
    reference = rows_to_table(m.features, [r["inputs"] for r in bundle.reference_rows()])
    explainer = Explainer(m, runner, lambda: reference, background, 10**9)
    row = {k: v[:1] for k, v in reference.items()}
    classes = explainer.explained_classes(runner.predict(row).labels, ExplainRequest())
    column = list(m.outputs.classes).index(classes[0])  # type: ignore[index]
    shap = ShapReference(m, runner, explainer.background())
    ours = median_ms(lambda: explainer.explain(row, classes), repeats)
    theirs = median_ms(lambda: shap.values(row, column), max(3, repeats // 4))
    got, (want, _) = explainer.explain(row, classes).values[0], shap.values(row, column)
    return {"ours_ms": ours, "shap_ms": theirs, "speedup": theirs / ours, "max_abs_difference": float(np.abs(got - want[0]).max())}


def capture_figures(bundle: Any, repeats: int, rows: int = 10) -> dict[str, float]:
    from modelserve.settings import ServingSettings
    from serving.wiring import inference_service

    class Discard:
        def write(self, key: str, records: Any) -> None:
            return None

    body = {"instances": [dict(r["inputs"]) for r in bundle.reference_rows()[:rows]]}
    out = {"rows": float(rows)}
    for label, settings in (
        ("predict_and_capture_ms", ServingSettings()),
        ("predict_and_capture_explained_ms", ServingSettings(capture_explanations=True, explain_capture_fraction=1.0)),
    ):
        service = inference_service(bundle, settings, {})
        service.capturer.sink = Discard()
        out[label] = median_ms(lambda: service.predict(body), repeats)
    return out


def print_capture_figures(c: dict[str, float]) -> None:
    rows = int(c["rows"])
    added = c["predict_and_capture_explained_ms"] - c["predict_and_capture_ms"]
    print(
        f"capture of a {rows}-row request (scored, records built, sink discards): {c['predict_and_capture_ms']:.2f} ms; "
        f"every row explained for the capture: {c['predict_and_capture_explained_ms']:.2f} ms (+{added / rows:.2f} ms per explained row)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--background", type=int, default=100)
    parser.add_argument("--no-shap", action="store_true")
    parser.add_argument("--capture-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        bundle = sample_bundle(tmp)
        c = capture_figures(bundle, args.repeats)
        print_capture_figures(c)
        if args.capture_only:
            print(json.dumps({"capture": c}))
            return
        h = handler_figures(bundle, args.background, args.repeats)
        print(f"sample model, 6 features, background {args.background}: {int(h['mixed_rows']):,} mixed rows per explained row")
        print(
            f"  /predict 1 row: {h['predict_1_row_ms']:.2f} ms; with explain: {h['predict_1_row_explain_ms']:.2f} ms "
            f"(+{h['predict_1_row_explain_ms'] - h['predict_1_row_ms']:.2f} ms)"
        )
        overhead = (h["predict_1_row_explain_ms"] - h["predict_1_row_ms"]) / h["batch_predict_mixed_rows_ms"]
        print(
            f"  the model alone on {int(h['mixed_rows']):,} rows: {h['batch_predict_mixed_rows_ms']:.2f} ms; "
            f"explain overhead / that batch: {overhead:.2f}x"
        )
        print("\nexplaining 1 row by number of features (median ms); batch = the model alone on as many rows")
        print("| model | M | method | mixed rows | explain 1 row | batch predict | ratio |")
        print("|---|---|---|---|---|---|---|")
        results = []
        for kind in ("logistic", "forest"):
            for m in (6, 8, 10, 11, 12, 14):
                f = model_figures(wine_bundle(tmp, m, kind), args.background, args.repeats if m <= 10 else max(5, args.repeats // 3))
                results.append({"model": kind, **f})
                print(
                    f"| {kind} | {m} | {f['method']} | {f['mixed_rows']:,} | {f['explain_1_row_ms']:.1f} | "
                    f"{f['batch_predict_mixed_rows_ms']:.1f} | {f['explain_1_row_ms'] / f['batch_predict_mixed_rows_ms']:.2f} |"
                )
        if not args.no_shap:
            print(f"\nvs shap.explainers.Exact (Independent masker, the same {args.background} background rows and ONNX model), 1 row:")
            for label, b in (
                ("sample model (6 features, 2 categorical)", bundle),
                ("wine logistic, 10 numeric features", wine_bundle(tmp, 10, "logistic")),
            ):
                s = shap_figures(b, args.background, args.repeats)
                print(
                    f"  {label}: ours {s['ours_ms']:.2f} ms, shap {s['shap_ms']:.1f} ms: {s['speedup']:.1f}x faster; "
                    f"largest difference {s['max_abs_difference']:.1e}"
                )
        print(json.dumps({"handler": h, "models": results, "capture": c}, default=float))


if __name__ == "__main__":
    main()
