"""destroy: remove what CloudFormation cannot, `cdk destroy`, sweep, then audit.

It acts only on what scope.py proves is this app's (the stack's outputs and the ledger's records), and
refuses before changing anything when the stack named RainEdge here is not the app's or the saved
outputs belong to another region. Order matters: the outputs are read (and saved) first because they
vanish with the stack; the claim certificate, once proven to be the claim, is deactivated so that no
device joins meanwhile; attachments made outside the template are undone before `cdk destroy` because
they make the certificate and thing deletes fail; provisioned devices are removed entry by entry from
the ledger, which outlives the stack until it is empty; shadows and core-device records are removed
after `cdk destroy` too, because a still-running device can re-create them until its certificate is gone.
Every step treats "already gone" as done and every record stays until what it names is gone, so
re-running after a failure anywhere finishes the job.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Sequence

from infra.config import STACK_NAME
from infra.lifecycle import outputs as stack_outputs
from infra.lifecycle.audit import (Leftover, audit, not_ours, owned_component_versions, owned_deployments,
                                   owned_log_groups)
from infra.lifecycle.aws import (MARKER, AwsClients, LifecycleError, call, call_unless_gone, delete_if_present, exists,
                                 paginate)
from infra.lifecycle.ledger import delete_empty_ledger
from infra.lifecycle.provisioned import (certificate_arn, deactivate_claim, delete_device_records,
                                         remove_recorded_device)
from infra.lifecycle.scope import AppScope, Refusal, app_scope, find_app_stack, group_members, owned_lake_bucket
from infra.lifecycle.settings import AppNames

CdkRunner = Callable[[Sequence[str]], int]


def run_cdk(cdk: str, region: str) -> CdkRunner:
    """The CDK CLI, pinned to the region the ownership checks ran in."""
    executable = shutil.which(cdk)
    if executable is None:
        raise LifecycleError(f"--cdk {cdk}: no such executable; run `make setup` to install the CDK CLI "
                             "into node_modules/.bin, or pass the path of yours")

    def run(args: Sequence[str]) -> int:
        # The CDK CLI takes its region from the environment (AWS_REGION, AWS_DEFAULT_REGION) before the
        # profile (aws-cdk, lib/api/aws-auth/awscli-compatible: region lookup order).
        env = {**os.environ, "AWS_REGION": region, "AWS_DEFAULT_REGION": region}
        try:
            return subprocess.run([executable, *args], check=False, env=env).returncode
        except OSError as error:
            raise LifecycleError(f"cannot run {executable} ({error.strerror}): "
                                 "pass a working CDK CLI with --cdk") from None
    return run


CANCELLING = frozenset({"ConflictException"})


def detach_outside_attachments(clients: AwsClients, scope: AppScope, echo: Callable[[str], None]) -> None:
    """Undo attachments the template did not make, on the app's own group, certificates, things and
    policies: CloudFormation cannot delete a certificate, thing or policy while something else is
    attached to it (IoT: "Cannot delete. Thing ... is still attached to one or more principals",
    DeleteConflictException for an attached policy; getmoto/moto#2586, rebuy-de/aws-nuke#374).
    Others' things leave the app's group; nothing else about them changes."""
    outputs = scope.outputs
    if outputs is None:
        return
    iot = clients.iot
    for group in outputs.thing_group_names:
        for member in group_members(clients, group):
            if member not in scope.things:
                call_unless_gone(iot.remove_thing_from_thing_group, thingGroupName=group, thingName=member)
                echo(f"removed {member} from thing group {group}")
    # (certificate, its thing, its policy) as the template attaches them; the claim has no thing.
    attachments = [(device.certificate_id, device.thing_name, device.policy_name) for device in outputs.devices]
    if outputs.fleet:
        attachments.append((outputs.fleet.claim_certificate_id, None, outputs.fleet.claim_policy_name))
    for certificate_id, thing_name, policy_name in attachments:
        cert_arn = certificate_arn(clients, certificate_id)
        if cert_arn is not None:
            for thing in paginate(iot.list_principal_things, "things", principal=cert_arn):
                if thing != thing_name:
                    call_unless_gone(iot.detach_thing_principal, thingName=thing, principal=cert_arn)
                    echo(f"detached thing {thing} from certificate {certificate_id}")
            for policy in paginate(iot.list_attached_policies, "policies", token=MARKER, target=cert_arn):
                if policy["policyName"] != policy_name:
                    call_unless_gone(iot.detach_policy, policyName=policy["policyName"], target=cert_arn)
                    echo(f"detached policy {policy['policyName']} from certificate {certificate_id}")
        if thing_name is not None and exists(iot.describe_thing, thingName=thing_name):
            for principal in paginate(iot.list_thing_principals, "principals", thingName=thing_name):
                if principal != cert_arn:
                    call_unless_gone(iot.detach_thing_principal, thingName=thing_name, principal=principal)
                    echo(f"detached {principal} from thing {thing_name}")
        if exists(iot.get_policy, policyName=policy_name):
            for target in paginate(iot.list_targets_for_policy, "targets", token=MARKER, policyName=policy_name):
                if target != cert_arn:
                    call_unless_gone(iot.detach_policy, policyName=policy_name, target=target)
                    echo(f"detached policy {policy_name} from {target}")


def delete_shadows_and_core_devices(clients: AwsClients, scope: AppScope, echo: Callable[[str], None]) -> None:
    for thing in scope.things:
        delete_device_records(clients, thing, echo)


# DeleteObjects takes up to 1,000 keys per request (Amazon S3 API reference, DeleteObjects); ListObjectVersions
# returns up to 1,000 per page.
S3_BATCH = 1000


def delete_lake_bucket(clients: AwsClients, scope: AppScope, echo: Callable[[str], None]) -> None:
    """Empty the lake bucket the stack retained (every object version and delete marker, so a bucket that was
    ever versioned empties too: S3 deletes only an empty bucket) and delete it, by its exact name and only while
    it carries the app's tag (scope.owned_lake_bucket). Each pass deletes what the first page lists, so a re-run
    after a failure simply continues."""
    bucket = owned_lake_bucket(clients, scope)
    if bucket is None:
        return
    s3, removed = clients.s3, 0
    while True:
        listed = call_unless_gone(s3.list_object_versions, Bucket=bucket, MaxKeys=S3_BATCH)
        if listed is None:
            return
        objects = [{"Key": item["Key"], "VersionId": item["VersionId"]}
                   for item in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]]
        if not objects:
            break
        errors = call(s3.delete_objects, Bucket=bucket, Delete={"Objects": objects, "Quiet": True}).get("Errors", [])
        if errors:
            raise LifecycleError(f"S3 refused to delete {len(errors)} objects of the lake bucket {bucket} "
                                 f"({errors[0].get('Code')}: {errors[0].get('Message')}): fix that, then run "
                                 "`make destroy` again")
        removed += len(objects)
    if delete_if_present(s3.delete_bucket, Bucket=bucket):
        echo(f"deleted the lake bucket {bucket} ({removed} objects and versions)")


def sweep_after_stack(clients: AwsClients, scope: AppScope, echo: Callable[[str], None]) -> None:
    """What outlives the stack: device-made shadows and records, the stack's own deployment and component
    versions if CloudFormation left them (by exact id and ARN), the log groups the devices created, the
    lake bucket CloudFormation retains, and the retained ledger once it is empty."""
    delete_shadows_and_core_devices(clients, scope, echo)
    gg = clients.greengrassv2
    for deployment in owned_deployments(clients, scope):
        if deployment.get("deploymentStatus") == "ACTIVE":
            delete_if_present(gg.cancel_deployment, deploymentId=deployment["deploymentId"])
        # "To delete an active deployment, you must first cancel it" (GreengrassV2 DeleteDeployment), and a
        # cancellation takes effect after the call returns: a ConflictException meanwhile is retried (~15 s).
        if delete_if_present(gg.delete_deployment, deploymentId=deployment["deploymentId"],
                             retry_codes=CANCELLING):
            echo(f"deleted deployment {deployment['deploymentId']}")
    for arn in owned_component_versions(clients, scope):
        if delete_if_present(gg.delete_component, arn=arn):
            echo(f"deleted component version {arn}")
    for group in owned_log_groups(clients, scope):
        if delete_if_present(clients.logs.delete_log_group, logGroupName=group):
            echo(f"deleted log group {group}")
    delete_lake_bucket(clients, scope, echo)
    delete_empty_ledger(clients, scope.ledger, echo)


def destroy(clients: AwsClients, names: AppNames, state_file: Path, cdk: CdkRunner,
            echo: Callable[[str], None] = print) -> list[Leftover]:
    """Tear everything down; returns what the final audit still finds (empty = clean)."""
    app = find_app_stack(clients, names, state_file)
    if app.foreign:
        raise Refusal(f"{app.foreign}: it is not this app's, so destroy leaves it alone; nothing was changed")
    if app.live:
        stack_outputs.save(app.live, state_file)
        echo(f"saved the stack outputs to {state_file} (a re-run after a failure reads them)")
    scope = app_scope(clients, names, app, echo)
    if scope.outputs is None:
        echo("no stack outputs (live or saved): cleaning up what the ledger records only")

    if scope.outputs is not None and scope.outputs.fleet is not None:
        try:
            echo(deactivate_claim(clients, scope.outputs))  # no device joins while the app is being removed
        except LifecycleError as refusal:
            echo(f"left the claim certificate as it is: {refusal}")
    if app.live:  # only the live stack's resources can make CloudFormation's deletes fail
        detach_outside_attachments(clients, scope, echo)
    delete_shadows_and_core_devices(clients, scope, echo)
    for entry in scope.ledger.entries:
        remove_recorded_device(clients, scope.ledger, entry, echo)
    if app.stack is not None:
        echo(f"running cdk destroy {STACK_NAME} in {clients.region}")
        code = cdk(["destroy", "--force", STACK_NAME])
        if code != 0:
            echo(f"cdk destroy exited {code}; fix the cause and run `make destroy` again")
    if stack_outputs.describe_stack(clients.cloudformation) is None:
        sweep_after_stack(clients, scope, echo)

    leftovers = audit(clients, scope)
    for lookalike in not_ours(clients, scope):
        echo(f"not ours, left: {lookalike}")
    if not leftovers and state_file.exists():
        state_file.unlink()
        echo(f"removed {state_file}: the audit in {clients.region} found nothing left")
    return leftovers

