"""audit: what of this app is still in the account, by exact name and proven ownership (scope.py).

A look-alike (another app's resource sharing a prefix, another case, another region) is never
reported: the audit only asks about names the stack's outputs give, things the scope proved, and
the stack itself while it carries the app's tag.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.config import STACK_NAME
from infra.greengrass import SHADOW_NAMES
from infra.lifecycle.aws import AwsClients, call, exists, paginate
from infra.lifecycle.outputs import app_tag, describe_stack
from infra.lifecycle.provisioned import device_policies
from infra.lifecycle.scope import AppScope


@dataclass(frozen=True)
class Leftover:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.name}"


def owned_deployments(clients: AwsClients, scope: AppScope) -> list[dict[str, Any]]:
    if scope.outputs is None:
        return []
    return [item for item in paginate(clients.greengrassv2.list_deployments, "deployments", historyFilter="ALL")
            if scope.owns_deployment(item)]


def owned_components(clients: AwsClients, scope: AppScope) -> list[dict[str, Any]]:
    if not scope.component_names:
        return []
    return [item for item in paginate(clients.greengrassv2.list_components, "components", scope="PRIVATE")
            if item["componentName"] in scope.component_names]


def owned_log_groups(clients: AwsClients, scope: AppScope) -> list[str]:
    # The API filters by prefix only; the name must then match exactly.
    return [name for name in scope.log_group_names
            if any(group["logGroupName"] == name for group in paginate(
                clients.logs.describe_log_groups, "logGroups", logGroupNamePrefix=name))]


def audit(clients: AwsClients, scope: AppScope) -> list[Leftover]:
    found: list[Leftover] = []
    iot = clients.iot
    stack = describe_stack(clients.cloudformation)
    if stack is not None and app_tag(stack) == scope.name_prefix:
        found.append(Leftover("stack", STACK_NAME))
    certificate_ids = dict.fromkeys(scope.certificate_ids)
    for thing in scope.things:
        if exists(iot.describe_thing, thingName=thing):
            found.append(Leftover("thing", thing))
            # Certificates of the app's surviving things, found even without saved outputs, and the
            # policies provisioning made for them.
            for principal in paginate(iot.list_thing_principals, "principals", thingName=thing):
                if ":cert/" in principal:
                    certificate_ids[principal.rsplit("/", 1)[-1]] = None
                    if thing in scope.provisioned:
                        own, _ = device_policies(clients, principal, thing, scope.outputs.role_alias_name)
                        found += [Leftover("iot policy", f"{name} (of {thing})") for name in own]
        for shadow in SHADOW_NAMES:
            if exists(clients.iot_data.get_thing_shadow, thingName=thing, shadowName=shadow):
                found.append(Leftover("shadow", f"{thing}/{shadow}"))
        if exists(clients.greengrassv2.get_core_device, coreDeviceThingName=thing):
            found.append(Leftover("core device", thing))
    found += [Leftover("certificate", cert_id) for cert_id in certificate_ids
              if exists(iot.describe_certificate, certificateId=cert_id)]
    found += _named_in_outputs(clients, scope)
    found += [Leftover("component", item["componentName"]) for item in owned_components(clients, scope)]
    found += [Leftover("deployment", f"{item.get('deploymentName', '?')} ({item['deploymentId']}, "
                                     f"{item.get('deploymentStatus', '?')})")
              for item in owned_deployments(clients, scope)]
    found += [Leftover("log group", group) for group in owned_log_groups(clients, scope)]
    return found


def _named_in_outputs(clients: AwsClients, scope: AppScope) -> list[Leftover]:
    """Each stack resource the outputs name, while it exists."""
    outputs = scope.outputs
    if outputs is None:
        return []
    iot = clients.iot
    # (kind, exact name, the describe call, its name parameter)
    checks = [
        ("thing group", outputs.thing_group_name, iot.describe_thing_group, "thingGroupName"),
        *[("iot policy", device.policy_name, iot.get_policy, "policyName") for device in outputs.devices],
        *([("iot policy", outputs.fleet.claim_policy_name, iot.get_policy, "policyName")] if outputs.fleet else []),
        ("role alias", outputs.role_alias_name, iot.describe_role_alias, "roleAlias"),
        ("iam role", outputs.token_exchange_role_name, clients.iam.get_role, "RoleName"),
        *[("lambda function", name, clients.lambda_.get_function, "FunctionName") for name in outputs.function_names],
        ("bucket", outputs.artifact_bucket_name, clients.s3.get_bucket_location, "Bucket"),
    ]
    if outputs.monitoring:
        watch = outputs.monitoring
        checks += [
            ("sns topic", watch.alarm_topic_arn, clients.sns.get_topic_attributes, "TopicArn"),
            ("eventbridge rule", watch.event_rule_name, clients.events.describe_rule, "Name"),
            ("dashboard", watch.dashboard_name, clients.cloudwatch.get_dashboard, "DashboardName"),
        ]
    found = [Leftover(kind, name) for kind, name, describe, key in checks if exists(describe, **{key: name})]
    if outputs.monitoring:
        alarms = call(clients.cloudwatch.describe_alarms, AlarmNames=list(outputs.monitoring.alarm_names))
        found += [Leftover("alarm", alarm["AlarmName"]) for alarm in alarms.get("MetricAlarms", [])]
        # Listed rather than described: GetTopicRule does not say "not found" in a documented way.
        rules = {rule["ruleName"] for rule in paginate(iot.list_topic_rules, "rules")}
        found += [Leftover("iot topic rule", name) for name in outputs.monitoring.topic_rule_names if name in rules]
    return found
