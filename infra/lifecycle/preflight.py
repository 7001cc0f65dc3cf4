"""preflight: what `make deploy` needs before it starts, each failure with the fix to apply."""
from __future__ import annotations

from pathlib import Path

from botocore.exceptions import ClientError, NoCredentialsError

from infra.lifecycle.aws import AwsClients, call, call_unless_gone, error_code
from infra.model_artifact import ModelArtifactError, model_digest

# CDK v2 templates refuse bootstrap stacks older than version 6 (rule CheckBootstrapVersion).
MIN_BOOTSTRAP_VERSION = 6


def check_model(model_zip: Path) -> list[str]:
    try:
        model_digest(model_zip)
    except ModelArtifactError as error:
        return [str(error)]
    return []


def check_account(clients: AwsClients, bootstrap_qualifier: str, cdk: str) -> list[str]:
    """Credentials and CDK bootstrap (main has checked the region); stops at the first missing layer."""
    try:
        account = call(clients.sts.get_caller_identity)["Account"]
    except NoCredentialsError:
        return ["no AWS credentials found: run `aws configure` or `aws sso login`, "
                "or set AWS_PROFILE / AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"]
    except ClientError as error:
        return [f"the AWS credentials were rejected ({error_code(error)}): refresh them "
                "(`aws sso login`, or new access keys)"]
    parameter = f"/cdk-bootstrap/{bootstrap_qualifier}/version"
    bootstrap_hint = f"run `{cdk} bootstrap aws://{account}/{clients.region}`"
    found = call_unless_gone(clients.ssm.get_parameter, Name=parameter)
    if found is None:
        return [f"account {account} is not CDK-bootstrapped in {clients.region} "
                f"(no SSM parameter {parameter}): {bootstrap_hint}"]
    version = int(found["Parameter"]["Value"])
    if version < MIN_BOOTSTRAP_VERSION:
        return [f"the CDK bootstrap in {clients.region} is version {version}, older than "
                f"{MIN_BOOTSTRAP_VERSION}: {bootstrap_hint} to upgrade it"]
    return []


def preflight(clients: AwsClients, model_zip: Path, bootstrap_qualifier: str, cdk: str) -> list[str]:
    return check_account(clients, bootstrap_qualifier, cdk) + check_model(model_zip)
