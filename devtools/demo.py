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

from cdk.alarms import FAMILY_TITLES, AlarmSpec, State, alarm_specs, evaluate_datapoints, evaluate_windows, paging
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
    summary: dict[str, Any]  # of the period's last check
    alarm_rows: list[tuple[str, str, float | None, str, str]]  # id, metric, value, condition, this check's state
    html_path: Path
    answered: int = 0
    rejected: int = 0
    feedback: int = 0
    states: dict[str, str] = field(default_factory=dict)  # each alarm's state after the period's last check (M of N)
    sent: list[Notice] = field(default_factory=list)  # what the stack sent during the period, check by check


@dataclass(frozen=True)
class Notice:
    """One notification: a page (a cause family's composite alarm entering ALARM) or an inform (an
    informing alarm entering ALARM, sent to the non-paging topic), at the period's ``check`` (1-based)."""

    kind: str  # "page" or "inform"
    check: int
    family: str
    alarms: tuple[str, ...]

    def text(self) -> str:
        if self.kind == "inform":
            return f"inform {', '.join(self.alarms)}"
        return f"page {FAMILY_TITLES[self.family]} ({', '.join(self.alarms)})"


@dataclass
class AlarmHistory:
    """The stack's alarms on drift-check metrics, check after check: each alarm's datapoints (one per
    scheduled check, its ``evaluate_windows`` state) read with its own M of N (``evaluate_datapoints``:
    a paging verdict is confirmed over ``drift_page_checks`` checks), and the notifications that causes."""

    specs: list[AlarmSpec]
    points: dict[str, list[State]] = field(default_factory=dict)
    states: dict[str, State] = field(default_factory=dict)
    open_families: set[str] = field(default_factory=set)

    def record(self, table: list[tuple[str, str, float | None, str, str]], check: int) -> list[Notice]:
        """Add one check's datapoints; the notices the stack would send after it."""
        by_id = {spec.id: spec for spec in self.specs}
        before = dict(self.states)
        for alarm, _, _, _, state in table:
            self.points.setdefault(alarm, []).append(state)  # type: ignore[arg-type]
            self.states[alarm] = evaluate_datapoints(by_id[alarm], self.points[alarm], before.get(alarm, "INSUFFICIENT_DATA"))
        sent = [
            Notice("inform", check, by_id[a].family, (a,))
            for a, state in self.states.items()
            if not by_id[a].pages and state == "ALARM" and before.get(a) != "ALARM"
        ]
        firing: dict[str, list[str]] = {}
        for alarm in self.states:
            if by_id[alarm].pages and paging(alarm, self.states):
                firing.setdefault(by_id[alarm].family, []).append(alarm)
        sent += [Notice("page", check, family, tuple(ids)) for family, ids in firing.items() if family not in self.open_families]
        self.open_families = set(firing)
        return sent


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
    """What the on-call engineer is paged for: one notification per cause family with an alarm that pages
    (``AlarmSpec.pages``; in ALARM, and its cause not already paged by another family: ``cdk.alarms.paging``)."""
    spec_of = {spec.id: spec for spec in specs}
    firing: dict[str, list[str]] = {}
    for alarm in states:
        if spec_of[alarm].pages and paging(alarm, states):
            firing.setdefault(spec_of[alarm].family, []).append(alarm)
    return [f"{FAMILY_TITLES[f]} ({', '.join(ids)})" for f, ids in firing.items()]


def informs(specs: list[AlarmSpec], states: dict[str, str]) -> list[str]:
    """The informing alarms in ALARM (drift without a performance impact, unless ``page_on_drift``): each is a
    notice on the non-paging topic, never a page."""
    return [spec.id for spec in specs if not spec.pages and states.get(spec.id) == "ALARM"]


def format_table(rows: list[tuple[str, str, float | None, str, str]], specs: list[AlarmSpec], states: dict[str, str]) -> str:
    """One check's alarm table: each alarm's kind (page or inform), value, condition, this check's datapoint
    and the alarm's state over its checks (a paging verdict waits for its confirmation)."""
    spec_of = {spec.id: spec for spec in specs}
    head = ("alarm", "kind", "metric", "value", "alarm when", "this check", "state")

    def kind(alarm: str) -> str:
        spec = spec_of[alarm]
        return ("page" if spec.pages else "inform") + (f" ({spec.datapoints_to_alarm} checks)" if spec.datapoints_to_alarm > 1 else "")

    cells = [head] + [(a, kind(a), m, "no data" if v is None else f"{v:.4g}", c, s, states.get(a, s)) for a, m, v, c, s in rows]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(head))]
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
    checks: int = 2,
) -> list[PeriodResult]:
    """``challenger``: the second version for the shadow comparison (default: the sample model's);
    ``compare_requests``: its requests, 0 for no comparison; ``checks``: scheduled drift checks per period,
    the period's requests split between them (two: a paging verdict is confirmed by the second)."""
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
        b = stack.inference.bundle
        m = b.manifest
        specs = alarm_specs(Settings(serving=stack.inference.serving, drift=stack.drift_check.drift), m.model_name, m.version, LOCAL_BUCKET)
        traffic = _Traffic(b.reference_rows(), choose_shift(b), choose_concept_change(b), rows, feedback_share, rng)
        echo(f"model {m.model_name} {m.version}; local AWS at {stack.endpoint}; API at {stack.gateway.url}")
        echo(
            f"{requests} requests x {rows} rows per period, {checks} scheduled drift checks per period; "
            f"feedback labels for {feedback_share:.0%} of requests where the reference has targets"
        )
        history = AlarmHistory(specs)
        for period in (PERIOD_QUIET, PERIOD_SHIFTED):
            if period == PERIOD_SHIFTED:
                echo("shifted period: " + "; ".join([*traffic.shift.describe(), traffic.concept.describe()]))
            results.append(_period(stack, traffic, history, period, requests, max(1, checks), out, progress, echo))
    if compare_requests > 0:
        shadow_comparison(bundle_dir, challenger, compare_requests, out / "compare", seed, echo)
    return results


def _period(
    stack: Any,
    traffic: _Traffic,
    history: AlarmHistory,
    period: str,
    requests: int,
    checks: int,
    out: Path,
    progress: bool,
    echo: Callable[[str], None],
) -> PeriodResult:
    """One period: its requests in ``checks`` parts, each followed by the real drift check (the next
    scheduled run) and what the stack's alarms say and send after it."""
    from tqdm import tqdm

    drift = stack.drift_check.drift
    res = PeriodResult(period, {}, [], out / f"{period}-report.html")
    for check in range(1, checks + 1):
        part = requests * check // checks - requests * (check - 1) // checks
        bar = tqdm(range(part), desc=f"{period:>7} traffic {check}/{checks}", unit="req", disable=not progress, leave=True)
        answered, rejected, labelled = traffic.replay(stack.gateway.url, period, bar)
        res.answered, res.rejected, res.feedback = res.answered + answered, res.rejected + rejected, res.feedback + labelled
        summary, doc, metrics = _check_now(stack.drift_check, period, out)
        table = alarm_table(history.specs, metrics)
        sent = history.record(table, check)
        res.summary, res.alarm_rows, res.states, res.sent = summary, table, dict(history.states), res.sent + sent
        echo(
            f"\n== {period} period, check {check} of {checks}: {answered} requests answered, {rejected} rejected, "
            f"{labelled} labels sent; drift check on the last {drift.window_hours} h"
            + (f" and the last {drift.short_window_hours} h" if summary.get("windows") else "")
            + f": {summary['rows_seen']} rows, "
            f"dataset drift = {summary['dataset_drift']}, drift share = {fmt_figure(summary['drift_share'])}"
        )
        _echo_findings(echo, summary, doc["report"], table, history, sent)
    echo(f"HTML report: {res.html_path.resolve()}\n")
    return res


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
    history: AlarmHistory,
    sent: list[Notice],
) -> None:
    """A check's root cause, new values, alarm table, pages, informs, what was sent, and labelled performance."""
    echo(f"root cause: {summary['root_cause'] or 'nothing fired'}")
    for feature, values in (summary.get("new_values") or {}).items():
        named = ", ".join(f"{value!r} in {count} rows" for value, count in values.items())
        echo(f"new values in {feature}: {named}")
    echo(format_table(table, history.specs, history.states))
    notified = pages(history.specs, history.states)
    echo("pages (one per cause family): " + ("; ".join(notified) if notified else "none"))
    informed = informs(history.specs, history.states)
    echo("informs (the non-paging topic): " + (", ".join(informed) if informed else "none"))
    waiting = [a for a, _, _, _, state in table if state == "ALARM" and history.states.get(a) != "ALARM"]
    if waiting:
        echo("breaching, a page once the next check confirms: " + ", ".join(waiting))
    echo("sent after this check: " + ("; ".join(n.text() for n in sent) if sent else "nothing"))
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
