"""cdk-nag 3.x acknowledgments: CDK's Validations API, one reason per finding."""
from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

PLUGIN = "AwsSolutions"


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge the AwsSolutions `finding` (e.g. "AwsSolutions-L1" or
    "AwsSolutions-IAM5[Action::s3:List*]") on `scope` and everything below it."""
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{PLUGIN}::{finding}", reason=reason))
