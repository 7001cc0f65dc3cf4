"""What in the account is provably this app's. destroy and audit act on nothing else.

The proofs, and nothing more (README, "What teardown touches"):
- the stack RainEdge in the current region, only while it carries the tag rainedge:app=<namePrefix>;
- the names in that stack's outputs, live or saved in build/stack-outputs.json for the same region,
  each compared exactly (a name prefix proves nothing);
- what the ledger recorded when fleet provisioning made it (infra/ledger.py): each provisioned
  device's thing, certificates and policy; the ledger is the table the outputs name (without outputs,
  the table of the exact derived name that carries the app's tag);
- what the app's devices leave behind under names derived exactly from those: their shadows and
  Greengrass core-device records, the log groups of the app's components;
- the data lake's bucket, which outlives the stack (infra/datalake.py): the exact name the outputs give, and
  only while it carries the tag rainedge:app=<namePrefix> too, since emptying it deletes the fleet's data.
A shape proves nothing: a thing carrying the app's attribute, a member of the app's group, a policy
whose document equals a device's, another version of an app component or another deployment to the
app's group is not the app's unless a record names it; teardown only detaches it from what is.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from botocore.exceptions import ClientError

from infra.config import APP_TAG, STACK_NAME
from infra.greengrass import component_log_group
from infra.lifecycle.aws import AwsClients, LifecycleError, call_unless_gone, error_code, exists, paginate
from infra.lifecycle.outputs import (OutputsError, StackOutputs, app_tag, describe_stack, load, parse_outputs,
                                     raw_outputs)
from infra.lifecycle.ledger import Ledger, ledger_table_name, read_ledger
from infra.lifecycle.settings import AppNames


# GetBucketTagging's answer for a bucket that has no tags (Amazon S3 API reference, GetBucketTagging).
NO_TAG_SET = "NoSuchTagSet"


class Refusal(LifecycleError):
    """Acting would touch what is not provably this app's; nothing was changed."""


@dataclass(frozen=True)
class AppStack:
    """The RainEdge stack of this region if it is this app's, and the outputs that name the app's resources."""

    name_prefix: str  # the value of the rainedge:app tag and thing attribute that mark the app's resources
    stack: dict[str, Any] | None  # the live stack, only when it carries that tag
    live: dict[str, str]  # its outputs as CloudFormation gives them (saved by destroy)
    outputs: StackOutputs | None  # the live outputs, else the saved ones
    foreign: str | None = None  # why a stack named RainEdge here is not the app's

    def deployed(self) -> StackOutputs:
        """The live outputs, for the commands that need a deployed stack (device-setup, status)."""
        if self.foreign:
            raise Refusal(f"{self.foreign}: it is not this app's stack")
        if not self.live:
            raise OutputsError(f"stack {STACK_NAME} is not deployed in this account/region "
                               "(or has no outputs): run `make deploy` first")
        return parse_outputs(self.live)

    def known(self) -> StackOutputs:
        """The live outputs, else the saved ones, for what outlives the stack (logs, the claim)."""
        if self.foreign:
            raise Refusal(f"{self.foreign}: it is not this app's stack")
        if self.outputs is None:
            raise OutputsError(f"stack {STACK_NAME} is not deployed in this account/region and no outputs are "
                               "saved: run `make deploy` first")
        return self.outputs


def find_app_stack(clients: AwsClients, names: AppNames, saved_file: Path) -> AppStack:
    """Read the saved outputs and the live stack, and decide which of them are the app's."""
    saved = load(saved_file)
    if saved is not None and saved.region != clients.region:
        raise Refusal(f"{saved_file} records a deployment in {saved.region}, but the current region is "
                      f"{clients.region}: run again with AWS_REGION={saved.region} (the file is kept)")
    # The saved outputs are this checkout's own deployment; without them cdk.json says what to expect.
    prefix, source = (saved.name_prefix, str(saved_file)) if saved else (names.config.name_prefix, "cdk.json")
    stack = describe_stack(clients.cloudformation)
    if stack is None:
        return AppStack(prefix, None, {}, saved)
    tag = app_tag(stack)
    if tag != prefix:
        carries = f"the tag {APP_TAG}={tag}" if tag is not None else f"no {APP_TAG} tag"
        return AppStack(prefix, None, {}, saved, foreign=(
            f"stack {STACK_NAME} in {clients.region} carries {carries}, not {APP_TAG}={prefix} "
            f"(the namePrefix in {source})"))
    live = raw_outputs(stack)
    outputs = parse_outputs(live) if live else saved
    if live and outputs.name_prefix != tag:
        raise Refusal(f"stack {STACK_NAME} carries {APP_TAG}={tag} but its NamePrefix output is "
                      f"{outputs.name_prefix}: it does not follow this app's contract; nothing was changed")
    return AppStack(prefix, stack, live, outputs)


@dataclass(frozen=True)
class AppScope:
    """Everything destroy and audit may act on, by exact name."""

    region: str
    name_prefix: str
    outputs: StackOutputs | None
    ledger: Ledger

    @property
    def things(self) -> tuple[str, ...]:
        """The listed devices the outputs name, and the provisioned ones the ledger records."""
        listed = self.outputs.thing_names if self.outputs else ()
        return tuple(dict.fromkeys([*listed, *self.ledger.things]))

    @property
    def certificate_ids(self) -> tuple[str, ...]:
        """The certificates the stack made: each listed device's, and the fleet's claim."""
        if self.outputs is None:
            return ()
        claim = (self.outputs.fleet.claim_certificate_id,) if self.outputs.fleet else ()
        return tuple(device.certificate_id for device in self.outputs.devices) + claim

    @property
    def component_names(self) -> tuple[str, ...]:
        return self.outputs.component_names if self.outputs else ()

    @property
    def log_group_names(self) -> tuple[str, ...]:
        """Greengrass's log manager writes /aws/greengrass/UserComponent/<region>/<component> (Greengrass V2
        developer guide, "Log manager"; PLAN.md contract); a Lambda function logs to /aws/lambda/<function>;
        the monitoring rules write the log groups the outputs name."""
        if self.outputs is None:
            return ()
        return (tuple(component_log_group(self.region, name) for name in self.outputs.component_names)
                + tuple(f"/aws/lambda/{name}" for name in self.outputs.function_names)
                + (self.outputs.monitoring.log_group_names if self.outputs.monitoring else ()))

    def targets_app_group(self, deployment: dict[str, Any]) -> bool:
        # An ARN is arn:partition:service:region:account-id:resource, the resource of a thing group
        # being thinggroup/<name> (AWS General Reference, "Amazon Resource Names"; IoT's ARN formats).
        target = deployment.get("targetArn", "").split(":", 5)[-1]
        return self.outputs is not None and target in {f"thinggroup/{group}" for group in self.outputs.thing_group_names}


def app_scope(clients: AwsClients, names: AppNames, app: AppStack, echo: Callable[[str], None]) -> AppScope:
    outputs = app.outputs
    if outputs is not None and (outputs.name_prefix, outputs.component_prefix) != (
            names.config.name_prefix, names.config.component_prefix):
        echo(f"the stack's outputs name namePrefix {outputs.name_prefix} and componentPrefix "
             f"{outputs.component_prefix}, cdk.json {names.config.name_prefix} and {names.config.component_prefix}: "
             "acting on the names in the outputs")
    ledger = read_ledger(clients, app.name_prefix, ledger_table_name(clients, app.name_prefix, outputs))
    for item in ledger.unrecognised:
        echo(f"the ledger {ledger.table} holds {item}, which is not a record the hook writes: not acted on")
    return AppScope(clients.region, app.name_prefix, outputs, ledger)


def bucket_app_tag(clients: AwsClients, bucket: str) -> str | None:
    """The value of the bucket's rainedge:app tag; None when it has no such tag (S3 answers a bucket without
    tags with NoSuchTagSet) or does not exist."""
    try:
        tagging = call_unless_gone(clients.s3.get_bucket_tagging, Bucket=bucket)
    except ClientError as error:
        if error_code(error) == NO_TAG_SET:
            return None
        raise
    return next((tag["Value"] for tag in (tagging or {}).get("TagSet", []) if tag["Key"] == APP_TAG), None)


def owned_lake_bucket(clients: AwsClients, scope: AppScope) -> str | None:
    """The lake bucket the outputs name, while it exists and carries the app's tag."""
    lake = scope.outputs.lake if scope.outputs else None
    if lake is None:
        return None
    return lake.bucket_name if bucket_app_tag(clients, lake.bucket_name) == scope.name_prefix else None


def attributed_things(clients: AwsClients, prefix: str) -> list[str]:
    """Things carrying the thing attribute rainedge:app=<prefix> (a shape, never a proof: audit names the
    ones no record claims). Without usePrefixAttributeValue only attribute values matching the entire
    attributeValue are returned (AWS IoT API reference, ListThings)."""
    return [item["thingName"] for item in paginate(
        clients.iot.list_things, "things", attributeName=APP_TAG, attributeValue=prefix, usePrefixAttributeValue=False)]


def group_members(clients: AwsClients, group: str) -> list[str]:
    if not exists(clients.iot.describe_thing_group, thingGroupName=group):
        return []
    return paginate(clients.iot.list_things_in_thing_group, "things", thingGroupName=group)
