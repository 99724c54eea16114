"""Who the alarms reach: a stack whose pages reach no one is refused at synth; e-mail, https webhooks, SMS
and existing topics become subscriptions (or the pages' actions); an explicit 'none' synthesizes, warning."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from modelserve.settings import Settings, SettingsError
from tests.infra.conftest import Synth, synth_variant

PAGER_TOPIC = "arn:aws:sns:eu-west-1:123456789012:team-pager"
EVERY_KIND = ["oncall@example.com", "https://events.pagerduty.com/integration/abc/enqueue", "+4915112345678", PAGER_TOPIC]


def test_the_shipped_cdk_json_stops_synth_naming_the_setting_and_the_opt_out(fake_bundle_dir: Path) -> None:
    from cdk.application import build_app, cdk_json_context

    ctx = {**cdk_json_context(), "model_bundle_path": str(fake_bundle_dir)}
    assert ctx.get("alarm_subscriptions") is None and ctx.get("alarm_email") is None
    with mock.patch.dict(os.environ, {"MS_SKIP_BUNDLING": "1"}), pytest.raises(SettingsError) as err:
        build_app(ctx)
    msg = str(err.value)
    assert "'alarm_subscriptions'" in msg and "page no one" in msg and "alarm_subscriptions=none" in msg


@pytest.mark.parametrize(
    "value, says",
    [
        ("oncall", "not an e-mail address"),
        ("http://hooks.example.com/x", "https://"),
        ("0151 1234", "+E.164"),
        ("none,oncall@example.com", "cannot be listed with others"),
    ],
)
def test_a_target_that_is_no_subscriber_is_refused_naming_the_forms(value: str, says: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_context({"alarm_subscriptions": value})
    assert "'alarm_subscriptions'" in str(err.value) and says in str(err.value)


@pytest.fixture(scope="module")
def every_kind(fake_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth_variant("default", fake_bundle_dir, tmp_path_factory.mktemp("subs"), {"alarm_subscriptions": ",".join(EVERY_KIND)})


def test_email_webhook_and_sms_subscribe_to_the_paging_topic(every_kind: Synth) -> None:
    topic = next(k for k in every_kind.of_type("AWS::SNS::Topic") if k.startswith("MonitoringAlarmTopic"))
    subs = sorted((s["Properties"]["Protocol"], s["Properties"]["Endpoint"]) for s in every_kind.of_type("AWS::SNS::Subscription").values())
    assert subs == [("email", EVERY_KIND[0]), ("https", EVERY_KIND[1]), ("sms", EVERY_KIND[2])]
    assert all(s["Properties"]["TopicArn"] == {"Ref": topic} for s in every_kind.of_type("AWS::SNS::Subscription").values())


def test_an_existing_topic_is_notified_by_every_page_directly(every_kind: Synth) -> None:
    pages = [c["Properties"] for c in every_kind.of_type("AWS::CloudWatch::CompositeAlarm").values() if c["Properties"].get("AlarmActions")]
    assert pages
    for page in pages:
        assert PAGER_TOPIC in page["AlarmActions"] and PAGER_TOPIC in page["OKActions"]


def test_also_firing_reaches_an_existing_topic_as_the_pages_do(every_kind: Synth) -> None:
    """The function publishes "also firing" to the existing topic too: its config names it for both severities
    (warnings go with the critical pages here), and its role may publish to it, to nothing else outside the stack."""
    ((role_id, env),) = [
        (f["Properties"]["Role"]["Fn::GetAtt"][0], f["Properties"]["Environment"]["Variables"]["MS_ALSO_FIRING"])
        for k, f in every_kind.of_type("AWS::Lambda::Function").items()
        if k.startswith("AlsoFiring")
    ]
    config = env if isinstance(env, str) else "".join(p for p in env["Fn::Join"][1] if isinstance(p, str))
    assert f'"forward":{{"critical":["{PAGER_TOPIC}"],"warning":["{PAGER_TOPIC}"]}}' in config
    statements = [
        st
        for p in every_kind.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for st in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    (named,) = [st for st in statements if st.get("Sid") == "PublishToNamedTopics"]
    assert (named["Action"], named["Resource"]) == ("sns:Publish", PAGER_TOPIC)


@pytest.mark.slow
def test_an_explicit_none_synthesizes_without_subscriber_and_warns(fake_bundle_dir: Path, tmp_path: Path) -> None:
    from aws_cdk.assertions import Annotations, Match

    s = synth_variant("default", fake_bundle_dir, tmp_path, {"alarm_subscriptions": "none"})
    assert not s.of_type("AWS::SNS::Subscription")
    warnings: list[Any] = Annotations.from_stack(s.stack).find_warning("*", Match.string_like_regexp("alarm_subscriptions=none"))
    assert warnings and "verify" in str(warnings[0].entry.data)
