"""The drift check of every live version (docs/versions.md): the champion's, the challenger's when the
stack deployed one, and the comparison of the two on the same window.

The challenger's check is a second ``DriftService`` on its own captures (shadow: its predictions on
every captured request; A/B: the traffic it answered) against its own reference sample, with its
own report keys and its own ModelVersion on every metric. Each version's window is read once: the
comparison reuses what the two checks read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from modelserve import metric_catalogue as mn
from modelserve.bundle import ASSET_ROOT, ModelBundle
from modelserve.schema import MANIFEST_FILE, BundleManifest
from modelserve.settings import ENV_CHALLENGER_BUNDLE_PATH, ENV_CHALLENGER_VERSION, DriftSettings
from monitoring.comparison import CHALLENGER, CHAMPION, challenger_only_drift

from .athena_window import AthenaQueries
from .comparison_service import ComparisonService
from .drift_service import DriftService
from .window_reader import WindowRead

logger = logging.getLogger(__name__)


def reference_bundle(folder: Path) -> ModelBundle:
    """A bundle's manifest and reference sample: all a drift check needs (the drift asset carries the
    challenger without its ONNX graph)."""
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise FileNotFoundError(f"no {MANIFEST_FILE} in bundle folder {folder}")
    return ModelBundle(root=folder, manifest=BundleManifest.from_dict(json.loads(manifest_path.read_text())))


def challenger_drift_service(
    settings: DriftSettings,
    environ: Mapping[str, str],
    s3: Any,
    cloudwatch: Any,
    bucket: str,
    deployment: str | None = None,
    athena: AthenaQueries | None = None,
    captures_table: str | None = None,
) -> DriftService | None:
    """The challenger's drift check, when the stack deployed a challenger and its bundle
    (``MS_CHALLENGER_BUNDLE_PATH``, relative to the asset root unless absolute); else None. ``athena``,
    ``captures_table``: the champion's (drift_athena=auto|on): the challenger's windows are read by the same
    rule, its queries naming its own version's partitions."""
    folder = environ.get(ENV_CHALLENGER_BUNDLE_PATH)
    if settings.challenger_mode == "off" or not folder:
        return None
    bundle = reference_bundle(Path(environ.get("LAMBDA_TASK_ROOT") or str(ASSET_ROOT), folder))
    expected = environ.get(ENV_CHALLENGER_VERSION)
    if expected and bundle.manifest.version != expected:
        raise ValueError(f"the challenger bundle in {folder} is version {bundle.manifest.version}, the stack deployed {expected}")
    return DriftService(
        bundle, settings, s3, cloudwatch, bucket, deployment=deployment, challenger=True, athena=athena, captures_table=captures_table
    )


@dataclass
class LiveVersionChecks:
    """One drift-check run: each live version's drift report, then their comparison."""

    champion: DriftService
    challenger: DriftService | None = None
    comparison: ComparisonService | None = None

    def run(
        self, event: dict[str, Any] | None, remaining_s: Callable[[], float] | None = None, now: datetime | None = None
    ) -> dict[str, Any]:
        """The champion's summary, with ``challenger`` (its check) and ``comparison`` when they ran.
        ``remaining_s``: seconds the window reads may still take; each read gets its share of them."""
        bucket = self.champion.bucket

        def budget(reads_left: int) -> float | None:
            return None if remaining_s is None else max(5.0, remaining_s()) / reads_left

        reads = 1 + (self.challenger is not None or self.comparison is not None)
        run = self.champion.run(event, now, read_budget_s=budget(reads))
        summary = run.summary(bucket)
        windows: dict[str, WindowRead] = {CHAMPION: run.window}
        if self.challenger is not None:
            theirs = self.challenger.run(event, now, read_budget_s=budget(1))
            windows[CHALLENGER] = theirs.window
            summary["challenger"] = {"model_version": self.challenger.manifest.version, **theirs.summary(bucket)}
            only_theirs = challenger_only_drift(run.metrics, theirs.metrics)
            if only_theirs is not None:
                self.challenger.publish([(mn.CHALLENGER_DRIFT, only_theirs, None)], theirs.end)
            summary["challenger"]["challenger_only_drift"] = None if only_theirs is None else bool(only_theirs)
        if self.comparison is not None:
            summary["comparison"] = self.comparison.run(event, now, read_budget_s=budget(1), windows=windows).summary(bucket)
        return summary
