"""audit: everything of this app still present in the account, found by name, prefix and tag.

Names come from the CDK context (AppNames) and, when known, the stack outputs saved at deploy
or destroy time (certificate ids and the generated role/bucket names exist only there).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from infra.config import APP_TAG, STACK_NAME
from infra.greengrass import SHADOW_NAMES
from infra.lifecycle.aws import AwsClients, call, error_code, exists, paginate
from infra.lifecycle.outputs import StackOutputs, describe_stack
from infra.lifecycle.settings import AppNames


@dataclass(frozen=True)
class Leftover:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.name}"


@dataclass(frozen=True)
class AppScope:
    """What belongs to this app: configured names plus the last known stack outputs."""

    names: AppNames
    outputs: StackOutputs | None

    @property
    def thing_names(self) -> tuple[str, ...]:
        known = self.names.config.devices + (self.outputs.thing_names if self.outputs else ())
        return tuple(dict.fromkeys(known))

    @property
    def certificate_ids(self) -> tuple[str, ...]:
        return tuple(device.certificate_id for device in self.outputs.devices) if self.outputs else ()

    def owns_deployment(self, deployment: dict[str, Any]) -> bool:
        target = deployment.get("targetArn", "")
        return (deployment.get("deploymentName") == self.names.config.deployment_name
                or (self.outputs is not None and deployment.get("deploymentId") == self.outputs.deployment_id)
                or target.endswith(f":thinggroup/{self.names.config.thing_group_name}")
                or any(target.endswith(f":thing/{thing}") for thing in self.thing_names))

    def owns_component(self, component_name: str) -> bool:
        return component_name.startswith(f"{self.names.config.component_prefix}.")

    def log_group_prefixes(self, region: str) -> tuple[str, ...]:
        # Greengrass's log manager writes /aws/greengrass/UserComponent/<region>/<component>;
        # CDK's helper functions (named <stack>-...) leave their log groups behind the stack.
        return ((f"/aws/greengrass/UserComponent/{region}/{self.names.config.component_prefix}.",
                 f"/aws/lambda/{STACK_NAME}-")
                + tuple(f"/aws/lambda/{function}" for function in self.names.function_names))


def owned_deployments(clients: AwsClients, scope: AppScope) -> list[dict[str, Any]]:
    return [item for item in paginate(clients.greengrassv2.list_deployments, "deployments", historyFilter="ALL")
            if scope.owns_deployment(item)]


def owned_components(clients: AwsClients, scope: AppScope) -> list[dict[str, Any]]:
    return [item for item in paginate(clients.greengrassv2.list_components, "components", scope="PRIVATE")
            if scope.owns_component(item["componentName"])]


def owned_log_groups(clients: AwsClients, scope: AppScope) -> list[str]:
    return [group["logGroupName"]
            for prefix in scope.log_group_prefixes(clients.region)
            for group in paginate(clients.logs.describe_log_groups, "logGroups", logGroupNamePrefix=prefix)]


def audit(clients: AwsClients, scope: AppScope) -> list[Leftover]:
    found: list[Leftover] = []
    prefix = f"{scope.names.config.name_prefix}-"
    iot = clients.iot

    if describe_stack(clients.cloudformation) is not None:
        found.append(Leftover("stack", STACK_NAME))
    things = set(scope.thing_names) | {item["thingName"] for item in paginate(iot.list_things, "things")
                                       if item["thingName"].startswith(prefix)}
    certificate_ids = set(scope.certificate_ids)
    for thing in sorted(things):
        if exists(iot.describe_thing, thingName=thing):
            found.append(Leftover("thing", thing))
            # Certificates of surviving things, found even without saved outputs.
            certificate_ids |= {principal.rsplit("/", 1)[-1]
                                for principal in paginate(iot.list_thing_principals, "principals", thingName=thing)
                                if ":cert/" in principal}
        for shadow in SHADOW_NAMES:
            if exists(clients.iot_data.get_thing_shadow, thingName=thing, shadowName=shadow):
                found.append(Leftover("shadow", f"{thing}/{shadow}"))
        if exists(clients.greengrassv2.get_core_device, coreDeviceThingName=thing):
            found.append(Leftover("core device", thing))
    found += [Leftover("certificate", cert_id) for cert_id in sorted(certificate_ids)
              if exists(iot.describe_certificate, certificateId=cert_id)]
    if exists(iot.describe_thing_group, thingGroupName=scope.names.config.thing_group_name):
        found.append(Leftover("thing group", scope.names.config.thing_group_name))
    found += [Leftover("iot policy", item["policyName"])
              for item in paginate(iot.list_policies, "policies", token=("marker", "nextMarker"))
              if item["policyName"] in {scope.names.config.device_policy_name(thing) for thing in scope.thing_names}
              or item["policyName"].startswith(prefix)]
    found += [Leftover("role alias", alias)
              for alias in paginate(iot.list_role_aliases, "roleAliases", token=("marker", "nextMarker"))
              if alias == scope.names.config.role_alias_name or alias.startswith(prefix)]
    found += [Leftover("iam role", role["RoleName"])
              for role in paginate(clients.iam.list_roles, "Roles", token=("Marker", "Marker"))
              if role["RoleName"].startswith(f"{STACK_NAME}-")
              or role["RoleName"] == scope.names.config.token_exchange_role_name
              or (scope.outputs and role["RoleName"] == scope.outputs.token_exchange_role_name)]
    found += [Leftover("lambda function", function) for function in scope.names.function_names
              if exists(clients.lambda_.get_function, FunctionName=function)]
    found += [Leftover("component", item["componentName"]) for item in owned_components(clients, scope)]
    found += [Leftover("deployment", f"{item.get('deploymentName', '?')} ({item['deploymentId']}, "
                                     f"{item.get('deploymentStatus', '?')})")
              for item in owned_deployments(clients, scope)]
    found += [Leftover("bucket", bucket) for bucket in app_buckets(clients, scope)]
    found += [Leftover("log group", group) for group in owned_log_groups(clients, scope)]
    return found


def app_buckets(clients: AwsClients, scope: AppScope) -> list[str]:
    """Buckets named in the outputs or tagged rainedge:app=<prefix>."""
    named = scope.outputs.artifact_bucket_name if scope.outputs else None
    buckets = []
    for bucket in call(clients.s3.list_buckets).get("Buckets", []):
        name = bucket["Name"]
        if name == named or _bucket_tag(clients, name) == scope.names.config.name_prefix:
            buckets.append(name)
    return buckets


def _bucket_tag(clients: AwsClients, bucket: str) -> str | None:
    try:
        tags = call(clients.s3.get_bucket_tagging, Bucket=bucket)["TagSet"]
    except ClientError as error:
        # Untagged buckets answer NoSuchTagSet; others' buckets may deny or live elsewhere.
        if error_code(error) in ("NoSuchTagSet", "AccessDenied", "PermanentRedirect", "NoSuchBucket"):
            return None
        raise
    return next((tag["Value"] for tag in tags if tag["Key"] == APP_TAG), None)
