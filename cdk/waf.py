"""The optional AWS WAF web ACL on the API stage (``waf`` setting): AWS's managed common rule set and a
rate-based rule per client IP (``waf_rate_limit`` requests in 5 minutes), each with its CloudWatch metric."""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from .common import resource_name

RATE_WINDOW_S = 300  # the window waf_rate_limit counts over (WAF's default evaluation window)
COMMON_RULE_SET = "AWSManagedRulesCommonRuleSet"
# the common rule set blocks request bodies over 8 KB (SizeRestrictions_BODY): a /predict batch or a binary
# OIP tensor is bigger than that by design, so that one rule only counts; the function enforces max_body_bytes
COUNT_ONLY_RULES = ("SizeRestrictions_BODY",)


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric_name, sampled_requests_enabled=True
    )


class ApiFirewall(Construct):
    """A regional web ACL associated with ``stage``. Exposes ``web_acl``."""

    def __init__(self, scope: Construct, id: str, *, stage: apigw.Stage, name_prefix: str, rate_limit: int) -> None:
        super().__init__(scope, id)
        metric_prefix = resource_name(name_prefix, "waf", max_len=100)
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            description="modelserve API: AWS managed common rules and a per-IP rate limit",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(metric_prefix),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerIp",
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            aggregate_key_type="IP",
                            limit=rate_limit,
                            evaluation_window_sec=RATE_WINDOW_S,
                        )
                    ),
                    visibility_config=_visibility(f"{metric_prefix}-rate"),
                ),
                wafv2.CfnWebACL.RuleProperty(
                    name=COMMON_RULE_SET,
                    priority=1,
                    override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                            vendor_name="AWS",
                            name=COMMON_RULE_SET,
                            rule_action_overrides=[
                                wafv2.CfnWebACL.RuleActionOverrideProperty(
                                    name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                                )
                                for rule in COUNT_ONLY_RULES
                            ],
                        )
                    ),
                    visibility_config=_visibility(f"{metric_prefix}-common"),
                ),
            ],
        )
        self.association = wafv2.CfnWebACLAssociation(
            self, "StageAssociation", resource_arn=stage.stage_arn, web_acl_arn=self.web_acl.attr_arn
        )
