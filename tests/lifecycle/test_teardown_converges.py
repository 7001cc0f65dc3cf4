"""Teardown converges after a failure at any AWS call it makes (issue 15, section 2).

A clean destroy of a fleet account is recorded call by call. Then, for every operation in that record,
at its first and at its last call, a fresh account is torn down with that one call failing (AccessDenied,
throttling that outlasts the retries, or a detach still propagating, in turn), and destroy is run again:
every re-run ends with nothing of the app left, the audit clean, and every foreign resource untouched.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from infra.lifecycle import aws as aws_module
from infra.lifecycle.aws import AwsClients
from infra.lifecycle.destroy import destroy

from .conftest import (ACCOUNT, REGION, THING, FakeAthena, FakeCloudFormation, FakeGreengrassV2, FaultyClients, Faults,
                       exists, put_shadow, shadow_exists)

pytestmark = pytest.mark.slow
SERIALS = ("10000000a1b2c3d4", "10000000deadbeef")
GROUP_ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/rainedge-cores"
# A failure of each kind, in turn: refused, throttled beyond the retries, a detach still propagating.
FAILURES = ("AccessDeniedException", "ThrottlingException", "DeleteConflictException")


@dataclass
class Account:
    clients: AwsClients
    greengrass: FakeGreengrassV2
    deployed: FakeCloudFormation
    foreign: dict[str, str]
    ours: list


def fleet_account(session, app) -> Account:
    """The stack, two provisioned Pis with their shadows and records, and foreign things attached to them."""
    greengrass = FakeGreengrassV2()
    clients = AwsClients(session, overrides={"greengrassv2": greengrass, "athena": FakeAthena()})
    deployed = FakeCloudFormation(clients, app, greengrass)
    deployed.deploy()
    iot = clients.iot
    ours = [deployed.provision(serial) for serial in SERIALS]
    for thing in (THING, *(device.thing_name for device in ours)):
        greengrass.core_devices.add(thing)
        put_shadow(clients.iot_data, thing, "rain")
    clients.logs.create_log_group(logGroupName=f"/aws/greengrass/UserComponent/{REGION}/com.rainedge.Sensor")
    bare = iot.create_keys_and_certificate(setAsActive=True)  # a foreign certificate on our provisioned thing
    iot.attach_thing_principal(thingName=ours[0].thing_name, principal=bare["certificateArn"])
    iot.create_policy(policyName="ops-copy", policyDocument=iot.get_policy(
        policyName=ours[1].policy_name)["policyDocument"])
    iot.attach_policy(policyName="ops-copy", target=ours[1].certificate_arn)  # a foreign policy on our certificate
    lab = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName="ops-copy", target=lab["certificateArn"])
    iot.attach_policy(policyName=ours[0].policy_name, target=lab["certificateArn"])  # our policy on theirs
    iot.create_thing(thingName="rainedge-10000000cafe0001", attributePayload={"attributes": {"rainedge:app": "rainedge"}})
    put_shadow(clients.iot_data, "rainedge-10000000cafe0001", "rain")
    handmade = greengrass.add_component("com.rainedge.Sensor", "9.9.9-handmade")
    greengrass.add_deployment("handmade", "rainedge-deployment", GROUP_ARN)
    return Account(clients, greengrass, deployed, {"bare": bare["certificateId"], "lab": lab["certificateId"],
                                                  "component": handmade}, ours)


def problems(account: Account) -> list[str]:
    """What is wrong after the re-run: anything of ours left, or anything foreign touched."""
    iot, found = account.clients.iot, []
    for device in account.ours:
        if exists(iot.describe_certificate, certificateId=device.certificate_id):
            found.append(f"our certificate {device.certificate_id} is left")
        for describe, params in ((iot.describe_thing, {"thingName": device.thing_name}),
                                 (iot.get_policy, {"policyName": device.policy_name})):
            if exists(describe, **params):
                found.append(f"ours is left: {params}")
    for key in ("bare", "lab"):
        if iot.describe_certificate(certificateId=account.foreign[key])["certificateDescription"]["status"] != "ACTIVE":
            found.append(f"foreign certificate {key} was changed")
    lab_arn = iot.describe_certificate(certificateId=account.foreign["lab"])["certificateDescription"]["certificateArn"]
    if [item["policyName"] for item in iot.list_attached_policies(target=lab_arn)["policies"]] != ["ops-copy"]:
        found.append("the foreign policy lost its foreign certificate")
    if not shadow_exists(account.clients.iot_data, "rainedge-10000000cafe0001", "rain"):
        found.append("the attribute look-alike lost its shadow")
    if account.foreign["component"] not in account.greengrass.versions or "handmade" not in account.greengrass.deployments:
        found.append("a hand-made component version or deployment was deleted")
    if exists(account.clients.dynamodb.describe_table, TableName="rainedge-ledger"):
        found.append("the ledger table is left")
    return found


@pytest.fixture
def no_waiting(monkeypatch):
    monkeypatch.setattr(aws_module.time, "sleep", lambda seconds: None)


@pytest.fixture
def fresh_account(aws_env, app_default, names, no_waiting):
    """Makes a new moto account each time (the previous one is dropped: moto resets when its mock starts)."""
    running: list = []

    def make() -> tuple[Account, Path]:
        if running:
            running.pop().stop()
        mocked = mock_aws()
        mocked.start()
        running.append(mocked)
        return (fleet_account(boto3.session.Session(region_name=REGION), app_default),
                names.project_root / "build" / "stack-outputs.json")
    yield make
    for mocked in running:
        mocked.stop()


def recorded_calls(fresh_account, names) -> list[tuple[str, str]]:
    account, state = fresh_account()
    faults = Faults()
    assert destroy(FaultyClients(account.clients, faults), names, state, account.deployed.cdk,
                   echo=lambda _: None) == []
    assert problems(account) == []
    return faults.calls


def test_a_clean_teardown_touches_nothing_foreign(fresh_account, names):
    calls = recorded_calls(fresh_account, names)
    assert ("dynamodb", "delete_item") in calls and ("iot", "delete_certificate") in calls


def test_teardown_converges_after_a_failure_at_any_of_its_calls(fresh_account, names):
    calls = recorded_calls(fresh_account, names)
    first = {call: index for index, call in reversed(list(enumerate(calls)))}
    last = {call: index for index, call in enumerate(calls)}
    failing_at = sorted(set(first.values()) | set(last.values()))
    failures: list[str] = []
    for turn, index in enumerate(failing_at):
        account, state = fresh_account()
        code = FAILURES[turn % len(FAILURES)]
        # Throttling must outlast `call`'s six attempts to reach destroy as a failure.
        faults = Faults(at_call=index, code=code)
        if code == "ThrottlingException":
            faults.planned[calls[index]] = [code] * 6
            faults.at_call = None
        try:
            destroy(FaultyClients(account.clients, faults), names, state, account.deployed.cdk, echo=lambda _: None)
        except ClientError:
            pass  # the failure reached the user: the re-run must finish the job
        leftovers = destroy(account.clients, names, state, account.deployed.cdk, echo=lambda _: None)
        wrong = [*(f"left after the re-run: {item}" for item in leftovers), *problems(account)]
        if wrong:
            failures.append(f"{code} at call {index} {calls[index]}: {'; '.join(wrong)}")
    assert failures == [], "\n".join(failures)
    assert len(failing_at) >= 2 * 20  # every operation of a fleet teardown, first and last call
