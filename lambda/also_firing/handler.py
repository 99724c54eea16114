"""Re-notification inside an open page: "also firing".

A family's composite alarm notifies when it enters ALARM, not when a second alarm of the family joins
it: with ``Api5xxRate`` open, a later ``InferenceErrors`` would send nothing. EventBridge sends this
function every "CloudWatch Alarm State Change" of the stack's alarms (an alarm-name prefix rule); it
publishes "also firing: <alarm> in <family>" to the page's topic when an alarm entered ALARM while
another alarm of its page (same family and severity) was already paging. The first alarm of a page
sends nothing here: the composite alarm's own notification covers it, and so does it for alarms entering
ALARM within ``GRACE_S`` of the page's first (one cause tripping two alarms at the same check is one page).

``MS_ALSO_FIRING`` (JSON, written by cdk/also_firing.py from the alarm specs):
``prefix`` (alarm names are ``<prefix><spec id>``), ``alarms`` (spec id -> [family, severity, runbook
link]), ``paged_by`` (spec id -> spec ids that page its cause elsewhere: while one is in ALARM it adds
nothing to its page), ``topics`` (severity -> topic ARN), ``forward`` (severity -> the existing topics its pages
notify too; a publish refused by one is reported, not fatal), ``titles`` (family -> title), ``dashboard``,
``reports``, ``held_by`` (optional: ``alarm``, the spec id of the canary alarm, ``families`` whose pages it holds
back, ``extension_s``): while that alarm is in ALARM, and ``extension_s`` after it left ALARM, those pages are
held (CloudWatch ActionsSuppressor: a canary CodeDeploy rolls back is a deployment event), and so is "also firing"
inside them; a failure still there after the extension pages through the composite's own notification.

Standard library + boto3 only (the Lambda runtime's): the asset is this file alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

ENV_CONFIG = "MS_ALSO_FIRING"
# alarms entering ALARM this close to the page's first are the composite's opening notification, not "also firing"
GRACE_S = 120


def paging(spec_id: str, states: Mapping[str, str], paged_by: Mapping[str, list[str]]) -> bool:
    """Whether an alarm adds to its page: in ALARM, and no alarm that pages its cause elsewhere is
    (the rule the composite alarms carry, cdk/alarms.py: ``paging``)."""
    return states.get(spec_id) == "ALARM" and not any(states.get(o) == "ALARM" for o in paged_by.get(spec_id, ()))


def _entered_alarm(detail: Mapping[str, Any]) -> bool:
    return detail.get("state", {}).get("value") == "ALARM" and detail.get("previousState", {}).get("value") != "ALARM"


def _timestamp(text: str | None) -> datetime:
    """An alarm event's state timestamp ("2026-12-06T10:04:00.123+0000"); now when absent."""
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return datetime.now(UTC)


def _states(cloudwatch: Any, names: list[str]) -> dict[str, tuple[str, datetime | None]]:
    """Alarm name -> (state, since when) of the named metric alarms."""
    out: dict[str, tuple[str, datetime | None]] = {}
    for start in range(0, len(names), 100):  # DescribeAlarms takes at most 100 names
        pages = cloudwatch.get_paginator("describe_alarms").paginate(AlarmNames=names[start : start + 100], AlarmTypes=["MetricAlarm"])
        for page in pages:
            for alarm in page.get("MetricAlarms", []):
                out[alarm["AlarmName"]] = (alarm["StateValue"], alarm.get("StateUpdatedTimestamp"))
    return out


def _held(cloudwatch: Any, config: Mapping[str, Any], family: str, entered: datetime) -> bool:
    """Whether the family's page is held back by the canary alarm: in ALARM, or out of it for less than the
    extension (the composite's ActionsSuppressedBy is then Alarm or ExtensionPeriod)."""
    held_by = config.get("held_by")
    if not held_by or family not in held_by["families"]:
        return False
    name = config["prefix"] + held_by["alarm"]
    state, since = _states(cloudwatch, [name]).get(name, ("INSUFFICIENT_DATA", None))
    if state == "ALARM":
        return True
    return since is not None and entered - since < timedelta(seconds=held_by["extension_s"])


def also_firing(event: Mapping[str, Any], config: Mapping[str, Any], cloudwatch: Any, sns: Any) -> dict[str, Any]:
    """Publish "also firing" for one alarm state change when its page is already open; returns what it did."""
    detail = event.get("detail", {})
    name, prefix = str(detail.get("alarmName", "")), config["prefix"]
    spec_id = name[len(prefix) :] if name.startswith(prefix) else ""
    member = config["alarms"].get(spec_id)
    if member is None or not _entered_alarm(detail):
        return {"notified": False, "why": "not a paging alarm of this stack entering ALARM"}
    family, severity, runbook = member
    page = [i for i, (f, s, _) in config["alarms"].items() if (f, s) == (family, severity)]
    paged_by: dict[str, list[str]] = config["paged_by"]
    watched = sorted({*page, *(o for i in page for o in paged_by.get(i, ()))})
    found = _states(cloudwatch, [prefix + i for i in watched])
    states = {i: found.get(prefix + i, ("INSUFFICIENT_DATA", None))[0] for i in watched}
    states[spec_id] = "ALARM"  # the event says so; DescribeAlarms may not show it yet
    if not paging(spec_id, states, paged_by):
        return {"notified": False, "why": f"{spec_id} is paged elsewhere"}
    entered = _timestamp(detail.get("state", {}).get("timestamp"))
    if _held(cloudwatch, config, family, entered):
        return {"notified": False, "why": f"the {family} page is held: a canary is failing (CodeDeploy rolls it back)"}
    open_ = [
        i
        for i in page
        if i != spec_id
        and paging(i, states, paged_by)
        and (t := found[prefix + i][1]) is not None
        and t <= entered - timedelta(seconds=GRACE_S)
    ]
    if not open_:
        return {"notified": False, "why": "first alarm of its page: the composite alarm notifies"}
    since = min(t for i in open_ if (t := found[prefix + i][1]) is not None)
    title = config["titles"].get(family, family)
    subject = f"{severity.upper()} also firing: {spec_id} in {family.replace('_', ' ')}"[:100]
    message = "\n".join(
        [
            f"{severity.upper()}: ALSO FIRING: {name} entered ALARM at {detail.get('state', {}).get('timestamp', 'now')}",
            f"inside the open page '{title}' ({severity}), open since {since.isoformat()} for: {', '.join(open_)}.",
            f"Why: {detail.get('state', {}).get('reason', '')}",
            f"Dashboard: {config['dashboard']}",
            f"Reports: {config['reports']}",
            f"Runbook: {runbook}",
        ]
    )
    sns.publish(TopicArn=config["topics"][severity], Subject=subject, Message=message)
    refused = _forward(sns, config.get("forward", {}).get(severity, []), subject, message)
    return {"notified": True, "alarm": spec_id, "open": open_, **({"forward_refused": refused} if refused else {})}


def _forward(sns: Any, arns: list[str], subject: str, message: str) -> list[str]:
    """Publish to the existing topics the page notifies too; returns those that refused (their policy or key does not
    allow this function: the stack's own topic has the message already)."""
    refused = []
    for arn in arns:
        try:
            sns.publish(TopicArn=arn, Subject=subject, Message=message)
        except Exception as e:  # noqa: BLE001 - one topic's refusal must not lose the others
            print(json.dumps({"message": "also firing: forward refused", "topic": arn, "error": str(e)}))
            refused.append(arn)
    return refused


_CLIENTS: dict[str, Any] = {}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    import boto3  # the runtime's; imported here so the module loads without it

    if not _CLIENTS:
        _CLIENTS.update(cloudwatch=boto3.client("cloudwatch"), sns=boto3.client("sns"))
    result = also_firing(event, json.loads(os.environ[ENV_CONFIG]), _CLIENTS["cloudwatch"], _CLIENTS["sns"])
    print(json.dumps({"message": "also firing", **result}))
    return result
