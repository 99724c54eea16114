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
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import metric_names as M
from ._util import coerce_column, json_clean, table_rows
from .check_protocol import Metric, ProfileCheck, Verdict, Window, finite_metrics
from .profile import ReferenceProfile
from .types import FeatureKind, RejectCounts

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
                **({"rejects": {**self.rejects.to_dict(), "threshold": self.reject.threshold if self.reject else None,
                                "min_requests": self.reject_min_requests, "failed": bool(self.reject and self.reject.failed)}}
                   if self.rejects is not None else {}),
                "n_failed": self.n_failed,
                "passed": self.passed,
            }
        )

    def verdicts(self) -> list[Verdict]:
        return [
            Verdict(f"{e.check} {e.feature}", e.share, None, e.threshold, e.failed if e.n_rows else None,
                    f"{e.n_flagged}/{e.n_rows} rows" + (f"; new: {format_new_values(e.new_values)}" if e.new_values else ""))
            for e in self.results
        ] + self._reject_verdicts()

    def _reject_verdicts(self) -> list[Verdict]:
        e, counts = self.reject, self.rejects
        if e is None or counts is None:
            return []
        evaluated = counts.requests >= self.reject_min_requests
        detail = f"{e.n_flagged}/{e.n_rows} requests refused" + ("" if evaluated else f" (under {self.reject_min_requests} requests: no verdict)")
        top = counts.top_fields(1)
        if top:
            detail += f"; most: {top[0][0]} {top[0][1]} in {top[0][2]}"
        return [Verdict(f"{REJECT_RATE} {REJECTS_SUBJECT}", e.share, None, e.threshold, e.failed if evaluated else None, detail)]

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


def format_new_values(values: tuple[tuple[str, int], ...] | dict[str, int], limit: int = 5) -> str:
    """``'Atlantis' (312 rows), 'Mars' (25 rows)``: the named values for a log line or a verdict."""
    items = list(values.items() if isinstance(values, dict) else values)
    text = ", ".join(f"{v!r} ({c} rows)" for v, c in items[:limit])
    return text + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_expectations(
    profile: ReferenceProfile,
    table: Mapping[str, np.ndarray],
    *,
    missing_rate_tolerance: float = 0.05,
    missing_rate_z: float = 3.0,
    out_of_range_threshold: float = 0.01,
    unseen_category_threshold: float = 0.01,
    wrong_type_threshold: float = 0.0,
    min_new_value_rows: int = DEFAULT_MIN_NEW_VALUE_ROWS,
    rejects: RejectCounts | None = None,
    reject_rate_threshold: float = 0.05,
    reject_min_requests: int = 100,
) -> DataQualityResult:
    """Run every expectation for every profiled feature, and the reject rate when ``rejects`` is given.
    A feature absent from ``table`` is treated as entirely null (so it fails the missing-rate check
    instead of raising)."""
    n = table_rows({f.name: table[f.name] for f in profile.features if f.name in table})
    results: list[ExpectationResult] = []
    for spec in profile.features:
        fp = profile[spec.name]
        col = table.get(spec.name)
        if col is None:
            col = np.full(n, None, dtype=object) if spec.kind == FeatureKind.CATEGORICAL else np.full(n, np.nan)
        values, null, wrong = coerce_column(spec, col)

        def share(k: int) -> float:
            return k / n if n else float("nan")

        def result(check: str, flagged: int, threshold: float, ref_share: float | None, feature: str = spec.name) -> ExpectationResult:
            s = share(flagged)
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

        # missing rate
        p_ref = fp.missing_rate if fp.n_rows else 0.0
        margin = missing_rate_z * math.sqrt(p_ref * (1.0 - p_ref) / n) if n else 0.0
        results.append(result(MISSING_RATE, int(null.sum()), p_ref + missing_rate_tolerance + margin, p_ref))

        # out of range (numeric)
        if spec.kind == FeatureKind.NUMERIC:
            lo, hi = fp.range
            outside = np.zeros(n, dtype=bool)
            with np.errstate(invalid="ignore"):
                if lo is not None:
                    outside |= values < lo
                if hi is not None:
                    outside |= values > hi
            results.append(result(OUT_OF_RANGE, int(outside.sum()), out_of_range_threshold, 0.0))

        # unseen categories (categorical)
        if spec.kind == FeatureKind.CATEGORICAL:
            known = set(fp.known_categories)
            new = Counter(v for v, w in zip(values, wrong) if v is not None and not w and v not in known)
            named = tuple(sorted(new.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_NAMED_VALUES])
            unseen = result(UNSEEN_CATEGORY, sum(new.values()), unseen_category_threshold, 0.0)
            frequent = bool(named) and named[0][1] >= min_new_value_rows
            results.append(replace(unseen, new_values=named, failed=unseen.failed or frequent))

        # wrong types
        ref_wrong = fp.n_wrong_type / fp.n_rows if fp.n_rows else None
        results.append(result(WRONG_TYPE, int(wrong.sum()), wrong_type_threshold, ref_wrong))

    def agg(check: str) -> float | None:
        shares = [r.share for r in results if r.check == check and not math.isnan(r.share)]
        return max(shares) if shares else None

    rises = [
        max(0.0, r.share - (r.reference_share or 0.0))
        for r in results
        if r.check == MISSING_RATE and not math.isnan(r.share)
    ]
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


class DataQualityCheck(ProfileCheck):
    """Every expectation for every profiled feature."""

    name = "data_quality"
    metric_names = (M.MISSING_RATE, M.OUT_OF_RANGE_RATE, M.UNSEEN_CATEGORY_RATE, M.DATA_QUALITY_FAILURES, M.REJECT_RATE, M.REJECTED_REQUESTS)
    reads_rejects = True

    def run(self, window: Window) -> DataQualityResult:
        return check_expectations(
            self.profile, window.table, rejects=window.rejects, **self.config.arguments_for(check_expectations)
        )
