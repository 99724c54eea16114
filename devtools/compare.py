"""Comparing two model versions locally, and promoting the challenger (docs/versions.md).

``compare``: moto server as AWS, the real inference handler with the sample model as champion and a
second model trained differently (``sample_model.build_challenger_bundle``) as challenger, in shadow
or A/B mode behind the local gateway; replayed reference traffic with feedback labels; then the real
drift-check handler, whose version comparison report and the challenger's own drift report are
written locally. ``make demo`` ends with the same shadow comparison.

``promote``: the documented ``cdk.json`` change that makes the challenger the champion (the next
``npx cdk deploy`` ships it through the CodeDeploy canary).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelserve.bundle import ModelBundle
from modelserve.settings import ENV_CHALLENGER_BUNDLE_PATH, ENV_CHALLENGER_VERSION

from .local import LOCAL_BUCKET, LambdaContext, fmt_figure, local_stack, post_json, read_s3_object, sleep_to_next_second


def compare(
    mode: str = "shadow",
    requests: int = 300,
    rows: int = 5,
    ab_share: float = 0.5,
    out: str | Path = ".local/compare",
    bundle: str | None = None,
    challenger: str | None = None,
    seed: int = 7,
    label_share: float = 0.5,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the comparison; returns the drift check's summary of it (``report_json``, ``report_html`` local paths added;
    ``challenger``: the summary of the challenger's own drift report, its paths local too)."""
    from .sample_model import resolve_bundle

    champion_dir = resolve_bundle(bundle)
    challenger_dir = resolve_challenger(challenger)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    # a bucket of its own: moto keeps its state per process, and a second run must not read the first's captures
    bucket = f"{LOCAL_BUCKET}-compare-{uuid.uuid4().hex[:8]}"
    env = {
        "POWERTOOLS_METRICS_DISABLED": "true",
        "MS_CHALLENGER_MODE": mode,
        "MS_AB_SHARE": str(ab_share),
        ENV_CHALLENGER_BUNDLE_PATH: str(challenger_dir),
        ENV_CHALLENGER_VERSION: ModelBundle.load(challenger_dir).manifest.version,
    }
    with local_stack(champion_dir, env, bucket=bucket) as stack:
        assert stack.drift_check is not None
        served, labelled = _replay(stack.gateway.url, stack.inference.bundle.reference_rows(), requests, rows, label_share, rng)
        sleep_to_next_second()
        event = {"source": "aws.events", "detail-type": "Scheduled Event", "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        checked = stack.drift_check.handler(event, LambdaContext.fresh("drift_check"))
        summary, own = checked["comparison"], checked.get("challenger")
        for what, name in ((summary, "comparison"), (own, "challenger-drift-report")):
            for kind in ("json", "html") if what else ():
                path = out / f"{name}.{kind}"
                path.write_bytes(read_s3_object(bucket, what[f"report_{kind}"]))
                what[f"report_{kind}"] = str(path.resolve())
        summary["challenger"] = own
    _echo_comparison(echo, mode, summary, own, served, labelled)
    return summary


def _replay(
    url: str, reference: list[dict[str, Any]], requests: int, rows: int, label_share: float, rng: random.Random
) -> tuple[dict[str, int], int]:
    """Reference rows from returning clients, labels for some; requests answered per variant, labels accepted."""
    served: dict[str, int] = {}
    labelled = 0
    for i in range(requests):
        picks = [rng.choice(reference) for _ in range(rows)]
        client = f"client-{i % max(1, requests // 3)}"  # each client comes back about three times
        status, body = post_json(f"{url}/predict", {"instances": [p["inputs"] for p in picks]}, headers={"x-client-id": client})
        if status != 200:
            continue
        served[body["variant"]] = served.get(body["variant"], 0) + 1
        if rng.random() < label_share and all("target" in p for p in picks):
            items = [{"request_id": body["request_id"], "row": j, "label": p["target"]} for j, p in enumerate(picks)]
            labelled += len(items) if post_json(f"{url}/feedback", items)[0] == 202 else 0
    return served, labelled


def _echo_comparison(
    echo: Callable[[str], None], mode: str, summary: dict[str, Any], own: dict[str, Any] | None, served: dict[str, int], labelled: int
) -> None:
    """The comparison report's lines for the console: versions, agreement, performance and differences."""
    doc = json.loads(Path(summary["report_json"]).read_text())["comparison"]
    v = doc["versions"]
    echo(f"{mode}: champion {v['champion']} vs challenger {v['challenger']}; requests answered by {served}; {labelled} labels sent")
    if doc["agreement"] and doc["agreement"]["rate"] is not None:
        a = doc["agreement"]
        echo(f"agreement {a['rate']:.3f} (95% {a['ci_low']:.3f} to {a['ci_high']:.3f}) over {a['rows']} paired rows")
    for variant, p in doc["performance"].items():
        echo(f"{variant}: {p['n_labels']} labelled rows, accuracy {fmt_figure(p['accuracy'])}, macro F1 {fmt_figure(p['f1_macro'])}")
    d = doc["difference"]
    if d:
        echo(
            f"{d['metric']} difference (challenger - champion) {fmt_figure(d['estimate'])} "
            f"(95% {fmt_figure(d['ci_low'])} to {fmt_figure(d['ci_high'])}), "
            f"p = {fmt_figure(d['p_value'])} ({d['test']}); challenger significantly worse: {doc['challenger_worse']}"
        )
    for d in doc.get("metric_differences", []):
        echo(
            f"{METRIC_LABELS.get(d['metric'], d['metric'])} difference {fmt_figure(d['estimate'])} "
            f"(95% {fmt_figure(d['ci_low'])} to {fmt_figure(d['ci_high'])}, {d['test'].replace('_', ' ')})"
        )
    echo(f"HTML report: {summary['report_html']}")
    if own:
        echo(
            f"the challenger's own drift report ({own['rows_seen']} rows against its reference): dataset drift = {own['dataset_drift']}, "
            f"drift only it sees = {own['challenger_only_drift']}; HTML: {own['report_html']}"
        )


def resolve_challenger(challenger: str | None) -> Path:
    """The challenger's bundle folder: ``challenger``, else the sample model's second version
    (``models/challenger``, built if missing)."""
    from .sample_model import DEFAULT_CHALLENGER_DIR, build_challenger_bundle

    if challenger:
        return ModelBundle.load(challenger).root.resolve()
    try:
        return ModelBundle.load(DEFAULT_CHALLENGER_DIR).root.resolve()
    except FileNotFoundError:
        return build_challenger_bundle(DEFAULT_CHALLENGER_DIR).root.resolve()


METRIC_LABELS = {"f1_macro": "macro F1", "auc": "AUC", "mae": "MAE", "rmse": "RMSE"}


def promote(cdk_json: str | Path = "cdk.json", keep_shadow: bool = False) -> dict[str, Any]:
    """Make the challenger the champion in ``cdk.json``'s context; returns the new context.

    ``keep_shadow``: the old champion stays as a shadow challenger, so the comparison goes on after
    the swap (a regression shows as the old version winning); else the challenger is switched off.
    """
    path = Path(cdk_json)
    doc = json.loads(path.read_text())
    ctx = doc.setdefault("context", {})
    new_champion = ctx.get("challenger_bundle_path")
    if not new_champion or ctx.get("challenger_mode", "off") == "off":
        raise ValueError(f"{path}: no challenger to promote (challenger_mode is off or challenger_bundle_path is unset)")
    old_champion = ctx.get("model_bundle_path", "models/sample")
    ctx["model_bundle_path"] = new_champion
    ctx.pop("ab_share", None)
    if keep_shadow:
        ctx["challenger_bundle_path"], ctx["challenger_mode"] = old_champion, "shadow"
    else:
        ctx.pop("challenger_bundle_path", None)
        ctx["challenger_mode"] = "off"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return ctx
