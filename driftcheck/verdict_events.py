"""Each drift check's verdict as an EventBridge event on the account's default bus.

A retraining pipeline or a ticketing rule subscribes with a rule instead of polling reports:

    {"source": ["modelserve.drift-check"], "detail-type": ["Drift check completed"],
     "detail": {"model_name": ["penguins"], "dataset_drift": [true]}}

Detail: ``deployment`` (the stack), ``model_name``, ``model_version``, ``window`` (start, end, rows, and
``label``: "24h" or "1h", one event per window checked), ``root_cause`` (the report's first finding,
and how many more; null when nothing fired),
``dataset_drift`` (null when the window was empty), ``verdicts`` (check name -> bool), ``findings``
(one line per flagged finding, the most telling first), ``report_json`` / ``report_html`` (S3 URIs).
Publishing never fails the check: a failure is logged and counted (``VerdictEventErrors``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

SOURCE = "modelserve.drift-check"
DETAIL_TYPE = "Drift check completed"
MAX_FINDINGS = 20  # an event's entry is at most 256 KB; findings beyond these are in the report


@dataclass(frozen=True)
class VerdictEvent:
    deployment: str
    model_name: str
    model_version: str
    window_start: str
    window_end: str
    window_rows: int
    dataset_drift: bool | None
    verdicts: dict[str, bool] = field(default_factory=dict)
    findings: tuple[str, ...] = ()
    report_json: str = ""
    report_html: str = ""
    window_label: str = ""
    root_cause: str | None = None

    def detail(self) -> dict[str, Any]:
        d = asdict(self)
        d["window"] = {
            "start": d.pop("window_start"),
            "end": d.pop("window_end"),
            "rows": d.pop("window_rows"),
            "label": d.pop("window_label"),
        }
        d["findings"] = list(self.findings[:MAX_FINDINGS])
        return d

    def entry(self, bus: str = "default") -> dict[str, Any]:
        return {
            "Source": SOURCE,
            "DetailType": DETAIL_TYPE,
            "Detail": json.dumps(self.detail(), allow_nan=False),
            "EventBusName": bus,
            "Resources": [],
        }


def publish(events_client: Any, event: VerdictEvent, bus: str = "default") -> bool:
    """Put the event; False (logged) when EventBridge refused it or could not be reached."""
    try:
        out = events_client.put_events(Entries=[event.entry(bus)])
        if out.get("FailedEntryCount"):
            failed = out["Entries"][0]
            logger.error("verdict event refused: %s %s", failed.get("ErrorCode"), failed.get("ErrorMessage"))
            return False
        return True
    except Exception as exc:  # the check's metrics and reports are already out; the event is extra
        logger.error("verdict event not published: %s", exc)
        return False
