"""preflight: what `make deploy` needs before it starts, each failure with the fix to apply."""
from __future__ import annotations

from pathlib import Path

from botocore.exceptions import ClientError, NoCredentialsError

from infra import releases
from infra.lifecycle.aws import AwsClients, call, call_unless_gone, error_code
from infra.lifecycle.outputs import describe_stack
from infra.model_artifact import ModelArtifactError, model_digest, model_version

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


def check_release(clients: AwsClients, folder: Path, model_zip: Path) -> list[str]:
    """A deploy may change the fleet ring's model only to one a gate passed (infra/releases.py)."""
    stack = describe_stack(clients.cloudformation)
    outputs = {item["OutputKey"]: item["OutputValue"] for item in (stack or {}).get("Outputs", [])}
    running = outputs.get("PromotedModelVersion")
    if running is None:  # not deployed yet, or deployed before the rings
        return []
    promoted_zip, decisions = releases.RELEASES / releases.PROMOTED_ZIP, releases.RELEASES / releases.DECISIONS
    try:
        rings = releases.ring_models(folder, model_zip)
        fleet = model_version(rings.fleet)
        passed = {record.get("candidate") for record in releases.decisions(folder)
                  if record["decision"] == releases.PROMOTED}
    except (releases.ReleaseError, ModelArtifactError) as error:
        return [str(error)]
    if fleet == running or fleet in passed and not rings.first_release:
        return []
    if rings.first_release:
        return [f"the fleet ring runs {running}, but {promoted_zip} holds no model: this deploy would put the "
                f"candidate {fleet} on the whole fleet; restore {promoted_zip} (and {decisions}) from where you keep them"]
    return [f"the fleet ring would move from {running} to {fleet}, which no gate passed ({decisions} has no "
            f"promotion of it): restore {promoted_zip}, or deploy candidates to the canary ring and `make promote`"]


def preflight(clients: AwsClients, releases_dir: Path, model_zip: Path, bootstrap_qualifier: str,
              cdk: str) -> list[str]:
    problems = check_account(clients, bootstrap_qualifier, cdk) + check_model(model_zip)
    return problems or check_release(clients, releases_dir, model_zip)
