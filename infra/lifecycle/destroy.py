"""destroy: remove what CloudFormation cannot, `cdk destroy`, sweep, then audit.

Order matters: the outputs are read (and saved) first because they vanish with the stack;
attachments made outside the template are undone before `cdk destroy` because they make the
certificate and thing-group deletes fail; shadows and core-device records are removed after it
too, because a still-running device can re-create them until its certificate is gone.
Every step treats "already gone" as done, so re-running after a partial failure finishes the job.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable, Sequence

from infra.config import STACK_NAME
from infra.greengrass import SHADOW_NAMES
from infra.lifecycle import outputs as stack_outputs
from infra.lifecycle.audit import AppScope, Leftover, audit, owned_components, owned_deployments, owned_log_groups
from infra.lifecycle.aws import AwsClients, call, call_unless_gone, delete_if_present, exists, paginate
from infra.lifecycle.settings import AppNames

CdkRunner = Callable[[Sequence[str]], int]


def run_cdk_destroy(cdk: str) -> CdkRunner:
    def run(args: Sequence[str]) -> int:
        return subprocess.run([cdk, *args], check=False).returncode
    return run


def detach_outside_attachments(clients: AwsClients, scope: AppScope, echo: Callable[[str], None]) -> None:
    """Undo thing-group memberships and certificate attachments the template did not make."""
    iot = clients.iot
    ours = set(scope.thing_names)
    group = scope.names.config.thing_group_name
    members = (paginate(iot.list_things_in_thing_group, "things", thingGroupName=group)
               if exists(iot.describe_thing_group, thingGroupName=group) else [])
    for member in members:
        if member not in ours:
            call(iot.remove_thing_from_thing_group, thingGroupName=group, thingName=member)
            echo(f"removed {member} from thing group {group}")
    for thing in scope.thing_names:
        for other in _groups_of(clients, thing):
            if other != group:
                call(iot.remove_thing_from_thing_group, thingGroupName=other, thingName=thing)
                echo(f"removed {thing} from thing group {other}")
    if scope.outputs is None:
        return
    for device in scope.outputs.devices:
        cert_arn = _certificate_arn(clients, device.certificate_id)
        if cert_arn is None:
            continue
        for thing in paginate(iot.list_principal_things, "things", principal=cert_arn):
            if thing != device.thing_name:
                call(iot.detach_thing_principal, thingName=thing, principal=cert_arn)
                echo(f"detached thing {thing} from certificate {device.certificate_id}")
        for policy in paginate(iot.list_attached_policies, "policies", token=("marker", "nextMarker"),
                               target=cert_arn):
            if policy["policyName"] != device.policy_name:
                call(iot.detach_policy, policyName=policy["policyName"], target=cert_arn)
                echo(f"detached policy {policy['policyName']} from certificate {device.certificate_id}")


def delete_shadows_and_core_devices(clients: AwsClients, scope: AppScope, echo: Callable[[str], None]) -> None:
    for thing in scope.thing_names:
        for shadow in SHADOW_NAMES:
            if delete_if_present(clients.iot_data.delete_thing_shadow, thingName=thing, shadowName=shadow):
                echo(f"deleted shadow {thing}/{shadow}")
        if delete_if_present(clients.greengrassv2.delete_core_device, coreDeviceThingName=thing):
            echo(f"deleted Greengrass core device {thing}")


def sweep_after_stack(clients: AwsClients, scope: AppScope, echo: Callable[[str], None]) -> None:
    """What outlives the stack: device-made shadows and records, extra deployments and
    component versions, and the log groups the devices created."""
    delete_shadows_and_core_devices(clients, scope, echo)
    gg = clients.greengrassv2
    for deployment in owned_deployments(clients, scope):
        if deployment.get("deploymentStatus") == "ACTIVE":
            delete_if_present(gg.cancel_deployment, deploymentId=deployment["deploymentId"])
        if delete_if_present(gg.delete_deployment, deploymentId=deployment["deploymentId"]):
            echo(f"deleted deployment {deployment['deploymentId']}")
    for component in owned_components(clients, scope):
        for version in paginate(gg.list_component_versions, "componentVersions", arn=component["arn"]):
            if delete_if_present(gg.delete_component, arn=version["arn"]):
                echo(f"deleted component {version['componentName']} {version['componentVersion']}")
    for group in owned_log_groups(clients, scope):
        if delete_if_present(clients.logs.delete_log_group, logGroupName=group):
            echo(f"deleted log group {group}")


def destroy(clients: AwsClients, names: AppNames, state_file: Path, cdk: CdkRunner,
            echo: Callable[[str], None] = print) -> list[Leftover]:
    """Tear everything down; returns what the final audit still finds (empty = clean)."""
    stack = stack_outputs.describe_stack(clients.cloudformation)
    live = stack_outputs.raw_outputs(stack) if stack else {}
    if live:
        stack_outputs.save(live, state_file)
        echo(f"saved the stack outputs to {state_file} (a re-run after a failure reads them)")
    scope = AppScope(names, stack_outputs.load(state_file))
    if scope.outputs is None:
        echo("no stack outputs (live or saved): cleaning up and auditing by the configured names only")

    detach_outside_attachments(clients, scope, echo)
    delete_shadows_and_core_devices(clients, scope, echo)
    if stack is not None:
        echo(f"running cdk destroy {STACK_NAME}")
        code = cdk(["destroy", "--force", STACK_NAME])
        if code != 0:
            echo(f"cdk destroy exited {code}; fix the cause and run `make destroy` again")
    if stack_outputs.describe_stack(clients.cloudformation) is None:
        sweep_after_stack(clients, scope, echo)

    leftovers = audit(clients, scope)
    if not leftovers:
        state_file.unlink(missing_ok=True)
    return leftovers


def _groups_of(clients: AwsClients, thing: str) -> list[str]:
    if not exists(clients.iot.describe_thing, thingName=thing):
        return []
    return [group["groupName"]
            for group in paginate(clients.iot.list_thing_groups_for_thing, "thingGroups", thingName=thing)]


def _certificate_arn(clients: AwsClients, certificate_id: str) -> str | None:
    described = call_unless_gone(clients.iot.describe_certificate, certificateId=certificate_id)
    return described["certificateDescription"]["certificateArn"] if described else None
