"""``python -m devtools verify --stack <name>``: prove a fresh deployment works, end to end.

Run right after ``npx cdk deploy``. Reads the stack's outputs, then, each step a row of the table:

1. ``GET /health`` answers 200 with the deployed model version (with the API key when there is one);
2. ``POST /predict`` with a row built from ``GET /model`` (the served schema) answers one prediction;
3. ``POST /feedback`` for that prediction is accepted (202);
4. that prediction's capture reaches the capture bucket: at once with ``capture_sink=s3``; with the default
   ``logs`` sink (and ``firehose``) after Firehose's buffer, up to 300 s in AWS, so the step waits up to
   ``--capture-wait`` seconds (default 360; 0: not waited for, SKIP);
5. the drift-check function runs once and its JSON report is in the capture bucket;
6. the alarm topic (or an existing topic the pages also notify) has a confirmed subscriber: SNS accepts a
   publish to a topic no one reads, and an e-mail subscription stays ``PendingConfirmation`` until its link
   is clicked;
7. one alarm is set to ALARM with ``SetAlarmState``; the alarm history must show its SNS action
   succeeded (what proves the topic policy lets CloudWatch publish); the alarm is then set back to OK.

Exit status 0 when no step failed. Steps that the endpoint cannot prove (moto has no
``DescribeAlarmHistory``) are reported as ``SKIP`` with the reason, never as passed.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
# the logs sink's delivery in AWS: seconds to CloudWatch Logs, then Firehose's buffer (300 s), then the PUT
CAPTURE_WAIT_S = 360.0
CAPTURE_POLL_S = 10.0
CAPTURE_READS_PER_POLL = 50
VERIFY_REASON = "modelserve verify: checking that this alarm's notification is delivered"


@dataclass
class Step:
    name: str
    result: str
    detail: str


@dataclass
class Verification:
    steps: list[Step] = field(default_factory=list)

    def add(self, name: str, result: str, detail: str) -> Step:
        step = Step(name, result, detail)
        self.steps.append(step)
        return step

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.result != FAIL for s in self.steps)

    def table(self) -> str:
        width = max(len(s.name) for s in self.steps)
        lines = [f"{'step'.ljust(width)}  result  detail", f"{'-' * width}  ------  ------"]
        lines += [f"{s.name.ljust(width)}  {s.result.ljust(6)}  {s.detail}" for s in self.steps]
        lines.append(
            f"\n{'PASSED' if self.ok else 'FAILED'}: {sum(s.result == PASS for s in self.steps)} passed, "
            f"{sum(s.result == FAIL for s in self.steps)} failed, {sum(s.result == SKIP for s in self.steps)} skipped"
        )
        return "\n".join(lines)


def http_json(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ssl.create_default_context()))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw or b"null")
        except ValueError:
            return err.code, raw.decode(errors="replace")[:300]


def example_row(model: dict[str, Any]) -> dict[str, Any]:
    """A valid row from the served schema: mid-range numbers, a training category, false booleans."""
    row: dict[str, Any] = {}
    for f in model["features"]:
        if f["kind"] == "categorical":
            row[f["name"]] = (f.get("categories") or [None])[0]
        elif f["kind"] == "boolean":
            row[f["name"]] = False
        else:
            lo, hi = f.get("min"), f.get("max")
            row[f["name"]] = (lo + hi) / 2 if lo is not None and hi is not None else 0.0
    return row


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def check_api(v: Verification, outputs: dict[str, str], api_key: str | None) -> dict[str, Any] | None:
    """The API steps; the prediction's answer when it was one (the capture step looks for its request)."""
    url = outputs["ApiUrl"].rstrip("/")
    headers = {"x-api-key": api_key} if api_key else {}
    expected = outputs.get("ModelVersion")
    status, health = http_json("GET", f"{url}/health", headers=headers)
    good = (
        status == 200
        and isinstance(health, dict)
        and health.get("status") == "ok"
        and (not expected or health.get("model_version") == expected)
    )
    v.add("GET /health", PASS if good else FAIL, f"{status} {json.dumps(health)[:160]}")
    status, model = http_json("GET", f"{url}/model", headers=headers)
    if status != 200 or not isinstance(model, dict) or "features" not in model:
        v.add("GET /model", FAIL, f"{status} {json.dumps(model)[:160]}")
        return None
    status, answer = http_json("POST", f"{url}/predict", {"instances": [example_row(model)]}, headers)
    good = status == 200 and isinstance(answer, dict) and len(answer.get("predictions") or []) == 1
    v.add("POST /predict", PASS if good else FAIL, f"{status} {json.dumps(answer)[:160]}")
    if not good:
        return None
    label = answer["predictions"][0]
    status, fb = http_json("POST", f"{url}/feedback", {"request_id": answer["request_id"], "row": 0, "label": label}, headers)
    v.add("POST /feedback", PASS if status == 202 else FAIL, f"{status} {json.dumps(fb)[:160]}")
    return dict(answer)


def find_capture(s3: Any, bucket: str, answer: dict[str, Any], asked_at: datetime, read: set[str]) -> str | None:
    """The key of the object holding ``answer``'s capture, or None yet. Looks under the hours from the request's
    to now, in both layouts (event hour: the s3 sink, and Firehose's dynamic partitions; arrival hour: Firehose's
    default); the s3 sink names its object by request id, a Firehose object is read (at most a few per call, each once)."""
    from driftcheck.capture_formats import decode_capture_object
    from modelserve.records import hour_prefixes

    rid, hour = answer["request_id"], asked_at.replace(minute=0, second=0, microsecond=0)
    hours = [hour + timedelta(hours=i) for i in range(int((datetime.now(UTC) - hour) / timedelta(hours=1)) + 1)]
    fresh: list[str] = []
    for h in hours:
        for prefix in hour_prefixes(answer["model_name"], answer["model_version"], h):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    if rid in obj["Key"]:
                        return str(obj["Key"])
                    if obj["LastModified"] >= asked_at - timedelta(seconds=5) and obj["Key"] not in read:
                        fresh.append(obj["Key"])
    for key in fresh[:CAPTURE_READS_PER_POLL]:
        read.add(key)
        try:
            rows = decode_capture_object(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except ValueError:
            continue  # not ours to judge here: the drift check counts corrupt objects
        if any(r.get("request_id") == rid for r in rows):
            return key
    return None


def check_capture(
    v: Verification, s3: Any, bucket: str, answer: dict[str, Any], asked_at: datetime, wait_s: float, poll_s: float = CAPTURE_POLL_S
) -> None:
    """The prediction's capture in the bucket, waited for up to ``wait_s`` (the logs sink delivers after Firehose's buffer)."""
    name = "capture delivered"
    delay = "the default logs sink (and firehose) delivers after Firehose's buffer, up to 300 s in AWS; s3 at once"
    started = time.monotonic()
    read: set[str] = set()
    while True:
        try:
            key = find_capture(s3, bucket, answer, asked_at, read)
        except Exception as exc:
            v.add(name, FAIL, f"cannot read s3://{bucket}: {type(exc).__name__}: {exc}"[:200])
            return
        waited = time.monotonic() - started
        if key:
            v.add(name, PASS, f"request {answer['request_id']} in s3://{bucket}/{key} after {waited:.0f} s ({delay})")
            return
        if waited >= wait_s:
            break
        time.sleep(min(poll_s, max(0.0, wait_s - waited)))
    if wait_s <= 0:
        v.add(name, SKIP, f"not waited for (--capture-wait 0): {delay}")
        return
    v.add(
        name,
        FAIL,
        f"request {answer['request_id']} not under s3://{bucket}/captures/ after {wait_s:.0f} s ({delay}); see the CaptureErrors, "
        "CaptureLinesDeliveryErrors and FirehoseDeliveryFailures alarms (docs/runbook.md)",
    )


def check_drift(v: Verification, outputs: dict[str, str], invoke_drift: Callable[[], dict[str, Any]], s3: Any) -> None:
    try:
        summary = invoke_drift()
    except Exception as exc:
        v.add("drift check", FAIL, f"{type(exc).__name__}: {exc}"[:200])
        return
    report = str(summary.get("report_json") or "")
    if not report.startswith("s3://"):
        v.add("drift check", FAIL, f"no report in the answer: {json.dumps(summary)[:160]}")
        return
    bucket, _, key = report[len("s3://") :].partition("/")
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        v.add("drift check", FAIL, f"report {report} not readable: {exc}"[:200])
        return
    v.add("drift check", PASS, f"rows {summary.get('rows_checked', '?')}, report {report}")


def _topic_alarm(cloudwatch: Any, topic_arn: str) -> str | None:
    """An alarm that notifies the topic: in the stack, the cause families' composite alarms (their
    metric alarms have no actions: one cause, one page)."""
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm", "CompositeAlarm"]):
        for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
            if topic_arn in alarm.get("AlarmActions", []):
                return str(alarm["AlarmName"])
    return None


PENDING = "PendingConfirmation"
CONFIRM_HELP = (
    "confirm it: open the 'AWS Notification - Subscription Confirmation' e-mail and click its link (a webhook must "
    "GET the SubscribeURL it was sent); or subscribe someone: npx cdk deploy -c alarm_subscriptions=<e-mail,https://...>"
)


def _page_topics(cloudwatch: Any, topic_arn: str) -> list[str]:
    """The alarm topic and every other SNS topic the pages notify (alarm_subscriptions may name existing topics)."""
    topics = [topic_arn]
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm", "CompositeAlarm"]):
        for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
            actions = alarm.get("AlarmActions", [])
            if topic_arn in actions:
                topics += [a for a in actions if a.startswith("arn:") and ":sns:" in a and a not in topics]
    return topics


def check_subscribers(v: Verification, outputs: dict[str, str], sns: Any, cloudwatch: Any) -> None:
    """PASS when a topic the pages reach has a confirmed subscription; FAIL (saying how to confirm) otherwise.
    The warning pages' own topic (``WarningTopicArn``, when ``warning_subscriptions`` routes them apart) is checked too."""
    topic = outputs.get("AlarmTopicArn")
    if not topic:
        v.add("alarm subscriber", FAIL, "the stack has no AlarmTopicArn output")
        return
    _check_topic_subscribers(v, "alarm subscriber", topic, "alarm_subscriptions", sns, cloudwatch)
    if warning := outputs.get("WarningTopicArn"):
        _check_topic_subscribers(v, "warning subscriber", warning, "warning_subscriptions", sns, cloudwatch)


def _check_topic_subscribers(v: Verification, step: str, topic: str, setting: str, sns: Any, cloudwatch: Any) -> None:
    confirmed: list[str] = []
    pending: list[str] = []
    unreadable: list[str] = []
    for arn in _page_topics(cloudwatch, topic):
        try:
            pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn)
            subscriptions = [sub for page in pages for sub in page.get("Subscriptions", [])]
        except Exception as exc:  # another account's topic: not ours to list
            unreadable.append(f"{arn} ({type(exc).__name__})")
            continue
        for sub in subscriptions:
            endpoint = f"{sub.get('Protocol')}:{sub.get('Endpoint')}"
            (pending if sub.get("SubscriptionArn") == PENDING else confirmed).append(endpoint)
    how = CONFIRM_HELP.replace("alarm_subscriptions", setting)
    if confirmed:
        v.add(step, PASS, f"confirmed: {', '.join(confirmed)[:160]}")
    elif pending:
        v.add(step, FAIL, f"no confirmed subscriber; pending confirmation: {', '.join(pending)[:120]}; {how}")
    elif unreadable:
        v.add(step, SKIP, f"no subscriber on {topic}; cannot list {', '.join(unreadable)[:120]}: check those by hand")
    else:
        v.add(step, FAIL, f"no one subscribes to {topic}: pages reach no one; {how}")


def check_alarm_delivery(v: Verification, outputs: dict[str, str], cloudwatch: Any, wait_s: float = 60.0, poll_s: float = 5.0) -> None:
    topic = outputs.get("AlarmTopicArn")
    name = _topic_alarm(cloudwatch, topic) if topic else None
    if not name:
        v.add("alarm notification", FAIL, f"no alarm notifies {topic}")
        return
    started = datetime.now(UTC)
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason=VERIFY_REASON)
    try:
        result, detail = SKIP, ""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                items = cloudwatch.describe_alarm_history(
                    AlarmName=name,
                    AlarmTypes=["MetricAlarm", "CompositeAlarm"],
                    HistoryItemType="Action",
                    StartDate=started,
                    ScanBy="TimestampDescending",
                )["AlarmHistoryItems"]
            except Exception as exc:  # moto: not implemented
                result, detail = SKIP, f"cannot read the alarm history here ({type(exc).__name__}); only real AWS proves delivery"
                break
            summaries = [str(i.get("HistorySummary", "")) for i in items]
            if any(s.startswith("Successfully executed action") for s in summaries):
                result, detail = PASS, f"{name}: SNS action succeeded"
                break
            failed = [s for s in summaries if s.startswith("Failed to execute action")]
            if failed:
                result, detail = FAIL, f"{name}: {failed[0][:200]}"
                break
            if time.monotonic() > deadline:
                result, detail = FAIL, f"{name}: no action in the alarm history after {wait_s:.0f} s"
                break
            time.sleep(poll_s)
    finally:
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="modelserve verify: restored")
    v.add("alarm notification", result, detail)


def verify(
    stack: str,
    session: Any,
    invoke_drift: Callable[[], dict[str, Any]] | None = None,
    wait_s: float = 60.0,
    capture_wait_s: float = CAPTURE_WAIT_S,
) -> Verification:
    v = Verification()
    try:
        outputs = stack_outputs(session.client("cloudformation"), stack)
    except Exception as exc:
        v.add("stack outputs", FAIL, f"{type(exc).__name__}: {exc}"[:200])
        return v
    v.add("stack outputs", PASS, f"{stack}: {len(outputs)} outputs, model version {outputs.get('ModelVersion', '?')}")
    api_key = None
    if outputs.get("ApiKeyId"):
        api_key = session.client("apigateway").get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)["value"]
    asked_at = datetime.now(UTC)
    answer = check_api(v, outputs, api_key)
    if answer is not None and outputs.get("CaptureBucketName"):
        check_capture(v, session.client("s3"), outputs["CaptureBucketName"], answer, asked_at, capture_wait_s)
    if invoke_drift is None:
        lam = session.client("lambda")

        def invoke_drift() -> dict[str, Any]:
            out = lam.invoke(FunctionName=outputs["DriftCheckFunctionName"], Payload=b"{}")
            payload = json.loads(out["Payload"].read() or b"null")
            if out.get("FunctionError"):
                raise RuntimeError(json.dumps(payload)[:300])
            return payload

    check_drift(v, outputs, invoke_drift, session.client("s3"))
    check_subscribers(v, outputs, session.client("sns"), session.client("cloudwatch"))
    check_alarm_delivery(v, outputs, session.client("cloudwatch"), wait_s=wait_s)
    return v


def main(stack: str, region: str | None, wait_s: float, capture_wait_s: float = CAPTURE_WAIT_S) -> int:
    import boto3

    if capture_wait_s > 0:
        print(f"waiting up to {capture_wait_s:.0f} s for the prediction's capture: Firehose buffers up to 300 s (--capture-wait)")
    v = verify(stack, boto3.Session(region_name=region), wait_s=wait_s, capture_wait_s=capture_wait_s)
    print(v.table())
    return 0 if v.ok else 1
