"""The shared pieces of version comparison: the documented A/B hash, the compatibility rules, and
the capture record's optional variant."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from modelserve.records import CaptureRecord
from modelserve.schema import BundleManifest, FeatureKind, FeatureSpec, OutputSpec, Task
from modelserve.versions import CHALLENGER, CHAMPION, ab_variant, assignment_bucket, compatibility_problems

CHAMP = BundleManifest(
    model_name="penguins",
    version="aaa",
    features=(FeatureSpec("x", FeatureKind.NUMERIC), FeatureSpec("island", FeatureKind.CATEGORICAL, categories=("A", "B"))),
    outputs=OutputSpec(task=Task.CLASSIFICATION, classes=("Adelie", "Gentoo")),
)


def test_the_bucket_is_the_documented_formula() -> None:
    for key in ("client-1", "ünïcode", ""):
        expected = int(hashlib.sha256(f"v2:{key}".encode()).hexdigest()[:16], 16) % 10_000
        assert assignment_bucket(key, "v2") == expected


def test_shares_are_nested_and_the_extremes_are_exact() -> None:
    keys = [f"c{i}" for i in range(2000)]
    at = {s: {k for k in keys if ab_variant(k, s, "v2") == CHALLENGER} for s in (0.0, 0.1, 0.2, 0.5, 1.0)}
    assert at[0.0] == set() and at[1.0] == set(keys)
    assert at[0.1] <= at[0.2] <= at[0.5]  # raising the share only adds clients
    # another challenger (salt) assigns independently
    other = {k for k in keys if ab_variant(k, 0.5, "v3") == CHALLENGER}
    assert 0.35 < len(other & at[0.5]) / len(at[0.5]) < 0.65


def test_a_retrained_model_with_other_categories_is_compatible() -> None:
    retrained = dataclasses.replace(
        CHAMP,
        version="bbb",
        features=(
            FeatureSpec("x", FeatureKind.NUMERIC, min=0.0),
            FeatureSpec("island", FeatureKind.CATEGORICAL, categories=("A", "B", "C")),
        ),
    )
    assert compatibility_problems(CHAMP, retrained) == []


def test_every_incompatibility_is_named() -> None:
    bad = dataclasses.replace(
        CHAMP,
        model_name="other",
        features=(FeatureSpec("x", FeatureKind.CATEGORICAL, categories=("1",)), FeatureSpec("extra", FeatureKind.BOOLEAN)),
        outputs=OutputSpec(task=Task.CLASSIFICATION, classes=("Adelie", "Chinstrap")),
    )
    problems = compatibility_problems(CHAMP, bad)
    assert problems == [
        "model name 'other' is not the champion's 'penguins'",
        "version 'aaa' is the champion's: deploy a different model, or no challenger",
        "classes ['Adelie', 'Chinstrap'] are not the champion's ['Adelie', 'Gentoo']",
        "features ['island'] of the champion are missing",
        "features ['extra'] are not the champion's",
        "feature 'x' is categorical, the champion's is numeric",
    ]
    regression = dataclasses.replace(CHAMP, version="ccc", outputs=OutputSpec(task=Task.REGRESSION, classes=()))
    assert compatibility_problems(CHAMP, regression) == ["task 'regression' is not the champion's 'classification'"]


def test_records_without_a_variant_read_and_write_as_before() -> None:
    old = {
        "request_id": "r",
        "row": 0,
        "event_time": "2026-11-25T17:00:00.000000Z",
        "model_name": "m",
        "model_version": "v",
        "stage": "prod",
        "inputs": {"x": 1.0},
        "prediction": "a",
        "probabilities": {"a": 1.0},
    }
    record = CaptureRecord.from_dict(old)
    assert record.variant is None
    assert json.loads(record.to_json()) == old  # no "variant" key appears
    tagged = CaptureRecord.from_dict({**old, "variant": CHAMPION})
    assert tagged.variant == CHAMPION and json.loads(tagged.to_json())["variant"] == CHAMPION
