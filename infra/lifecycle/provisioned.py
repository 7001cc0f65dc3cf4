"""Devices that joined by fleet provisioning, removed from the ledger's record; and the claim they joined with.

The pre-provisioning hook records each device before it is made (infra/ledger.py): its thing, every
certificate AWS IoT created for it from the device's CSR, and its policy. What the record names is the
app's and is deleted; whatever else is attached to it (a certificate, a policy, another thing) is only
detached and left. The order keeps a device unable to act while it is removed: its certificates are
deactivated and emptied of every attachment first, then its shadows and core-device record go, then
its policy, then its thing; the record goes last, so a re-run after a failure anywhere resumes.
"""
from __future__ import annotations

from typing import Callable

from infra.greengrass import SHADOW_NAMES
from infra.lifecycle.aws import MARKER, AwsClients, LifecycleError, call, call_unless_gone, delete_if_present, paginate
from infra.lifecycle.ledger import Entry, Ledger, forget
from infra.lifecycle.outputs import StackOutputs

# DetachThingPrincipal "is asynchronous. It might take several seconds for the detachment to
# propagate" (AWS IoT API reference): until then DeleteCertificate and DeleteThing refuse.
DETACHING = frozenset({"DeleteConflictException", "InvalidRequestException"})


def remove_recorded_device(clients: AwsClients, ledger: Ledger, entry: Entry, echo: Callable[[str], None]) -> None:
    """Delete what the ledger records for one device, detach everything else from it, then forget it."""
    for certificate_id in entry.certificate_ids:
        _retire_certificate(clients, certificate_id, entry.thing_name, echo)
    delete_device_records(clients, entry.thing_name, echo)
    _delete_own_policy(clients, entry.policy_name, echo)
    _delete_own_thing(clients, entry.thing_name, echo)
    forget(clients, ledger, entry, echo)


def delete_device_records(clients: AwsClients, thing: str, echo: Callable[[str], None]) -> None:
    """The named shadows and the Greengrass core-device record a device made under its thing name."""
    for shadow in SHADOW_NAMES:
        if delete_if_present(clients.iot_data.delete_thing_shadow, thingName=thing, shadowName=shadow):
            echo(f"deleted shadow {thing}/{shadow}")
    if delete_if_present(clients.greengrassv2.delete_core_device, coreDeviceThingName=thing):
        echo(f"deleted Greengrass core device {thing}")


def _retire_certificate(clients: AwsClients, certificate_id: str, thing: str, echo: Callable[[str], None]) -> None:
    arn = certificate_arn(clients, certificate_id)
    if arn is not None:
        delete_certificate(clients, certificate_id, arn, echo)
        echo(f"deleted certificate {certificate_id} of {thing}")


def _delete_own_policy(clients: AwsClients, policy: str, echo: Callable[[str], None]) -> None:
    iot = clients.iot
    if call_unless_gone(iot.get_policy, policyName=policy) is None:
        return
    for target in paginate(iot.list_targets_for_policy, "targets", token=MARKER, policyName=policy):
        call_unless_gone(iot.detach_policy, policyName=policy, target=target)
        echo(f"detached policy {policy} from {target}: not the app's, left")
    delete_policy(clients, policy)
    echo(f"deleted policy {policy}")


def _delete_own_thing(clients: AwsClients, thing: str, echo: Callable[[str], None]) -> None:
    iot = clients.iot
    if call_unless_gone(iot.describe_thing, thingName=thing) is None:
        return
    for principal in paginate(iot.list_thing_principals, "principals", thingName=thing):
        call_unless_gone(iot.detach_thing_principal, thingName=thing, principal=principal)
        echo(f"detached {principal} from {thing}: not the app's, left")
    if delete_if_present(iot.delete_thing, thingName=thing, retry_codes=DETACHING):
        echo(f"deleted provisioned thing {thing}")


def delete_policy(clients: AwsClients, policy: str) -> None:
    """A policy is deleted with its versions; the default one goes with the policy (DeletePolicy)."""
    for version in paginate(clients.iot.list_policy_versions, "policyVersions", policyName=policy):
        if not version["isDefaultVersion"]:
            call_unless_gone(clients.iot.delete_policy_version, policyName=policy, policyVersionId=version["versionId"])
    call_unless_gone(clients.iot.delete_policy, policyName=policy)


def delete_certificate(clients: AwsClients, certificate_id: str, arn: str, echo: Callable[[str], None]) -> None:
    """Deactivate first (the device stops), detach every policy and thing, delete: DeleteCertificate requires
    an INACTIVE certificate with nothing attached (AWS IoT API reference)."""
    iot = clients.iot
    call_unless_gone(iot.update_certificate, certificateId=certificate_id, newStatus="INACTIVE")
    for policy in paginate(iot.list_attached_policies, "policies", token=MARKER, target=arn):
        call_unless_gone(iot.detach_policy, policyName=policy["policyName"], target=arn)
        echo(f"detached policy {policy['policyName']} from certificate {certificate_id}")
    for attached in paginate(iot.list_principal_things, "things", principal=arn):
        call_unless_gone(iot.detach_thing_principal, thingName=attached, principal=arn)
        echo(f"detached thing {attached} from certificate {certificate_id}")
    call_unless_gone(iot.delete_certificate, certificateId=certificate_id, retry_codes=DETACHING)


# ---- the claim ----------------------------------------------------------------------------------
def proven_claim(clients: AwsClients, outputs: StackOutputs) -> tuple[str, str] | None:
    """(certificate id, its status) of the claim the outputs name, once proven to be the claim: the stack's
    claim policy is attached to it and nothing else is (no other policy, no thing). None: it no longer exists.
    Anything else is refused: the outputs name a certificate that is not the claim."""
    claim_id = outputs.fleet.claim_certificate_id
    described = call_unless_gone(clients.iot.describe_certificate, certificateId=claim_id)
    if described is None:
        return None
    arn = described["certificateDescription"]["certificateArn"]
    policies = {item["policyName"] for item in paginate(clients.iot.list_attached_policies, "policies",
                                                        token=MARKER, target=arn)}
    things = paginate(clients.iot.list_principal_things, "things", principal=arn)
    if policies != {outputs.fleet.claim_policy_name} or things:
        found = ", ".join([*(f"policy {name}" for name in sorted(policies)), *(f"thing {name}" for name in things)])
        raise LifecycleError(f"certificate {claim_id} (ClaimCertificateId) is not provably the claim: it should carry "
                             f"the policy {outputs.fleet.claim_policy_name} only, and carries {found or 'nothing'}; "
                             "nothing was changed (check the saved outputs in build/stack-outputs.json)")
    return claim_id, described["certificateDescription"]["status"]


def deactivate_claim(clients: AwsClients, outputs: StackOutputs) -> str:
    """Set the proven claim certificate INACTIVE, so that no more devices can join; says what it found."""
    proven = proven_claim(clients, outputs)
    if proven is None:
        return f"the claim certificate {outputs.fleet.claim_certificate_id} no longer exists"
    claim_id, status = proven
    if status == "INACTIVE":
        return f"the claim certificate {claim_id} is already INACTIVE"
    call(clients.iot.update_certificate, certificateId=claim_id, newStatus="INACTIVE")
    return f"deactivated the claim certificate {claim_id} (was {status}): no device can join with it any more"


def delete_claim(clients: AwsClients, outputs: StackOutputs, echo: Callable[[str], None]) -> None:
    """The claim certificate, when CloudFormation left it (it is a stack resource)."""
    claim_id = outputs.fleet.claim_certificate_id
    arn = certificate_arn(clients, claim_id)
    if arn is not None:
        delete_certificate(clients, claim_id, arn, echo)
        echo(f"deleted the claim certificate {claim_id}")


def certificate_arn(clients: AwsClients, certificate_id: str) -> str | None:
    described = call_unless_gone(clients.iot.describe_certificate, certificateId=certificate_id)
    return described["certificateDescription"]["certificateArn"] if described else None

