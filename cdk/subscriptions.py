"""Who the alarm topics reach: ``alarm_subscriptions`` (paging), ``warning_subscriptions`` (warning pages, when
routed apart from the critical ones) and ``inform_subscriptions`` (non-paging).

A stack whose pages reach no one is refused at synth: SNS accepts a publish to a topic without a
subscriber, so nothing would ever say the pages go nowhere. The setting names e-mail addresses,
https:// webhooks (a pager's or chat's), SMS numbers and existing SNS topics (the alarms notify those
too: a team's shared pager topic), or ``none`` to deploy without a subscriber on purpose.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from modelserve.settings import NO_SUBSCRIBER, Settings, SettingsError, subscription_protocol

NO_SUBSCRIBER_HELP = (
    "setting 'alarm_subscriptions' is not set, so the alarms would page no one (SNS accepts a publish to a topic "
    "without a subscriber). Name who is paged, e.g. `npx cdk deploy -c alarm_subscriptions=oncall@example.com` "
    "(or in cdk.json): e-mail addresses, https:// webhooks (pager, chat), SMS numbers (+E.164) or existing SNS "
    "topic ARNs, comma-separated; or `-c alarm_subscriptions=none` to deploy without a subscriber on purpose."
)


def paging_targets(settings: Settings) -> tuple[str, ...]:
    """The paging subscribers (``alarm_email`` counts as one); () for an explicit ``none``.

    Raises ``SettingsError`` naming ``alarm_subscriptions`` when nothing is configured."""
    configured = settings.alarm_subscriptions
    email = (settings.alarm_email,) if settings.alarm_email else ()
    if configured is None and not email:
        raise SettingsError(NO_SUBSCRIBER_HELP)
    targets = tuple(t for t in (*(configured or ()), *email) if t != NO_SUBSCRIBER)
    return tuple(dict.fromkeys(targets))


def subscribe(topic: sns.Topic, targets: tuple[str, ...]) -> list[sns.ITopic]:
    """Subscribe each target to ``topic``; returns the existing topics named (the alarms notify them directly:
    SNS does not subscribe a topic to a topic)."""
    others: list[sns.ITopic] = []
    for target in targets:
        kind = subscription_protocol(target)
        if kind == "email":
            topic.add_subscription(subs.EmailSubscription(target))
        elif kind == "https":
            topic.add_subscription(subs.UrlSubscription(target, protocol=sns.SubscriptionProtocol.HTTPS))
        elif kind == "sms":
            topic.add_subscription(subs.SmsSubscription(target))
        else:
            others.append(sns.Topic.from_topic_arn(topic, f"Forward{len(others)}", target))
    return others


def warn_without_subscriber(scope: Construct, settings: Settings, setting: str = "alarm_subscriptions") -> None:
    """The explicit ``none`` (of ``alarm_subscriptions`` or ``warning_subscriptions``): synth goes on, saying loudly
    that nothing is paged."""
    if setting == "warning_subscriptions":
        if settings.warning_subscriptions == (NO_SUBSCRIBER,):
            cdk.Annotations.of(scope).add_warning_v2(
                "modelserve:noWarningSubscriber",
                "warning_subscriptions=none: the warning topic has no subscriber, so no warning page reaches anyone "
                "(critical pages still go to alarm_subscriptions). Unset it to send warnings with the critical pages.",
            )
        return
    if settings.alarm_subscriptions == (NO_SUBSCRIBER,) and not settings.alarm_email:
        cdk.Annotations.of(scope).add_warning_v2(
            "modelserve:noSubscriber",
            "alarm_subscriptions=none: the alarm topic has no subscriber, so no page reaches anyone. "
            "Subscribe someone before relying on the alarms (`python -m devtools verify` fails until then).",
        )
