"""The library's own small types: what a feature and a model output are, as far as drift is concerned.

``monitoring`` imports nothing of the serving project. Callers pass any objects that satisfy
:class:`ColumnSpec` / :class:`OutputsSpec` (the bundle schema's ``FeatureSpec`` and ``OutputSpec`` do);
``kind`` and ``task`` may be these enums or any ``str`` enum or string with the same values.

Column representation (a "table" is ``dict[str, np.ndarray]``):
- numeric:     float64, NaN for null
- boolean:     float64 0.0/1.0, NaN for null
- categorical: object array of ``str``, ``None`` for null
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import numpy as np

Table = dict[str, np.ndarray]

# the reference sample kept in a profile (rows)
MAX_SAMPLE_ROWS = 10_000


class FeatureKind(str, Enum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"


class Task(str, Enum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class ColumnSpec(Protocol):
    """What the library reads of a feature's declaration."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> Any: ...  # FeatureKind or a str enum / string with its values
    @property
    def nullable(self) -> bool: ...
    @property
    def categories(self) -> Sequence[str]: ...

    # optional: ``min`` / ``max``, the declared range of a numeric feature


class OutputsSpec(Protocol):
    """What the library reads of a model's outputs."""

    @property
    def task(self) -> Any: ...  # Task or a str enum / string with its values
    @property
    def classes(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class FeatureSpec:
    """The library's concrete column spec; every :class:`ColumnSpec` is converted to it on the way in."""

    name: str
    kind: FeatureKind
    nullable: bool = False
    categories: tuple[str, ...] = ()
    min: float | None = None  # declared range (numeric), widened by the reference's own
    max: float | None = None

    @classmethod
    def of(cls, spec: ColumnSpec) -> FeatureSpec:
        if isinstance(spec, FeatureSpec):
            return spec
        return cls(
            name=str(spec.name),
            kind=FeatureKind(getattr(spec.kind, "value", spec.kind)),
            nullable=bool(spec.nullable),
            categories=tuple(str(c) for c in (spec.categories or ())),
            min=_float_or_none(getattr(spec, "min", None)),
            max=_float_or_none(getattr(spec, "max", None)),
        )


def _float_or_none(x: Any) -> float | None:
    return None if x is None else float(x)


@dataclass(frozen=True)
class Outputs:
    """The library's concrete :class:`OutputsSpec`: the task and, for a classifier, its classes in
    probability-column order."""

    task: Task
    classes: tuple[str, ...] = ()


def feature_specs(specs: Sequence[ColumnSpec]) -> tuple[FeatureSpec, ...]:
    return tuple(FeatureSpec.of(s) for s in specs)


def task_of(value: Any) -> Task | None:
    """``Task`` from a Task, a str enum with its values or a string; None stays None."""
    if value is None:
        return None
    return Task(getattr(value, "value", value))


@dataclass(frozen=True)
class RejectCounts:
    """The requests of a window that validation refused, counted by the caller (the library reads no
    storage). ``scored_requests``: the window's requests that were answered (and captured); with
    capture sampling both counts are of sampled requests, so the share is unbiased.

    ``by_reason``: rejected requests by their reason code (each request once: its first error's);
    ``by_field``: field -> reason -> rejected requests with at least one error of that reason on that
    field (a request with errors on two fields counts for both).
    """

    rejected_requests: int
    scored_requests: int
    by_reason: Mapping[str, int] = field(default_factory=dict)
    by_field: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    rejected_rows: int = 0  # rows the rejected requests held, where the body could be read as rows
    estimated: bool = False  # True: the per-reason and per-field counts are scaled from a sample of the rejects

    def __post_init__(self) -> None:
        if self.rejected_requests < 0 or self.scored_requests < 0:
            raise ValueError(f"request counts must be >= 0, got {self.rejected_requests} rejected, {self.scored_requests} scored")

    @property
    def requests(self) -> int:
        return self.rejected_requests + self.scored_requests

    @property
    def share(self) -> float | None:
        """Rejected requests / all requests of the window (None without requests)."""
        return self.rejected_requests / self.requests if self.requests else None

    def top_fields(self, limit: int = 5) -> list[tuple[str, str, int]]:
        """(field, reason, rejected requests), the most frequent first."""
        items = [(f, reason, n) for f, reasons in self.by_field.items() for reason, n in reasons.items()]
        return sorted(items, key=lambda t: (-t[2], t[0], t[1]))[:limit]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rejected_requests": self.rejected_requests,
            "scored_requests": self.scored_requests,
            "requests": self.requests,
            "share": self.share,
            "rejected_rows": self.rejected_rows,
            "by_reason": dict(sorted(self.by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
            "by_field": {f: dict(r) for f, r in sorted(self.by_field.items())},
            "estimated": self.estimated,
        }


@dataclass(frozen=True)
class WindowCounts:
    """Exact counts over every row of a window, computed where the rows are (a query engine over the
    captures table) when the table the checks get is only a sample of the window. The data-quality
    expectations take their shares from these: a value never seen in training in 1 of 100,000 rows is
    counted, not estimated from a sample that holds it or not.

    ``nulls``: feature -> null rows; ``out_of_range``: numeric feature -> rows outside the profile's
    range (``FeatureProfile.range``: below its min or above its max); ``categories``: categorical
    feature -> non-null value -> rows. A feature left out of a mapping is counted on the sample.
    The categorical features' drift tests take ``categories`` too (chi-squared and Jensen-Shannon on exact
    counts). ``predicted_labels``: a classifier's predicted label -> rows (the null predictions are the
    rest of ``rows``), for the predicted-label drift test; None: tested on the sample. ``histograms``: the report's
    histograms of the numeric features, on the profile's bins (the categorical ones come from ``categories``)."""

    rows: int
    nulls: Mapping[str, int] = field(default_factory=dict)
    out_of_range: Mapping[str, int] = field(default_factory=dict)
    categories: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    predicted_labels: Mapping[str, int] | None = None
    # numeric feature -> rows per bin of the profile's histogram (below, inner bins, above; nulls are ``nulls``)
    histograms: Mapping[str, Sequence[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rows < 0:
            raise ValueError(f"rows must be >= 0, got {self.rows}")
