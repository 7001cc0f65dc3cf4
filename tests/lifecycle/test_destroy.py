"""destroy and audit: leftovers found, what CloudFormation cannot remove removed, 'already gone'
is success, throttling retried, and a partial teardown finished by a re-run."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from infra.lifecycle import aws as aws_module
from infra.lifecycle.__main__ import OUTPUTS_FILE, main
from infra.lifecycle.audit import AppScope, Leftover, audit
from infra.lifecycle.destroy import delete_shadows_and_core_devices, destroy
from infra.lifecycle.outputs import load, read_stack_outputs

from .conftest import ACCOUNT, REGION

THING = "rainedge-core-1"
OUTSIDE_THING = "lab-sensor-7"
COMPONENT_ARN = f"arn:aws:greengrass:{REGION}:{ACCOUNT}:components:com.rainedge.Sensor"
FOREIGN_COMPONENT_ARN = f"arn:aws:greengrass:{REGION}:{ACCOUNT}:components:com.other.Thing"
GROUP_ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/rainedge-cores"
APP_LOG_GROUPS = (f"/aws/greengrass/UserComponent/{REGION}/com.rainedge.Sensor",
                  "/aws/lambda/RainEdge-AWS679f53fac002430cb0da5b7982bd22872-abc")
FOREIGN_LOG_GROUP = "/aws/lambda/someone-elses-function"


def deployment(deployment_id: str, name: str, target: str, status: str = "ACTIVE") -> dict:
    return {"targetArn": target, "revisionId": "1", "deploymentId": deployment_id, "deploymentName": name,
            "creationTimestamp": datetime(2026, 11, 26, tzinfo=timezone.utc), "deploymentStatus": status,
            "isLatestForTarget": True}


def component(arn: str, name: str) -> dict:
    return {"arn": arn, "componentName": name}


def put_shadow(clients, thing: str, shadow: str) -> None:
    clients.iot_data.update_thing_shadow(thingName=thing, shadowName=shadow, payload=json.dumps(
        {"state": {"reported": {"temperature": 21.5}}}).encode())


def shadow_exists(clients, thing: str, shadow: str) -> bool:
    try:
        clients.iot_data.get_thing_shadow(thingName=thing, shadowName=shadow)
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ResourceNotFoundException"
        return False
    return True


def device_made_leftovers(clients) -> None:
    """What a running device and the CDK helpers leave that the template does not own."""
    put_shadow(clients, THING, "weather")
    put_shadow(clients, THING, "rain")
    for group in (*APP_LOG_GROUPS, FOREIGN_LOG_GROUP):
        clients.logs.create_log_group(logGroupName=group)


def outside_attachments(clients, deployed) -> None:
    """Memberships and attachments made by hand, outside the template."""
    iot = clients.iot
    cert_arn = deployed.certificates[THING]["arn"]
    iot.create_thing(thingName=OUTSIDE_THING)
    iot.add_thing_to_thing_group(thingGroupName="rainedge-cores", thingName=OUTSIDE_THING)
    iot.create_thing_group(thingGroupName="lab-devices")
    iot.add_thing_to_thing_group(thingGroupName="lab-devices", thingName=THING)
    iot.create_policy(policyName="lab-debug-policy", policyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*"}]}))
    iot.attach_policy(policyName="lab-debug-policy", target=cert_arn)
    iot.attach_thing_principal(thingName=OUTSIDE_THING, principal=cert_arn)


def test_audit_lists_everything_of_the_app_and_nothing_else(clients, names, deployed, greengrass):
    device_made_leftovers(clients)
    outputs = read_stack_outputs(clients.cloudformation)
    clients.s3.create_bucket(Bucket="someone-elses-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    greengrass.answer("get_core_device", {"coreDeviceThingName": THING, "status": "HEALTHY"},
                      {"coreDeviceThingName": THING})
    greengrass.answer("list_components", {"components": [
        component(COMPONENT_ARN, "com.rainedge.Sensor"), component(FOREIGN_COMPONENT_ARN, "com.other.Thing")]})
    greengrass.answer("list_deployments", {"deployments": [
        deployment(outputs.deployment_id, "rainedge-deployment", GROUP_ARN),
        deployment("other-id", "other-deployment", f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/other")]})

    found = {str(item) for item in audit(clients, AppScope(names, outputs))}

    assert found == {
        "stack: RainEdge", f"thing: {THING}", f"shadow: {THING}/weather", f"shadow: {THING}/rain",
        f"core device: {THING}", f"certificate: {deployed.certificates[THING]['id']}",
        "thing group: rainedge-cores", f"iot policy: rainedge-device-{THING}", "role alias: rainedge-tes-role-alias",
        "iam role: rainedge-tes-role", "component: com.rainedge.Sensor",
        f"deployment: rainedge-deployment ({outputs.deployment_id}, ACTIVE)",
        f"bucket: {deployed.bucket}", *(f"log group: {group}" for group in APP_LOG_GROUPS),
    }


def test_cleanup_removes_named_shadows_and_core_device_records(clients, names, deployed, greengrass):
    put_shadow(clients, THING, "weather")
    put_shadow(clients, THING, "rain")
    greengrass.answer("delete_core_device", {}, {"coreDeviceThingName": THING})

    delete_shadows_and_core_devices(clients, AppScope(names, None), echo=lambda _: None)

    assert clients.iot.describe_thing(thingName=THING)  # the thing is CloudFormation's to delete
    assert not shadow_exists(clients, THING, "weather")
    assert not shadow_exists(clients, THING, "rain")


def test_stand_in_cloudformation_fails_on_outside_attachments(clients, deployed):
    """Guards the test below: without destroy's detaching, CloudFormation's delete fails."""
    outside_attachments(clients, deployed)
    assert deployed.cdk(["destroy", "--force", "RainEdge"]) == 1


def test_destroy_removes_everything_and_leaves_others_alone(clients, names, deployed, greengrass, tmp_path):
    outside_attachments(clients, deployed)
    device_made_leftovers(clients)
    state = tmp_path / OUTPUTS_FILE
    outputs_id = "11111111-2222-3333-4444-555555555555"
    greengrass.answer("delete_core_device", {}, {"coreDeviceThingName": THING})
    greengrass.gone("delete_core_device", {"coreDeviceThingName": THING})
    greengrass.answer("list_deployments", {"deployments": [
        deployment(outputs_id, "rainedge-deployment", GROUP_ARN, "ACTIVE"),
        deployment("other-id", "other-deployment", f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/other")]},
        {"historyFilter": "ALL"})
    greengrass.answer("cancel_deployment", {}, {"deploymentId": outputs_id})
    greengrass.answer("delete_deployment", {}, {"deploymentId": outputs_id})
    greengrass.answer("list_components", {"components": [
        component(COMPONENT_ARN, "com.rainedge.Sensor"), component(FOREIGN_COMPONENT_ARN, "com.other.Thing")]},
        {"scope": "PRIVATE"})
    versions = [{"componentName": "com.rainedge.Sensor", "componentVersion": v, "arn": f"{COMPONENT_ARN}:versions:{v}"}
                for v in ("1.0.1", "1.0.2")]
    greengrass.answer("list_component_versions", {"componentVersions": versions}, {"arn": COMPONENT_ARN})
    for version in versions:
        greengrass.answer("delete_component", {}, {"arn": version["arn"]})
    greengrass.clean_audit([THING])

    leftovers = destroy(clients, names, state, deployed.cdk, echo=lambda _: None)

    assert leftovers == []
    assert deployed.calls == [["destroy", "--force", "RainEdge"]]
    assert not state.exists()  # a clean audit retires the saved outputs
    # Only the app's things went: the hand-made thing, group, policy and log group stay.
    assert clients.iot.describe_thing(thingName=OUTSIDE_THING)
    assert clients.iot.describe_thing_group(thingGroupName="lab-devices")
    assert clients.iot.get_policy(policyName="lab-debug-policy")
    assert [g["logGroupName"] for g in clients.logs.describe_log_groups()["logGroups"]] == [FOREIGN_LOG_GROUP]


def test_already_gone_is_success(clients, names, greengrass, tmp_path, monkeypatch, capsys):
    never_called = tmp_path / "cdk-called"
    fake_cdk = write_fake_cdk(tmp_path, never_called)
    for _ in range(2):  # before and after the (skipped) cdk destroy
        greengrass.gone("delete_core_device", {"coreDeviceThingName": THING})
    greengrass.no_deployments_or_components()
    greengrass.clean_audit([THING])

    code = main(["--project-root", str(tmp_path), "destroy", "--cdk", str(fake_cdk)], clients=clients)

    assert code == 0
    assert not never_called.exists()  # no stack: nothing for cdk to do
    assert "nothing of this app is left" in capsys.readouterr().out


def test_throttling_is_retried_with_backoff(clients, names, greengrass, tmp_path, monkeypatch):
    delays: list[float] = []
    monkeypatch.setattr(aws_module.time, "sleep", delays.append)
    greengrass.fail("delete_core_device", "ThrottlingException", {"coreDeviceThingName": THING}, 429)
    greengrass.fail("delete_core_device", "ThrottlingException", {"coreDeviceThingName": THING}, 429)
    greengrass.answer("delete_core_device", {}, {"coreDeviceThingName": THING})
    greengrass.gone("delete_core_device", {"coreDeviceThingName": THING})
    greengrass.no_deployments_or_components()
    greengrass.clean_audit([THING])

    assert destroy(clients, names, tmp_path / "state.json", cdk=lambda args: pytest.fail("no stack"),
                   echo=lambda _: None) == []
    assert delays == [0.5, 1.0]


def test_partial_teardown_is_finished_by_a_rerun(clients, names, deployed, greengrass, tmp_path):
    device_made_leftovers(clients)
    state = tmp_path / OUTPUTS_FILE
    # First run: the stack goes, then the sweep is refused half-way.
    greengrass.answer("delete_core_device", {}, {"coreDeviceThingName": THING})
    greengrass.fail("delete_core_device", "AccessDeniedException", {"coreDeviceThingName": THING}, 403)
    with pytest.raises(ClientError, match="AccessDenied"):
        destroy(clients, names, state, deployed.cdk, echo=lambda _: None)
    assert load(state).devices[0].certificate_id == \
        deployed.certificates[THING]["id"]
    assert clients.logs.describe_log_groups(logGroupNamePrefix="/aws/greengrass/")["logGroups"]

    # Second run: the stack is gone, the saved outputs say what to look for.
    greengrass.answer("delete_core_device", {}, {"coreDeviceThingName": THING})
    greengrass.gone("delete_core_device", {"coreDeviceThingName": THING})
    greengrass.no_deployments_or_components()
    greengrass.clean_audit([THING])
    assert destroy(clients, names, state, deployed.cdk, echo=lambda _: None) == []
    assert deployed.calls == [["destroy", "--force", "RainEdge"]]  # not re-run: the stack was gone
    assert not state.exists()


def test_failed_cdk_destroy_exits_nonzero_and_a_rerun_completes(clients, names, deployed, greengrass, tmp_path,
                                                               capsys):
    fake_cdk = write_fake_cdk(tmp_path, tmp_path / "cdk-args")  # "succeeds" but deletes nothing
    greengrass.answer("delete_core_device", {}, {"coreDeviceThingName": THING})
    greengrass.answer("get_core_device", {"coreDeviceThingName": THING, "status": "UNHEALTHY"})
    greengrass.answer("list_components", {"components": []})
    greengrass.answer("list_deployments", {"deployments": []})

    code = main(["--project-root", str(tmp_path), "destroy", "--cdk", str(fake_cdk)], clients=clients)

    assert code == 1
    assert (tmp_path / "cdk-args").read_text().split() == ["destroy", "--force", "RainEdge"]
    err = capsys.readouterr().err
    assert "still present: stack: RainEdge" in err and f"still present: thing: {THING}" in err
    assert (tmp_path / OUTPUTS_FILE).is_file()

    greengrass.answer("delete_core_device", {}, {"coreDeviceThingName": THING})
    greengrass.gone("delete_core_device", {"coreDeviceThingName": THING})
    greengrass.no_deployments_or_components()
    greengrass.clean_audit([THING])
    assert destroy(clients, names, tmp_path / OUTPUTS_FILE, deployed.cdk, echo=lambda _: None) == []


def test_audit_without_saved_outputs_finds_the_things_certificate(clients, names, greengrass, tmp_path, capsys):
    clients.iot.create_thing(thingName=THING)
    certificate = clients.iot.create_keys_and_certificate(setAsActive=True)
    clients.iot.attach_thing_principal(thingName=THING, principal=certificate["certificateArn"])
    greengrass.clean_audit([THING])

    assert main(["--project-root", str(tmp_path), "audit"], clients=clients) == 1
    err = capsys.readouterr().err
    assert f"still present: thing: {THING}" in err
    assert f"still present: certificate: {certificate['certificateId']}" in err


def write_fake_cdk(folder: Path, record: Path) -> Path:
    script = folder / "fake-cdk"
    script.write_text(f'#!/bin/sh\necho "$@" > {record}\n')
    script.chmod(0o755)
    return script
