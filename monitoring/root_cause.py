"""The findings of a report in cause order, so that the report, the log line and the notification
lead with the one line the on-call engineer acts on ("bill_depth_mm missing in 25% of rows,
reference 0.6%").

Each result says its own findings with a priority (:class:`~monitoring.check_protocol.Finding`; the
order is that of the ``PRIORITY_*`` constants there: refused requests, a broken input, drifted
features, drifted model outputs, then the rest); a result without ``findings()`` contributes each
failed verdict. The findings are ranked by priority, then by the order the results listed them, so
nothing here knows a result type. The multivariate and outlier checks are computed on complete rows
(see :mod:`monitoring.outliers`), so rising nulls are reported once, as missingness.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from .check_protocol import CheckResult, Finding, verdict_findings

__all__ = ["Finding", "findings", "summary_line"]


def findings_of(result: CheckResult) -> list[Finding]:
    """The result's own findings, or its failed verdicts when it says none of its own."""
    own = getattr(result, "findings", None)
    return list(own()) if callable(own) else verdict_findings(result.verdicts())


def findings(results: Mapping[str, CheckResult | None]) -> list[Finding]:
    """Every finding of these results, the most likely cause first (each tagged with its result's key)."""
    found = [replace(f, check=name) for name, r in results.items() if r is not None for f in findings_of(r)]
    return sorted(found, key=lambda f: f.priority)  # stable: a result's own order holds within a priority


def summary_line(found: Iterable[Finding]) -> str | None:
    """The root cause and how many more findings there are, for a log line or a notification."""
    items = list(found)
    if not items:
        return None
    more = len(items) - 1
    return items[0].text + (f" (+{more} more finding{'s' if more > 1 else ''})" if more else "")
