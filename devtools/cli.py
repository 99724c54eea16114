"""Command line: ``python -m devtools <command>``.

run           local AWS (moto server) + the real inference handler behind a local gateway
demo          run + replayed traffic (quiet, then shifted) + the real drift check + alarm table + a shadow comparison
compare       the sample model vs a second model (shadow or A/B) + the drift check's comparison report
promote       cdk.json: the challenger becomes the champion (deploy it with `npx cdk deploy`)
build-sample  build the sample bundle (models/sample)
export        bundle a fitted scikit-learn estimator or pipeline (joblib, skops or MLflow) + its training data
export-onnx   bundle a ready ONNX model + schema JSON + reference data
verify        after `npx cdk deploy`: prove the deployed stack answers, captures, checks and pages
web           the bundle as a static page scoring in the browser (onnxruntime-web), checked in Node first
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from modelserve.schema import FeatureKind

from .verify import CAPTURE_WAIT_S

if TYPE_CHECKING:
    from modelserve.bundle import ModelBundle

    from .export.model_sources import LoadedModel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p_run = sub.add_parser("run", help="serve locally on 127.0.0.1 with captures to local S3 (moto)")
    p_run.add_argument("--bundle", default=None, help="model bundle folder (default: the sample, built if missing)")
    p_run.add_argument("--port", type=int, default=8080)
    p_run.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    p_run.add_argument("--show-metrics", action="store_true", help="print the EMF metric lines Lambda would log")

    p_demo = sub.add_parser("demo", help="replay quiet then shifted traffic and run the drift check, then a shadow comparison")
    p_demo.add_argument("--bundle", default=None)
    p_demo.add_argument("--requests", type=int, default=200, help="requests per period")
    p_demo.add_argument("--rows", type=int, default=10, help="rows per request")
    p_demo.add_argument("--out", default=".local/demo", help="where the HTML reports go")
    p_demo.add_argument("--seed", type=int, default=7)
    p_demo.add_argument("--challenger", default=None, help="second version for the shadow comparison (default: the sample's)")
    p_demo.add_argument("--compare-requests", type=int, default=150, help="requests of the shadow comparison (0: none)")
    p_demo.add_argument("--checks", type=int, default=2, help="scheduled drift checks per period (a page needs drift_page_checks in a row)")

    p_cmp = sub.add_parser("compare", help="champion vs challenger on replayed traffic, with the comparison report")
    p_cmp.add_argument("--mode", choices=("shadow", "ab"), default="shadow")
    p_cmp.add_argument("--ab-share", type=float, default=0.5, help="ab mode: share of clients the challenger answers")
    p_cmp.add_argument("--bundle", default=None, help="champion bundle (default: the sample)")
    p_cmp.add_argument("--challenger", default=None, help="challenger bundle (default: models/challenger, built if missing)")
    p_cmp.add_argument("--requests", type=int, default=300)
    p_cmp.add_argument("--rows", type=int, default=5, help="rows per request")
    p_cmp.add_argument("--out", default=".local/compare", help="where the JSON and HTML reports go")
    p_cmp.add_argument("--seed", type=int, default=7)

    p_promote = sub.add_parser("promote", help="make the challenger the champion in cdk.json")
    p_promote.add_argument("--cdk-json", default="cdk.json")
    p_promote.add_argument("--keep-shadow", action="store_true", help="keep the old champion as a shadow challenger")

    p_sample = sub.add_parser("build-sample", help="build the sample bundle")
    p_sample.add_argument("--out", default="models/sample")

    p_exp = sub.add_parser("export", help="bundle a fitted scikit-learn pipeline")
    source = p_exp.add_mutually_exclusive_group(required=True)
    source.add_argument("--pipeline", help="joblib file of a fitted scikit-learn estimator or pipeline")
    source.add_argument("--skops", help=".skops file of a fitted estimator (loaded with skops' trusted-types check)")
    source.add_argument("--mlflow", help="MLflow model directory (sklearn flavour): its signature gives the features")
    p_exp.add_argument(
        "--trust", default="", metavar="T1,T2", help="types a .skops file may load beyond skops' defaults ('pickle': an MLflow pickle)"
    )
    p_exp.add_argument("--data", default=None, help="training data, .csv or .parquet (--mlflow: default its input example)")
    p_exp.add_argument("--target", default=None, help="target column (required with --data)")
    p_exp.add_argument("--name", required=True, help="model name")
    p_exp.add_argument("--out", required=True, help="bundle folder to write")
    p_exp.add_argument("--features", default=None, help="comma-separated feature columns (default: all but target)")
    p_exp.add_argument("--quantize", action="store_true", help="int8 dynamic quantization (checked)")
    p_exp.add_argument("--tolerance", type=float, default=0.01, help="largest accuracy drop quantization may cost")
    p_exp.add_argument("--allow-small-reference", action="store_true", help="export with fewer reference rows than the minimum (warned)")
    p_exp.add_argument(
        "--nullable", default="", metavar="A,B", help="features that accept null (besides those null in the data or imputed)"
    )
    _kind_options(p_exp)

    p_onnx = sub.add_parser("export-onnx", help="bundle a ready ONNX model")
    p_onnx.add_argument("--model", required=True)
    p_onnx.add_argument("--schema", required=True, help="JSON: model_name, features, outputs")
    p_onnx.add_argument("--reference", required=True, help="reference rows, .csv or .parquet")
    p_onnx.add_argument("--target", default=None)
    p_onnx.add_argument("--out", required=True)
    p_onnx.add_argument("--allow-small-reference", action="store_true", help="export with fewer reference rows than the minimum (warned)")
    _kind_options(p_onnx)
    p_verify = sub.add_parser("verify", help="prove a deployed stack works (API, capture, drift check, alarm delivery)")
    p_verify.add_argument("--stack", required=True, help="CloudFormation stack name (the modelserve:stack-name context)")
    p_verify.add_argument("--region", default=None)
    p_verify.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the alarm's SNS action in its history")
    p_verify.add_argument(
        "--capture-wait",
        type=float,
        default=CAPTURE_WAIT_S,
        help="seconds to wait for the prediction's capture in the bucket (the logs sink delivers after Firehose's 300 s buffer; 0: skip)",
    )

    p_web = sub.add_parser("web", help="write a static page that scores the bundle in the browser (onnxruntime-web)")
    p_web.add_argument("--bundle", default=None, help="model bundle folder (default: the sample, built if missing)")
    p_web.add_argument("--out", required=True, help="folder to write the site to")
    p_web.add_argument("--api-url", default=None, help="the API's base URL: the page also calls its /predict and compares")
    p_web.add_argument("--api-key", default=None, help="sent as x-api-key; it ends up readable in the page's config.json")
    p_web.add_argument(
        "--tensor-probabilities", action="store_true", help="a model with a ZipMap output: serve its probability tensor instead"
    )
    p_web.add_argument(
        "--size-budget-mib",
        type=float,
        default=None,
        metavar="MIB",
        help="warn when model.onnx, which every visitor downloads, exceeds this (default 50); over 2 GiB the page cannot load it",
    )

    for p in (p_exp, p_onnx):
        p.add_argument(
            "--size-budget-mib",
            type=float,
            default=None,
            metavar="MIB",
            help="warn when the bundle and the inference runtime exceed this (default: the setting inference_size_budget_mib "
            "of ./cdk.json, else its default: Lambda's 250 MB unzipped limit)",
        )
    for p in (p_exp, p_onnx, p_run, p_web):
        p.add_argument("--debug", action="store_true", help="show the traceback of an error")

    args = parser.parse_args(argv)
    if args.command in ("run", "web"):
        return _serve_bundle(args)
    if args.command == "verify":
        from .verify import main as verify_main

        return verify_main(args.stack, args.region, args.wait, args.capture_wait)
    if args.command == "build-sample":
        from .sample_model import build_sample_bundle

        b = build_sample_bundle(args.out)
        print(f"sample bundle {b.manifest.model_name} version {b.manifest.version} written to {b.root}")
        return 0
    if args.command in ("export", "export-onnx"):
        try:
            return export(args)
        except Exception as exc:  # noqa: BLE001 - a person reads this: one line per problem, no traceback
            from .export.problems import ExportProblems

            if args.debug:
                traceback.print_exc()
            for problem in exc.problems if isinstance(exc, ExportProblems) else [_one_line(exc)]:
                print(f"error: {problem}", file=sys.stderr)
            return 2
    if args.command == "compare":
        from .compare import compare

        compare(args.mode, args.requests, args.rows, args.ab_share, args.out, args.bundle, args.challenger, args.seed)
        return 0
    if args.command == "promote":
        from .compare import promote

        try:
            ctx = promote(args.cdk_json, args.keep_shadow)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(
            f"model_bundle_path = {ctx['model_bundle_path']}, challenger_mode = {ctx['challenger_mode']}; "
            "ship it with `npx cdk deploy` (the CodeDeploy canary shifts traffic to the new version)"
        )
        return 0
    if args.command == "demo":
        from .demo import demo

        return (
            0
            if demo(
                bundle=args.bundle,
                requests=args.requests,
                rows=args.rows,
                out=args.out,
                seed=args.seed,
                challenger=args.challenger,
                compare_requests=args.compare_requests,
                checks=args.checks,
            )
            else 1
        )
    return 2


def _serve_bundle(args: argparse.Namespace) -> int:
    """``run`` and ``web``: a folder that is not a servable bundle is refused in one line, exit 2."""
    if args.bundle is not None:
        # web checks the graph in onnxruntime-web itself, naming an operator it cannot run
        problem = bundle_problem(args.bundle, args.debug, load_model=args.command == "run")
        if problem:
            print(f"error: --bundle {args.bundle}: {problem}", file=sys.stderr)
            return 2
    if args.command == "web":
        from .web import main as web_main

        return web_main(args.bundle, args.out, args.api_url, args.api_key, args.tensor_probabilities, args.size_budget_mib)
    return run(args.bundle, args.port, args.seconds, args.show_metrics)


def bundle_problem(path: str, debug: bool = False, load_model: bool = True) -> str | None:
    """Why the folder is not a bundle the inference function can serve, in one line; None when it is.
    ``load_model``: also load its graph in onnxruntime, as the inference function does at init."""
    from pathlib import Path

    from modelserve.bundle import ModelBundle
    from modelserve.schema import MANIFEST_FILE
    from serving.model import ModelRunner

    if not Path(path).is_dir():
        return "no such folder"
    if not (Path(path) / MANIFEST_FILE).is_file():
        return f"not a model bundle (no {MANIFEST_FILE}); write one with `python -m devtools export` or `export-onnx` (docs/bundle.md)"
    try:
        bundle = ModelBundle.load(path)
        if load_model:
            ModelRunner.from_path(bundle.manifest, bundle.model_path)
    except Exception as exc:  # noqa: BLE001 - whatever is broken, the person needs it in one line (--debug: the traceback)
        if debug:
            traceback.print_exc()
        if isinstance(exc, KeyError):
            return f"a broken bundle: {MANIFEST_FILE} lacks the key {exc.args[0]!r}"
        return f"a broken bundle: {_one_line(exc)}"
    return None


def _kind_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--categorical", default="", metavar="A,B", help="features that are categories (e.g. integer codes)")
    p.add_argument("--numeric", default="", metavar="C,D", help="features that are numbers")


def _kinds(args: argparse.Namespace) -> dict[str, FeatureKind]:
    kinds: dict[str, FeatureKind] = {}
    for kind in (FeatureKind.CATEGORICAL, FeatureKind.NUMERIC):
        for name in filter(None, (n.strip() for n in getattr(args, kind.value).split(","))):
            if name in kinds:
                raise ValueError(f"--{kind.value} {name!r}: also declared --{kinds[name].value}")
            kinds[name] = kind
    return kinds


def export(args: argparse.Namespace) -> int:
    from .export import export_onnx, export_sklearn, load_frame, load_schema

    def say(line: str) -> None:
        print(line, file=sys.stderr)

    kinds = _kinds(args)
    budget_mib = configured_size_budget_mib() if args.size_budget_mib is None else args.size_budget_mib  # a wrong setting: before any work
    if args.command == "export":
        loaded = _load_model(args)
        feats = args.features.split(",") if args.features else loaded.features
        data = load_frame(args.data, "--data") if args.data else loaded.input_example
        say("features (kind: why):")
        b = export_sklearn(
            loaded.estimator,
            data,
            args.target,
            args.name,
            args.out,
            feats,
            args.quantize,
            args.tolerance,
            allow_small_reference=args.allow_small_reference or args.data is None,
            kinds={**loaded.kinds, **kinds},
            log=say,
            nullable=[n.strip() for n in args.nullable.split(",") if n.strip()],
            kind_sources={n: "in the MLflow signature" for n in loaded.kinds if n not in kinds},
        )
    else:
        schema = load_schema(args.schema)
        reference = load_frame(args.reference)
        say("features (kind: why -> model input type):")
        b = export_onnx(
            args.model,
            schema,
            reference,
            args.out,
            args.target,
            allow_small_reference=args.allow_small_reference,
            kinds=kinds,
            log=say,
        )
    for warning in [*b.manifest.export_metrics.get("warnings", []), *_size_report(b, budget_mib, say)]:
        say(f"warning: {warning}")
    print(json.dumps({"bundle": str(b.root), "version": b.manifest.version, "export_metrics": b.manifest.export_metrics}, indent=2))
    return 0


def _size_report(bundle: ModelBundle, budget_mib: float, say: Callable[[str], None]) -> list[str]:
    """Say the model's and the bundle's size; a warning when they and the inference runtime exceed the budget."""
    from modelserve.size_budget import budget_bytes, folder_bytes, size_budget_problem

    size = folder_bytes(bundle.root)
    say(f"size: model.onnx {bundle.model_path.stat().st_size / 2**20:.2f} MiB, bundle {size / 2**20:.2f} MiB")
    problem = size_budget_problem(size, limit_bytes=budget_bytes(budget_mib))
    return [problem] if problem else []


def configured_size_budget_mib(cdk_json: str = "cdk.json") -> float:
    """The setting inference_size_budget_mib as synth reads it: from cdk.json's context (validated the same
    way: SettingsError naming key and value), else its default."""
    from pathlib import Path

    from modelserve.settings import Settings, SettingsError

    key = "inference_size_budget_mib"
    path = Path(cdk_json)
    value = json.loads(path.read_text()).get("context", {}).get(key) if path.is_file() else None
    try:
        return Settings.from_context({} if value is None else {key: value}).inference_size_budget_mib
    except SettingsError as exc:
        raise SettingsError(f"{cdk_json}: " + " ".join(str(exc).split())) from None


def _load_model(args: argparse.Namespace) -> LoadedModel:
    """The estimator from --pipeline, --skops or --mlflow, and what its source says about the features."""
    from .export.model_sources import LoadedModel, load_mlflow, load_skops
    from .export.problems import ExportProblems

    trusted = [t.strip() for t in args.trust.split(",") if t.strip()] or None
    if args.data is not None and args.target is None:
        raise ExportProblems(["--target: required with --data (the column the model predicts)"])
    if args.mlflow:
        loaded = load_mlflow(args.mlflow, trusted)
        if args.data is None and loaded.input_example is None:
            raise ExportProblems([f"--mlflow {args.mlflow}: the model has no input example; give --data and --target"])
        return loaded
    if args.data is None:
        raise ExportProblems(["--data: required (the training data, .csv or .parquet), with --target"])
    if args.skops:
        return LoadedModel(load_skops(args.skops, trusted=trusted))
    return LoadedModel(_load_pipeline(args.pipeline))


def _load_pipeline(path: str) -> object:
    import joblib

    from .export.problems import ExportProblems

    try:
        return joblib.load(path)
    except FileNotFoundError:
        raise ExportProblems([f"--pipeline: no such file: {path}"]) from None
    except Exception as exc:  # noqa: BLE001 - pickle errors come in many types
        raise ExportProblems([f"--pipeline {path}: not a joblib file of a fitted pipeline ({type(exc).__name__}: {exc})"]) from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, ValueError) and text else f"{type(exc).__name__}: {text}"


def _capture_path_note(model_name: str, model_version: str) -> str:
    """Where this run's captures land, by the sink in use (the function's environment)."""
    from modelserve.records import model_capture_prefix
    from modelserve.settings import SharedSettings

    from .local import LOCAL_BUCKET

    sink = SharedSettings.from_env().capture_sink
    prefix = f"s3://{LOCAL_BUCKET}/{model_capture_prefix(model_name, model_version)}"
    if sink == "logs":
        # moto's Firehose writes at once, by arrival hour; in AWS dynamic partitioning files by event hour after the buffer
        return f"capture lines go through local CloudWatch Logs -> Firehose to {prefix}YYYY/MM/DD/HH/ (capture_sink=logs)"
    return f"captures go to {prefix}dt=YYYY-MM-DD/hour=HH/ (capture_sink={sink})"


def run(bundle: str | None, port: int, seconds: float | None, show_metrics: bool) -> int:
    from .local import (
        LOCAL_BUCKET,
        LocalGateway,
        create_local_bucket,
        load_handler_module,
        local_aws,
        local_function_env,
        log_capture_path,
        scoped_env,
    )
    from .sample_model import resolve_bundle

    bundle_dir = resolve_bundle(bundle)
    env = local_function_env(bundle_dir)
    # like Lambda's post-response capture: the answer does not wait for the write (a bounded writer thread)
    env["MS_CAPTURE_MODE"] = "thread"
    if not show_metrics:
        env["POWERTOOLS_METRICS_DISABLED"] = "true"
    with local_aws() as endpoint, scoped_env(env), contextlib.ExitStack() as lines:
        create_local_bucket(LOCAL_BUCKET)
        lines.enter_context(log_capture_path(bundle_dir, LOCAL_BUCKET))  # MS_CAPTURE_SINK=logs: local CloudWatch Logs -> Firehose -> S3
        handler = load_handler_module("inference")
        try:
            gateway = LocalGateway(handler.handler, handler.serving.stage_name, port).start()
        except OSError as exc:
            print(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); pick another port: make run ARGS='--port 8081'", file=sys.stderr)
            return 1
        m = handler.manifest
        example = {"instances": [json.loads(json.dumps(r["inputs"])) for r in handler.bundle.reference_rows()[:1]]}
        print(f"model {m.model_name} version {m.version} from {bundle_dir}")
        print(f"local AWS (moto) at {endpoint}; {_capture_path_note(m.model_name, m.version)}")
        print(f"API at {gateway.url}  (docs: {gateway.url}/docs)")
        print("try:")
        print(f"  curl -s {gateway.url}/predict -H 'content-type: application/json' -d '{json.dumps(example)}'")
        print("Ctrl-C stops.", flush=True)
        try:
            deadline = time.time() + seconds if seconds else None
            while deadline is None or time.time() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            gateway.stop()
            handler.capture_executor.close(timeout=5.0)  # what is queued is written before moto stops
    return 0
