"""The reference's explanations written at export (devtools/export/explanations.py): the drift report's baseline
of what drives the predictions, computed as the inference function computes an explanation."""

from __future__ import annotations

import numpy as np
import pytest

from devtools.export.explanations import EVALUATION_BUDGET, REFERENCE_EXPLAINED_ROWS, explained_positions
from modelserve.records import RowExplanation
from modelserve.settings import ServingSettings
from serving.wiring import inference_service


def test_the_exported_reference_explains_evenly_spaced_rows_exactly_as_the_api_does(sample_bundle) -> None:
    rows = sample_bundle.reference_rows()
    explained = [i for i, r in enumerate(rows) if "explanation" in r]
    assert len(explained) == REFERENCE_EXPLAINED_ROWS
    assert explained[0] == 0 and explained[-1] > len(rows) * 0.9  # spread over the sample, not its first rows
    service = inference_service(sample_bundle, ServingSettings(), {})
    picked = explained[::20]
    answer = service.predict({"instances": [rows[i]["inputs"] for i in picked]}, explain={"explain": True}).body
    for i, given in zip(picked, answer["explanations"]):
        stored = RowExplanation.from_dict(rows[i]["explanation"])
        assert stored.explained_class == rows[i]["prediction"] == given["class"]
        assert stored.values == pytest.approx(given["values"], abs=1e-9)
        assert stored.base_value == pytest.approx(given["base_value"], abs=1e-9)
        assert stored.base_value + sum(stored.values.values()) == pytest.approx(stored.output, abs=1e-6)


def test_the_reference_sample_carries_the_explained_rows_contributions(sample_bundle) -> None:
    sample = sample_bundle.reference_sample()
    assert sample.contributions is not None
    assert set(sample.contributions) == set(sample_bundle.manifest.feature_names)
    assert all(len(c) == REFERENCE_EXPLAINED_ROWS and np.isfinite(c).all() for c in sample.contributions.values())


@pytest.mark.parametrize(
    "rows, per_row, expected",
    [
        (344, 6_400, REFERENCE_EXPLAINED_ROWS),  # the sample model: 2^6 coalitions x 100 background rows
        (344, 409_600, EVALUATION_BUDGET // 409_600),  # 12 features: the budget decides
        (344, 10 * EVALUATION_BUDGET, 1),  # at least one row
        (40, 6_400, 40),  # a small reference: every row
    ],
)
def test_how_many_reference_rows_are_explained(rows: int, per_row: int, expected: int) -> None:
    positions = explained_positions(rows, per_row)
    assert len(positions) == expected and len(set(positions.tolist())) == expected and positions.max() < rows
