"""Alarm notifications reach the topic: the synthesized topic policy and key policy, evaluated for
the request CloudWatch makes when an alarm fires (a small IAM evaluator for the statements used)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.infra.conftest import Synth

ACCOUNT, REGION, PARTITION = "111122223333", "eu-west-1", "aws"
OTHER_ACCOUNT = "444455556666"
PSEUDO = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": PARTITION}


@dataclass(frozen=True)
class Request:
    service: str  # the calling service principal, e.g. cloudwatch.amazonaws.com
    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)  # aws:SecureTransport, aws:SourceAccount, aws:SourceArn


def resolve(value: Any, refs: dict[str, str]) -> Any:
    """Template value -> plain value (Ref, Fn::Join; other intrinsics fail the test)."""
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return PSEUDO.get(arg) or refs[arg]
        if fn == "Fn::Join":
            sep, parts = arg
            return sep.join(resolve(p, refs) for p in parts)
        if fn.startswith("Fn::"):
            raise AssertionError(f"no evaluator for {fn}")
    if isinstance(value, dict):
        return {k: resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, refs) for v in value]
    return value


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _principal_matches(principal: Any, req: Request) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        raise AssertionError(f"principal form not evaluated: {principal!r}")
    return "*" in _as_list(principal.get("AWS", [])) or req.service in _as_list(principal.get("Service", []))


def _condition_holds(condition: dict[str, dict[str, Any]], req: Request) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            actual = req.context.get(key)
            if actual is None:
                return False  # a condition on an absent key does not match
            wanted = [str(e) for e in _as_list(expected)]
            if operator == "Bool":
                ok = str(actual).lower() in [w.lower() for w in wanted]
            elif operator == "StringEquals":
                ok = str(actual) in wanted
            elif operator == "ArnLike":
                ok = any(fnmatch.fnmatchcase(str(actual), w) for w in wanted)
            else:
                raise AssertionError(f"condition operator not evaluated: {operator}")
            if not ok:
                return False
    return True


def _statement_matches(st: dict[str, Any], req: Request) -> bool:
    return (
        _principal_matches(st.get("Principal"), req)
        and any(fnmatch.fnmatchcase(req.action.lower(), a.lower()) for a in _as_list(st["Action"]))
        and any(fnmatch.fnmatchcase(req.resource, r) for r in _as_list(st["Resource"]))
        and _condition_holds(st.get("Condition", {}), req)
    )


def allowed(statements: list[dict[str, Any]], req: Request) -> bool:
    """IAM's order: an explicit Deny wins, then an Allow, else the implicit deny."""
    matching = [st for st in statements if _statement_matches(st, req)]
    if any(st["Effect"] == "Deny" for st in matching):
        return False
    return any(st["Effect"] == "Allow" for st in matching)


# the paging topic and the non-paging one (drift without impact): the same rules for both
TOPICS = ("MonitoringAlarmTopic", "MonitoringInformTopic")


def _topic_and_key(s: Synth, which: str = TOPICS[0]) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    ((topic_id, topic),) = [(k, v) for k, v in s.of_type("AWS::SNS::Topic").items() if k.startswith(which)]
    topic_arn = f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{topic_id}"
    refs = {topic_id: topic_arn}
    ((_, policy),) = [(k, v) for k, v in s.of_type("AWS::SNS::TopicPolicy").items() if v["Properties"]["Topics"] == [{"Ref": topic_id}]]
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = s.resources[key_id]["Properties"]["KeyPolicy"]["Statement"]
    return topic_arn, resolve(policy["Properties"]["PolicyDocument"]["Statement"], refs), resolve(key, refs)


def alarm_request(action: str, resource: str, *, tls: bool = True, account: str = ACCOUNT) -> Request:
    return Request(
        service="cloudwatch.amazonaws.com",
        action=action,
        resource=resource,
        context={
            "aws:SecureTransport": "true" if tls else "false",
            "aws:SourceAccount": account,
            "aws:SourceArn": f"arn:{PARTITION}:cloudwatch:{REGION}:{account}:alarm:ModelServe-penguins-NoTraffic",
        },
    )


@pytest.mark.parametrize("which", TOPICS)
@pytest.mark.parametrize("variant", ["default", "firehose_kms_iam"])
def test_an_alarm_of_this_account_may_publish_to_the_encrypted_topic(variant: str, which: str, synth_of) -> None:
    topic_arn, topic_policy, key_policy = _topic_and_key(synth_of(variant), which)
    assert allowed(topic_policy, alarm_request("sns:Publish", topic_arn))
    key_arn = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/1234"
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert allowed(key_policy, alarm_request(action, key_arn)), action


@pytest.mark.parametrize("which", TOPICS)
def test_publishing_without_tls_is_denied(default: Synth, which: str) -> None:
    topic_arn, topic_policy, _ = _topic_and_key(default, which)
    assert not allowed(topic_policy, alarm_request("sns:Publish", topic_arn, tls=False))


@pytest.mark.parametrize("which", TOPICS)
def test_only_this_accounts_alarms_and_only_cloudwatch_may_publish(default: Synth, which: str) -> None:
    topic_arn, topic_policy, key_policy = _topic_and_key(default, which)
    assert not allowed(topic_policy, alarm_request("sns:Publish", topic_arn, account=OTHER_ACCOUNT))
    assert not allowed(key_policy, alarm_request("kms:GenerateDataKey", "arn:aws:kms:eu-west-1:111122223333:key/1", account=OTHER_ACCOUNT))
    other_service = Request("events.amazonaws.com", "sns:Publish", topic_arn, alarm_request("sns:Publish", topic_arn).context)
    assert not allowed(topic_policy, other_service)
    # the evaluator itself: without the Allow statement nothing may publish (SNS's default policy is replaced)
    assert not allowed([st for st in topic_policy if st["Effect"] == "Deny"], alarm_request("sns:Publish", topic_arn))
