"""destroy and audit on the app's own resources: leftovers found, what CloudFormation cannot remove
removed, 'already gone' is success, throttling retried, and a partial teardown finished by a re-run.
(What they must leave alone is in test_ownership.py.)"""
from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from infra.lifecycle import aws as aws_module
from infra.lifecycle.__main__ import OUTPUTS_FILE, main
from infra.lifecycle.audit import audit
from infra.lifecycle.destroy import delete_shadows_and_core_devices, destroy
from infra.lifecycle.outputs import load, save
from infra.lifecycle.scope import app_scope, find_app_stack

from .conftest import ACCOUNT, REGION, THING, FaultyClients, Faults, put_shadow, shadow_exists, write_fake_cdk

OUTSIDE_THING = "lab-sensor-7"
GROUP_ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/rainedge-cores"
SENSOR_LOG_GROUP = f"/aws/greengrass/UserComponent/{REGION}/com.rainedge.Sensor"
FOREIGN_LOG_GROUP = "/aws/lambda/someone-elses-function"
OTHER_GROUP_ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/other"


def scope_of(clients, names, state_file):
    return app_scope(clients, names, find_app_stack(clients, names, state_file), echo=lambda _: None)


def device_made_leftovers(clients) -> None:
    """What a running device leaves that the template does not own."""
    put_shadow(clients.iot_data, THING, "weather")
    put_shadow(clients.iot_data, THING, "rain")
    for group in (SENSOR_LOG_GROUP, FOREIGN_LOG_GROUP):
        clients.logs.create_log_group(logGroupName=group)


def attach_lab_policy(iot, cert_arn: str, thing: str) -> None:
    iot.create_policy(policyName="lab-debug-policy", policyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*"}]}))
    iot.attach_policy(policyName="lab-debug-policy", target=cert_arn)


def attach_lab_thing(iot, cert_arn: str, thing: str) -> None:
    iot.create_thing(thingName=OUTSIDE_THING)
    iot.attach_thing_principal(thingName=OUTSIDE_THING, principal=cert_arn)


def attach_lab_certificate(iot, cert_arn: str, thing: str) -> None:
    lab_certificate = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_thing_principal(thingName=thing, principal=lab_certificate["certificateArn"])


def attach_policy_to_lab_certificate(iot, cert_arn: str, thing: str) -> None:
    lab_certificate = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName=f"rainedge-device-{thing}", target=lab_certificate["certificateArn"])


# Attachments made by hand, outside the template, each of which makes CloudFormation's delete fail.
BLOCKING_ATTACHMENTS = (attach_lab_policy, attach_lab_thing, attach_lab_certificate, attach_policy_to_lab_certificate)


def outside_attachments(clients, deployed) -> None:
    """Every blocking attachment, and memberships of the app's group and thing."""
    iot = clients.iot
    cert_arn = deployed.device_certificate().attrs["Arn"]
    for attach in BLOCKING_ATTACHMENTS:
        attach(iot, cert_arn, THING)
    iot.add_thing_to_thing_group(thingGroupName="rainedge-cores", thingName=OUTSIDE_THING)
    iot.add_thing_to_thing_group(thingGroupName="rainedge-canary", thingName=OUTSIDE_THING)
    iot.create_thing_group(thingGroupName="lab-devices")
    iot.add_thing_to_thing_group(thingGroupName="lab-devices", thingName=THING)


def test_audit_lists_everything_of_the_app_and_nothing_else(clients, names, deployed, fake_greengrass, tmp_path):
    device_made_leftovers(clients)
    scope = scope_of(clients, names, tmp_path / OUTPUTS_FILE)
    outputs = scope.outputs
    clients.s3.create_bucket(Bucket="someone-elses-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    fake_greengrass.core_devices.add(THING)
    fake_greengrass.add_component("com.other.Thing", "1.0.0")
    fake_greengrass.add_deployment("other-id", "other-deployment", OTHER_GROUP_ARN)

    found = {str(item) for item in audit(clients, scope)}

    assert found == {
        "stack: RainEdge", f"thing: {THING}", f"shadow: {THING}/weather", f"shadow: {THING}/rain",
        f"core device: {THING}", f"certificate: {outputs.devices[0].certificate_id}",
        f"certificate: {outputs.fleet.claim_certificate_id}", "iot policy: rainedge-claim-policy",
        "thing group: rainedge-cores", "thing group: rainedge-canary", f"iot policy: rainedge-device-{THING}",
        "role alias: rainedge-tes-role-alias",
        "iam role: rainedge-tes-role", "ledger table: rainedge-ledger",
        *(f"component: {arn}" for arn in outputs.component_version_arns),
        *(f"lambda function: rainedge-{function}" for function in ("sensor", "shadow-writer", "inference")),
        f"deployment: rainedge-deployment ({outputs.deployment_id}, ACTIVE)",
        f"deployment: rainedge-canary-deployment ({outputs.canary_deployment_id}, ACTIVE)",
        f"bucket: {outputs.artifact_bucket_name}", f"log group: {SENSOR_LOG_GROUP}",
        # What the stack watches the fleet with, each by the exact name its outputs give.
        f"sns topic: {outputs.monitoring.alarm_topic_arn}", f"dashboard: {outputs.monitoring.dashboard_name}",
        f"eventbridge rule: {outputs.monitoring.event_rule_name}",
        *(f"iot topic rule: {name}" for name in outputs.monitoring.topic_rule_names),
        *(f"alarm: {name}" for name in outputs.monitoring.alarm_names),
        *(f"log group: {name}" for name in outputs.monitoring.log_group_names),
        # The data lake, each by the exact name its outputs give (test_destroy_lake.py).
        f"lake bucket: {outputs.lake.bucket_name}", f"glue database: {outputs.lake.database_name}",
        f"athena workgroup: {outputs.lake.workgroup_name}",
        *(f"firehose stream: {name}" for name in outputs.lake.delivery_stream_names),
        *(f"iot topic rule: {name}" for name in outputs.lake.topic_rule_names),
    }
    assert len(outputs.monitoring.alarm_names) == 6 and len(outputs.monitoring.topic_rule_names) == 3
    assert len(outputs.component_version_arns) == 5


def test_cleanup_removes_named_shadows_and_core_device_records(clients, names, deployed, fake_greengrass, tmp_path):
    put_shadow(clients.iot_data, THING, "weather")
    put_shadow(clients.iot_data, THING, "rain")
    fake_greengrass.core_devices.add(THING)

    delete_shadows_and_core_devices(clients, scope_of(clients, names, tmp_path / OUTPUTS_FILE), echo=lambda _: None)

    assert clients.iot.describe_thing(thingName=THING)  # the thing is CloudFormation's to delete
    assert not shadow_exists(clients.iot_data, THING, "weather")
    assert not shadow_exists(clients.iot_data, THING, "rain")
    assert THING not in fake_greengrass.core_devices


@pytest.mark.parametrize("attach", BLOCKING_ATTACHMENTS)
def test_stand_in_cloudformation_fails_on_each_outside_attachment(clients, deployed, attach):
    """Guards the test below: without destroy's detaching, CloudFormation's delete fails."""
    attach(clients.iot, deployed.device_certificate().attrs["Arn"], THING)
    assert deployed.cdk(["destroy", "--force", "RainEdge"]) == 1


def test_destroy_removes_everything_and_leaves_others_alone(clients, names, deployed, fake_greengrass, tmp_path):
    outside_attachments(clients, deployed)
    device_made_leftovers(clients)
    fake_greengrass.core_devices.add(THING)
    # A version and a deployment CloudFormation did not make: by hand, with the app's own names.
    handmade = fake_greengrass.add_component("com.rainedge.Sensor", "9.9.9-handmade")
    fake_greengrass.add_deployment("handmade-id", "rainedge-deployment", GROUP_ARN)
    fake_greengrass.add_deployment("other-id", "other-deployment", OTHER_GROUP_ARN)
    state = tmp_path / OUTPUTS_FILE
    messages: list[str] = []

    leftovers = destroy(clients, names, state, deployed.cdk, echo=messages.append)

    assert leftovers == []
    assert deployed.calls == [["destroy", "--force", "RainEdge"]]
    assert not state.exists()  # a clean audit retires the saved outputs
    # Only the app's things went: the hand-made thing, group, policy, certificate and log group stay.
    assert clients.iot.describe_thing(thingName=OUTSIDE_THING)
    assert clients.iot.describe_thing_group(thingGroupName="lab-devices")
    assert clients.iot.get_policy(policyName="lab-debug-policy")
    # The app's certificate is gone; the two lab certificates are untouched.
    assert [item["status"] for item in clients.iot.list_certificates()["certificates"]] == ["ACTIVE", "ACTIVE"]
    assert [g["logGroupName"] for g in clients.logs.describe_log_groups()["logGroups"]] == [FOREIGN_LOG_GROUP]
    assert list(fake_greengrass.versions) == [handmade]
    assert set(fake_greengrass.deployments) == {"handmade-id", "other-id"}
    assert f"not ours, left: component version {handmade}" in messages
    assert any(line.startswith("not ours, left: deployment rainedge-deployment (handmade-id)") for line in messages)


def test_nothing_deployed_is_success(clients, names, tmp_path, capsys):
    never_called = tmp_path / "cdk-called"
    fake_cdk = write_fake_cdk(tmp_path, never_called)

    code = main(["--project-root", str(tmp_path), "destroy", "--cdk", str(fake_cdk)], clients=clients)

    assert code == 0
    assert not never_called.exists()  # no stack: nothing for cdk to do
    assert "nothing of this app is left" in capsys.readouterr().out


def torn_down(clients, deployed, state) -> None:
    """The stack deleted by an earlier run that saved its outputs and then stopped."""
    save(deployed.outputs, state)
    assert deployed.cdk(["destroy", "--force", "RainEdge"]) == 0


def test_throttling_is_retried_with_backoff(clients, names, deployed, fake_greengrass, tmp_path, monkeypatch):
    state = tmp_path / OUTPUTS_FILE
    torn_down(clients, deployed, state)
    fake_greengrass.core_devices.add(THING)
    delays: list[float] = []
    monkeypatch.setattr(aws_module.time, "sleep", delays.append)
    faulty = FaultyClients(clients, Faults(planned={("greengrassv2", "delete_core_device"): ["ThrottlingException"] * 2}))

    assert destroy(faulty, names, state, cdk=lambda args: pytest.fail("no stack"), echo=lambda _: None) == []
    assert delays == [0.5, 1.0]
    assert THING not in fake_greengrass.core_devices


def test_a_deployment_still_cancelling_is_deleted_once_it_may_be(clients, names, deployed, fake_greengrass, tmp_path,
                                                                  monkeypatch):
    """DeleteDeployment needs a cancelled deployment ("To delete an active deployment, you must first
    cancel it") and answers ConflictException while the cancellation is under way."""
    [logical] = [key for key, resource in deployed.resources.items()
                 if resource["Type"] == "AWS::GreengrassV2::Deployment"
                 and resource["Properties"]["DeploymentName"] == "rainedge-deployment"]
    deployed.retained.add(logical)  # CloudFormation left it
    state = tmp_path / OUTPUTS_FILE
    torn_down(clients, deployed, state)
    delays: list[float] = []
    monkeypatch.setattr(aws_module.time, "sleep", delays.append)
    deployment_id = deployed.outputs["DeploymentId"]
    fake_greengrass.still_cancelling = 2
    printed: list[str] = []

    assert destroy(clients, names, state, cdk=lambda args: pytest.fail("no stack"), echo=printed.append) == []
    assert delays == [0.5, 1.0]
    assert f"deleted deployment {deployment_id}" in printed
    assert fake_greengrass.deployments == {}


def test_partial_teardown_is_finished_by_a_rerun(clients, names, deployed, fake_greengrass, tmp_path):
    device_made_leftovers(clients)
    fake_greengrass.core_devices.add(THING)
    state = tmp_path / OUTPUTS_FILE
    certificate_id = deployed.device_certificate().ref
    # First run: the stack goes, then the sweep is refused half-way.
    faulty = FaultyClients(clients, Faults(planned={("logs", "delete_log_group"): ["AccessDeniedException"]}))
    with pytest.raises(ClientError, match="AccessDenied"):
        destroy(faulty, names, state, deployed.cdk, echo=lambda _: None)
    assert load(state).devices[0].certificate_id == certificate_id
    assert clients.logs.describe_log_groups(logGroupNamePrefix="/aws/greengrass/")["logGroups"]

    # Second run: the stack is gone, the saved outputs say what to look for.
    assert destroy(clients, names, state, deployed.cdk, echo=lambda _: None) == []
    assert deployed.calls == [["destroy", "--force", "RainEdge"]]  # not re-run: the stack was gone
    assert not state.exists()
    assert not clients.logs.describe_log_groups(logGroupNamePrefix="/aws/greengrass/")["logGroups"]


def test_failed_cdk_destroy_exits_nonzero_and_a_rerun_completes(clients, names, deployed, tmp_path, capsys):
    fake_cdk = write_fake_cdk(tmp_path, tmp_path / "cdk-args")  # "succeeds" but deletes nothing

    code = main(["--project-root", str(tmp_path), "destroy", "--cdk", str(fake_cdk)], clients=clients)

    assert code == 1
    # cdk runs in the region the ownership checks ran in.
    assert (tmp_path / "cdk-args").read_text().split() == [REGION, "destroy", "--force", "RainEdge"]
    err = capsys.readouterr().err
    assert "still present: stack: RainEdge" in err and f"still present: thing: {THING}" in err
    assert (tmp_path / OUTPUTS_FILE).is_file()

    assert destroy(clients, names, tmp_path / OUTPUTS_FILE, deployed.cdk, echo=lambda _: None) == []


def test_without_outputs_a_thing_is_not_the_apps_by_its_attribute(clients, names, tmp_path, capsys):
    clients.iot.create_thing(thingName=THING, attributePayload={"attributes": {"rainedge:app": "rainedge"}})
    certificate = clients.iot.create_keys_and_certificate(setAsActive=True)
    clients.iot.attach_thing_principal(thingName=THING, principal=certificate["certificateArn"])

    assert main(["--project-root", str(tmp_path), "audit"], clients=clients) == 0
    captured = capsys.readouterr()
    assert f"not ours, left: thing {THING} (carries rainedge:app=rainedge, recorded nowhere)" in captured.out
    assert "still present" not in captured.err
