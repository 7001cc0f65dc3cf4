"""status: one table of every core device, listed and provisioned; cloud shadows from moto, core
devices and deployments from the GreengrassV2 stub (which also checks each request's parameters,
pagination tokens included)."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

from infra.lifecycle.__main__ import main
from infra.lifecycle.outputs import MONITORING_KEYS, parse_outputs
from infra.lifecycle.status import COLUMNS, dashboard_url, show_status, shown

from .conftest import ACCOUNT, REGION, THING, create_stack

GROUP_ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/rainedge-cores"
WHEN = datetime(2026, 11, 26, 11, 5, tzinfo=timezone.utc)


def report(clients, thing: str, shadow: str, reported: dict) -> None:
    clients.iot_data.update_thing_shadow(thingName=thing, shadowName=shadow,
                                         payload=json.dumps({"state": {"reported": reported}}).encode())


def ask(clients, thing: str, adaptation_id: str) -> None:
    """What `make adapt` writes: the adaptation's JSON text in the desired state."""
    text = json.dumps({"id": adaptation_id})
    clients.iot_data.update_thing_shadow(thingName=thing, shadowName="adaptation",
                                         payload=json.dumps({"state": {"desired": {"adaptation": text}}}).encode())


def effective(deployment_id: str, status: str, **extra) -> dict:
    return {"deploymentId": deployment_id, "deploymentName": "rainedge-deployment", "targetArn": GROUP_ARN,
            "coreDeviceExecutionStatus": status, "creationTimestamp": WHEN, "modifiedTimestamp": WHEN, **extra}


def core(thing: str, status: str) -> dict:
    return {"coreDeviceThingName": thing, "status": status, "lastStatusUpdateTimestamp": WHEN}


def table(lines: list[str]) -> dict[str, list[str]]:
    """thing -> its cells, cut where the header's columns start."""
    starts = [lines[0].index(label) for label in COLUMNS]
    return {line.split()[0]: [line[start:end].strip() for start, end in zip(starts, [*starts[1:], None])]
            for line in lines[1:] if line.startswith("rainedge")}


def run_status(clients, names) -> int:
    return main(["--project-root", str(names.project_root), "status"], clients=clients)


def test_one_table_of_listed_and_provisioned_devices_with_what_failed(clients, names, deployed, greengrass, capsys):
    healthy, broken, new = (deployed.provision(serial).thing_name
                            for serial in ("10000000a1b2c3d4", "10000000b0000001", "10000000c0000002"))
    ours = deployed.outputs["DeploymentId"]
    report(clients, THING, "weather", {"temperature": 18.25, "sampled_at": "2026-11-26T11:00:00Z"})
    report(clients, THING, "rain", {"raining": True, "probability": 0.8312, "threshold": 0.41,
                                    "input_sampled_at": "2026-11-26T11:00:00Z", "drift": {"verdict": "ok"},
                                    "model_version": "rain-0123456789abcdef"})
    report(clients, healthy, "weather", {"temperature": 9.5, "sampled_at": "2026-11-26T10:59:00Z"})
    report(clients, healthy, "rain", {"raining": False, "probability": 0.0412, "status": None,
                                      "input_sampled_at": "2026-11-26T10:59:00Z", "drift": {"verdict": "drifting"}})
    report(clients, broken, "rain", {"status": "model_unavailable", "detail": "no model.tflite"})
    # The adaptation shadow: one in force, one asked for and not reported on yet, one rejected.
    ask(clients, THING, "sha256:0123456789abcdef")
    report(clients, THING, "adaptation", {"in_force": "sha256:0123456789abcdef", "offered": "sha256:0123456789abcdef",
                                          "status": "applied"})
    ask(clients, healthy, "sha256:fedcba9876543210")
    report(clients, broken, "adaptation", {"status": "rejected", "detail": "fitted for model 'rain-a', not 'rain-b' in "
                                                                          "force: the global model applies"})
    # Each device is asked for on its own, in the order of the table; a device's deployments come in two
    # pages, the second asked for with the first one's token.
    greengrass.answer("get_core_device", core(THING, "HEALTHY"), {"coreDeviceThingName": THING})
    greengrass.answer("list_effective_deployments", {"effectiveDeployments": [], "nextToken": "page-2"},
                      {"coreDeviceThingName": THING})
    greengrass.answer("list_effective_deployments", {"effectiveDeployments": [effective(ours, "SUCCEEDED")]},
                      {"coreDeviceThingName": THING, "nextToken": "page-2"})
    greengrass.answer("get_core_device", core(healthy, "HEALTHY"), {"coreDeviceThingName": healthy})
    greengrass.answer("list_effective_deployments", {"effectiveDeployments": [effective(ours, "SUCCEEDED")]},
                      {"coreDeviceThingName": healthy})
    greengrass.answer("get_core_device", core(broken, "UNHEALTHY"), {"coreDeviceThingName": broken})
    greengrass.answer("list_effective_deployments", {"effectiveDeployments": [effective(
        ours, "FAILED", reason="FAILED_ROLLBACK_COMPLETE: component com.rainedge.Inference is BROKEN",
        statusDetails={"errorStack": ["DEPLOYMENT_FAILURE", "COMPONENT_UPDATE_ERROR", "COMPONENT_BROKEN"],
                       "errorTypes": ["COMPONENT_ERROR", "DEPENDENCY_ERROR"]})]},
        {"coreDeviceThingName": broken})
    greengrass.gone("get_core_device", {"coreDeviceThingName": new})

    assert run_status(clients, names) == 0

    lines = capsys.readouterr().out.splitlines()
    rows = table(lines)
    # From the fleet index (moto's SearchIndex, which reports every thing connected).
    assert rows[THING] == [THING, "fleet", "yes", "HEALTHY", "SUCCEEDED", "rain-0123456789abcdef",
                           "2026-11-26T11:00:00Z", "ok", "sha256:01234567", "raining p=0.83"]
    assert rows[healthy] == [healthy, "fleet", "yes", "HEALTHY", "SUCCEEDED", "-", "2026-11-26T10:59:00Z", "drifting",
                             "pending sha256:fedcba98", "dry p=0.04"]
    assert rows[broken] == [broken, "fleet", "yes", "UNHEALTHY", "FAILED", "-", "-", "-",
                            "rejected", "no prediction: model_unavailable"]
    assert lines[1].startswith(THING)  # listed first, then the provisioned ones by name
    assert [line.split()[0] for line in lines[2:] if line.startswith("rainedge")] == sorted([healthy, broken, new])
    assert rows[new] == [new, "fleet", "yes", "not registered", "-", "-", "no shadow yet", "-", "-", "no shadow yet"]
    below = lines[lines.index(next(line for line in lines if line.startswith(broken))) + 1:]
    assert below[0] == ("    adaptation rejected: fitted for model 'rain-a', not 'rain-b' in force: the global model "
                        "applies")
    failure = below[1:4]
    assert failure == [
        f"    deployment rainedge-deployment ({ours}) FAILED: FAILED_ROLLBACK_COMPLETE: component "
        "com.rainedge.Inference is BROKEN",
        "    error types: COMPONENT_ERROR, DEPENDENCY_ERROR",
        "    error stack: DEPLOYMENT_FAILURE > COMPONENT_UPDATE_ERROR > COMPONENT_BROKEN"]
    assert lines[-4] == ("4 core devices (2 HEALTHY, 1 UNHEALTHY, 1 not registered); 1 with a failed deployment")
    model = deployed.outputs["PromotedModelVersion"]
    assert lines[-3] == f"models: fleet ring {model} (promoted), canary ring {model}"  # a first release
    assert lines[-2].startswith("lake: no delivery errors on ")
    url = f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#dashboards:name=rainedge-fleet"
    assert lines[-1] == f"dashboard: {url}"  # the stack's DashboardName output


def test_before_any_device_is_installed(clients, names, deployed, greengrass, capsys):
    greengrass.gone("get_core_device", {"coreDeviceThingName": THING})
    assert run_status(clients, names) == 0
    out = capsys.readouterr().out
    assert table(out.splitlines())[THING] == [THING, "fleet", "yes", "not registered", "-", "-", "no shadow yet", "-",
                                              "-", "no shadow yet"]


def test_no_dashboard_line_when_the_stack_has_no_dashboard(clients, names, deployed, greengrass, capsys):
    clients.cloudformation.delete_stack(StackName="RainEdge")
    outputs = {key: value for key, value in deployed.outputs.items() if key not in MONITORING_KEYS}
    create_stack(clients.cloudformation, outputs, deployed.app.stack_tags)
    greengrass.gone("get_core_device", {"coreDeviceThingName": THING})
    assert run_status(clients, names) == 0
    assert "dashboard" not in capsys.readouterr().out
    assert dashboard_url(REGION, "a b").endswith("#dashboards:name=a%20b")


def test_a_device_whose_first_deployment_failed_is_shown_with_its_error(clients, names, deployed, greengrass,
                                                                        capsys):
    """ListCoreDevices with thingGroupArn "includes only core devices that have successfully deployed a
    deployment that targets the thing group" (GreengrassV2 API reference): such a device is exactly the
    one to show. The stub answers no ListCoreDevices call, so status must not rely on one."""
    device = deployed.provision("10000000d0000003").thing_name
    ours = deployed.outputs["DeploymentId"]
    greengrass.gone("get_core_device", {"coreDeviceThingName": THING})
    greengrass.answer("get_core_device", core(device, "UNHEALTHY"), {"coreDeviceThingName": device})
    greengrass.answer("list_effective_deployments", {"effectiveDeployments": [effective(
        ours, "FAILED", reason="component com.rainedge.Sensor failed to install",
        statusDetails={"errorStack": ["DEPLOYMENT_FAILURE", "COMPONENT_INSTALL_ERROR"],
                       "errorTypes": ["COMPONENT_ERROR"]})]}, {"coreDeviceThingName": device})
    assert run_status(clients, names) == 0
    lines = capsys.readouterr().out.splitlines()
    assert table(lines)[device] == [device, "fleet", "yes", "UNHEALTHY", "FAILED", "-", "no shadow yet", "-",
                                    "-", "no shadow yet"]
    assert "    error stack: DEPLOYMENT_FAILURE > COMPONENT_INSTALL_ERROR" in lines
    assert lines[-4].endswith("1 with a failed deployment")


HOSTILE_SHADOWS = [
    ({"sampled_at": "x\x1b[2J\nrainedge-core-9  HEALTHY  SUCCEEDED  2026  dry"},
     {"status": "ok\rforged", "input_sampled_at": "x\x1b[2J\nrainedge-core-9  yes  HEALTHY", "drift": {"verdict": "\n"}}),
    ({"sampled_at": 10 ** 400}, {"raining": True, "probability": 10 ** 400}),
    ({"sampled_at": {"nested": ["\n" * 3]}}, {"status": {"forged": "\nrow"}}),
    ({"sampled_at": "a" * 5000}, {"raining": "yes", "probability": "0.9"}),
]


@pytest.mark.parametrize("weather, rain", HOSTILE_SHADOWS)
def test_what_a_device_wrote_is_shown_escaped_on_its_own_row(clients, names, deployed, greengrass, capsys,
                                                              weather, rain):
    clients.iot_data.update_thing_shadow(thingName=THING, shadowName="weather",
                                         payload=json.dumps({"state": {"reported": weather}}).encode())
    clients.iot_data.update_thing_shadow(thingName=THING, shadowName="rain",
                                         payload=json.dumps({"state": {"reported": rain}}).encode())
    greengrass.gone("get_core_device", {"coreDeviceThingName": THING})
    assert run_status(clients, names) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6  # header, one row, summary, models, lake, dashboard: nothing forged
    assert all(line.isprintable() for line in lines)
    assert [line for line in lines if line.startswith("rainedge")] == [lines[1]]
    assert len(lines[1]) < 240  # ten padded columns; what a device wrote is cut at 48 characters


def test_without_a_fleet_index_each_devices_shadows_are_read(clients, names, deployed, greengrass, capsys,
                                                             monkeypatch):
    """A stack deployed before fleet indexing, or an index not ready yet (SearchIndex:
    IndexNotReadyException): the same table from the group listing and the shadows; connectivity "-"."""
    from botocore.exceptions import ClientError

    def not_ready(**_):
        raise ClientError({"Error": {"Code": "IndexNotReadyException", "Message": "index not ready"}}, "SearchIndex")
    monkeypatch.setattr(clients.iot, "search_index", not_ready)
    report(clients, THING, "weather", {"temperature": 18.25, "sampled_at": "2026-11-26T11:00:00Z"})
    report(clients, THING, "rain", {"raining": False, "probability": 0.1, "drift": {"verdict": "warming_up"}})
    greengrass.gone("get_core_device", {"coreDeviceThingName": THING})
    assert run_status(clients, names) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("fleet index not available")
    assert table(lines[1:])[THING] == [THING, "fleet", "-", "not registered", "-", "-", "2026-11-26T11:00:00Z",
                                       "warming_up", "-", "dry p=0.10"]


@pytest.mark.parametrize("probability, cell", [
    (10 ** 400, "invalid probability: 1" + "0" * 46 + "…"),  # no float holds it: OverflowError once
    (1.5, "invalid probability: 1.5"),
    (-0.01, "invalid probability: -0.01"),
    ("0.9", "invalid probability: '0.9'"),
    (True, "invalid probability: True"),
    (None, "invalid probability: None"),
    (0.5, "raining p=0.50"),
], ids=["400 digits", "above 1", "below 0", "text", "boolean", "null", "valid"])
def test_a_probability_that_is_no_finite_number_from_0_to_1_is_shown_as_invalid(clients, names, deployed, greengrass,
                                                                               capsys, probability, cell):
    report(clients, THING, "rain", {"raining": True, "probability": probability})
    greengrass.gone("get_core_device", {"coreDeviceThingName": THING})
    assert run_status(clients, names) == 0
    assert table(capsys.readouterr().out.splitlines())[THING][-1] == cell


def test_a_raining_flag_that_is_no_boolean_is_shown_as_invalid(clients, names, deployed, greengrass, capsys):
    report(clients, THING, "rain", {"raining": "yes", "probability": 0.9})
    greengrass.gone("get_core_device", {"coreDeviceThingName": THING})
    assert run_status(clients, names) == 0
    assert table(capsys.readouterr().out.splitlines())[THING][-1] == "invalid raining: 'yes'"


FORGED = "x\x1b[2J\nrainedge-core-9  HEALTHY  SUCCEEDED  2026  dry"


def test_what_greengrass_reports_for_a_device_is_shown_escaped_too(clients, names, deployed, greengrass, capsys):
    """A core device's status and its deployment's reason and error stack are what its nucleus reported."""
    ours = deployed.outputs["DeploymentId"]
    greengrass.answer("get_core_device", core(THING, FORGED), {"coreDeviceThingName": THING})
    greengrass.answer("list_effective_deployments", {"effectiveDeployments": [
        effective(ours, "FAILED", deploymentName=FORGED, reason=FORGED,
                  statusDetails={"errorStack": [FORGED], "errorTypes": [FORGED]})]}, {"coreDeviceThingName": THING})
    assert run_status(clients, names) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(line.isprintable() for line in lines)
    assert [line.split()[0] for line in lines if line.lstrip().startswith("rainedge")] == [THING]
    assert "\\x1b[2J\\nrainedge-core-9" in lines[1]
    assert len(lines) == 1 + 1 + 3 + 4  # header, the row, its three failure lines, summary, models, lake, dashboard


def test_shown_escapes_every_non_printable_character_cuts_long_text_and_never_raises():
    nested: list = []
    for _ in range(100_000):
        nested = [nested]
    assert shown("a\u202eb\u2028c\x00") == "a\\u202eb\\u2028c\\x00"  # bidi override, line separator, NUL
    assert shown("é 2026-11-26T11:00:00Z") == "é 2026-11-26T11:00:00Z"
    assert shown("a" * 500) == "a" * 47 + "…"
    assert shown("\n" * 500) == "\\n" * 23 + "…"  # cut between escapes, never inside one
    assert shown(nested) == "<list nested too deep to show>"


@pytest.mark.parametrize("state, cell, line", [
    ({"reported": {"status": "rejected", "detail": FORGED}}, "rejected", "    adaptation rejected: x\\x1b[2J\\nrainedge"),
    ({"reported": {"status": "applied", "in_force": FORGED}}, "invalid id", None),
    ({"reported": {"status": "applied", "in_force": "sha256:0123456789ABCDEF"}}, "invalid id", None),
    ({"desired": {"adaptation": json.dumps({"id": FORGED})}}, "pending invalid id", None),
    ({"desired": {"adaptation": "[" * 3000}}, "-", None),
    ({"desired": {"adaptation": {"id": "sha256:0123456789abcdef"}}}, "-", None),
    ({"reported": {"status": ["applied"]}}, "-", None),
], ids=["forged detail", "forged id", "not our id form", "forged desired id", "nested text", "an object", "a list"])
def test_what_a_device_or_the_cloud_wrote_in_the_adaptation_shadow_is_shown_escaped(clients, names, deployed,
                                                                                   greengrass, capsys, state, cell,
                                                                                   line):
    clients.iot_data.update_thing_shadow(thingName=THING, shadowName="adaptation",
                                         payload=json.dumps({"state": state}).encode())
    greengrass.gone("get_core_device", {"coreDeviceThingName": THING})
    assert run_status(clients, names) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(text.isprintable() for text in lines)
    assert table(lines)[THING][-2] == cell
    below = lines[lines.index(next(text for text in lines if text.startswith(THING))) + 1]
    if line is None:
        assert not below.startswith("    ")
    else:
        assert below.startswith(line) and len(below) <= 4 + 240


def test_a_verdict_on_an_earlier_offer_leaves_the_new_one_pending_and_a_rejection_keeps_what_is_in_force(clients):
    from infra.lifecycle.status import adaptation_cell

    def offer(adaptation_id: str) -> dict:
        return {"adaptation": json.dumps({"id": adaptation_id})}

    kept = {"in_force": "sha256:aaaaaaaaaaaaaaaa", "offered": "sha256:bbbbbbbbbbbbbbbb", "status": "rejected",
            "detail": "adaptation 'sha256:bbbbbbbbbbbbbbbb': edited; sha256:aaaaaaaaaaaaaaaa stays in force"}
    assert adaptation_cell({"desired": offer("sha256:bbbbbbbbbbbbbbbb"), "reported": kept}) == (
        "sha256:aaaaaaaa (rejected)",
        "adaptation rejected: adaptation 'sha256:bbbbbbbbbbbbbbbb': edited; sha256:aaaaaaaaaaaaaaaa stays in force")
    # A new offer after that rejection: the device has not said anything about it yet.
    assert adaptation_cell({"desired": offer("sha256:cccccccccccccccc"), "reported": kept}) == (
        "pending sha256:cccccccc", None)


def test_what_firehose_could_not_deliver_into_the_lake_today_is_counted_by_table_and_error_type(
        clients, names, deployed, greengrass):
    """Records over the active-partition quota or that failed conversion land under the table's error prefix
    (<lake-errors>/<table>/<error type>/<day>/, infra/lake_delivery.py); no alarm counts them, status does."""
    greengrass.gone("get_core_device", {"coreDeviceThingName": THING})
    outputs = parse_outputs(deployed.outputs)
    bucket = outputs.lake.bucket_name
    for key in ("lake-errors/readings/activePartitionExceeded/2026-12-07/a",
                "lake-errors/readings/activePartitionExceeded/2026-12-07/b",
                "lake-errors/predictions/format-conversion-failed/2026-12-07/c",
                "lake-errors/predictions/format-conversion-failed/2026-12-06/yesterday",
                "lake-errors/readings/\x1b[31mforged/2026-12-07/d"):
        clients.s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    said: list[str] = []
    show_status(clients, outputs, said.append, today=date(2026, 12, 7))
    # S3 lists the error types in key order; a forged one is shown escaped.
    assert said[-2] == (f"lake: delivery errors on 2026-12-07 (UTC): readings \\x1b[31mforged 1 object(s); "
                        f"readings activePartitionExceeded 2 object(s); predictions format-conversion-failed 1 object(s) "
                        f"(s3://{bucket}/lake-errors/)")
    said.clear()
    greengrass.gone("get_core_device", {"coreDeviceThingName": THING})
    show_status(clients, outputs, said.append, today=date(2026, 12, 8))
    assert said[-2] == "lake: no delivery errors on 2026-12-08 (UTC)"
