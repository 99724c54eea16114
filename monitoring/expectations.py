"""Rule-based data-quality expectations of a window against the reference profile.

Every check returns the *share of window rows* it flags (denominator: all rows of the window),
the threshold it is compared with and a verdict (``failed`` when ``share > threshold``):

- ``missing_rate`` (every feature): share of null rows. Threshold =
  ``reference missing rate + missing_rate_tolerance + missing_rate_z * sqrt(p_ref (1 - p_ref) / n)``;
  the last term is a binomial sampling margin so that small windows do not alarm on noise
  (set ``missing_rate_z=0`` for the plain "reference + tolerance" rule).
- ``out_of_range`` (numeric): share of rows whose value lies outside the reference range
  ``[min, max]`` (the wider of the schema range and the observed reference range).
- ``unseen_category`` (categorical): share of rows whose category is neither in the schema
  categories nor observed in the reference. The new values are named with their row counts
  (``new_values``, the most frequent first, at most :data:`MAX_NAMED_VALUES`), and the check also
  fails when one new value is in at least ``min_new_value_rows`` rows, whatever its share: a
  value never seen in training in a few hundred rows of a large window is under 1% but real.
- ``wrong_type`` (every feature): share of rows whose value cannot be the declared type. For
  already-typed tables: +-inf in numeric columns, values other than 0/1 in boolean columns,
  non-``str`` objects in categorical columns (and unparseable objects in numeric columns).

Aggregates (the published ``MissingRate``, ``OutOfRangeRate``, ``UnseenCategoryRate`` metrics)
are the **maximum** across the applicable features: a data-quality problem usually hits one
feature, and a mean over many healthy features would dilute it below any useful alarm
threshold. ``missing_rate`` is the maximum *rise* of the missing share over the reference
(``max(0, window share - reference share)``), so that a feature that is legitimately often null
does not hold the alarm on; the raw maximum share is ``missing_share_max``. The out-of-range and
unseen shares are 0 on the reference by construction, so they are published as they are.
``n_failed`` (published as ``DataQualityFailures``) counts failed checks.

- ``reject_rate`` (the window's requests, when the caller passes :class:`~monitoring.types.RejectCounts`):
  share of the window's requests that validation refused (they never reach the scored rows, so
  the checks above cannot see them). Fails when it exceeds ``reject_rate_threshold`` on a window of
  at least ``reject_min_requests`` requests; published as ``RejectRate`` (0 under the minimum, so a
  rate alarm does not page on one refused request of three) and ``RejectedRequests``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from . import metric_names as M
from ._util import coerce_column, json_clean, table_rows
from .check_protocol import PRIORITY_DATA_QUALITY, PRIORITY_REJECTS, Finding, Metric, ProfileCheck, Verdict, Window, finite_metrics
from .config import CheckConfig, register_config, threshold
from .profile import ReferenceProfile
from .types import FeatureKind, RejectCounts, WindowCounts

MISSING_RATE = "missing_rate"
OUT_OF_RANGE = "out_of_range"
UNSEEN_CATEGORY = "unseen_category"
WRONG_TYPE = "wrong_type"
REJECT_RATE = "reject_rate"
REJECTS_SUBJECT = "requests"  # the reject-rate expectation is about requests, not a feature
MAX_NAMED_VALUES = 20  # new values named per feature (the rest are counted in the share)
DEFAULT_MIN_NEW_VALUE_ROWS = 20


@dataclass(frozen=True)
class ExpectationResult:
    feature: str
    check: str
    share: float  # flagged rows / window rows (NaN for an empty window)
    threshold: float
    reference_share: float | None  # the same share on the reference, when meaningful
    n_rows: int
    n_flagged: int
    failed: bool
    new_values: tuple[tuple[str, int], ...] = ()  # unseen_category: (value, rows), most frequent first

    def to_dict(self) -> dict[str, Any]:
        return json_clean(
            {
                "feature": self.feature,
                "check": self.check,
                "share": self.share,
                "threshold": self.threshold,
                "reference_share": self.reference_share,
                "n_rows": self.n_rows,
                "n_flagged": self.n_flagged,
                "failed": self.failed,
                **({"new_values": dict(self.new_values)} if self.new_values else {}),
            }
        )


@dataclass(frozen=True)
class DataQualityResult:
    results: tuple[ExpectationResult, ...]
    missing_rate: float | None  # max over features of max(0, window - reference missing share)
    out_of_range_rate: float | None  # max over numeric features
    unseen_category_rate: float | None  # max over categorical features
    wrong_type_rate: float | None  # max over features
    missing_share_max: float | None = None  # max over features of the raw window missing share
    rejects: RejectCounts | None = None  # the window's refused requests, when the caller counted them
    reject: ExpectationResult | None = None  # the reject-rate expectation (with ``rejects``)
    reject_min_requests: int = 0

    @property
    def n_failed(self) -> int:
        return sum(r.failed for r in self._all())

    @property
    def passed(self) -> bool:
        return self.n_failed == 0

    def _all(self) -> tuple[ExpectationResult, ...]:
        return self.results + ((self.reject,) if self.reject is not None else ())

    def failed_checks(self) -> list[ExpectationResult]:
        return [r for r in self._all() if r.failed]

    @property
    def reject_rate(self) -> float | None:
        """The published reject share: rejected / all requests, 0 under ``reject_min_requests``."""
        if self.rejects is None or self.rejects.share is None:
            return None
        return self.rejects.share if self.rejects.requests >= self.reject_min_requests else 0.0

    @property
    def new_values(self) -> dict[str, dict[str, int]]:
        """Feature -> {value never seen in training: window rows}, for the features that have any."""
        return {r.feature: dict(r.new_values) for r in self.results if r.check == UNSEEN_CATEGORY and r.new_values}

    def get(self, feature: str, check: str) -> ExpectationResult | None:
        for r in self.results:
            if r.feature == feature and r.check == check:
                return r
        return None

    def to_dict(self) -> dict[str, Any]:
        return json_clean(
            {
                "results": [r.to_dict() for r in self.results],
                "missing_rate": self.missing_rate,
                "out_of_range_rate": self.out_of_range_rate,
                "unseen_category_rate": self.unseen_category_rate,
                "wrong_type_rate": self.wrong_type_rate,
                "missing_share_max": self.missing_share_max,
                "new_values": self.new_values,
                **(
                    {
                        "rejects": {
                            **self.rejects.to_dict(),
                            "threshold": self.reject.threshold if self.reject else None,
                            "min_requests": self.reject_min_requests,
                            "failed": bool(self.reject and self.reject.failed),
                        }
                    }
                    if self.rejects is not None
                    else {}
                ),
                "n_failed": self.n_failed,
                "passed": self.passed,
            }
        )

    def verdicts(self) -> list[Verdict]:
        return [
            Verdict(
                f"{e.check} {e.feature}",
                e.share,
                None,
                e.threshold,
                e.failed if e.n_rows else None,
                f"{e.n_flagged}/{e.n_rows} rows" + (f"; new: {format_new_values(e.new_values)}" if e.new_values else ""),
            )
            for e in self.results
        ] + self._reject_verdicts()

    def _reject_verdicts(self) -> list[Verdict]:
        e, counts = self.reject, self.rejects
        if e is None or counts is None:
            return []
        evaluated = counts.requests >= self.reject_min_requests
        detail = f"{e.n_flagged}/{e.n_rows} requests refused" + (
            "" if evaluated else f" (under {self.reject_min_requests} requests: no verdict)"
        )
        top = counts.top_fields(1)
        if top:
            detail += f"; most: {top[0][0]} {top[0][1]} in {top[0][2]}"
        return [Verdict(f"{REJECT_RATE} {REJECTS_SUBJECT}", e.share, None, e.threshold, e.failed if evaluated else None, detail)]

    def findings(self) -> list[Finding]:
        """The failed expectations, the likeliest cause first: refused requests (a broken upstream explains
        whatever the scored rows show), then wrong types, rising missingness, values never seen in
        training, values outside the reference range; the largest excess first within each."""
        failed = sorted(self.failed_checks(), key=lambda e: (_FINDING_ORDER.get(e.check, 9), -(e.share - (e.reference_share or 0.0))))
        return [
            Finding(_finding_text(e, self.rejects), PRIORITY_REJECTS, None)
            if e.check == REJECT_RATE
            else Finding(_finding_text(e, self.rejects), PRIORITY_DATA_QUALITY + _FINDING_ORDER.get(e.check, 9), e.feature)
            for e in failed
        ]

    def metrics(self) -> list[Metric]:
        return finite_metrics(
            [
                (M.MISSING_RATE, self.missing_rate, None),
                (M.OUT_OF_RANGE_RATE, self.out_of_range_rate, None),
                (M.UNSEEN_CATEGORY_RATE, self.unseen_category_rate, None),
                (M.DATA_QUALITY_FAILURES, self.n_failed, None),
                (M.REJECT_RATE, self.reject_rate, None),
                (M.REJECTED_REQUESTS, None if self.rejects is None or not self.rejects.requests else self.rejects.rejected_requests, None),
            ]
        )


_FINDING_ORDER = {REJECT_RATE: -1, WRONG_TYPE: 0, MISSING_RATE: 1, UNSEEN_CATEGORY: 2, OUT_OF_RANGE: 3}

# what a validation reason says about a field, in a finding ("body_mass_g null in 100% of rejected requests")
_REASON_WORDS = {
    "null_not_allowed": "null",
    "unseen_category": "an unseen category",
    "wrong_type": "a wrong type",
    "not_finite": "not finite",
    "missing_feature": "missing",
    "unknown_feature": "an unknown field",
}


def _pct(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:.2g}%" if x < 0.1 else f"{100 * x:.0f}%"


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


def _finding_text(e: ExpectationResult, rejects: RejectCounts | None) -> str:
    if e.check == REJECT_RATE and rejects is not None:
        return reject_text(rejects)
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


def reject_expectation(counts: RejectCounts, threshold: float, min_requests: int) -> ExpectationResult:
    """The reject-rate expectation: fails when more than ``threshold`` of at least ``min_requests``
    requests were refused (share NaN without requests)."""
    share = counts.share
    return ExpectationResult(
        feature=REJECTS_SUBJECT,
        check=REJECT_RATE,
        share=float("nan") if share is None else share,
        threshold=float(threshold),
        reference_share=None,
        n_rows=counts.requests,
        n_flagged=counts.rejected_requests,
        failed=bool(share is not None and counts.requests >= min_requests and share > threshold),
    )


@register_config
@dataclass(frozen=True)
class DataQualityConfig(CheckConfig):
    missing_rate_tolerance: float = threshold(
        0.05,
        ge=0,
        le=1,
        setting="missing_rate_threshold",
        help="Alarm when a feature's missing rate rises this far above the reference",
    )
    missing_rate_z: float = threshold(3.0, ge=0, help="Binomial margin of the missing-rate gate, in standard errors (0: none)")
    out_of_range_threshold: float = threshold(0.01, ge=0, le=1, setting=True, help="Alarm when out-of-range share exceeds")
    unseen_category_threshold: float = threshold(0.01, ge=0, le=1, setting=True, help="Alarm when unseen share exceeds")
    wrong_type_threshold: float = threshold(0.0, ge=0, le=1, help="Alarm when the share of wrongly typed values exceeds")
    min_new_value_rows: int = threshold(
        DEFAULT_MIN_NEW_VALUE_ROWS,
        ge=1,
        le=100_000_000,
        setting=True,
        help="A value never seen in training in at least this many window rows fails the unseen-category check, whatever its share",
    )
    reject_rate_threshold: float = threshold(
        0.05, ge=0, lt=1, setting=True, help="Alarm when more than this share of the window's requests was refused by validation"
    )
    reject_min_requests: int = threshold(
        100,
        ge=1,
        le=100_000_000,
        setting=True,
        help="No reject-rate verdict (RejectRate published as 0) on windows of fewer requests",
    )


def format_new_values(values: tuple[tuple[str, int], ...] | dict[str, int], limit: int = 5) -> str:
    """``'Atlantis' (312 rows), 'Mars' (25 rows)``: the named values for a log line or a verdict."""
    items = list(values.items() if isinstance(values, dict) else values)
    text = ", ".join(f"{v!r} ({c} rows)" for v, c in items[:limit])
    return text + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_expectations(
    profile: ReferenceProfile,
    table: Mapping[str, np.ndarray],
    *,
    # the defaults are the check's declared ones (a dataclass keeps a field's default on the class)
    missing_rate_tolerance: float = DataQualityConfig.missing_rate_tolerance,
    missing_rate_z: float = DataQualityConfig.missing_rate_z,
    out_of_range_threshold: float = DataQualityConfig.out_of_range_threshold,
    unseen_category_threshold: float = DataQualityConfig.unseen_category_threshold,
    wrong_type_threshold: float = DataQualityConfig.wrong_type_threshold,
    min_new_value_rows: int = DataQualityConfig.min_new_value_rows,
    rejects: RejectCounts | None = None,
    reject_rate_threshold: float = DataQualityConfig.reject_rate_threshold,
    reject_min_requests: int = DataQualityConfig.reject_min_requests,
    counts: WindowCounts | None = None,
) -> DataQualityResult:
    """Run every expectation for every profiled feature, and the reject rate when ``rejects`` is given.
    A feature absent from ``table`` is treated as entirely null (so it fails the missing-rate check
    instead of raising). ``counts``: exact counts over the whole window when ``table`` is a sample of it;
    the missing, out-of-range and unseen shares of the features they hold are taken from them (over
    ``counts.rows``), the wrong-type share stays the sample's (a typed table column has no wrong types)."""
    n = table_rows({f.name: table[f.name] for f in profile.features if f.name in table})
    results: list[ExpectationResult] = []
    for spec in profile.features:
        fp = profile[spec.name]
        col = table.get(spec.name)
        if col is None:
            col = np.full(n, None, dtype=object) if spec.kind == FeatureKind.CATEGORICAL else np.full(n, np.nan)
        values, null, wrong = coerce_column(spec, col)
        exact = _ExactCounts(counts, spec.name)

        # missing rate
        p_ref = fp.missing_rate if fp.n_rows else 0.0
        n_missing, missing = exact.nulls(int(null.sum()), n)
        margin = missing_rate_z * math.sqrt(p_ref * (1.0 - p_ref) / n_missing) if n_missing else 0.0
        results.append(_result(spec.name, MISSING_RATE, missing, n_missing, p_ref + missing_rate_tolerance + margin, p_ref))

        # out of range (numeric)
        if spec.kind == FeatureKind.NUMERIC:
            n_range, outside = exact.out_of_range(partial(_outside, values, fp.range), n)
            results.append(_result(spec.name, OUT_OF_RANGE, outside, n_range, out_of_range_threshold, 0.0))

        # unseen categories (categorical)
        if spec.kind == FeatureKind.CATEGORICAL:
            known = set(fp.known_categories)
            n_cat, seen = exact.categories(partial(_values_seen, values, wrong), n)
            new = Counter({v: c for v, c in seen.items() if v not in known})
            named = tuple(sorted(new.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_NAMED_VALUES])
            unseen = _result(spec.name, UNSEEN_CATEGORY, sum(new.values()), n_cat, unseen_category_threshold, 0.0)
            frequent = bool(named) and named[0][1] >= min_new_value_rows
            results.append(replace(unseen, new_values=named, failed=unseen.failed or frequent))

        # wrong types
        ref_wrong = fp.n_wrong_type / fp.n_rows if fp.n_rows else None
        results.append(_result(spec.name, WRONG_TYPE, int(wrong.sum()), n, wrong_type_threshold, ref_wrong))

    def agg(check: str) -> float | None:
        shares = [r.share for r in results if r.check == check and not math.isnan(r.share)]
        return max(shares) if shares else None

    rises = [max(0.0, r.share - (r.reference_share or 0.0)) for r in results if r.check == MISSING_RATE and not math.isnan(r.share)]
    return DataQualityResult(
        results=tuple(results),
        missing_rate=max(rises) if rises else None,
        missing_share_max=agg(MISSING_RATE),
        out_of_range_rate=agg(OUT_OF_RANGE),
        unseen_category_rate=agg(UNSEEN_CATEGORY),
        wrong_type_rate=agg(WRONG_TYPE),
        rejects=rejects,
        reject=None if rejects is None else reject_expectation(rejects, reject_rate_threshold, reject_min_requests),
        reject_min_requests=reject_min_requests,
    )


def _result(feature: str, check: str, flagged: int, n: int, threshold: float, ref_share: float | None) -> ExpectationResult:
    s = flagged / n if n else float("nan")
    return ExpectationResult(
        feature=feature,
        check=check,
        share=s,
        threshold=float(threshold),
        reference_share=ref_share,
        n_rows=n,
        n_flagged=int(flagged),
        failed=bool(n > 0 and s > threshold),
    )


def _values_seen(values: np.ndarray, wrong: np.ndarray) -> Counter[str]:
    return Counter(v for v, bad in zip(values, wrong) if v is not None and not bad)


def _outside(values: np.ndarray, bounds: tuple[float | None, float | None]) -> int:
    lo, hi = bounds
    outside = np.zeros(values.shape[0], dtype=bool)
    with np.errstate(invalid="ignore"):
        if lo is not None:
            outside |= values < lo
        if hi is not None:
            outside |= values > hi
    return int(outside.sum())


@dataclass(frozen=True)
class _ExactCounts:
    """One feature's exact window counts when the caller has them, else the sample's: each method
    returns (rows counted over, the count)."""

    counts: WindowCounts | None
    feature: str

    def nulls(self, sampled: int, n: int) -> tuple[int, int]:
        if self.counts is not None and self.feature in self.counts.nulls:
            return self.counts.rows, int(self.counts.nulls[self.feature])
        return n, sampled

    def out_of_range(self, sampled: Callable[[], int], n: int) -> tuple[int, int]:
        if self.counts is not None and self.feature in self.counts.out_of_range:
            return self.counts.rows, int(self.counts.out_of_range[self.feature])
        return n, sampled()

    def categories(self, sampled: Callable[[], Counter[str]], n: int) -> tuple[int, Counter[str]]:
        if self.counts is not None and self.feature in self.counts.categories:
            return self.counts.rows, Counter({str(v): int(c) for v, c in self.counts.categories[self.feature].items()})
        return n, sampled()


class DataQualityCheck(ProfileCheck):
    """Every expectation for every profiled feature."""

    name = "data_quality"
    metric_names = (
        M.MISSING_RATE,
        M.OUT_OF_RANGE_RATE,
        M.UNSEEN_CATEGORY_RATE,
        M.DATA_QUALITY_FAILURES,
        M.REJECT_RATE,
        M.REJECTED_REQUESTS,
    )
    reads_rejects = True

    def run(self, window: Window) -> DataQualityResult:
        return check_expectations(
            self.profile, window.table, rejects=window.rejects, counts=window.counts, **self.config.arguments_for(check_expectations)
        )
