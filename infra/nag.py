"""cdk-nag 3.x acknowledgments: CDK's Validations API, one reason per finding."""
from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Token, Validations
from constructs import IConstruct

PLUGIN = "AwsSolutions"


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
