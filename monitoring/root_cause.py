"""The findings of a report in cause order, so that the report, the log line and the notification
lead with the one line the on-call engineer acts on ("bill_depth_mm missing in 25% of rows,
reference 0.6%").

Order (the first is ``DriftReport.root_cause``): requests refused by validation over the reject
threshold ("body_mass_g null in 100% of rejected requests; 62% of requests rejected"), then a broken input (wrong types, then missing values
rising, then values never seen in training, then values outside the reference range) explains
the statistics computed from it, so data-quality failures lead; then drifted features (largest
effect first), then drifted model outputs, then the multivariate and outlier verdicts, which
rarely have a cause of their own once the above are accounted for; then anything else that fired.
The multivariate and outlier checks are computed on complete rows (see :mod:`monitoring.outliers`),
so rising nulls are reported once, as missingness.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .check_protocol import CheckResult, fmt
from .expectations import MISSING_RATE, OUT_OF_RANGE, REJECT_RATE, UNSEEN_CATEGORY, WRONG_TYPE, DataQualityResult, ExpectationResult
from .prediction_drift import PredictionDriftResult
from .types import RejectCounts
from .univariate import FeatureDriftSummary


@dataclass(frozen=True)
class Finding:
    """One thing that fired, as a sentence; ``check`` is the report key of the result it came from."""

    check: str
    feature: str | None
    text: str


def _pct(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:.2g}%" if x < 0.1 else f"{100 * x:.0f}%"


# what a validation reason says about a field, in a finding ("body_mass_g null in 100% of rejected requests")
_REASON_WORDS = {
    "null_not_allowed": "null", "unseen_category": "an unseen category", "wrong_type": "a wrong type",
    "not_finite": "not finite", "missing_feature": "missing", "unknown_feature": "an unknown field",
}


def reject_text(counts: RejectCounts) -> str:
    """The reject finding: the field and reason behind most refusals first, then the share of requests."""
    overall = f"{_pct(counts.share)} of requests rejected ({counts.rejected_requests} of {counts.requests})"
    top = counts.top_fields(1)
    rejected = counts.rejected_requests or 1
    if top:
        field, reason, n = top[0]
        return f"{field} {_REASON_WORDS.get(reason, reason)} in {_pct(n / rejected)} of rejected requests; {overall}"
    if counts.by_reason:
        reason, n = max(counts.by_reason.items(), key=lambda kv: (kv[1], kv[0]))
        return f"{overall}; {reason} in {_pct(n / rejected)} of them"
    return overall


def _quality_text(e: ExpectationResult, result: DataQualityResult | None = None) -> str:
    if e.check == REJECT_RATE and result is not None and result.rejects is not None:
        return reject_text(result.rejects)
    if e.check == MISSING_RATE:
        return f"{e.feature} missing in {_pct(e.share)} of rows, reference {_pct(e.reference_share or 0.0)}"
    if e.check == WRONG_TYPE:
        return f"{e.feature} has a wrong type in {_pct(e.share)} of rows ({e.n_flagged} rows)"
    if e.check == UNSEEN_CATEGORY:
        named = ", ".join(f"{v!r} in {c} rows" for v, c in e.new_values[:3])
        more = f" and {len(e.new_values) - 3} more" if len(e.new_values) > 3 else ""
        return f"{e.feature} has values never seen in training: {named}{more} ({_pct(e.share)} of rows)"
    if e.check == OUT_OF_RANGE:
        return f"{e.feature} outside the reference range in {_pct(e.share)} of rows ({e.n_flagged} rows)"
    return f"{e.feature} {e.check} in {_pct(e.share)} of rows"


# refused requests lead: a broken upstream explains whatever the scored rows show
_QUALITY_ORDER = {REJECT_RATE: -1, WRONG_TYPE: 0, MISSING_RATE: 1, UNSEEN_CATEGORY: 2, OUT_OF_RANGE: 3}


def _quality(name: str, result: DataQualityResult) -> list[Finding]:
    failed = sorted(
        result.failed_checks(),
        key=lambda e: (_QUALITY_ORDER.get(e.check, 9), -(e.share - (e.reference_share or 0.0))),
    )
    return [Finding(name, None if e.check == REJECT_RATE else e.feature, _quality_text(e, result)) for e in failed]


def _drifted(name: str, result: FeatureDriftSummary | PredictionDriftResult, what: str) -> list[Finding]:
    drifted = sorted((r for r in result.results if r.is_drift), key=lambda r: -r.effect_size)
    return [
        Finding(name, r.feature, f"{what}{r.feature} shifted: effect {fmt(r.effect_size)} ({r.effect_measure}, threshold "
                f"{fmt(r.effect_threshold)}), p={fmt(r.p_value_corrected)}")
        for r in drifted
    ]


def findings(results: Mapping[str, CheckResult | None]) -> list[Finding]:
    """Every finding of these results, the most likely cause first."""
    present = [(name, r) for name, r in results.items() if r is not None]
    first: list[Finding] = []
    features: list[Finding] = []
    outputs: list[Finding] = []
    rest: list[Finding] = []
    for name, r in present:
        if isinstance(r, DataQualityResult):
            first += _quality(name, r)
        elif isinstance(r, FeatureDriftSummary):
            features += _drifted(name, r, "")
        elif isinstance(r, PredictionDriftResult):
            outputs += _drifted(name, r, "model output ")
        else:
            rest += [
                Finding(name, None, f"{v.check} {fmt(v.statistic)} over its threshold {fmt(v.threshold)}"
                        + (f" ({v.detail})" if v.detail else ""))
                for v in r.verdicts()
                if v.verdict
            ]
    return first + features + outputs + rest


def summary_line(found: Iterable[Finding]) -> str | None:
    """The root cause and how many more findings there are, for a log line or a notification."""
    items = list(found)
    if not items:
        return None
    more = len(items) - 1
    return items[0].text + (f" (+{more} more finding{'s' if more > 1 else ''})" if more else "")
