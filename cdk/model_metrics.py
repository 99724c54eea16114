"""The model namespace's series (``settings.metrics_namespace``): what the functions publish, every
name from the metric catalogue (``modelserve/metric_catalogue.py``). The alarms ask it for the metric
an ``AlarmSpec`` of source "model" watches; the dashboard for its graphs' series."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch

from cdk.alarms import AlarmSpec, Source
from modelserve import metric_catalogue as mc
from modelserve.schema import BundleManifest
from modelserve.settings import Settings


class ModelMetrics:
    """The alarm source "model" (see ``cdk.alerting.MetricSource``) and the dashboard's series."""

    alarm_sources: tuple[Source, ...] = ("model",)
    metrics_error_log = None  # the functions' constructs name their log groups

    def __init__(self, settings: Settings, manifest: BundleManifest, deployment: str) -> None:
        self.settings, self.manifest, self.deployment = settings, manifest, deployment

    def metric(
        self,
        name: str,
        statistic: str,
        period_s: int,
        extra: dict[str, str] | None = None,
        label: str | None = None,
        version: str | None = None,
    ) -> cloudwatch.Metric:
        """A catalogued series; ``version``: another version's (a challenger's), else this bundle's."""
        if name not in mc.CATALOGUE:  # a synth error, not an empty graph
            raise ValueError(f"metric {name!r} is not in the metric catalogue (modelserve/metric_catalogue.py)")
        return cloudwatch.Metric(
            namespace=self.settings.metrics_namespace,
            metric_name=name,
            dimensions_map={
                mc.DIM_MODEL_NAME: self.manifest.model_name,
                mc.DIM_MODEL_VERSION: version or self.manifest.version,
                mc.DIM_DEPLOYMENT: self.deployment,
                **(extra or {}),
            },
            statistic=statistic,
            period=cdk.Duration.seconds(period_s),
            label=label,
        )

    def alarm_metric(self, spec: AlarmSpec) -> cloudwatch.IMetric:
        """The metric (or metric math) an alarm spec on the model namespace watches."""
        if len(spec.windows) > 1:
            return self._windows_metric(spec)
        return self._window_metric(spec, spec.window_dimensions()[0][1])

    def _windows_metric(self, spec: AlarmSpec) -> cloudwatch.IMetric:
        """The larger of the windows' values (each gated by its own rows): one alarm for either window."""
        series = {f"w{i}": self._window_metric(spec, dims, str(i)) for i, (_, dims) in enumerate(spec.window_dimensions())}
        return cloudwatch.MathExpression(
            expression=f"MAX([{', '.join(series)}])",
            using_metrics=series,
            label=f"{spec.metric_name} (larger of the {'/'.join(spec.windows)} windows)",
            period=cdk.Duration.seconds(spec.period_s),
        )

    def _window_metric(self, spec: AlarmSpec, dimensions: dict[str, str], n: str = "") -> cloudwatch.IMetric:
        """One series (one window's), with the spec's gates; ``n`` keeps the metric math ids of several
        windows apart."""
        period = cdk.Duration.seconds(spec.period_s)
        metric = cloudwatch.Metric(
            namespace=spec.namespace,
            metric_name=spec.metric_name,
            dimensions_map=dimensions,
            statistic=spec.statistic,
            period=period,
        )
        if spec.repeat_last_value:
            return cloudwatch.MathExpression(
                expression=f"FILL(m{n}, REPEAT)",
                using_metrics={f"m{n}": metric},
                label=f"{spec.metric_name} (last published value)",
                period=period,
            )
        if not spec.min_window_rows:
            return metric
        rows = cloudwatch.Metric(
            namespace=spec.namespace,
            metric_name=mc.WINDOW_ROWS,
            dimensions_map=dimensions,
            statistic="Minimum",
            period=period,
        )
        # the same gate as alarms.evaluate: windows under the minimum count as 0
        return cloudwatch.MathExpression(
            expression=f"IF(rows{n} >= {spec.min_window_rows}, m{n}, 0)",
            using_metrics={f"m{n}": metric, f"rows{n}": rows},
            label=f"{spec.metric_name} (windows of {spec.min_window_rows}+ rows)",
            period=period,
        )
