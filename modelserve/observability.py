"""Powertools wiring shared by the Lambda handlers: JSON logs and EMF metrics.

The service layer only sees a ``MetricHook`` (name, value, extra dimensions); this module turns
it into Powertools Metrics with default dimensions ModelName and ModelVersion.
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import utils as logging_utils
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from . import metric_catalogue as mn

# an invocation that only answered a health check has no metrics: that's normal, not a warning
warnings.filterwarnings("ignore", message="No application metrics to publish")

_log = logging.getLogger("modelserve.metrics")
METRICS_ERROR_MESSAGE = mn.METRICS_ERROR_MESSAGE  # a CloudWatch Logs metric filter counts these lines

# the catalogue's unit of each metric, as Powertools names it
_UNITS = {"Count": MetricUnit.Count, "Milliseconds": MetricUnit.Milliseconds, "None": MetricUnit.NoUnit}


def make_logger(service: str, model_name: str, model_version: str, deployment: str | None = None) -> Logger:
    """``deployment``: the stack name (``ENV_DEPLOYMENT``); a metric filter reads it from every line."""
    logger = Logger(service=service)
    logger.append_keys(model_name=model_name, model_version=model_version)
    if deployment:
        logger.append_keys(deployment=deployment)
    # our library modules log through stdlib logging: give them the same JSON format
    logging_utils.copy_config_to_registered_loggers(source_logger=logger, include={"modelserve", "monitoring"})
    return logger


class EmfMetricHook:
    """MetricHook writing CloudWatch Embedded Metric Format through Powertools."""

    def __init__(self, namespace: str, service: str, model_name: str, model_version: str, deployment: str | None = None) -> None:
        """``deployment``: the stack name (``ENV_DEPLOYMENT``), a dimension of every metric when set."""
        self.namespace = namespace
        self.service = service
        self.default_dimensions = {mn.DIM_MODEL_NAME: model_name, mn.DIM_MODEL_VERSION: model_version}
        if deployment:
            self.default_dimensions[mn.DIM_DEPLOYMENT] = deployment
        # service="" (not None): Powertools would otherwise add a "service" dimension (also from
        # POWERTOOLS_SERVICE_NAME) and the alarms, keyed on ModelName + ModelVersion, would see nothing
        self.metrics = Metrics(namespace=namespace, service="")
        self.metrics.set_default_dimensions(**self.default_dimensions)
        # Powertools keeps (and at 100 values prints) metrics even when disabled: don't collect at all
        self.enabled = not is_metrics_disabled()
        # Powertools' metric set is shared state: the local gateway runs invocations and capture writers at once
        self._lock = threading.RLock()

    def __call__(self, name: str, value: float, dims: dict[str, str]) -> None:
        """Never raises: a metrics problem must not fail the request that produced the metric."""
        if not self.enabled:
            return
        try:
            with self._lock:
                self._add(name, value, dims)
        except Exception:  # noqa: BLE001 - logged with a fixed message the MetricsErrors filter counts
            _log.exception(METRICS_ERROR_MESSAGE)

    def _add(self, name: str, value: float, dims: dict[str, str]) -> None:
        unit = _UNITS[mn.CATALOGUE.unit(name)]
        # always the total under the model's dimensions (what alarms and the dashboard read) ...
        self.metrics.add_metric(name=name, unit=unit, value=value)
        if dims:  # ... and the breakdown (e.g. by Reason) in its own EMF blob
            # service="", not Powertools' single_metric(): that one adds a "service" dimension
            # (POWERTOOLS_SERVICE_NAME) that no dashboard query or alarm names
            breakdown = EphemeralMetrics(namespace=self.namespace, service="")
            for k, v in {**self.default_dimensions, **dims}.items():
                breakdown.add_dimension(name=k, value=v)
            breakdown.add_metric(name=name, unit=unit, value=value)
            breakdown.flush_metrics()

    def flush(self) -> None:
        """Write the invocation's EMF blob; never raises (see __call__)."""
        with self._lock:
            try:
                self.metrics.flush_metrics(raise_on_empty_metrics=False)
            except Exception:  # noqa: BLE001
                _log.exception(METRICS_ERROR_MESSAGE)
                self.metrics.clear_metrics()

    def log_metrics(self, fn: Any) -> Any:
        """Decorator: run the handler, then flush, without letting the flush fail the invocation."""

        @functools.wraps(fn)
        def wrapper(event: Any, context: Any) -> Any:
            try:
                return fn(event, context)
            finally:
                self.flush()

        return wrapper
