"""``capture_explanations``: explanations kept with the capture, through the real inference handler against
S3 in moto (and the logs sink); the rows that did not ask explained after the answer for a sampled share."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from driftcheck.capture_formats import decode_capture_object
from modelserve import metric_catalogue as mn
from modelserve.bundle import ModelBundle, write_bundle
from modelserve.records import CaptureRecord, RowExplanation, model_capture_prefix, utc_iso
from modelserve.settings import ServingSettings
from serving.capture_logs import LogsCaptureSink, capture_line
from serving.wiring import inference_service
from tests.functional.test_capture import BUCKET, SALT, STREAM, make_bucket, metric_points, objects, post, rows
from tests.support import read_jsonl_gz, response_json

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ON = {"capture_bucket": BUCKET, "capture_explanations": "true"}


def captured(s3: Any) -> list[dict[str, Any]]:
    return [r for data in objects(s3, "captures/").values() for r in read_jsonl_gz(data)]


@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_explained_rows_keep_their_answered_explanation_in_the_capture_record(s3, load_inference, sample_bundle, lambda_context) -> None:
    make_bucket(s3)
    mod = load_inference(**ON)
    sent = rows(sample_bundle, 6)
    answer = response_json(post(mod, lambda_context, {"instances": sent, "explain": True}))
    records = sorted(captured(s3), key=lambda r: r["row"])
    assert len(records) == len(sent)
    for record, given in zip(records, answer["explanations"]):
        explanation = CaptureRecord.from_dict(record).explanation  # the drift check's reader
        assert explanation is not None and not explanation.sampled
        assert explanation.values == given["values"]
        assert (explanation.output, explanation.base_value, explanation.explained_class) == (
            given["output"],
            given["base_value"],
            given["class"],
        )
        assert explanation.base_value + sum(explanation.values.values()) == pytest.approx(explanation.output, abs=1e-6)


@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_captures_hold_no_explanation_unless_the_setting_is_on(s3, load_inference, sample_bundle, lambda_context) -> None:
    make_bucket(s3)
    mod = load_inference(capture_bucket=BUCKET)
    assert post(mod, lambda_context, {"instances": rows(sample_bundle, 3), "explain": True})["statusCode"] == 200
    records = captured(s3)
    assert len(records) == 3 and all("explanation" not in r for r in records)


def test_with_a_fraction_of_one_every_captured_row_is_explained_as_if_it_had_asked(
    s3, load_inference, sample_bundle, lambda_context, capsys
) -> None:
    make_bucket(s3)
    mod = load_inference(**ON, explain_capture_fraction="1.0")
    sent = rows(sample_bundle, 5)
    capsys.readouterr()
    answer = response_json(post(mod, lambda_context, {"instances": sent}, request_id="not-asked"))
    assert "explanations" not in answer  # the answer is the plain one
    records = sorted(captured(s3), key=lambda r: r["row"])
    out = capsys.readouterr().out
    asked = response_json(post(mod, lambda_context, {"instances": sent, "explain": True}, request_id="asked"))
    for record, given in zip(records, asked["explanations"]):
        explanation = RowExplanation.from_dict(record["explanation"])
        assert explanation.sampled and explanation.explained_class == record["prediction"] == given["class"]
        assert explanation.values == pytest.approx(given["values"], abs=1e-12)
        assert explanation.output == pytest.approx(record["probabilities"][given["class"]], abs=1e-5)
    assert [v for v, _, _ in metric_points(out, mn.ROWS_EXPLAINED)] == [5.0]
    assert metric_points(out, mn.EXPLAIN_CAPTURE_ERRORS) == []


@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_a_sampled_share_of_the_rows_that_did_not_ask_is_explained(s3, load_inference, sample_bundle, lambda_context) -> None:
    make_bucket(s3)
    mod = load_inference(**ON, explain_capture_fraction="0.3")
    for i in range(5):
        assert post(mod, lambda_context, {"instances": rows(sample_bundle, 40)}, request_id=f"share-{i}")["statusCode"] == 200
    records = captured(s3)
    explained = [r for r in records if "explanation" in r]
    assert len(records) == 200
    assert 25 <= len(explained) <= 95  # binomial(200, 0.3): mean 60, sd 6.5
    assert all(r["explanation"]["sampled"] for r in explained)


def test_sampled_explanations_are_computed_in_the_capture_work_not_before_the_answer(s3, sample_bundle) -> None:
    make_bucket(s3)
    calls: list[tuple[str, float]] = []
    settings = ServingSettings(capture_explanations=True, explain_capture_fraction=1.0)
    service = inference_service(sample_bundle, settings, {"MS_CAPTURE_BUCKET": BUCKET}, metric=lambda n, v, d: calls.append((n, v)))
    queued: list[Any] = []

    class Later:
        def submit(self, work: Any) -> bool:
            queued.append(work)
            return True

    service.capturer.executor = Later()
    answer = service.predict({"instances": rows(sample_bundle, 3)}, "later")
    assert "explanations" not in answer.body
    assert not [c for c in calls if c[0] == mn.ROWS_EXPLAINED] and not objects(s3, "captures/")
    assert all(work() for work in queued)  # the post-response work: explain, then write
    assert [v for n, v in calls if n == mn.ROWS_EXPLAINED] == [3]
    assert all(r["explanation"]["sampled"] for r in captured(s3))


@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_an_explanation_that_fails_never_fails_the_prediction_or_its_capture_and_is_counted(
    s3, load_inference, sample_bundle, lambda_context, capsys, tmp_path
) -> None:
    make_bucket(s3)
    model = sample_bundle.model_path.read_bytes()
    without_reference = write_bundle(tmp_path / "no-reference", model, sample_bundle.manifest, [])  # nothing to explain against
    mod = load_inference(ModelBundle.load(without_reference.root), **ON, explain_capture_fraction="1.0")
    capsys.readouterr()
    resp = post(mod, lambda_context, {"instances": rows(sample_bundle, 4)})
    assert resp["statusCode"] == 200 and len(response_json(resp)["predictions"]) == 4
    records = captured(s3)
    assert len(records) == 4 and all("explanation" not in r for r in records)
    out = capsys.readouterr().out
    assert [v for v, _, _ in metric_points(out, mn.EXPLAIN_CAPTURE_ERRORS)] == [1.0]
    assert metric_points(out, mn.CAPTURE_ERRORS) == []


def test_redacted_and_hashed_features_leave_no_contribution_in_the_capture(s3, load_inference, sample_bundle, lambda_context) -> None:
    make_bucket(s3)
    mod = load_inference(**ON, redact_features='["island"]', hash_features='["sex"]', capture_hash_salt=SALT)
    answer = response_json(post(mod, lambda_context, {"instances": rows(sample_bundle, 3), "explain": True}))
    assert all({"island", "sex"} <= set(e["values"]) for e in answer["explanations"])  # the answer is the caller's
    for record in captured(s3):
        values = record["explanation"]["values"]
        assert not {"island", "sex"} & set(values)
        assert set(values) == set(sample_bundle.manifest.feature_names) - {"island", "sex"}


def test_logs_sink_lines_carry_the_explanation(s3, load_inference, sample_bundle, lambda_context, capsys) -> None:
    make_bucket(s3)
    mod = load_inference(**ON, capture_sink="logs", explain_capture_fraction="1.0")
    capsys.readouterr()
    assert post(mod, lambda_context, {"instances": rows(sample_bundle, 3)}, kind="http_v2")["statusCode"] == 200
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"record_type":"captures"')]
    assert len(lines) == 3
    assert all(CaptureRecord.from_dict(line).explanation is not None for line in lines)


def test_firehose_records_carry_the_explanation_and_the_drift_checks_reader_reads_it(
    s3, load_inference, sample_bundle, lambda_context
) -> None:
    make_bucket(s3)
    m = sample_bundle.manifest
    boto3.client("firehose", region_name="us-east-1").create_delivery_stream(
        DeliveryStreamName=STREAM,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose-captures",
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "Prefix": model_capture_prefix(m.model_name, m.version),
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
        },
    )
    mod = load_inference(**ON, capture_sink="firehose", firehose_stream=STREAM)
    answer = response_json(post(mod, lambda_context, {"instances": rows(sample_bundle, 4), "explain": True}, kind="http_v2"))
    records = sorted((r for data in objects(s3).values() for r in decode_capture_object(data)), key=lambda r: r["row"])
    assert [CaptureRecord.from_dict(r).explanation.values for r in records] == [e["values"] for e in answer["explanations"]]


def test_a_log_line_its_explanation_would_push_over_the_limit_is_written_without_it(sample_bundle) -> None:
    m = sample_bundle.manifest
    values = {f"feature_{i:04d}": 0.123456789 for i in range(3000)}  # a very wide model's contributions
    record = CaptureRecord("r", 0, utc_iso(T0), m.model_name, m.version, "prod", {"bill_length_mm": 39.1}, "Adelie")
    wide = replace(record, explanation=RowExplanation(0.9, 0.3, values, "Adelie"))
    assert len(capture_line(wide).encode()) > 64 * 1024 > len(capture_line(record).encode())
    dropped: list[int] = []
    sink = LogsCaptureSink(on_explanation_dropped=dropped.append)
    lines, too_large = sink.lines([wide, record])
    assert too_large == 0 and dropped == [1]
    assert [json.loads(line).get("explanation") for line in lines] == [None, None]
    assert all(len(line.encode()) < sink.max_line_bytes for line in lines)


@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_in_shadow_mode_both_versions_captures_hold_their_own_models_explanations(
    s3, load_inference, sample_bundle, challenger_bundle, lambda_context
) -> None:
    make_bucket(s3)
    challenger = {"challenger_mode": "shadow", "MS_CHALLENGER_BUNDLE_PATH": str(challenger_bundle.root)}
    mod = load_inference(**ON, explain_capture_fraction="1.0", **challenger)
    sent = rows(sample_bundle, 4)
    assert post(mod, lambda_context, {"instances": sent}, request_id="shadowed")["statusCode"] == 200
    by_version: dict[str, list[dict[str, Any]]] = {}
    for record in captured(s3):
        by_version.setdefault(record["model_version"], []).append(record)
    assert sorted(by_version) == sorted([sample_bundle.manifest.version, challenger_bundle.manifest.version])
    for bundle in (sample_bundle, challenger_bundle):
        records = sorted(by_version[bundle.manifest.version], key=lambda r: r["row"])
        alone = inference_service(bundle, ServingSettings(), {}).predict({"instances": sent}, explain={"explain": True}).body
        for record, given in zip(records, alone["explanations"], strict=True):
            assert record["explanation"]["values"] == pytest.approx(given["values"], abs=1e-12)
        assert all(r["explanation"]["sampled"] and r["explanation"]["class"] == r["prediction"] for r in records)
