"""Devices that joined by fleet provisioning: the hook records each in the ledger before it is made;
destroy removes exactly what the ledger names (thing, certificates, policy, shadows, core-device record),
only detaches what else is attached to it, and touches nothing that merely looks like it; audit names
every recorded leftover, INACTIVE certificates included; revoke-claim deactivates the proven claim only."""
from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from infra.core_policy import core_policy_document
from infra.lifecycle.__main__ import OUTPUTS_FILE, main
from infra.lifecycle.destroy import destroy
from infra.lifecycle.outputs import save

from .conftest import ACCOUNT, REGION, exists, put_shadow, shadow_exists

SERIALS = ("10000000a1b2c3d4", "10000000deadbeef")
LEDGER = "rainedge-ledger"
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})


def iot_arn(resource: str, name: str) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:{resource}/{name}"


def certificate_status(iot, certificate_id: str) -> str | None:
    try:
        return iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"]
    except ClientError:
        return None


def ledger_things(clients) -> list[str]:
    return [item["thingName"]["S"] for item in clients.dynamodb.scan(TableName=LEDGER)["Items"]]


def lookalike(iot, name: str, attributes: dict[str, str], group: str) -> dict[str, str]:
    """A thing that resembles a provisioned one: its own certificate and a policy whose document is
    exactly what the app's hook writes for that name."""
    iot.create_thing(thingName=name, attributePayload={"attributes": attributes})
    if not exists(iot.describe_thing_group, thingGroupName=group):
        iot.create_thing_group(thingGroupName=group)
    iot.add_thing_to_thing_group(thingGroupName=group, thingName=name)
    certificate = iot.create_keys_and_certificate(setAsActive=True)
    document = json.dumps(core_policy_document(iot_arn, name, iot_arn("rolealias", "rainedge-tes-role-alias")))
    policy = f"copy-of-policy-of-{name}"
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
    assert policy["policyName"] == device.policy_name == f"rainedge-device-{device.thing_name}"
    assert json.loads(iot.get_policy(policyName=device.policy_name)["policyDocument"]) == core_policy_document(
        iot_arn, device.thing_name, iot_arn("rolealias", "rainedge-tes-role-alias"))
    assert certificate_status(iot, device.certificate_id) == "ACTIVE"
    assert ledger_things(clients) == [device.thing_name]
    with pytest.raises(ValueError, match="already exists"):  # the hook, as deployed
        deployed.provision(SERIALS[0])
    with pytest.raises(ValueError, match="does not match"):
        deployed.provision("pi-7")
    assert ledger_things(clients) == [device.thing_name]


def test_destroy_removes_what_the_ledger_records_and_leaves_every_lookalike(clients, names, deployed,
                                                                             fake_greengrass):
    iot = clients.iot
    ours = [deployed.provision(serial) for serial in SERIALS]
    for device in ours:
        fake_greengrass.core_devices.add(device.thing_name)
        for shadow in ("weather", "rain"):
            put_shadow(clients.iot_data, device.thing_name, shadow)
    others = [
        lookalike(iot, f"rainedgex-{SERIALS[0]}", {"rainedge:app": "rainedgex"}, "rainedgex-cores"),
        # Named and grouped like a provisioned device, with the very document, but recorded nowhere.
        lookalike(iot, "rainedge-10000000cafef00d", {}, "rainedge-cores"),
        # The app's attribute and a provisioned name, in another group: a copy of the attribute proves nothing.
        lookalike(iot, "rainedge-10000000cafe0001", {"rainedge:app": "rainedge"}, "prod-fleet"),
    ]
    copied = others[2]["thing"]
    fake_greengrass.core_devices.add(copied)
    put_shadow(clients.iot_data, copied, "rain")
    # On our certificate: a foreign policy with the device's very document, also on a foreign certificate.
    iot.create_policy(policyName="ops-copy-of-device-policy", policyDocument=iot.get_policy(
        policyName=ours[0].policy_name)["policyDocument"])
    iot.attach_policy(policyName="ops-copy-of-device-policy", target=ours[0].certificate_arn)
    lab = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName="ops-copy-of-device-policy", target=lab["certificateArn"])
    # On our thing: a foreign certificate with no policy.
    bare = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_thing_principal(thingName=ours[1].thing_name, principal=bare["certificateArn"])
    messages: list[str] = []

    leftovers = destroy(clients, names, names.project_root / OUTPUTS_FILE, deployed.cdk, echo=messages.append)

    assert leftovers == []
    for device in ours:
        assert not exists(iot.describe_thing, thingName=device.thing_name)
        assert certificate_status(iot, device.certificate_id) is None
        assert not exists(iot.get_policy, policyName=device.policy_name)
        assert not shadow_exists(clients.iot_data, device.thing_name, "weather")
        assert device.thing_name not in fake_greengrass.core_devices
    for other in others:
        assert exists(iot.describe_thing, thingName=other["thing"]), other
        assert certificate_status(iot, other["certificate"]) == "ACTIVE", other
        assert exists(iot.get_policy, policyName=other["policy"]), other
    assert shadow_exists(clients.iot_data, copied, "rain") and copied in fake_greengrass.core_devices
    assert certificate_status(iot, bare["certificateId"]) == "ACTIVE"
    assert certificate_status(iot, lab["certificateId"]) == "ACTIVE"
    assert iot.list_attached_policies(target=lab["certificateArn"])["policies"] == [{
        "policyName": "ops-copy-of-device-policy", "policyArn": iot_arn("policy", "ops-copy-of-device-policy")}]
    assert f"not ours, left: thing {copied} (carries rainedge:app=rainedge, recorded nowhere)" in messages
    assert not exists(clients.dynamodb.describe_table, TableName=LEDGER)  # emptied, then deleted
    # No device could join while the app was being removed: the claim went inactive first.
    assert messages.index(next(line for line in messages if line.startswith("deactivated the claim"))) < \
        messages.index(f"deleted provisioned thing {ours[0].thing_name}")


def test_a_retried_registration_leaves_no_certificate_behind(clients, names, deployed):
    """A Pi whose first RegisterThing failed after the hook said yes: its first certificate is recorded too."""
    iot = clients.iot
    first = deployed.provision(SERIALS[0])
    iot.detach_thing_principal(thingName=first.thing_name, principal=first.certificate_arn)
    iot.detach_policy(policyName=first.policy_name, target=first.certificate_arn)
    iot.delete_thing(thingName=first.thing_name)  # as if the template had never made it
    second = deployed.provision(SERIALS[0])
    assert second.certificate_id != first.certificate_id

    assert destroy(clients, names, names.project_root / OUTPUTS_FILE, deployed.cdk, echo=lambda _: None) == []
    assert certificate_status(iot, first.certificate_id) is None
    assert certificate_status(iot, second.certificate_id) is None


def test_audit_reports_every_recorded_leftover_and_inactive_certificates(clients, names, deployed, capsys):
    device = deployed.provision(SERIALS[0])
    clients.iot.update_certificate(certificateId=device.certificate_id, newStatus="INACTIVE")

    assert main(["--project-root", str(names.project_root), "audit"], clients=clients) == 1
    err = capsys.readouterr().err
    for leftover in (f"thing: {device.thing_name}", f"certificate: {device.certificate_id}",
                     f"iot policy: {device.policy_name} (of {device.thing_name})",
                     f"ledger entry: {device.thing_name} (in {LEDGER})", f"ledger table: {LEDGER}",
                     f"certificate: {deployed.outputs['ClaimCertificateId']}", "iot policy: rainedge-claim-policy"):
        assert f"still present: {leftover}" in err


def test_with_the_stack_gone_the_ledger_still_finishes_the_job(clients, names, deployed):
    """Someone ran `cdk destroy` alone: the retained ledger still names the device, group or no group."""
    device = deployed.provision(SERIALS[0])
    state = names.project_root / OUTPUTS_FILE
    save(deployed.outputs, state)
    assert deployed.cdk(["destroy", "--force", "RainEdge"]) == 0
    assert exists(clients.dynamodb.describe_table, TableName=LEDGER)

    assert destroy(clients, names, state, deployed.cdk, echo=lambda _: None) == []
    assert not exists(clients.iot.describe_thing, thingName=device.thing_name)
    assert not exists(clients.dynamodb.describe_table, TableName=LEDGER)
    assert not state.exists()


def test_without_any_outputs_the_tagged_ledger_of_the_exact_name_is_followed(clients, names, deployed):
    device = deployed.provision(SERIALS[0])
    assert deployed.cdk(["destroy", "--force", "RainEdge"]) == 0  # and no outputs were ever saved

    assert destroy(clients, names, names.project_root / OUTPUTS_FILE, deployed.cdk, echo=lambda _: None) == []
    assert not exists(clients.iot.describe_thing, thingName=device.thing_name)


def test_an_untagged_table_of_the_ledgers_name_is_not_followed(clients, names, fake_greengrass):
    clients.dynamodb.create_table(TableName=LEDGER, KeySchema=[{"AttributeName": "thingName", "KeyType": "HASH"}],
                                  AttributeDefinitions=[{"AttributeName": "thingName", "AttributeType": "S"}],
                                  BillingMode="PAY_PER_REQUEST")
    clients.iot.create_thing(thingName=f"rainedge-{SERIALS[0]}")
    clients.dynamodb.put_item(TableName=LEDGER, Item={"thingName": {"S": f"rainedge-{SERIALS[0]}"},
                                                      "policyName": {"S": f"rainedge-device-rainedge-{SERIALS[0]}"}})

    assert destroy(clients, names, names.project_root / OUTPUTS_FILE, lambda args: 0, echo=lambda _: None) == []
    assert exists(clients.iot.describe_thing, thingName=f"rainedge-{SERIALS[0]}")
    assert exists(clients.dynamodb.describe_table, TableName=LEDGER)


def test_a_ledger_item_the_hook_would_not_write_is_reported_and_never_acted_on(clients, names, deployed):
    foreign = lookalike(clients.iot, "lab-core", {}, "lab")
    clients.dynamodb.put_item(TableName=LEDGER, Item={
        "thingName": {"S": "lab-core"}, "policyName": {"S": foreign["policy"]},
        "certificateIds": {"SS": [foreign["certificate"]]}})
    messages: list[str] = []

    destroy(clients, names, names.project_root / OUTPUTS_FILE, deployed.cdk, echo=messages.append)

    assert certificate_status(clients.iot, foreign["certificate"]) == "ACTIVE"
    assert exists(clients.iot.get_policy, policyName=foreign["policy"])
    assert any("lab-core" in line and "not acted on" in line for line in messages)


def test_revoke_claim_deactivates_the_claim_and_nothing_else(clients, names, deployed, capsys):
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


def test_revoke_claim_refuses_a_certificate_it_cannot_prove_is_the_claim(clients, names, deployed, capsys):
    """Saved outputs that name a device's certificate as the claim: it carries a device policy and a thing."""
    device = deployed.provision(SERIALS[0])
    state = names.project_root / OUTPUTS_FILE
    save({**deployed.outputs, "ClaimCertificateId": device.certificate_id}, state)
    assert deployed.cdk(["destroy", "--force", "RainEdge"]) == 0  # the saved outputs are what is left

    assert main(["--project-root", str(names.project_root), "revoke-claim"], clients=clients) == 2
    err = capsys.readouterr().err
    assert "is not provably the claim" in err and f"policy {device.policy_name}" in err
    assert len(err.strip().splitlines()) == 1
    assert certificate_status(clients.iot, device.certificate_id) == "ACTIVE"
