"""cdk-nag 3.x acknowledgments: CDK's Validations API, one reason per finding."""
from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Token, Validations
from constructs import IConstruct

PLUGIN = "AwsSolutions"
# Lambda's managed logging policy, as cdk-nag names it in an IAM4 finding.
MANAGED_LOGS_POLICY = ("AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                       "AWSLambdaBasicExecutionRole]")


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge the AwsSolutions `finding` (e.g. "AwsSolutions-L1" or
    "AwsSolutions-IAM5[Action::s3:List*]") on `scope` and everything below it."""
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{PLUGIN}::{finding}", reason=reason))


def env_placeholders(stack: Stack) -> dict[str, str]:
    """How cdk-nag writes the stack's region and account inside finding ids: the literal
    value when the environment is known (CDK_DEFAULT_REGION/ACCOUNT), else a placeholder."""

    def shown(value: str, placeholder: str) -> str:
        return placeholder if Token.is_unresolved(value) else value

    return {
        "region": shown(stack.region, "<AWS::Region>"),
        "account": shown(stack.account, "<AWS::AccountId>"),
    }


def nag_arn(stack: Stack, service: str) -> str:
    """The start of an ARN of `service` in this stack's region and account, as cdk-nag writes it."""
    env = env_placeholders(stack)
    return f"arn:<AWS::Partition>:{service}:{env['region']}:{env['account']}"


def acknowledge_wildcard_resources(scope: IConstruct, reasons: dict[str, str]) -> None:
    """Acknowledge AwsSolutions-IAM5 for each wildcard resource (as cdk-nag names it) with its reason."""
    for resource, reason in reasons.items():
        acknowledge(scope, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
