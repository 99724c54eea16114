"""The drift check's read of its window on the dashboard: the rows read, the rows the window holds (estimated
when the read was cut short), the labelled rows, and whether the read was partial."""

from __future__ import annotations

from cdk.dashboard import WINDOW_READ_GRAPH
from modelserve import metric_catalogue as mc
from tests.infra.conftest import Synth
from tests.infra.test_dashboard import graphs, series


def test_partial_window_and_the_estimated_rows_are_graphed_next_to_the_rows_read(default: Synth) -> None:
    ns, v = default.settings.metrics_namespace, default.manifest.version
    drawn = series(graphs(default)[WINDOW_READ_GRAPH], ns)
    assert {(n, v) for n in (mc.WINDOW_ROWS, mc.WINDOW_ROWS_ESTIMATED, mc.LABELED_ROWS, mc.PARTIAL_WINDOW)} <= drawn
