"""Logging and metrics shared by the Lambda handlers: Powertools' JSON logs, and EMF metrics.

The service layer only sees a ``MetricHook`` (name, value, extra dimensions); this module writes
it as CloudWatch Embedded Metric Format lines with default dimensions ModelName and ModelVersion.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import utils as logging_utils
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from . import metric_catalogue as mn

_log = logging.getLogger("modelserve.metrics")
METRICS_ERROR_MESSAGE = mn.METRICS_ERROR_MESSAGE  # a CloudWatch Logs metric filter counts these lines


def make_logger(service: str, model_name: str, model_version: str, deployment: str | None = None) -> Logger:
    """``deployment``: the stack name (``ENV_DEPLOYMENT``); a metric filter reads it from every line."""
    logger = Logger(service=service)
    logger.append_keys(model_name=model_name, model_version=model_version)
    if deployment:
        logger.append_keys(deployment=deployment)
    # our library modules log through stdlib logging: give them the same JSON format
    logging_utils.copy_config_to_registered_loggers(source_logger=logger, include={"modelserve", "monitoring"})
    return logger


# CloudWatch's EMF limits (docs: "Specification: Embedded metric format"): values of one metric, and dimensions
MAX_VALUES = 100
MAX_DIMENSIONS = 30
_FIXED_PARTS_KEPT = 256  # serialized directives kept (a line's dimension values and metric names: a few per function)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _json_numbers(values: list[float]) -> str:
    """A list of floats as json.dumps writes it (finite values: their repr), without its per-call setup."""
    if all(map(math.isfinite, values)):
        return "[" + ",".join(map(float.__repr__, values)) + "]"
    return _json(values)


class EmfMetricHook:
    """MetricHook writing CloudWatch Embedded Metric Format: one JSON line per dimension set, per flush.

    The handler flushes once per invocation. Not Powertools' ``Metrics``: its ``add_metric`` and
    ``flush_metrics`` validated, copied and re-serialized the metric set on every call, about a fifth of a
    1-row answer's CPU (docs/performance.md#hot-path); the lines written are the same (metric values as
    lists of floats, units from the catalogue, the model's dimensions, no "service" dimension).
    Whether metrics are on is still Powertools' rule (``POWERTOOLS_METRICS_DISABLED``, ``POWERTOOLS_DEV``).
    """

    def __init__(self, namespace: str, service: str, model_name: str, model_version: str, deployment: str | None = None) -> None:
        """``deployment``: the stack name (``ENV_DEPLOYMENT``), a dimension of every metric when set."""
        self.namespace = namespace
        self.service = service
        self.default_dimensions = {mn.DIM_MODEL_NAME: model_name, mn.DIM_MODEL_VERSION: model_version}
        if deployment:
            self.default_dimensions[mn.DIM_DEPLOYMENT] = deployment
        # no "service" dimension: the alarms, keyed on ModelName + ModelVersion (+ Deployment), would see nothing
        self.enabled = not is_metrics_disabled()
        # the values since the last flush: the totals under the model's dimensions (what alarms and the
        # dashboard read), and each breakdown (e.g. by Reason) under its own dimensions, in its own line
        self._totals: dict[str, list[float]] = {}
        self._breakdowns: dict[tuple[tuple[str, str], ...], dict[str, list[float]]] = {}
        self._fixed: dict[tuple[Any, ...], tuple[str, str, tuple[str, ...]]] = {}  # serialized directive and dimensions, by line
        # shared state: the local gateway runs invocations and capture writers at once
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
        value = float(value)
        full = len(self._append(self._totals, name, value)) >= MAX_VALUES
        if dims:
            key = tuple({**self.default_dimensions, **dims}.items())
            if len(key) > MAX_DIMENSIONS:
                raise ValueError(f"{name}: {len(key)} dimensions, EMF allows {MAX_DIMENSIONS}")
            full = len(self._append(self._breakdowns.setdefault(key, {}), name, value)) >= MAX_VALUES or full
        if full:  # EMF takes at most 100 values of a metric in one line
            self._write()

    @staticmethod
    def _append(metric_set: dict[str, list[float]], name: str, value: float) -> list[float]:
        values = metric_set.get(name)
        if values is None:
            values = metric_set[name] = []
        values.append(value)
        return values

    def flush(self) -> None:
        """Write what was collected since the last flush (nothing when there is nothing); never raises."""
        with self._lock:
            if not (self._totals or self._breakdowns):
                return
            try:
                self._write()
            except Exception:  # noqa: BLE001
                _log.exception(METRICS_ERROR_MESSAGE)
                self._totals, self._breakdowns = {}, {}

    def _write(self) -> None:
        sets = [(tuple(self.default_dimensions.items()), self._totals)] if self._totals else []
        sets += list(self._breakdowns.items())
        timestamp = int(time.time() * 1000)
        lines = [self._line(dims, values, timestamp) for dims, values in sets]
        self._totals, self._breakdowns = {}, {}
        print("\n".join(lines))  # Lambda sends stdout to CloudWatch Logs, which extracts the metrics

    def _line(self, dims: tuple[tuple[str, str], ...], values: dict[str, list[float]], timestamp: int) -> str:
        """One EMF line: the directive and the dimensions, serialized once per dimension set and metric names
        (the same few every invocation), then the values."""
        key = (dims, tuple(values))
        fixed = self._fixed.get(key)
        if fixed is None:
            if len(self._fixed) >= _FIXED_PARTS_KEPT:
                self._fixed.clear()
            directive = {
                "Namespace": self.namespace,
                "Dimensions": [[name for name, _ in dims]],
                "Metrics": [{"Name": name, "Unit": mn.CATALOGUE.unit(name)} for name in values],
            }
            names = tuple(_json(name) + ":" for name in values)
            fixed = self._fixed[key] = (_json({"CloudWatchMetrics": [directive]})[1:-1], _json(dict(dims))[1:-1], names)
        directive_json, dims_json, names = fixed
        members = ",".join(name + _json_numbers(v) for name, v in zip(names, values.values()))
        return f'{{"_aws":{{"Timestamp":{timestamp},{directive_json}}},{dims_json},{members}}}'

    def log_metrics(self, fn: Any) -> Any:
        """Decorator: run the handler, then flush, without letting the flush fail the invocation."""

        @functools.wraps(fn)
        def wrapper(event: Any, context: Any) -> Any:
            try:
                return fn(event, context)
            finally:
                self.flush()

        return wrapper
