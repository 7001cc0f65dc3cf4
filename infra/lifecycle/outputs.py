"""The RainEdge stack's CloudFormation outputs: read, validated, and kept for teardown.

Outputs vanish with the stack, so destroy saves them first, in the format `cdk deploy
--outputs-file build/stack-outputs.json` writes ({"RainEdge": {key: value}}); a resumed destroy
reads that file. They hold names and ids only (the output contract forbids secrets).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_code.files import FileMissing, InvalidJson, UnusableFile, read_text
from infra.config import APP_TAG, STACK_NAME, json_value
from infra.fleet_hook.handler import serial_pattern_problem
from infra.lifecycle.aws import LifecycleError, call_unless_gone

REQUIRED_KEYS = (
    "NamePrefix", "ComponentPrefix", "ThingNames", "ThingGroupName", "RoleAliasName", "TokenExchangeRoleName",
    "ArtifactBucketName", "Region", "DeploymentId", "ComponentNames", "ComponentVersionArns", "FunctionNames",
    "Devices", "CanaryGroupName", "CanaryDeploymentId", "PromotedModelVersion", "CandidateModelVersion",
)
DEVICE_KEYS = ("thingName", "certificateId", "policyName")
# Present when the stack was deployed with fleetProvisioning (infra/stack.py).
FLEET_KEYS = ("ProvisioningTemplateName", "ClaimCertificateId", "ClaimPolicyName", "SerialNumberPattern",
              "LedgerTableName")
# The monitoring resources (infra/monitoring.py), in stacks that have them.
MONITORING_KEYS = ("AlarmTopicArn", "AlarmNames", "TopicRuleNames", "EventRuleName", "MonitoringLogGroupNames",
                   "DashboardName")
# The data lake (infra/datalake.py, infra/lake.py), in stacks that have it: the bucket, the Glue database,
# the Athena workgroup, the Firehose streams and the IoT rules that feed them.
LAKE_KEYS = ("LakeBucketName", "LakeDatabaseName", "LakeWorkGroupName", "LakeDeliveryStreamNames",
             "LakeTopicRuleNames")
# The outputs are names from the stack's template, whose body CloudFormation caps at 1 MB ("Understand
# CloudFormation quotas": Template body size in an Amazon S3 object): a larger saved file is not ours.
MAX_SAVED_BYTES = 1 << 20


class OutputsError(LifecycleError):
    """The stack is missing, or its outputs (live or saved) do not follow the contract."""


@dataclass(frozen=True)
class Device:
    thing_name: str
    certificate_id: str
    policy_name: str


@dataclass(frozen=True)
class FleetOutputs:
    """What fleet provisioning added: the template, the claim certificate and policy, the
    pattern every provisioned device's serial number matched (the hook's rule), and the ledger
    table that records what provisioning made (infra/ledger.py)."""

    template_name: str
    claim_certificate_id: str
    claim_policy_name: str
    serial_number_pattern: str
    ledger_table_name: str


@dataclass(frozen=True)
class MonitoringOutputs:
    """The names of what the stack watches the fleet with; CloudFormation owns every one of them."""

    alarm_topic_arn: str
    alarm_names: tuple[str, ...]
    topic_rule_names: tuple[str, ...]
    event_rule_name: str
    log_group_names: tuple[str, ...]
    dashboard_name: str


@dataclass(frozen=True)
class LakeOutputs:
    """The names of the data lake's resources; CloudFormation owns every one of them."""

    bucket_name: str
    database_name: str
    workgroup_name: str
    delivery_stream_names: tuple[str, ...]
    topic_rule_names: tuple[str, ...]


@dataclass(frozen=True)
class StackOutputs:
    name_prefix: str
    component_prefix: str
    thing_names: tuple[str, ...]
    thing_group_name: str
    role_alias_name: str
    token_exchange_role_name: str
    artifact_bucket_name: str
    region: str
    deployment_id: str
    component_names: tuple[str, ...]
    component_version_arns: tuple[str, ...]  # the exact versions the stack made
    function_names: tuple[str, ...]
    devices: tuple[Device, ...]
    # The canary ring (infra/releases.py): its thing group and deployment, and the model each ring runs.
    canary_group_name: str
    canary_deployment_id: str
    promoted_model_version: str
    candidate_model_version: str
    fleet: FleetOutputs | None = None
    monitoring: MonitoringOutputs | None = None
    lake: LakeOutputs | None = None

    @property
    def thing_group_names(self) -> tuple[str, str]:
        """The fleet ring's group and the canary ring's."""
        return self.thing_group_name, self.canary_group_name

    @property
    def deployment_ids(self) -> tuple[str, str]:
        return self.deployment_id, self.canary_deployment_id

    @property
    def dashboard_name(self) -> str | None:
        return self.monitoring.dashboard_name if self.monitoring else None


def parse_outputs(outputs: Any) -> StackOutputs:
    if not isinstance(outputs, dict) or not all(isinstance(value, str) for value in outputs.values()):
        raise OutputsError(f"the outputs of stack {STACK_NAME} must map each key to a string")
    missing = [key for key in REQUIRED_KEYS if key not in outputs]
    if missing:
        raise OutputsError(f"stack {STACK_NAME} lacks the outputs {', '.join(missing)} "
                           f"(expected keys: {', '.join(REQUIRED_KEYS)})")
    return StackOutputs(
        name_prefix=outputs["NamePrefix"],
        component_prefix=outputs["ComponentPrefix"],
        thing_names=_split(outputs["ThingNames"]),
        thing_group_name=outputs["ThingGroupName"],
        role_alias_name=outputs["RoleAliasName"],
        token_exchange_role_name=outputs["TokenExchangeRoleName"],
        artifact_bucket_name=outputs["ArtifactBucketName"],
        region=outputs["Region"],
        deployment_id=outputs["DeploymentId"],
        component_names=_split(outputs["ComponentNames"]),
        component_version_arns=_split(outputs["ComponentVersionArns"]),
        function_names=_split(outputs["FunctionNames"]),
        devices=_parse_devices(outputs["Devices"]),
        canary_group_name=outputs["CanaryGroupName"],
        canary_deployment_id=outputs["CanaryDeploymentId"],
        promoted_model_version=outputs["PromotedModelVersion"],
        candidate_model_version=outputs["CandidateModelVersion"],
        fleet=_parse_fleet(outputs),
        monitoring=_parse_monitoring(outputs),
        lake=_parse_lake(outputs),
    )


def describe_stack(cloudformation: Any) -> dict[str, Any] | None:
    """The RainEdge stack's description, or None when it does not exist."""
    described = call_unless_gone(cloudformation.describe_stacks, StackName=STACK_NAME)
    stacks = described["Stacks"] if described else []
    return stacks[0] if stacks and stacks[0]["StackStatus"] != "DELETE_COMPLETE" else None


def app_tag(stack: dict[str, Any]) -> str | None:
    """The value of the stack's rainedge:app tag (the namePrefix it was deployed with), if any."""
    return next((tag["Value"] for tag in stack.get("Tags", []) if tag["Key"] == APP_TAG), None)


def raw_outputs(stack: dict[str, Any]) -> dict[str, str]:
    """The stack's outputs as key -> value; empty while it has none (a create that rolled back)."""
    return {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}


def save(raw: dict[str, str], path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({STACK_NAME: raw}, indent=2, sort_keys=True))
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        raise OutputsError(f"cannot save the stack outputs to {path} ({where}{error.strerror}): make "
                           f"{path.parent} a folder you can write (a re-run after a failure reads the file), "
                           "then run again") from None


def load(path: Path) -> StackOutputs | None:
    """Outputs saved by `cdk deploy --outputs-file` or by an earlier destroy; None if absent. Read as a
    regular file of at most MAX_SAVED_BYTES, without blocking (a FIFO in its place is refused)."""
    fix = f"fix or remove {path}, then run again"
    try:
        document = json_value(read_text(path, MAX_SAVED_BYTES))
    except FileMissing:
        return None
    except UnusableFile as problem:
        raise OutputsError(f"{problem}: {fix}") from None
    except InvalidJson as problem:
        raise OutputsError(f"{path}: {problem}: {fix}") from None
    if not isinstance(document, dict) or not isinstance(document.get(STACK_NAME), dict):
        raise OutputsError(f"{path} is not a `cdk deploy --outputs-file` file with a {STACK_NAME} entry: {fix}")
    try:
        return parse_outputs(document[STACK_NAME])
    except OutputsError as error:
        raise OutputsError(f"{path}: {error}; {fix}") from None


def _split(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _optional_group(outputs: dict[str, str], keys: tuple[str, ...], what: str) -> list[str] | None:
    """The values of a group of outputs that come together, or None when the stack has none of them."""
    present = [key for key in keys if key in outputs]
    if not present:
        return None
    if len(present) != len(keys):
        raise OutputsError(f"stack {STACK_NAME} has the {what} outputs {', '.join(present)} but lacks "
                           f"{', '.join(key for key in keys if key not in outputs)}")
    return [outputs[key] for key in keys]


def _parse_fleet(outputs: dict[str, str]) -> FleetOutputs | None:
    values = _optional_group(outputs, FLEET_KEYS, "fleet provisioning")
    if not values:
        return None
    fleet = FleetOutputs(*values)
    # The pattern goes into install.sh, which runs it on every Pi: the rule synth checked it by.
    problem = serial_pattern_problem(fleet.serial_number_pattern)
    if problem is not None:
        raise OutputsError(f"output SerialNumberPattern {fleet.serial_number_pattern[:40]!r} {problem}: "
                           "the app's synth takes no such pattern")
    return fleet


def _parse_monitoring(outputs: dict[str, str]) -> MonitoringOutputs | None:
    values = _optional_group(outputs, MONITORING_KEYS, "monitoring")
    if not values:
        return None
    topic, alarms, rules, event_rule, log_groups, dashboard = values
    return MonitoringOutputs(topic, _split(alarms), _split(rules), event_rule, _split(log_groups), dashboard)


def _parse_lake(outputs: dict[str, str]) -> LakeOutputs | None:
    values = _optional_group(outputs, LAKE_KEYS, "data lake")
    if not values:
        return None
    bucket, database, workgroup, streams, rules = values
    return LakeOutputs(bucket, database, workgroup, _split(streams), _split(rules))


def _parse_devices(value: str) -> tuple[Device, ...]:
    try:
        raw = json_value(value)
    except InvalidJson:
        raw = None
    if not isinstance(raw, list) or not all(
            isinstance(item, dict) and all(isinstance(item.get(key), str) for key in DEVICE_KEYS) for item in raw):
        raise OutputsError('output Devices must be a JSON list of {"thingName", "certificateId", "policyName"} '
                           f"strings, got {value[:80]!r}")
    return tuple(Device(thing_name=item["thingName"], certificate_id=item["certificateId"],
                        policy_name=item["policyName"]) for item in raw)
