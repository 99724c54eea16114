"""The local demo: quiet traffic, then shifted traffic, each followed by the real drift check; then a
shadow comparison of the model with a second version trained differently.

Everything runs on this machine: moto server as AWS, the real inference handler behind the local
gateway (HTTP -> API Gateway event), the real drift-check handler on EventBridge scheduled events.
After each period it prints what the stack's alarms would say, from the same ``AlarmSpec``
definitions the CDK stack deploys, and writes the HTML report locally. The comparison is
``devtools.compare.compare`` in shadow mode (docs/versions.md).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cdk.alarms import FAMILY_TITLES, AlarmSpec, alarm_specs, evaluate_windows, paging
from modelserve.bundle import ModelBundle
from modelserve.schema import FeatureKind, FeatureSpec, Task
from modelserve.settings import Settings

from .local import LOCAL_BUCKET, LambdaContext, fmt_figure, local_stack, post_json, read_s3_object, sleep_to_next_second

PERIOD_QUIET = "quiet"
PERIOD_SHIFTED = "shifted"


@dataclass
class Shift:
    """What the shifted period changes, chosen from the bundle's schema."""

    numeric: FeatureSpec | None
    numeric_delta: float
    categorical: FeatureSpec | None
    category: str | None
    category_share: float
    missing: FeatureSpec | None
    missing_share: float
    new_value: str | None = None  # a value never seen in training, in ``new_value_share`` of rows of ``categorical``
    new_value_share: float = 0.0

    def describe(self) -> list[str]:
        out = []
        if self.numeric:
            out.append(f"{self.numeric.name} shifted by {self.numeric_delta:+.3g} (1 reference sd)")
        if self.categorical:
            out.append(f"{self.categorical.name} = {self.category!r} in {self.category_share:.0%} of rows")
        if self.categorical and self.new_value:
            out.append(f"{self.categorical.name} = {self.new_value!r} (never seen in training) in {self.new_value_share:.0%} of rows")
        if self.missing:
            out.append(f"{self.missing.name} missing in {self.missing_share:.0%} of rows")
        return out

    def apply(self, row: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        row = dict(row)
        if self.numeric and row.get(self.numeric.name) is not None:
            row[self.numeric.name] = float(row[self.numeric.name]) + self.numeric_delta
        if self.categorical:
            draw = rng.random()
            if draw < self.category_share:
                row[self.categorical.name] = self.category
            elif self.new_value and draw < self.category_share + self.new_value_share:
                row[self.categorical.name] = self.new_value
        if self.missing and rng.random() < self.missing_share:
            row[self.missing.name] = None
        return row


def choose_shift(bundle: ModelBundle) -> Shift:
    features = bundle.manifest.features
    rows = [r["inputs"] for r in bundle.reference_rows()]
    numeric = next((f for f in features if f.kind is FeatureKind.NUMERIC), None)
    delta = 0.0
    if numeric:
        vals = [float(r[numeric.name]) for r in rows if r.get(numeric.name) is not None]
        mean = sum(vals) / len(vals)
        delta = (sum((v - mean) ** 2 for v in vals) / max(1, len(vals) - 1)) ** 0.5
    categorical = next((f for f in features if f.kind is FeatureKind.CATEGORICAL and len(f.categories) > 1), None)
    category = None
    if categorical:  # push the rarest training category to a majority
        counts = {c: 0 for c in categorical.categories}
        for r in rows:
            if r.get(categorical.name) in counts:
                counts[r[categorical.name]] += 1
        category = min(counts, key=counts.get)  # type: ignore[arg-type]
    missing = next((f for f in features if f.nullable and f is not numeric and f is not categorical), None)
    new_value = None
    if categorical:
        new_value = next(v for v in ("Atlantis", "Atlantis-2", "Atlantis-3") if v not in categorical.categories)
    return Shift(numeric, delta, categorical, category, 0.6, missing, 0.25, new_value, 0.1)


@dataclass
class ConceptChange:
    """What the shifted period's feedback labels change: P(y|X) moves, so the model's answers are wrong
    more often on the labels that come back. Classes: ``share`` of labels name another class than the true
    one (the next in order); regression: ``share`` of labels move by ``delta`` (one reference sd)."""

    share: float
    next_class: dict[Any, Any] = field(default_factory=dict)
    delta: float = 0.0

    def describe(self) -> str:
        change = "name another class than the true one" if self.next_class else f"move by {self.delta:+.3g} (1 reference sd)"
        return f"feedback labels of {self.share:.0%} of rows {change} (concept drift)"

    def apply(self, target: Any, rng: random.Random) -> Any:
        if target is None or rng.random() >= self.share:
            return target
        if self.next_class:
            return self.next_class.get(target, target)
        return float(target) + self.delta


def choose_concept_change(bundle: ModelBundle, share: float = 0.4) -> ConceptChange:
    targets = [r["target"] for r in bundle.reference_rows() if r.get("target") is not None]
    if bundle.manifest.outputs.task is Task.CLASSIFICATION:
        classes = sorted(set(targets), key=str)
        return ConceptChange(share, next_class={c: classes[(i + 1) % len(classes)] for i, c in enumerate(classes)})
    vals = [float(t) for t in targets]
    mean = sum(vals) / max(1, len(vals))
    sd = (sum((v - mean) ** 2 for v in vals) / max(1, len(vals) - 1)) ** 0.5
    return ConceptChange(share, delta=sd)


@dataclass
class PeriodResult:
    name: str
    summary: dict[str, Any]
    alarm_rows: list[tuple[str, str, float | None, str, str]]  # id, metric, value, condition, state
    html_path: Path
    answered: int = 0
    rejected: int = 0
    feedback: int = 0
    states: dict[str, str] = field(default_factory=dict)


def alarm_table(
    specs: list[AlarmSpec], metrics: dict[str, list[tuple[str, float, str | None]]]
) -> list[tuple[str, str, float | None, str, str]]:
    """The verdicts of the alarms on drift-check metrics, for one run's published (dataset-level)
    metrics of each window (``metrics``: Window label -> its metrics), read as the stack reads them:
    the larger of the windows' values (``evaluate_windows``). The value shown is that largest one."""
    from monitoring.checker import published_metric_names
    from monitoring.metric_names import WINDOW_ROWS

    by_window = {w: {name: value for name, value, feature in ms if feature is None} for w, ms in metrics.items()}
    ops = {"GreaterThanThreshold": ">", "GreaterThanOrEqualToThreshold": ">=", "LessThanThreshold": "<", "LessThanOrEqualToThreshold": "<="}
    rows = []
    for spec in specs:
        if spec.source != "model" or spec.metric_name not in published_metric_names():
            continue  # service and capture alarms watch AWS / EMF metrics the local run has no CloudWatch for
        windows = spec.windows or tuple(by_window)[:1]
        values = {w: by_window.get(w, {}).get(spec.metric_name) for w in windows}
        present = [v for v in values.values() if v is not None]
        condition = f"{ops[spec.comparison]} {spec.threshold:g}" + (f", {spec.min_window_rows}+ rows" if spec.min_window_rows else "")
        state = evaluate_windows(spec, values, {w: by_window.get(w, {}).get(WINDOW_ROWS) for w in windows})
        rows.append((spec.id, spec.metric_name, max(present) if present else None, condition, state))
    return rows


def pages(specs: list[AlarmSpec], states: dict[str, str]) -> list[str]:
    """What the on-call engineer receives: one notification per cause family with an alarm that pages
    (in ALARM, and its cause not already paged by another family: ``cdk.alarms.paging``)."""
    family = {spec.id: spec.family for spec in specs}
    firing: dict[str, list[str]] = {}
    for alarm in states:
        if paging(alarm, states):
            firing.setdefault(family[alarm], []).append(alarm)
    return [f"{FAMILY_TITLES[f]} ({', '.join(ids)})" for f, ids in firing.items()]


def format_table(rows: list[tuple[str, str, float | None, str, str]]) -> str:
    head = ("alarm", "metric", "value", "alarm when", "state")
    cells = [head] + [(a, m, "no data" if v is None else f"{v:.4g}", c, s) for a, m, v, c, s in rows]
    widths = [max(len(str(r[i])) for r in cells) for i in range(5)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def demo(
    bundle: str | None = None,
    requests: int = 200,
    rows: int = 10,
    out: str | Path = ".local/demo",
    seed: int = 7,
    feedback_share: float = 0.5,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    challenger: str | None = None,
    compare_requests: int = 150,
) -> list[PeriodResult]:
    """``challenger``: the second version for the shadow comparison (default: the sample model's);
    ``compare_requests``: its requests, 0 for no comparison."""
    from tqdm import tqdm

    from .sample_model import resolve_bundle

    bundle_dir = resolve_bundle(bundle)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    results: list[PeriodResult] = []
    # unseen categories reach the model (and the captures), so the drift check can name the new value
    env = {"POWERTOOLS_METRICS_DISABLED": "true", "MS_UNSEEN_CATEGORY_POLICY": "model"}
    with local_stack(bundle_dir, env) as stack:
        assert stack.drift_check is not None
        drift = stack.drift_check.drift
        b = stack.inference.bundle
        m = b.manifest
        specs = alarm_specs(Settings(serving=stack.inference.serving, drift=drift), m.model_name, m.version, LOCAL_BUCKET)
        traffic = _Traffic(b.reference_rows(), choose_shift(b), choose_concept_change(b), rows, feedback_share, rng)
        echo(f"model {m.model_name} {m.version}; local AWS at {stack.endpoint}; API at {stack.gateway.url}")
        echo(
            f"{requests} requests x {rows} rows per period; "
            f"feedback labels for {feedback_share:.0%} of requests where the reference has targets"
        )
        for period in (PERIOD_QUIET, PERIOD_SHIFTED):
            if period == PERIOD_SHIFTED:
                echo("shifted period: " + "; ".join([*traffic.shift.describe(), traffic.concept.describe()]))
            bar = tqdm(range(requests), desc=f"{period:>7} traffic", unit="req", disable=not progress, leave=True)
            answered, rejected, labelled = traffic.replay(stack.gateway.url, period, bar)
            summary, doc, metrics = _check_now(stack.drift_check, period, out)
            table = alarm_table(specs, metrics)
            html_path = out / f"{period}-report.html"
            res = PeriodResult(period, summary, table, html_path, answered, rejected, labelled, {a: s for a, _, _, _, s in table})
            results.append(res)
            echo(
                f"\n== {period} period: {answered} requests answered, {rejected} rejected, {labelled} labels sent; "
                f"drift check on the last {drift.window_hours} h"
                + (f" and the last {drift.short_window_hours} h" if summary.get("windows") else "")
                + f": {summary['rows_seen']} rows, "
                f"dataset drift = {summary['dataset_drift']}, drift share = {fmt_figure(summary['drift_share'])}"
            )
            _echo_findings(echo, summary, doc["report"], table, pages(specs, res.states))
            echo(f"HTML report: {html_path.resolve()}\n")
    if compare_requests > 0:
        shadow_comparison(bundle_dir, challenger, compare_requests, out / "compare", seed, echo)
    return results


@dataclass
class _Traffic:
    """The demo's replayed requests: reference rows, shifted in the shifted period, with feedback labels."""

    reference: list[dict[str, Any]]
    shift: Shift
    concept: ConceptChange
    rows: int
    feedback_share: float
    rng: random.Random

    def replay(self, url: str, period: str, requests: Iterable[Any]) -> tuple[int, int, int]:
        """Send the period's requests (and labels for some); requests answered, rejected, labels accepted."""
        answered = rejected = labelled = 0
        shifted = period == PERIOD_SHIFTED
        for _ in requests:
            picks = [self.rng.choice(self.reference) for _ in range(self.rows)]
            instances = [self.shift.apply(p["inputs"], self.rng) if shifted else p["inputs"] for p in picks]
            status, body = post_json(f"{url}/predict", {"instances": instances})
            if status != 200:
                rejected += 1
                continue
            answered += 1
            if self.rng.random() < self.feedback_share and all("target" in p for p in picks):
                # quiet labels are the reference truth; shifted labels follow the changed concept
                labels = [self.concept.apply(p["target"], self.rng) if shifted else p["target"] for p in picks]
                items = [{"request_id": body["request_id"], "row": i, "label": y} for i, y in enumerate(labels)]
                if post_json(f"{url}/feedback", items)[0] == 202:
                    labelled += len(items)
        return answered, rejected, labelled


def _check_now(
    drift_check: Any, period: str, out: Path
) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[tuple[str, float, str | None]]]]:
    """The real drift check on a scheduled event of now; its summary, its report (written to ``out``
    as ``<period>-report.html`` and ``.json``) and each window's published metrics."""
    sleep_to_next_second()
    scheduled = {
        "version": "0",
        "id": f"demo-{period}",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:000000000000:rule/drift-check"],
        "detail": {},
    }
    summary = drift_check.handler(scheduled, LambdaContext.fresh("drift_check"))
    (out / f"{period}-report.html").write_bytes(read_s3_object(LOCAL_BUCKET, summary["report_html"]))
    doc = json.loads(read_s3_object(LOCAL_BUCKET, summary["report_json"]))
    (out / f"{period}-report.json").write_text(json.dumps(doc, indent=1))
    metrics = {}
    for label, window in (summary.get("windows") or {doc["window"]["label"]: summary}).items():
        same = window["report_json"] == summary["report_json"]
        wdoc = doc if same else json.loads(read_s3_object(LOCAL_BUCKET, window["report_json"]))
        metrics[label] = [(name, value, feature) for name, value, feature in wdoc["report"]["metrics"]]
    return summary, doc, metrics


def _echo_findings(
    echo: Callable[[str], None],
    summary: dict[str, Any],
    report: dict[str, Any],
    table: list[tuple[str, str, float | None, str, str]],
    notified: list[str],
) -> None:
    """A period's root cause, new values, alarm table, pages and labelled performance."""
    echo(f"root cause: {summary['root_cause'] or 'nothing fired'}")
    for feature, values in (summary.get("new_values") or {}).items():
        named = ", ".join(f"{value!r} in {count} rows" for value, count in values.items())
        echo(f"new values in {feature}: {named}")
    echo(format_table(table))
    echo("pages (one per cause family): " + ("; ".join(notified) if notified else "none"))
    perf = report["performance"]
    if perf is not None and perf["n_labels"]:
        figures = (
            f"accuracy {fmt_figure(perf['accuracy'])}, macro F1 {fmt_figure(perf['f1_macro'])}, AUC {fmt_figure(perf['auc'])}"
            if perf["accuracy"] is not None
            else f"MAE {fmt_figure(perf['mae'])}, RMSE {fmt_figure(perf['rmse'])}"
        )
        echo(f"performance on {perf['n_labels']} labelled rows: {figures}")


def shadow_comparison(
    champion_dir: Path, challenger: str | None, requests: int, out: Path, seed: int, echo: Callable[[str], None]
) -> dict[str, Any] | None:
    """The demo's last part: ``compare`` in shadow mode with a second version of the model (``challenger``,
    or the sample model's: a small random forest); skipped, saying why, when the model has none."""
    from modelserve.versions import compatibility_problems

    from .compare import compare, resolve_challenger
    from .sample_model import MODEL_NAME

    champion = ModelBundle.load(champion_dir).manifest
    if challenger is None and champion.model_name != MODEL_NAME:
        echo(f"== shadow comparison skipped: no second version of model {champion.model_name!r} (demo --challenger <bundle folder>)")
        return None
    challenger_dir = resolve_challenger(challenger)
    problems = compatibility_problems(champion, ModelBundle.load(challenger_dir).manifest)
    if problems:
        echo(f"== shadow comparison skipped: {challenger_dir} cannot run next to this model: " + "; ".join(problems))
        return None
    second = "the challenger bundle" if challenger else "a second model trained differently (a small random forest)"
    echo(
        f"== shadow comparison: {champion.model_name} {champion.version} answers, {second} scores the same requests "
        f"after each answer; {requests} requests with client ids, then the drift check"
    )
    return compare("shadow", requests=requests, out=out, bundle=str(champion_dir), challenger=str(challenger_dir), seed=seed, echo=echo)
