"""audit: what of this app is still in the account, by exact name and proven ownership (scope.py).

A look-alike (another app's resource sharing a prefix, another case, another region, the app's
attribute, another version of an app component) is never reported as a leftover: the audit only asks
about names the stack's outputs and the ledger give, and the stack itself while it carries the app's
tag. `not_ours` names what only looks like the app's, so the user sees it was left on purpose.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.config import APP_TAG, STACK_NAME
from infra.greengrass import SHADOW_NAMES
from infra.lifecycle.aws import AwsClients, call, exists, paginate
from infra.lifecycle.outputs import app_tag, describe_stack
from infra.lifecycle.ledger import read_ledger
from infra.lifecycle.scope import AppScope, attributed_things, owned_lake_bucket


@dataclass(frozen=True)
class Leftover:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.name}"


def owned_deployments(clients: AwsClients, scope: AppScope) -> list[dict[str, Any]]:
    """The stack's own deployments, one per ring (by their ids in the outputs), while they exist."""
    if scope.outputs is None:
        return []
    return [item for item in paginate(clients.greengrassv2.list_deployments, "deployments", historyFilter="ALL")
            if item.get("deploymentId") in scope.outputs.deployment_ids]


def owned_component_versions(clients: AwsClients, scope: AppScope) -> list[str]:
    """The component versions the stack made (their ARNs in the outputs), while they exist."""
    if scope.outputs is None:
        return []
    return [arn for arn in scope.outputs.component_version_arns
            if exists(clients.greengrassv2.describe_component, arn=arn)]


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
    for thing in scope.things:
        if exists(iot.describe_thing, thingName=thing):
            found.append(Leftover("thing", thing))
        for shadow in SHADOW_NAMES:
            if exists(clients.iot_data.get_thing_shadow, thingName=thing, shadowName=shadow):
                found.append(Leftover("shadow", f"{thing}/{shadow}"))
        if exists(clients.greengrassv2.get_core_device, coreDeviceThingName=thing):
            found.append(Leftover("core device", thing))
    # What the ledger recorded when teardown began and what it records now (a device may join meanwhile).
    recorded = read_ledger(clients, scope.name_prefix, scope.ledger.table)
    entries = [*scope.ledger.entries, *(entry for entry in recorded.entries if entry not in scope.ledger.entries)]
    # Every certificate a record names, whatever its status: an INACTIVE one is still there.
    certificate_ids = [*scope.certificate_ids, *(cid for entry in entries for cid in entry.certificate_ids)]
    found += [Leftover("certificate", cert_id) for cert_id in dict.fromkeys(certificate_ids)
              if exists(iot.describe_certificate, certificateId=cert_id)]
    found += [Leftover("iot policy", f"{entry.policy_name} (of {entry.thing_name})") for entry in entries
              if exists(iot.get_policy, policyName=entry.policy_name)]
    found += [Leftover("ledger entry", f"{entry.thing_name} (in {recorded.table})") for entry in recorded.entries]
    if scope.ledger.table is not None and exists(clients.dynamodb.describe_table, TableName=scope.ledger.table):
        found.append(Leftover("ledger table", scope.ledger.table))
    found += _named_in_outputs(clients, scope)
    found += [Leftover("component", arn) for arn in owned_component_versions(clients, scope)]
    found += [Leftover("deployment", f"{item.get('deploymentName', '?')} ({item['deploymentId']}, "
                                     f"{item.get('deploymentStatus', '?')})")
              for item in owned_deployments(clients, scope)]
    found += [Leftover("log group", group) for group in owned_log_groups(clients, scope)]
    return found


def not_ours(clients: AwsClients, scope: AppScope) -> list[str]:
    """What only looks like the app's (its attribute, another version of its component, another deployment to
    its group): named so the user knows teardown saw it and left it, never counted as a leftover."""
    seen = [f"thing {name} (carries {APP_TAG}={scope.name_prefix}, recorded nowhere)"
            for name in attributed_things(clients, scope.name_prefix) if name not in scope.things]
    if scope.outputs is not None:
        recorded = set(scope.outputs.component_version_arns)
        seen += [f"component version {version['arn']}"
                 for component in paginate(clients.greengrassv2.list_components, "components", scope="PRIVATE")
                 if component["componentName"] in scope.component_names
                 for version in paginate(clients.greengrassv2.list_component_versions, "componentVersions",
                                         arn=component["arn"])
                 if version["arn"] not in recorded]
        seen += [f"deployment {item.get('deploymentName', '?')} ({item['deploymentId']}) to {item['targetArn']}"
                 for item in paginate(clients.greengrassv2.list_deployments, "deployments", historyFilter="ALL")
                 if scope.targets_app_group(item) and item.get("deploymentId") not in scope.outputs.deployment_ids]
        lake = scope.outputs.lake
        if lake and exists(clients.s3.get_bucket_location, Bucket=lake.bucket_name) \
                and owned_lake_bucket(clients, scope) is None:
            seen.append(f"bucket {lake.bucket_name} (the outputs' lake bucket, but it lacks {APP_TAG}={scope.name_prefix}:"
                        " its data is not deleted)")
    return seen


def _named_in_outputs(clients: AwsClients, scope: AppScope) -> list[Leftover]:
    """Each stack resource the outputs name, while it exists."""
    outputs = scope.outputs
    if outputs is None:
        return []
    iot = clients.iot
    # (kind, exact name, the describe call, its name parameter)
    checks = [
        *[("thing group", group, iot.describe_thing_group, "thingGroupName") for group in outputs.thing_group_names],
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
    if outputs.lake:
        checks += [("firehose stream", name, clients.firehose.describe_delivery_stream, "DeliveryStreamName")
                   for name in outputs.lake.delivery_stream_names]
    found = [Leftover(kind, name) for kind, name, describe, key in checks if exists(describe, **{key: name})]
    if outputs.monitoring:
        alarms = call(clients.cloudwatch.describe_alarms, AlarmNames=list(outputs.monitoring.alarm_names))
        found += [Leftover("alarm", alarm["AlarmName"]) for alarm in alarms.get("MetricAlarms", [])]
    rule_names = [*(outputs.monitoring.topic_rule_names if outputs.monitoring else ()),
                  *(outputs.lake.topic_rule_names if outputs.lake else ())]
    if rule_names:
        # Listed rather than described: GetTopicRule does not say "not found" in a documented way.
        rules = {rule["ruleName"] for rule in paginate(iot.list_topic_rules, "rules")}
        found += [Leftover("iot topic rule", name) for name in rule_names if name in rules]
    return found + _lake_leftovers(clients, scope)


def _lake_leftovers(clients: AwsClients, scope: AppScope) -> list[Leftover]:
    """The lake's bucket (which CloudFormation retains), Glue database and Athena workgroup. The database and the
    workgroup are listed rather than described: Glue answers a missing database with EntityNotFoundException and
    Athena a missing workgroup with InvalidRequestException, which also means other things."""
    lake = scope.outputs.lake if scope.outputs else None
    if lake is None:
        return []
    found = [Leftover("lake bucket", bucket) for bucket in [owned_lake_bucket(clients, scope)] if bucket]
    if lake.database_name in {item["Name"] for item in paginate(clients.glue.get_databases, "DatabaseList",
                                                                token=("NextToken", "NextToken"))}:
        found.append(Leftover("glue database", lake.database_name))
    if lake.workgroup_name in {item["Name"] for item in paginate(clients.athena.list_work_groups, "WorkGroups",
                                                                 token=("NextToken", "NextToken"))}:
        found.append(Leftover("athena workgroup", lake.workgroup_name))
    return found
