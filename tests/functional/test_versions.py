"""Champion and challenger in one function (docs/versions.md): the real inference handler in-process,
both real exported bundles, captures in S3 on moto.

In-process there is no Extensions API, so capture_mode auto writes before the answer; the
post-response path itself is covered by test_post_response_capture.py and, for the shadow, by
``test_shadow_scoring_runs_after_the_answer`` under the Lambda emulator.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from scipy import stats

from modelserve.bundle import ModelBundle
from modelserve.records import decode_jsonl, model_capture_prefix
from modelserve.versions import CHALLENGER, CHAMPION, ab_variant
from serving.model import ModelRunner
from serving.validation import Validator
from tests.support import event, header, response_json

# each variant's captures read back as the s3 sink's objects
pytestmark = pytest.mark.capture_sink("s3")

BUCKET = "versions-test-captures"


def reference_inputs(bundle: ModelBundle, n: int) -> list[dict[str, Any]]:
    ref = bundle.reference_rows()
    return [dict(ref[i % len(ref)]["inputs"]) for i in range(n)]


def captures(s3: Any, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """Stored capture rows by request id, each request's rows in row order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for o in page.get("Contents", []):
            for r in decode_jsonl(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()):
                out.setdefault(r["request_id"], []).append(r)
    return {k: sorted(v, key=lambda r: r["row"]) for k, v in out.items()}


def predict(mod: Any, context: Any, rows: list[dict[str, Any]], request_id: str, client_id: str | None = None) -> dict[str, Any]:
    headers = {"x-client-id": client_id} if client_id else None
    resp = mod.handler(event("rest_v1", "POST", "/predict", {"instances": rows}, request_id=request_id, headers=headers), context)
    assert resp["statusCode"] == 200, resp
    body = response_json(resp)
    assert header(resp, "x-model-version") == body["model_version"]
    return body


def test_shadow_answers_are_the_champions_and_both_variants_are_captured(
    s3, load_inference, sample_bundle, challenger_bundle, lambda_context
) -> None:
    s3.create_bucket(Bucket=BUCKET)
    batches = {f"req-{i}": reference_inputs(sample_bundle, 40)[i : i + 3] for i in range(12)}
    alone = load_inference(capture_bucket=BUCKET)
    champion_alone = {rid: predict(alone, lambda_context, rows, rid) for rid, rows in batches.items()}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": o["Key"]} for o in page.get("Contents", [])]})

    shadow = load_inference(capture_bucket=BUCKET, challenger_mode="shadow", MS_CHALLENGER_BUNDLE_PATH=str(challenger_bundle.root))
    for rid, rows in batches.items():
        body = predict(shadow, lambda_context, rows, rid, client_id="any-client")
        assert body.pop("variant") == CHAMPION
        assert body == champion_alone[rid]  # the same answer, to the last probability

    champ, chal = sample_bundle.manifest, challenger_bundle.manifest
    champion_rows = captures(s3, model_capture_prefix(champ.model_name, champ.version))
    challenger_rows = captures(s3, model_capture_prefix(chal.model_name, chal.version))
    assert sorted(champion_rows) == sorted(challenger_rows) == sorted(batches)
    # the challenger's captured answers are what the challenger alone says on those rows
    runner = ModelRunner.from_path(chal, challenger_bundle.model_path)
    validator = Validator(chal, 1000)
    disagreements = 0
    for rid, rows in batches.items():
        expected = runner.predict(validator.validate({"instances": rows}))
        assert [r["variant"] for r in champion_rows[rid]] == [CHAMPION] * len(rows)
        assert [r["variant"] for r in challenger_rows[rid]] == [CHALLENGER] * len(rows)
        assert {r["model_version"] for r in challenger_rows[rid]} == {chal.version}
        assert [r["prediction"] for r in challenger_rows[rid]] == expected.labels.tolist()
        assert [r["inputs"] for r in challenger_rows[rid]] == [r["inputs"] for r in champion_rows[rid]]
        assert [r["prediction"] for r in champion_rows[rid]] == champion_alone[rid]["predictions"]
        disagreements += sum(a["probabilities"] != b["probabilities"] for a, b in zip(champion_rows[rid], challenger_rows[rid]))
    assert disagreements > 0  # two different models: the test would see a mixed-up capture


def test_ab_is_sticky_per_client_and_the_share_is_within_binomial_bounds(
    s3, load_inference, sample_bundle, challenger_bundle, lambda_context
) -> None:
    s3.create_bucket(Bucket=BUCKET)
    share = 0.3
    mod = load_inference(
        capture_bucket=BUCKET, challenger_mode="ab", ab_share=str(share), MS_CHALLENGER_BUNDLE_PATH=str(challenger_bundle.root)
    )
    versions = {CHAMPION: sample_bundle.manifest.version, CHALLENGER: challenger_bundle.manifest.version}
    row = reference_inputs(sample_bundle, 1)
    clients = [f"client-{i}" for i in range(400)]
    seen: dict[str, set[str]] = {}
    answered_by: dict[str, str] = {}
    for n in range(3):  # every client three times
        for c in clients:
            rid = f"{c}-{n}"
            body = predict(mod, lambda_context, row, rid, client_id=c)
            assert body["model_version"] == versions[body["variant"]]
            seen.setdefault(c, set()).add(body["variant"])
            answered_by[rid] = body["variant"]
    assert all(len(v) == 1 for v in seen.values())  # sticky
    on_challenger = sum(v == {CHALLENGER} for v in seen.values())
    assert stats.binomtest(on_challenger, len(clients), share).pvalue > 1e-3
    # the documented hash decides, and nothing else
    assert all(seen[c] == {ab_variant(c, share, versions[CHALLENGER])} for c in clients)

    # without a client id, each request is assigned by its request id
    anonymous = {f"anon-{i}": predict(mod, lambda_context, row, f"anon-{i}")["variant"] for i in range(300)}
    assert all(v == ab_variant(rid, share, versions[CHALLENGER]) for rid, v in anonymous.items())
    assert stats.binomtest(Counter(anonymous.values())[CHALLENGER], len(anonymous), share).pvalue > 1e-3

    # each answer's capture is under the version that answered, tagged with its variant
    m = sample_bundle.manifest
    for variant, version in versions.items():
        stored = captures(s3, model_capture_prefix(m.model_name, version))
        expected = {rid for rid, v in {**answered_by, **anonymous}.items() if v == variant}
        assert set(stored) == expected
        assert {r["variant"] for rows in stored.values() for r in rows} == {variant}


def test_health_names_the_challenger(load_inference, challenger_bundle, lambda_context) -> None:
    mod = load_inference(challenger_mode="ab", ab_share="0.5", MS_CHALLENGER_BUNDLE_PATH=str(challenger_bundle.root))
    resp = mod.handler(event("rest_v1", "GET", "/health"), lambda_context)
    body = json.loads(resp["body"])
    assert body["challenger"] == {"model_version": challenger_bundle.manifest.version, "mode": "ab", "ab_share": 0.5}


def test_a_challenger_of_another_model_is_refused_at_init(load_inference, sample_bundle, tmp_path) -> None:
    import shutil

    other = tmp_path / "other"
    shutil.copytree(sample_bundle.root, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["features"] = [f for f in manifest["features"] if f["name"] != "sex"]
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"features \['sex'\] of the champion are missing"):
        load_inference(challenger_mode="shadow", MS_CHALLENGER_BUNDLE_PATH=str(other))


def test_shadow_scoring_runs_after_the_answer(moto_url, sample_bundle, challenger_bundle, tmp_path) -> None:
    """Under the real Lambda runtime client with the capture extension: the champion's answer is posted
    before either capture is written, and the challenger's capture (scored in the same post-response
    work, after the champion's write) is stored before the invocation ends."""
    from tests.functional.test_post_response_capture import DELAY_S, answers, client, function_env, run, stored_records
    from tests.lambda_emulator import DelayProxy

    bucket = "shadow-after-the-answer"
    client(moto_url, "s3").create_bucket(Bucket=bucket)
    proxy = DelayProxy(moto_url, DELAY_S)
    try:
        env = function_env(sample_bundle, proxy, bucket, challenger_mode="shadow", MS_CHALLENGER_BUNDLE_PATH=str(challenger_bundle.root))
        _, invocations, sent = run(sample_bundle, env, tmp_path / "log.txt", n=6, rows=2)
    finally:
        proxy.close()
    got = answers(invocations)
    assert {b["variant"] for b in got.values()} == {CHAMPION}
    assert {b["model_version"] for b in got.values()} == {sample_bundle.manifest.version}
    champ, chal = sample_bundle.manifest, challenger_bundle.manifest
    for inv in invocations:
        rid = json.loads(inv.payload["body"])["request_id"]
        first = next(c for c in proxy.writes() if champ.version in c.path and c.path.endswith(f"-{rid}.jsonl.gz"))
        second = next(c for c in proxy.writes() if chal.version in c.path and c.path.endswith(f"-{rid}.jsonl.gz"))
        assert inv.responded_at < first.received_at  # nothing of the capture work before the answer
        assert first.answered_at <= second.received_at < second.answered_at < inv.ended_at
    for version in (champ.version, chal.version):
        stored = stored_records(moto_url, bucket, model_capture_prefix(champ.model_name, version))
        assert sorted(stored) == sorted(sent)
