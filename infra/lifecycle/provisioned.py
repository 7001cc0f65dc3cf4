"""Devices that joined by fleet provisioning, and the claim certificate they joined with.

The provisioning template (infra/fleet.py) makes, for each Pi: the thing `<prefix>-<serial>` with the
attribute rainedge:app=<prefix> in the app's thing group, a certificate from the Pi's CSR, and a
policy whose document is core_policy_document for that thing, named by AWS IoT with a hash of the
document ("Provisioning templates": "PolicyName ... Defaults to a hash of the policy document").
So a name proves nothing here, and these are the proofs:
- a provisioned thing carries the attribute, is in the app's group, and is named `<prefix>-<serial>`
  for a serial number the pre-provisioning hook accepts (its own `decide`, with SerialNumberPattern);
- its certificate is attached to provisioned things of the app only, and either has the device's own
  policy attached or no policy at all (what a partly finished removal leaves);
- the device's own policy is one whose document is exactly what core_policy_document writes for that
  thing. Any other policy on the certificate is only detached.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Iterable

from infra.core_policy import core_policy_document
from infra.fleet_hook.handler import SERIAL_PARAMETER, decide, thing_name
from infra.lifecycle.aws import MARKER, AwsClients, call, call_unless_gone, delete_if_present, paginate
from infra.lifecycle.outputs import StackOutputs
from infra.lifecycle.settings import AppNames

# DetachThingPrincipal "is asynchronous. It might take several seconds for the detachment to
# propagate" (AWS IoT API reference): until then DeleteCertificate and DeleteThing refuse.
DETACHING = frozenset({"DeleteConflictException", "InvalidRequestException"})


def provisioned_things(outputs: StackOutputs | None, attributed: Iterable[str], members: set[str]) -> tuple[str, ...]:
    """The things that fleet provisioning made for the app (see the module's proofs)."""
    if outputs is None or outputs.fleet is None:
        return ()
    prefix, pattern = outputs.name_prefix, outputs.fleet.serial_number_pattern

    def made_by_template(name: str) -> bool:
        serial = name[len(prefix) + 1:]
        return (name == thing_name(prefix, serial) and name not in outputs.thing_names
                and decide({SERIAL_PARAMETER: serial}, pattern, prefix, lambda _: False)[0])

    return tuple(name for name in attributed if name in members and made_by_template(name))


def device_policy_document(certificate_arn: str, thing: str, role_alias_name: str) -> dict[str, Any]:
    """The document the provisioning template wrote for `thing`, in the certificate's partition,
    region and account (an ARN is arn:partition:service:region:account:resource)."""
    _, partition, _, region, account, _ = certificate_arn.split(":", 5)

    def iot_arn(resource: str, name: str) -> str:
        return f"arn:{partition}:iot:{region}:{account}:{resource}/{name}"
    return core_policy_document(iot_arn, thing, iot_arn("rolealias", role_alias_name))


def device_policies(clients: AwsClients, certificate_arn: str, thing: str,
                    role_alias_name: str) -> tuple[list[str], list[str]]:
    """(the device's own policies, the others) among those attached to the certificate."""
    expected = device_policy_document(certificate_arn, thing, role_alias_name)
    own, others = [], []
    for policy in paginate(clients.iot.list_attached_policies, "policies", token=MARKER, target=certificate_arn):
        described = call_unless_gone(clients.iot.get_policy, policyName=policy["policyName"])
        document = json.loads(described["policyDocument"]) if described else None
        (own if document == expected else others).append(policy["policyName"])
    return own, others


def remove_provisioned_device(clients: AwsClients, outputs: StackOutputs, provisioned: tuple[str, ...], thing: str,
                              echo: Callable[[str], None]) -> None:
    """Delete what the template made for `thing` (its shadows and core-device record go with the app's things)."""
    iot = clients.iot
    for principal in paginate(iot.list_thing_principals, "principals", thingName=thing):
        if ":cert/" in principal and _remove_certificate_if_own(clients, outputs, provisioned, thing, principal, echo):
            continue
        call(iot.detach_thing_principal, thingName=thing, principal=principal)
        echo(f"detached {principal} from {thing}: not the device's own certificate")
    call_unless_gone(iot.remove_thing_from_thing_group, thingGroupName=outputs.thing_group_name, thingName=thing)
    if delete_if_present(iot.delete_thing, thingName=thing, retry_codes=DETACHING):
        echo(f"deleted provisioned thing {thing}")


def _remove_certificate_if_own(clients: AwsClients, outputs: StackOutputs, provisioned: tuple[str, ...], thing: str,
                               certificate_arn: str, echo: Callable[[str], None]) -> bool:
    iot = clients.iot
    certificate_id = certificate_arn.rsplit("/", 1)[-1]
    things = paginate(iot.list_principal_things, "things", principal=certificate_arn)
    own, others = device_policies(clients, certificate_arn, thing, outputs.role_alias_name)
    if any(name not in provisioned for name in things) or (others and not own):
        return False
    for policy in own:
        for target in paginate(iot.list_targets_for_policy, "targets", token=MARKER, policyName=policy):
            call(iot.detach_policy, policyName=policy, target=target)
        delete_policy(clients, policy)
        echo(f"deleted policy {policy} of {thing}")
    for policy in others:
        call(iot.detach_policy, policyName=policy, target=certificate_arn)
        echo(f"detached policy {policy} from the certificate of {thing}: not the device's own")
    delete_certificate(clients, certificate_id, certificate_arn, things)
    echo(f"deleted certificate {certificate_id} of {thing}")
    return True


def delete_policy(clients: AwsClients, policy: str) -> None:
    """A policy is deleted with its versions; the default one goes with the policy (DeletePolicy)."""
    for version in paginate(clients.iot.list_policy_versions, "policyVersions", policyName=policy):
        if not version["isDefaultVersion"]:
            call_unless_gone(clients.iot.delete_policy_version, policyName=policy, policyVersionId=version["versionId"])
    call_unless_gone(clients.iot.delete_policy, policyName=policy)


def delete_certificate(clients: AwsClients, certificate_id: str, arn: str, things: Iterable[str]) -> None:
    """Deactivate, detach from `things`, delete: the order AWS IoT requires (DeleteCertificate)."""
    iot = clients.iot
    call_unless_gone(iot.update_certificate, certificateId=certificate_id, newStatus="INACTIVE")
    for name in things:
        call_unless_gone(iot.detach_thing_principal, thingName=name, principal=arn)
    call_unless_gone(iot.delete_certificate, certificateId=certificate_id, retry_codes=DETACHING)


# ---- the claim ----------------------------------------------------------------------------------
def claim_name(names: AppNames, outputs: StackOutputs) -> str:
    """The claim's key folder and client-id prefix, for the namePrefix the stack was deployed with."""
    return dataclasses.replace(names.config, name_prefix=outputs.name_prefix).claim_name


def deactivate_claim(clients: AwsClients, outputs: StackOutputs) -> str:
    """Set the claim certificate INACTIVE, so that no more devices can join; says what it found."""
    claim_id = outputs.fleet.claim_certificate_id
    described = call_unless_gone(clients.iot.describe_certificate, certificateId=claim_id)
    if described is None:
        return f"the claim certificate {claim_id} no longer exists"
    status = described["certificateDescription"]["status"]
    if status == "INACTIVE":
        return f"the claim certificate {claim_id} is already INACTIVE"
    call(clients.iot.update_certificate, certificateId=claim_id, newStatus="INACTIVE")
    return f"deactivated the claim certificate {claim_id} (was {status}): no device can join with it any more"


def delete_claim(clients: AwsClients, outputs: StackOutputs, echo: Callable[[str], None]) -> None:
    """The claim certificate, when CloudFormation left it: detach whatever is attached, then delete."""
    claim_id = outputs.fleet.claim_certificate_id
    arn = certificate_arn(clients, claim_id)
    if arn is None:
        return
    for policy in paginate(clients.iot.list_attached_policies, "policies", token=MARKER, target=arn):
        call(clients.iot.detach_policy, policyName=policy["policyName"], target=arn)
    delete_certificate(clients, claim_id, arn, paginate(clients.iot.list_principal_things, "things", principal=arn))
    echo(f"deleted the claim certificate {claim_id}")


def certificate_arn(clients: AwsClients, certificate_id: str) -> str | None:
    described = call_unless_gone(clients.iot.describe_certificate, certificateId=certificate_id)
    return described["certificateDescription"]["certificateArn"] if described else None

