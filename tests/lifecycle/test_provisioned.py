"""Devices that joined by fleet provisioning: destroy removes what the provisioning template made for
them (thing, certificate, the hash-named policy, shadows, core-device record, group membership) and
nothing that only looks like it; audit finds their leftovers; revoke-claim deactivates the claim only."""
from __future__ import annotations

import hashlib
import json

import pytest
from botocore.exceptions import ClientError

from infra.core_policy import core_policy_document
from infra.lifecycle.__main__ import OUTPUTS_FILE, main
from infra.lifecycle.destroy import destroy
from infra.lifecycle.outputs import save

from .conftest import ACCOUNT, REGION, THING, put_shadow, shadow_exists

SERIALS = ("10000000a1b2c3d4", "10000000deadbeef")


def iot_arn(resource: str, name: str) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:{resource}/{name}"


def exists(describe, **params) -> bool:
    try:
        describe(**params)
    except ClientError:
        return False
    return True


def certificate_status(iot, certificate_id: str) -> str | None:
    try:
        return iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"]
    except ClientError:
        return None


def expect_destroy(greengrass, things) -> None:
    """The GreengrassV2 calls of a destroy that goes through, in order."""
    for thing in things:
        greengrass.answer("delete_core_device", {}, {"coreDeviceThingName": thing})
    for thing in things:
        greengrass.gone("delete_core_device", {"coreDeviceThingName": thing})
    greengrass.no_deployments_or_components()
    greengrass.clean_audit(things)


def lookalike(iot, name: str, attributes: dict[str, str], group: str) -> dict[str, str]:
    """A thing that resembles a provisioned one: its own certificate and a hash-named policy whose
    document is exactly what the app's template would write for that name."""
    iot.create_thing(thingName=name, attributePayload={"attributes": attributes})
    if not exists(iot.describe_thing_group, thingGroupName=group):
        iot.create_thing_group(thingGroupName=group)
    iot.add_thing_to_thing_group(thingGroupName=group, thingName=name)
    certificate = iot.create_keys_and_certificate(setAsActive=True)
    document = json.dumps(core_policy_document(iot_arn, name, iot_arn("rolealias", "rainedge-tes-role-alias")))
    policy = hashlib.sha256(document.encode()).hexdigest()
    iot.create_policy(policyName=policy, policyDocument=document)
    iot.attach_policy(policyName=policy, target=certificate["certificateArn"])
    iot.attach_thing_principal(thingName=name, principal=certificate["certificateArn"])
    return {"thing": name, "certificate": certificate["certificateId"], "policy": policy}


def test_stand_in_provisions_like_the_template(clients, deployed):
    device = deployed.provision(SERIALS[0])
    iot = clients.iot
    assert device.thing_name == f"rainedge-{SERIALS[0]}"
    assert iot.describe_thing(thingName=device.thing_name)["attributes"] == {"rainedge:app": "rainedge"}
    assert device.thing_name in iot.list_things_in_thing_group(thingGroupName="rainedge-cores")["things"]
    [policy] = iot.list_attached_policies(target=device.certificate_arn)["policies"]
    assert policy["policyName"] == device.policy_name
    assert json.loads(iot.get_policy(policyName=device.policy_name)["policyDocument"]) == core_policy_document(
        iot_arn, device.thing_name, iot_arn("rolealias", "rainedge-tes-role-alias"))
    with pytest.raises(ValueError, match="already exists"):  # the hook, as deployed
        deployed.provision(SERIALS[0])
    with pytest.raises(ValueError, match="does not match"):
        deployed.provision("pi-7")


def test_destroy_removes_provisioned_devices_and_leaves_every_lookalike(clients, names, deployed, greengrass):
    iot = clients.iot
    ours = [deployed.provision(serial) for serial in SERIALS]
    for device in ours:
        for shadow in ("weather", "rain"):
            put_shadow(clients.iot_data, device.thing_name, shadow)
    others = [
        lookalike(iot, f"rainedgex-{SERIALS[0]}", {"rainedge:app": "rainedgex"}, "rainedgex-cores"),
        lookalike(iot, f"rainedge2-{SERIALS[0]}", {}, "rainedge2-cores"),
        # Named and grouped like a provisioned device, with the very document, but without the attribute.
        lookalike(iot, "rainedge-10000000cafef00d", {}, "rainedge-cores"),
    ]
    # The app's attribute and a provisioned name, but not in the app's group: the app's by its attribute
    # (so reported), yet not proven made by the template (so not deleted).
    stray = lookalike(iot, "rainedge-10000000cafe0001", {"rainedge:app": "rainedge"}, "prod-fleet")
    # Another app's policy on one of our provisioned certificates; another certificate on our thing.
    iot.create_policy(policyName="weatherapp-debug", policyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*"}]}))
    iot.attach_policy(policyName="weatherapp-debug", target=ours[0].certificate_arn)
    lab = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName="weatherapp-debug", target=lab["certificateArn"])
    iot.attach_thing_principal(thingName=ours[1].thing_name, principal=lab["certificateArn"])
    expect_destroy(greengrass, [THING, *(device.thing_name for device in ours), stray["thing"]])
    messages: list[str] = []

    leftovers = destroy(clients, names, names.project_root / OUTPUTS_FILE, deployed.cdk, echo=messages.append)

    assert {str(item) for item in leftovers} == {f"thing: {stray['thing']}", f"certificate: {stray['certificate']}"}

    for device in ours:
        assert not exists(iot.describe_thing, thingName=device.thing_name)
        assert certificate_status(iot, device.certificate_id) is None
        assert not exists(iot.get_policy, policyName=device.policy_name)
        assert not shadow_exists(clients.iot_data, device.thing_name, "weather")
    for other in [*others, stray]:
        assert exists(iot.describe_thing, thingName=other["thing"]), other
        assert certificate_status(iot, other["certificate"]) == "ACTIVE", other
        assert exists(iot.get_policy, policyName=other["policy"]), other
    assert exists(iot.get_policy, policyName="weatherapp-debug")
    assert certificate_status(iot, lab["certificateId"]) == "ACTIVE"
    assert iot.list_attached_policies(target=lab["certificateArn"])["policies"] == [{
        "policyName": "weatherapp-debug", "policyArn": iot_arn("policy", "weatherapp-debug")}]
    assert any(f"detached {lab['certificateArn']} from {ours[1].thing_name}" in line for line in messages)
    assert any("detached policy weatherapp-debug from the certificate of" in line for line in messages)
    # No device could join while the app was being removed: the claim went inactive first.
    assert messages.index(next(line for line in messages if line.startswith("deactivated the claim"))) < \
        messages.index(f"deleted provisioned thing {ours[0].thing_name}")


def test_a_partly_removed_device_is_finished_by_a_rerun(clients, names, deployed, greengrass):
    """A run that stopped after the device's policy went: the certificate, attached to the app's
    provisioned thing and to no policy, is still proven the device's."""
    iot = clients.iot
    device = deployed.provision(SERIALS[0])
    iot.detach_policy(policyName=device.policy_name, target=device.certificate_arn)
    iot.delete_policy(policyName=device.policy_name)
    iot.update_certificate(certificateId=device.certificate_id, newStatus="INACTIVE")
    expect_destroy(greengrass, [THING, device.thing_name])

    assert destroy(clients, names, names.project_root / OUTPUTS_FILE, deployed.cdk, echo=lambda _: None) == []
    assert certificate_status(iot, device.certificate_id) is None
    assert not exists(iot.describe_thing, thingName=device.thing_name)


def test_audit_reports_what_a_provisioned_device_left(clients, names, deployed, greengrass, capsys):
    device = deployed.provision(SERIALS[0])
    for thing in (THING, device.thing_name):
        greengrass.gone("get_core_device", {"coreDeviceThingName": thing})
    greengrass.answer("list_components", {"components": []}, {"scope": "PRIVATE"})
    greengrass.answer("list_deployments", {"deployments": []}, {"historyFilter": "ALL"})

    assert main(["--project-root", str(names.project_root), "audit"], clients=clients) == 1
    err = capsys.readouterr().err
    for leftover in (f"thing: {device.thing_name}", f"certificate: {device.certificate_id}",
                     f"iot policy: {device.policy_name} (of {device.thing_name})",
                     f"certificate: {deployed.outputs['ClaimCertificateId']}", "iot policy: rainedge-claim-policy"):
        assert f"still present: {leftover}" in err


def test_without_the_apps_group_a_provisioned_thing_is_reported_not_deleted(clients, names, deployed, greengrass):
    """The stack (and with it the thing group that proves a thing was provisioned for the app) was
    deleted by someone else: the thing is the app's by its attribute, so its shadows and core-device
    record go, but the thing, certificate and policy stay, and the audit names them."""
    device = deployed.provision(SERIALS[0])
    state = names.project_root / OUTPUTS_FILE
    save(deployed.outputs, state)
    clients.iot.remove_thing_from_thing_group(thingGroupName="rainedge-cores", thingName=device.thing_name)
    assert deployed.cdk(["destroy", "--force", "RainEdge"]) == 0
    expect_destroy(greengrass, [THING, device.thing_name])

    leftovers = {str(item) for item in destroy(clients, names, state, deployed.cdk, echo=lambda _: None)}

    assert leftovers == {f"thing: {device.thing_name}", f"certificate: {device.certificate_id}"}
    assert exists(clients.iot.get_policy, policyName=device.policy_name)
    assert state.exists()  # kept until an audit is clean


def test_a_claim_certificate_cloudformation_left_is_deleted(clients, names, deployed, greengrass):
    claim_id = deployed.outputs["ClaimCertificateId"]
    [logical] = [key for key, physical in deployed.physical.items() if physical.ref == claim_id]
    deployed.retained.add(logical)  # CloudFormation leaves it behind
    expect_destroy(greengrass, [THING])
    messages: list[str] = []

    assert destroy(clients, names, names.project_root / OUTPUTS_FILE, deployed.cdk, echo=messages.append) == []
    assert certificate_status(clients.iot, claim_id) is None
    assert f"deleted the claim certificate {claim_id}" in messages


def test_revoke_claim_deactivates_the_claim_and_nothing_else(clients, names, deployed, greengrass, capsys):
    device = deployed.provision(SERIALS[0])
    claim_id = deployed.outputs["ClaimCertificateId"]
    run = ["--project-root", str(names.project_root), "revoke-claim"]

    assert main(run, clients=clients) == 0
    out = capsys.readouterr().out
    assert f"deactivated the claim certificate {claim_id} (was ACTIVE)" in out
    for step in ("rm -r .secrets/rainedge-claim", "make keys", "make deploy", "make fleet-bundle"):
        assert step in out
    assert certificate_status(clients.iot, claim_id) == "INACTIVE"
    assert certificate_status(clients.iot, device.certificate_id) == "ACTIVE"
    assert certificate_status(clients.iot, deployed.device_certificate().ref) == "ACTIVE"
    assert exists(clients.iot.get_policy, policyName="rainedge-claim-policy")
    assert clients.cloudformation.describe_stacks(StackName="RainEdge")["Stacks"]

    assert main(run, clients=clients) == 0  # idempotent
    assert f"the claim certificate {claim_id} is already INACTIVE" in capsys.readouterr().out
