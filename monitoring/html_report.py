"""Self-contained HTML rendering of the library's reports (no external assets, no JavaScript): a
:class:`~monitoring.report.DriftReport` (a verdict table and one inline-SVG reference-vs-window
histogram per feature, ``render_html``) and a :class:`~monitoring.comparison.ComparisonReport`
(``render_comparison_html``). Every string coming from data (feature names, categories, notes) is escaped."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .attribution import AttributionResult
from .comparison import CHALLENGER, CHAMPION, SHADOW, ComparisonReport
from .performance import PerformanceResult
from .prediction_drift import PredictionDriftResult
from .profile import ReferenceProfile
from .report import DriftReport
from .window_histograms import FeatureHistogram

REF_COLOR = "#4c78a8"
TGT_COLOR = "#f58518"

# the look every report of the library shares (the drift report, the version comparison)
BASE_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0 24px}
th,td{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}
th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}
"""

_CSS = (
    BASE_CSS
    + """
.drift{background:#fde0dc;font-weight:bold}
.ok{background:#e3f4e1}
.na{color:#888}
.cause{background:#fff3cd;border-left:4px solid #d9534f;padding:8px 12px;font-size:15px}
.feature{display:inline-block;vertical-align:top;margin:0 24px 24px 0}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
"""
)


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _num(x: object) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x)
    try:
        f = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return _e(x)
    if not math.isfinite(f):
        return "n/a"
    if f != 0 and (abs(f) < 1e-3 or abs(f) >= 1e5):
        return f"{f:.3e}"
    return f"{f:.4g}"


def _verdict_cell(v: bool | None) -> str:
    if v is None:
        return '<td class="na">n/a</td>'
    return '<td class="drift">DRIFT / FAIL</td>' if v else '<td class="ok">ok</td>'


def histogram_svg(hist: FeatureHistogram, width: int | None = None, height: int = 180) -> str:
    """Grouped bar chart of reference vs window shares per bin (shares of each side's rows)."""
    labels = list(hist.labels)
    ref = list(hist.reference_counts)
    tgt = list(hist.target_counts)
    k = len(labels)
    ref_total, tgt_total = sum(ref) or 1, sum(tgt) or 1
    ref_s = [c / ref_total for c in ref]
    tgt_s = [c / tgt_total for c in tgt] if sum(tgt) else [0.0] * k
    top = max(ref_s + tgt_s + [1e-12])
    slot = 26 if hist.kind == "categorical" else 16
    left, bottom, pad_top = 40, 70, 10
    width = width or max(260, left + slot * k + 10)
    plot_h = height - bottom - pad_top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{_e("histogram of " + hist.feature)}">',
        f'<line x1="{left}" y1="{pad_top + plot_h}" x2="{width - 5}" y2="{pad_top + plot_h}" stroke="#999"/>',
        f'<text x="{left - 4}" y="{pad_top + 8}" font-size="10" text-anchor="end">{top:.0%}</text>',
        f'<text x="{left - 4}" y="{pad_top + plot_h}" font-size="10" text-anchor="end">0</text>',
    ]
    bar_w = max(2.0, (slot - 4) / 2)
    for i, lab in enumerate(labels):
        x0 = left + i * slot + 2
        for j, (share, count, color) in enumerate(((ref_s[i], ref[i], REF_COLOR), (tgt_s[i], tgt[i], TGT_COLOR))):
            h = plot_h * share / top
            side = "reference" if j == 0 else "window"
            parts.append(
                f'<rect x="{x0 + j * bar_w:.1f}" y="{pad_top + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{_e(lab)} ({side}): {count} rows, {share:.2%}</title></rect>'
            )
        show = hist.kind == "categorical" or i in (0, k - 2, k - 1) or i % 5 == 0
        if show:
            tx, ty = x0 + slot / 2, pad_top + plot_h + 6
            short = lab if len(lab) <= 14 else lab[:13] + "\u2026"
            parts.append(
                f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="9" text-anchor="end" '
                f'transform="rotate(-50 {tx:.1f} {ty:.1f})">{_e(short)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _reference_only(profile: ReferenceProfile, name: str) -> FeatureHistogram:
    fp = profile[name]
    return FeatureHistogram(
        feature=name,
        kind=fp.histogram.kind,
        labels=tuple(fp.histogram.labels()),
        reference_counts=tuple(fp.histogram_counts),
        target_counts=tuple(0 for _ in fp.histogram_counts),
    )


def _table(headers: Sequence[str], rows: list[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_html(
    report: DriftReport, profile: ReferenceProfile, title: str = "Drift report", extra_sections: Sequence[tuple[str, str]] = ()
) -> str:
    """The report as one self-contained page; ``extra_sections``: (heading, HTML body) pairs the caller
    adds (e.g. the audit sample's agreement), escaped headings, bodies as given."""
    out = [
        '<!DOCTYPE html><html><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
    ]
    verdict = report.dataset_drift
    verdict_txt = (
        (
            "no verdict (no scored rows: every request refused)"
            if report.rejects and report.rejects["rejected_requests"]
            else "no verdict (empty window)"
        )
        if verdict is None
        else ("DATASET DRIFT" if verdict else "no dataset drift")
    )
    out.append(
        f"<p><b>{_e(verdict_txt)}</b> &mdash; window rows: {report.window_rows}, "
        f"reference rows: {report.reference_rows}, drift share: {_num(report.drift_share)}</p>"
    )
    if report.findings:
        # the root cause leads: one line the on-call engineer acts on, then the other findings
        out.insert(3, f'<p class="cause"><b>Root cause:</b> {_e(report.root_cause)}</p>')
        others = "".join(f"<li>{_e(f.text)}</li>" for f in report.findings[1:])
        if others:
            out.append(f"<details><summary>{len(report.findings) - 1} more findings</summary><ul>{others}</ul></details>")
    for note in report.notes:
        out.append(f'<p class="na">{_e(note)}</p>')
    if report.new_values:
        rows_nv = [
            f'<tr><td>{_e(feature)}</td><td>{_e(value)}</td><td class="num">{count}</td></tr>'
            for feature, values in report.new_values.items()
            for value, count in values.items()
        ]
        out.append("<h2>Values never seen in training</h2>" + _table(["feature", "value", "window rows"], rows_nv))

    rejects = report.rejects
    if rejects is not None and rejects["requests"]:
        verdict_r = "over the threshold" if rejects["failed"] else "within the threshold"
        lines = [
            f"<p>{rejects['rejected_requests']} of {rejects['requests']} requests refused by validation "
            f"({_num(rejects['share'])}; threshold {_num(rejects['threshold'])}, {verdict_r}"
            f"{', counts scaled from a sample' if rejects['estimated'] else ''}).</p>"
        ]
        by_reason = [f'<tr><td>{_e(r)}</td><td class="num">{n}</td></tr>' for r, n in rejects["by_reason"].items()]
        if by_reason:
            lines.append(_table(["reason", "rejected requests"], by_reason))
        by_field = [
            f'<tr><td>{_e(f)}</td><td>{_e(r)}</td><td class="num">{n}</td></tr>'
            for f, reasons in rejects["by_field"].items()
            for r, n in reasons.items()
        ]
        if by_field:
            lines.append(_table(["field", "reason", "rejected requests"], by_field))
        out.append("<h2>Rejected requests</h2>" + "".join(lines))

    rows = []
    for v in report.verdicts():
        rows.append(
            "<tr>"
            f'<td>{_e(v.check)}</td><td class="num">{_num(v.statistic)}</td>'
            f'<td class="num">{_num(v.p_value)}</td><td class="num">{_num(v.threshold)}</td>'
            f"{_verdict_cell(v.verdict)}<td>{_e(v.detail)}</td>"
            "</tr>"
        )
    out.append("<h2>Checks</h2>")
    out.append(_table(["check", "statistic", "p-value (corrected)", "threshold", "verdict", "detail"], rows))

    p = report.result(PerformanceResult)
    if p is not None:
        prow = [
            f'<tr><td>{_e(name)}</td><td class="num">{_num(val)}</td></tr>'
            for name, val in (
                ("labelled rows", p.n_labels),
                ("accuracy", p.accuracy),
                ("macro F1", p.f1_macro),
                ("AUC (macro one-vs-rest)", p.auc),
                ("MAE", p.mae),
                ("RMSE", p.rmse),
            )
            if val is not None
        ]
        out.append("<h2>Performance</h2>" + _table(["metric", "value"], prow))

    out.append(
        '<h2>Features</h2><p class="legend">share of rows per bin:'
        f'<span style="background:{REF_COLOR}"></span>reference'
        f'<span style="background:{TGT_COLOR}"></span>window</p>'
    )
    by_name = {h.feature: h for h in report.histograms}
    results = {r.feature: r for r in report.features.results} if report.features is not None else {}
    for spec in profile.features:
        hist = by_name.get(spec.name) or _reference_only(profile, spec.name)
        r = results.get(spec.name)
        status = ""
        if r is not None:
            status = (
                f" &mdash; {_e(r.test)} p={_num(r.p_value_corrected)}, effect={_num(r.effect_size)}{' <b>DRIFT</b>' if r.is_drift else ''}"
            )
        out.append(
            f'<div class="feature"><h3>{_e(spec.name)} <small>({_e(spec.kind.value)})</small>{status}</h3>{histogram_svg(hist)}</div>'
        )
    if report.output_histograms:
        prediction = report.result(PredictionDriftResult)
        drift = {r.feature: r for r in prediction.results} if prediction is not None else {}
        out.append("<h2>Model outputs</h2>")
        for hist in report.output_histograms:
            r = drift.get(hist.feature)  # histograms are named like the prediction-drift outputs
            status = f" &mdash; {_e(r.test)} p={_num(r.p_value_corrected)}{' <b>DRIFT</b>' if r.is_drift else ''}" if r else ""
            out.append(f'<div class="feature"><h3>{_e(hist.feature)}{status}</h3>{histogram_svg(hist)}</div>')
    out.append(attribution_section(report.result(AttributionResult)))
    for heading, body in extra_sections:
        out.append(f"<h2>{_e(heading)}</h2>{body}")
    out.append("</body></html>")
    return "\n".join(out)


def attribution_section(result: AttributionResult | None) -> str:
    """What moved the predictions: each feature's mean |contribution|, reference vs window, the largest growth
    first ("" when the check did not run)."""
    if result is None:
        return ""
    moved_row = ' class="drift"'
    rows = [
        f'<tr{moved_row if f.moved else ""}><td>{_e(f.feature)}</td><td class="num">{_num(f.reference)}</td>'
        f'<td class="num">{_num(f.window)}</td><td class="num">{_num(f.change)}</td><td class="num">{_num(f.p_value)}</td>'
        f'<td class="num">{f.window_rows}</td></tr>'
        for f in result.features
    ]
    verdict = "no feature moved" if result.moved is False else "no verdict"
    if result.moved:
        verdict = "moved through " + ", ".join(result.moved_features)
    intro = (
        f"<p>Mean |contribution| of each feature to the explained output (Shapley values), in {result.window_rows} explained "
        f"window rows against {result.reference_rows} explained reference rows; a feature moved the predictions when its mean "
        f"grew by at least {result.shift_threshold:g} of the reference's total ({_num(result.reference_total)}) with p &lt; "
        f"{result.alpha:g} (Welch, corrected): <b>{_e(verdict)}</b>.</p>"
    )
    headers = ["feature", "reference mean |contribution|", "window mean |contribution|", "change", "p-value (corrected)", "window rows"]
    return "<h2>What moved the predictions</h2>" + intro + _table(headers, rows)


# ---------------------------------------------------------------- the version comparison (monitoring.comparison)

_COMPARISON_CSS = (
    BASE_CSS
    + """
.bad{background:#fde0dc;font-weight:bold}
.ok{background:#e3f4e1}
"""
)


def _cmp_num(x: Any) -> str:
    """A comparison cell: integers as integers, small values in scientific notation."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(int(x))
    f = float(x)
    return f"{f:.3e}" if f != 0 and abs(f) < 1e-3 else f"{f:.4g}"


def _cmp_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_cmp_num(c)}</td>' if isinstance(c, (int, float, np.number)) or c is None else f"<td>{_e(c)}</td>" for c in r
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def comparison_section(report: ComparisonReport) -> str:
    """The comparison as an HTML fragment (a section of a page, or a page with ``render_comparison_html``)."""
    v = report.versions
    parts = [f"<h2>Champion {_e(v[CHAMPION])} vs challenger {_e(v[CHALLENGER])} ({_e(report.mode)})</h2>"]
    verdict = "significantly worse" if report.challenger_worse else "not significantly worse"
    parts.append(f'<p class="{"bad" if report.challenger_worse else "ok"}">Challenger: {verdict} at alpha = {_cmp_num(report.alpha)}</p>')
    parts.append(_cmp_table(["variant", "version", "rows"], [(k, v[k], report.rows[k]) for k in (CHAMPION, CHALLENGER)]))
    a = report.agreement
    if a is not None and a.rate is not None:
        parts.append("<h3>Agreement</h3>")
        parts.append(
            _cmp_table(["paired rows", "agreeing", "rate", "95% low", "95% high"], [(a.rows, a.agreeing, a.rate, a.ci_low, a.ci_high)])
        )
        parts.append(
            _cmp_table(
                ["champion said", "rows", "disagreeing", "rate", "challenger said instead"],
                [
                    (r["class"], r["rows"], r["disagreeing"], r["rate"], ", ".join(f"{k}: {n}" for k, n in r["challenger_said"].items()))
                    for r in a.by_champion_class
                ],
            )
        )
        if a.by_confidence:
            parts.append(
                _cmp_table(
                    ["champion confidence", "rows", "disagreeing", "rate"],
                    [(f"{r['low']:.1f} to {r['high']:.1f}", r["rows"], r["disagreeing"], r["rate"]) for r in a.by_confidence],
                )
            )
    elif a is not None:
        parts.append(f"<p>Mean |challenger - champion|: {_cmp_num(a.mean_abs_difference)} over {a.rows} paired rows</p>")
    parts.append("<h3>Performance on labelled rows</h3>")
    perf = report.performance
    parts.append(
        _cmp_table(
            ["variant", "labelled rows", "accuracy", "macro F1", "AUC", "MAE", "RMSE"],
            [(k, p.n_labels, p.accuracy, p.f1_macro, p.auc, p.mae, p.rmse) for k, p in perf.items()],
        )
    )
    differences = [d for d in (report.difference, *report.metric_differences) if d is not None]
    if differences:
        parts.append(
            _cmp_table(
                ["difference (challenger - champion)", "estimate", "95% low", "95% high", "p-value", "test"],
                [(d.metric, d.estimate, d.ci_low, d.ci_high, d.p_value, d.test) for d in differences],
            )
        )
        if report.metric_differences:
            detail = report.metric_differences[0].detail
            what = "the row pairs" if report.mode == SHADOW else "each version's rows on their own"
            parts.append(
                f"<p>Bootstrap intervals: {_e(detail['method'])}, {_e(detail['resamples'])} "
                f"resamples of {_e(what)}, seed {_e(detail['seed'])}</p>"
            )
    pd_ = report.prediction_distribution
    parts.append("<h3>Prediction distribution</h3>")
    if "classes" in pd_:
        parts.append(
            _cmp_table(
                ["class", "champion share", "challenger share"], list(zip(pd_["classes"], pd_["champion_share"], pd_["challenger_share"]))
            )
        )
        parts.append(
            f"<p>Total variation {_cmp_num(pd_['total_variation'])}; chi-square homogeneity p = {_cmp_num(pd_.get('p_value'))}</p>"
        )
    else:
        parts.append(
            f"<p>KS statistic {_cmp_num(pd_.get('statistic'))}, p = {_cmp_num(pd_.get('p_value'))}; "
            f"means {_cmp_num(pd_.get('champion_mean'))} vs {_cmp_num(pd_.get('challenger_mean'))}</p>"
        )
    return "\n".join(parts)


def render_comparison_html(report: ComparisonReport, title: str = "Version comparison") -> str:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_COMPARISON_CSS}</style></head>"
        f"<body><h1>{_e(title)}</h1>{comparison_section(report)}</body></html>"
    )
