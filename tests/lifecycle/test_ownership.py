"""Teardown touches only what it can prove belongs to this app (issue 9, section 1).

An account seeded with look-alikes: the app's prefix with other suffixes, other case, `<prefix>x-`
and `<prefix>2-`, another app `rainedge-prod`, another app's group holding names of ours, a device
named in cdk.json that belongs to another fleet, and the app's own names in a second region.
After destroy (including a run that fails half-way and a re-run), every one of them is still there
and the audit is clean; foreign stacks named RainEdge, saved outputs of another region and a
deployment made with other prefixes are refused or followed as their outputs say.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import pytest
from botocore.exceptions import ClientError

from infra.lifecycle.__main__ import OUTPUTS_FILE, main
from infra.lifecycle.aws import AwsClients
from infra.lifecycle.destroy import destroy
from infra.lifecycle.outputs import save
from infra.lifecycle.scope import Refusal

from .conftest import (ACCOUNT, EXAMPLE_OUTPUTS, OTHER_REGION, REGION, THING, FakeCloudFormation, FaultyClients,
                       Faults, component_arn, create_stack, project_for, put_shadow, shadow_exists, write_fake_cdk)

FOREIGN_DEVICE = "pi-prod-7"  # named in cdk.json, but a thing of another fleet


@dataclass(frozen=True)
class Foreign:
    what: str
    still_there: Callable[[], bool]


def present(describe: Callable[..., object], **params: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            describe(**params)
        except ClientError:
            return False
        return True
    return check


def seed_lookalikes(session, clients: AwsClients) -> list[Foreign]:
    """Resources that resemble the app's but are not provably its; returns how to find each again."""
    iot, logs, iam, s3 = clients.iot, clients.logs, clients.iam, clients.s3
    seeded: list[Foreign] = []

    def thing(name: str, app: str | None = None, client=iot, data=clients.iot_data, region=REGION) -> None:
        client.create_thing(thingName=name, attributePayload={"attributes": {"rainedge:app": app} if app else {}})
        for shadow in ("weather", "rain"):
            put_shadow(data, name, shadow)
            seeded.append(Foreign(f"shadow {name}/{shadow} ({region})",
                                  lambda name=name, shadow=shadow: shadow_exists(data, name, shadow)))
        seeded.append(Foreign(f"thing {name} ({region})", present(client.describe_thing, thingName=name)))

    for name in ("rainedge-core-10", "rainedge-core-1-old", "RainEdge-core-1", "rainedgex-core-1", "rainedge2-core-1",
                 FOREIGN_DEVICE):
        thing(name)
    thing("rainedge-prod-core-1", app="rainedge-prod")
    thing("lab-core", app="RainEdge")  # the app's attribute, another value (case)
    for group in ("rainedge-cores-old", "RainEdge-cores", "rainedge-prod-cores", "prod-fleet"):
        iot.create_thing_group(thingGroupName=group)
        seeded.append(Foreign(f"thing group {group}", present(iot.describe_thing_group, thingGroupName=group)))
    iot.add_thing_to_thing_group(thingGroupName="prod-fleet", thingName=FOREIGN_DEVICE)
    seeded.append(Foreign(f"{FOREIGN_DEVICE} in prod-fleet", lambda: FOREIGN_DEVICE in iot.list_things_in_thing_group(
        thingGroupName="prod-fleet")["things"]))
    document = json.dumps({"Version": "2012-10-17",
                           "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]})
    for policy in ("rainedge-device-rainedge-core-10", "RainEdge-device-rainedge-core-1", "rainedge-core-policy",
                   "rainedge-prod-device-rainedge-prod-core-1"):
        iot.create_policy(policyName=policy, policyDocument=document)
        seeded.append(Foreign(f"iot policy {policy}", present(iot.get_policy, policyName=policy)))
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "credentials.iot.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    roles = {}
    for role in ("RainEdge-Pipeline-CodeBuildRole", "rainedge-prod-tes-role", "rainedge-tes-role-old"):
        roles[role] = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        seeded.append(Foreign(f"iam role {role}", present(iam.get_role, RoleName=role)))
    for alias in ("rainedge-tes-role-alias-old", "rainedge-prod-tes-role-alias"):
        iot.create_role_alias(roleAlias=alias, roleArn=roles["rainedge-prod-tes-role"])
        seeded.append(Foreign(f"role alias {alias}", present(iot.describe_role_alias, roleAlias=alias)))
    for group in ("/aws/lambda/RainEdge-Dashboard-ApiFn", "/aws/lambda/rainedge-sensor-legacy",
                  "/aws/lambda/rainedge-sensorX", "/aws/lambda/rainedge-inference-lab-sensor",
                  f"/aws/greengrass/UserComponent/{REGION}/com.rainedge.staging.Sensor",
                  f"/aws/greengrass/UserComponent/{REGION}/com.rainedge.SensorX",
                  f"/aws/greengrass/UserComponent/{REGION}/com.RainEdge.Sensor",
                  f"/aws/greengrass/GreengrassSystemComponent/{REGION}/System"):
        logs.create_log_group(logGroupName=group)
        seeded.append(Foreign(f"log group {group}", lambda group=group: any(
            item["logGroupName"] == group for item in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"])))
    s3.create_bucket(Bucket="rainedge-prod-artifacts", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_tagging(Bucket="rainedge-prod-artifacts",
                          Tagging={"TagSet": [{"Key": "rainedge:app", "Value": "rainedge-prod"}]})
    seeded.append(Foreign("bucket rainedge-prod-artifacts", present(s3.head_bucket, Bucket="rainedge-prod-artifacts")))

    # The app's own names in a second region: another deployment, not this one.
    other = {service: session.client(service, region_name=OTHER_REGION) for service in ("iot", "iot-data", "logs")}
    thing(THING, app="rainedge", client=other["iot"], data=other["iot-data"], region=OTHER_REGION)
    other_log_group = f"/aws/greengrass/UserComponent/{OTHER_REGION}/com.rainedge.Sensor"
    other["logs"].create_log_group(logGroupName=other_log_group)
    seeded.append(Foreign(f"log group {other_log_group}", lambda: bool(
        other["logs"].describe_log_groups(logGroupNamePrefix=other_log_group)["logGroups"])))
    # A foreign stack of the same name there.
    other_cloudformation = session.client("cloudformation", region_name=OTHER_REGION)
    create_stack(other_cloudformation, EXAMPLE_OUTPUTS, {})
    seeded.append(Foreign(f"stack RainEdge ({OTHER_REGION})", present(other_cloudformation.describe_stacks,
                                                                       StackName="RainEdge")))
    return seeded


def gone(seeded: list[Foreign]) -> list[str]:
    return [item.what for item in seeded if not item.still_there()]


# GreengrassV2 look-alikes: components and deployments that are not the app's.
FOREIGN_COMPONENTS = ("com.rainedge.staging.Sensor", "com.rainedge.SensorX", "com.RainEdge.Sensor",
                      "com.rainedgex.Sensor", "com.wx.Sensor")


def deployment(deployment_id: str, target: str, name: str = "rainedge-deployment") -> dict:
    return {"targetArn": f"arn:aws:iot:{REGION}:{ACCOUNT}:{target}", "revisionId": "1", "deploymentId": deployment_id,
            "deploymentName": name, "creationTimestamp": datetime(2026, 11, 26, tzinfo=timezone.utc),
            "deploymentStatus": "ACTIVE", "isLatestForTarget": True}


FOREIGN_DEPLOYMENTS = [deployment("prod-1", "thinggroup/prod-fleet"),  # our deployment name, their group
                       deployment("old-1", "thinggroup/rainedge-cores-old"),
                       deployment("lab-1", f"thing/{THING}", name="lab")]


def run(clients, names, *command: str) -> int:
    return main(["--project-root", str(names.project_root), *command], clients=clients)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def lookalike_project(tmp_path, project_root, app_default):
    """cdk.json also names a device that was never deployed by this app and belongs to another fleet."""
    return project_for(app_default, tmp_path / "project", project_root, devices=[THING, FOREIGN_DEVICE])


def test_destroy_and_audit_leave_every_lookalike_alone_and_converge_after_a_failure(
        session, clients, lookalike_project, app_default, fake_greengrass, capsys):
    names = lookalike_project
    deployed = FakeCloudFormation(clients, app_default, fake_greengrass)
    deployed.deploy()
    seeded = seed_lookalikes(session, clients)
    clients.iot.add_thing_to_thing_group(thingGroupName="prod-fleet", thingName=THING)  # their group, our thing
    put_shadow(clients.iot_data, THING, "weather")
    fake_greengrass.core_devices.add(THING)
    clients.logs.create_log_group(logGroupName=f"/aws/greengrass/UserComponent/{REGION}/com.rainedge.Sensor")
    for name in FOREIGN_COMPONENTS:
        fake_greengrass.add_component(name, "1.0.0")
    handmade = fake_greengrass.add_component("com.rainedge.Sensor", "1.0.1")  # our name, not our version
    for item in FOREIGN_DEPLOYMENTS:
        fake_greengrass.add_deployment(item["deploymentId"], item["deploymentName"], item["targetArn"])
    state = names.project_root / OUTPUTS_FILE

    # First run: the stack goes, then the sweep is refused half-way.
    faulty = FaultyClients(clients, Faults(planned={("logs", "delete_log_group"): ["AccessDeniedException"]}))
    with pytest.raises(ClientError, match="AccessDenied"):
        destroy(faulty, names, state, deployed.cdk, echo=lambda _: None)
    assert gone(seeded) == []

    # The re-run converges.
    assert destroy(clients, names, state, deployed.cdk, echo=lambda _: None) == []
    assert not state.exists()
    assert gone(seeded) == []
    assert not shadow_exists(clients.iot_data, THING, "weather")
    assert set(fake_greengrass.versions) == {handmade, *(component_arn(name, "1.0.0") for name in FOREIGN_COMPONENTS)}
    assert set(fake_greengrass.deployments) == {item["deploymentId"] for item in FOREIGN_DEPLOYMENTS}

    # The audit of the account that holds only the look-alikes now is clean.
    capsys.readouterr()
    assert run(clients, names, "audit") == 0
    assert "nothing of this app is left" in capsys.readouterr().out


def test_with_no_stack_destroy_touches_no_lookalike(session, clients, lookalike_project, greengrass, tmp_path, capsys):
    """No stack and no saved outputs: nothing is provably the app's, so nothing is deleted
    (the GreengrassV2 stub answers nothing, so any call about a device would fail the test)."""
    seeded = seed_lookalikes(session, clients)
    fake_cdk = write_fake_cdk(tmp_path, tmp_path / "cdk-called")

    assert run(clients, lookalike_project, "destroy", "--cdk", str(fake_cdk)) == 0
    assert gone(seeded) == []
    assert not (tmp_path / "cdk-called").exists()


def test_audit_does_not_report_another_apps_resources(session, clients, names, greengrass, capsys):
    seed_lookalikes(session, clients)
    assert run(clients, names, "audit") == 0
    captured = capsys.readouterr()
    assert "still present" not in captured.err
    assert "nothing of this app is left" in captured.out


def test_a_device_of_cdk_json_is_not_the_apps_by_its_attribute(clients, lookalike_project, capsys):
    clients.iot.create_thing(thingName=FOREIGN_DEVICE, attributePayload={"attributes": {"rainedge:app": "rainedge"}})
    assert run(clients, lookalike_project, "audit") == 0
    assert f"not ours, left: thing {FOREIGN_DEVICE}" in capsys.readouterr().out


def test_a_device_of_cdk_json_is_not_the_apps_by_membership_of_its_group(clients, lookalike_project, app_default,
                                                                         fake_greengrass, tmp_path, capsys):
    deployed = FakeCloudFormation(clients, app_default, fake_greengrass)
    deployed.deploy()
    clients.iot.create_thing(thingName=FOREIGN_DEVICE)
    clients.iot.add_thing_to_thing_group(thingGroupName="rainedge-cores", thingName=FOREIGN_DEVICE)
    put_shadow(clients.iot_data, FOREIGN_DEVICE, "rain")
    assert destroy(clients, lookalike_project, tmp_path / OUTPUTS_FILE, deployed.cdk, echo=lambda _: None) == []
    assert clients.iot.describe_thing(thingName=FOREIGN_DEVICE)
    assert shadow_exists(clients.iot_data, FOREIGN_DEVICE, "rain")


# ---- a stack named RainEdge that is not the app's ----------------------------------------------
@pytest.mark.parametrize("tags, says", [
    ({}, "carries no rainedge:app tag, not rainedge:app=rainedge (the namePrefix in cdk.json)"),
    ({"rainedge:app": "rainedge-prod"}, "carries the tag rainedge:app=rainedge-prod, not rainedge:app=rainedge"),
    ({"team": "pipeline"}, "carries no rainedge:app tag"),
])
@pytest.mark.parametrize("with_outputs", [False, True])
def test_destroy_refuses_a_foreign_stack_of_the_same_name(clients, names, greengrass, tmp_path, capsys, tags, says,
                                                          with_outputs):
    create_stack(clients.cloudformation, EXAMPLE_OUTPUTS if with_outputs else {}, tags)
    state = names.project_root / OUTPUTS_FILE
    fake_cdk = write_fake_cdk(tmp_path, tmp_path / "cdk-called")

    assert run(clients, names, "destroy", "--cdk", str(fake_cdk)) == 2

    line = one_line(capsys.readouterr().err)
    assert says in line and "nothing was changed" in line
    assert not (tmp_path / "cdk-called").exists()
    assert not state.exists()  # its outputs are not saved
    assert clients.cloudformation.describe_stacks(StackName="RainEdge")["Stacks"]


def test_a_foreign_stack_does_not_overwrite_saved_outputs(clients, names, greengrass, tmp_path, capsys):
    state = names.project_root / OUTPUTS_FILE
    save(EXAMPLE_OUTPUTS, state)
    before = state.read_bytes()
    create_stack(clients.cloudformation, {**EXAMPLE_OUTPUTS, "ThingNames": "their-core"}, {})

    assert run(clients, names, "destroy", "--cdk", str(write_fake_cdk(tmp_path, tmp_path / "cdk-called"))) == 2
    assert state.read_bytes() == before
    assert "carries no rainedge:app tag" in one_line(capsys.readouterr().err)


def test_audit_notes_a_foreign_stack_without_counting_it(clients, names, greengrass, capsys):
    create_stack(clients.cloudformation, EXAMPLE_OUTPUTS, {})
    assert run(clients, names, "audit") == 0
    captured = capsys.readouterr()
    assert "not this app's, not counted" in one_line(captured.err)


@pytest.mark.parametrize("command", ["status", "device-setup", "fleet-bundle", "logs", "revoke-claim"])
def test_the_commands_that_read_the_stack_refuse_a_foreign_stack(clients, names, greengrass, capsys, command):
    create_stack(clients.cloudformation, EXAMPLE_OUTPUTS, {"rainedge:app": "other"})
    assert run(clients, names, command) == 2
    assert "it is not this app's stack" in one_line(capsys.readouterr().err)


# ---- region ------------------------------------------------------------------------------------
def test_saved_outputs_of_another_region_are_refused_and_kept(session, clients, names, deployed, greengrass,
                                                               tmp_path, capsys):
    state = names.project_root / OUTPUTS_FILE
    save(deployed.outputs, state)
    elsewhere = AwsClients(session.__class__(region_name=OTHER_REGION), overrides={"greengrassv2": greengrass.client})

    for command in ("destroy", "audit"):
        extra = ["--cdk", str(write_fake_cdk(tmp_path, tmp_path / "cdk-called"))] if command == "destroy" else []
        assert run(elsewhere, names, command, *extra) == 2
        line = one_line(capsys.readouterr().err)
        assert f"records a deployment in {REGION}, but the current region is {OTHER_REGION}" in line
        assert f"AWS_REGION={REGION}" in line
    assert state.is_file()
    certificate_id = deployed.device_certificate().ref
    described = clients.iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
    assert described["status"] == "ACTIVE"
    assert not (tmp_path / "cdk-called").exists()


# ---- deployed with other prefixes than cdk.json's now ------------------------------------------
def test_destroy_follows_the_outputs_of_a_deployment_made_with_other_prefixes(clients, names, app_wx, fake_greengrass):
    """Deployed with `-c namePrefix=wx -c componentPrefix=com.wx` (so the saved outputs say so),
    destroyed with cdk.json's defaults."""
    deployed = FakeCloudFormation(clients, app_wx, fake_greengrass)
    outputs = deployed.deploy()
    state = names.project_root / OUTPUTS_FILE
    save(outputs, state)  # what `cdk deploy --outputs-file` wrote
    log_group = f"/aws/greengrass/UserComponent/{REGION}/com.wx.Sensor"
    clients.logs.create_log_group(logGroupName=log_group)
    fake_greengrass.core_devices.add(THING)
    messages: list[str] = []

    assert destroy(clients, names, state, deployed.cdk, echo=messages.append) == []

    assert any("namePrefix wx and componentPrefix com.wx" in line and "acting on the names in the outputs" in line
               for line in messages)
    assert not clients.logs.describe_log_groups(logGroupNamePrefix=log_group)["logGroups"]
    assert not state.exists()


def test_destroy_refuses_a_deployment_with_other_prefixes_and_no_saved_outputs(clients, names, app_wx, greengrass,
                                                                              fake_greengrass, tmp_path, capsys):
    FakeCloudFormation(clients, app_wx, fake_greengrass).deploy()  # `cdk deploy -c namePrefix=wx ...` without --outputs-file

    assert run(clients, names, "destroy", "--cdk", str(write_fake_cdk(tmp_path, tmp_path / "cdk-called"))) == 2

    line = one_line(capsys.readouterr().err)
    assert "carries the tag rainedge:app=wx, not rainedge:app=rainedge (the namePrefix in cdk.json)" in line
    assert not (tmp_path / "cdk-called").exists()
    assert clients.iot.describe_thing(thingName=THING)


def test_a_stack_whose_outputs_contradict_its_tag_is_refused(clients, names, greengrass, tmp_path, capsys):
    create_stack(clients.cloudformation, {**EXAMPLE_OUTPUTS, "NamePrefix": "wx"}, {"rainedge:app": "rainedge"})
    with pytest.raises(Refusal, match="its NamePrefix output is wx"):
        destroy(clients, names, names.project_root / OUTPUTS_FILE, lambda args: pytest.fail("must not run"),
                echo=lambda _: None)
