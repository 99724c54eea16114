"""The manual audit sample: once a day, rows of the captured traffic for a person to label.

Stratified by predicted class (an equal share per class, so rare classes are seen) and, within a
class, oversampling low-confidence predictions: weighted sampling without replacement
(Efraimidis-Spirakis keys ``u ** (1 / w)``) with weight ``1 - confidence + 0.05``, where confidence is
the probability of the predicted class. A regressor's rows are sampled uniformly. Written to
``audit/model=<name>/dt=<day>/audit.csv`` and ``audit.jsonl`` (``modelserve.records.audit_key``) with an
empty ``label`` column for a labelling tool; the labels come back through ``/feedback`` with
``"source": "audit"``, and each report shows the agreement of the model with the audited labels.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest

from modelserve.records import CaptureRecord, FeedbackRecord

LOW_CONFIDENCE_FLOOR = 0.05  # a sure prediction still has some chance to be audited


def confidence(record: CaptureRecord) -> float | None:
    """Probability of the predicted class, None without probabilities."""
    probs = record.probabilities
    if not probs:
        return None
    p = probs.get(str(record.prediction))
    return float(p) if p is not None else float(max(probs.values()))


def select_audit_rows(records: Sequence[CaptureRecord], size: int, classifier: bool, seed: int = 0) -> list[int]:
    """Indices of at most ``size`` rows: an equal share per predicted class (unused shares go to the
    larger classes), low-confidence rows favoured within a class."""
    if size <= 0 or not records:
        return []
    rng = np.random.default_rng(seed)
    strata: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        strata.setdefault(str(r.prediction) if classifier else "", []).append(i)
    ordered: dict[str, list[int]] = {}
    for name, idx in strata.items():
        if classifier:
            w = np.array([1.0 - (confidence(records[i]) or 0.0) + LOW_CONFIDENCE_FLOOR for i in idx])
        else:
            w = np.ones(len(idx))
        keys = rng.random(len(idx)) ** (1.0 / w)
        ordered[name] = [idx[j] for j in np.argsort(-keys)]
    chosen: list[int] = []
    remaining = dict(ordered)
    while remaining and len(chosen) < size:
        share = max(1, (size - len(chosen)) // len(remaining))
        for name in sorted(remaining):
            take, rest = remaining[name][:share], remaining[name][share:]
            chosen.extend(take[: size - len(chosen)])
            remaining[name] = rest
        remaining = {k: v for k, v in remaining.items() if v}
    return sorted(chosen)


def audit_files(records: Sequence[CaptureRecord], selected: Sequence[int], feature_names: Sequence[str]) -> tuple[bytes, bytes]:
    """The sample as CSV (one column per feature) and JSON Lines, each row with an empty ``label``."""
    rows = []
    for i in selected:
        r = records[i]
        rows.append(
            {
                "request_id": r.request_id,
                "row": r.row,
                "event_time": r.event_time,
                "prediction": r.prediction,
                "confidence": confidence(r),
                "inputs": {name: r.inputs.get(name) for name in feature_names},
                "probabilities": r.probabilities,
                "label": None,
            }
        )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["request_id", "row", "event_time", "prediction", "confidence", *feature_names, "label"])
    for row in rows:
        writer.writerow(
            [
                row["request_id"],
                row["row"],
                row["event_time"],
                row["prediction"],
                "" if row["confidence"] is None else f"{row['confidence']:.6g}",
            ]
            + ["" if row["inputs"][n] is None else row["inputs"][n] for n in feature_names]
            + [""]
        )
    jsonl = "".join(json.dumps(row, allow_nan=False) + "\n" for row in rows)
    return out.getvalue().encode(), jsonl.encode()


@dataclass(frozen=True)
class AuditAgreement:
    """How often the model agreed with the audited labels of the window's rows (Wilson 95% interval)."""

    labelled_rows: int
    agreeing_rows: int
    low: float | None
    high: float | None

    @property
    def agreement(self) -> float | None:
        return self.agreeing_rows / self.labelled_rows if self.labelled_rows else None

    def html(self) -> str:
        """The report section: agreement on the audited rows and its interval."""
        if not self.labelled_rows:
            return '<p>No audit labels for this window\'s rows yet (send them to /feedback with "source": "audit").</p>'
        return (
            f"<p>The model agreed with {self.agreeing_rows} of {self.labelled_rows} audited rows "
            f"({self.agreement:.1%}, 95% interval {self.low:.1%} to {self.high:.1%}).</p>"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "labelled_rows": self.labelled_rows,
            "agreeing_rows": self.agreeing_rows,
            "agreement": self.agreement,
            "interval_95": None if self.low is None else [self.low, self.high],
        }


def audit_agreement(
    records: Sequence[CaptureRecord], feedback: Mapping[tuple[str, int], FeedbackRecord], audit_source: str
) -> AuditAgreement:
    """Agreement of the served class with the audit labels among ``records`` (classifiers)."""
    pairs = [
        (str(r.prediction), str(feedback[r.key].label)) for r in records if r.key in feedback and feedback[r.key].source == audit_source
    ]
    n = len(pairs)
    k = sum(1 for pred, label in pairs if pred == label)
    if not n:
        return AuditAgreement(0, 0, None, None)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return AuditAgreement(n, k, float(ci.low), float(ci.high))
