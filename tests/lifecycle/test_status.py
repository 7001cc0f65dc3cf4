"""status: cloud shadows from moto, core-device and deployment state from the GreengrassV2 stub."""
from __future__ import annotations

import json

from infra.lifecycle.__main__ import main

from .conftest import THING


def test_status_shows_shadows_and_deployment(clients, names, deployed, greengrass, capsys):
    weather = {"temperature": 18.25, "humidity": 81.0, "pressure": 1004.2, "sampled_at": "2026-11-26T11:00:00Z"}
    clients.iot_data.update_thing_shadow(thingName=THING, shadowName="weather",
                                         payload=json.dumps({"state": {"reported": weather}}).encode())
    greengrass.answer("get_core_device", {"coreDeviceThingName": THING, "status": "HEALTHY"},
                      {"coreDeviceThingName": THING})
    greengrass.answer("list_effective_deployments", {"effectiveDeployments": [{
        "deploymentId": "d-1", "deploymentName": "rainedge-deployment", "targetArn": "arn:aws:iot:x:1:thinggroup/g",
        "coreDeviceExecutionStatus": "SUCCEEDED", "creationTimestamp": 0, "modifiedTimestamp": 0}]},
        {"coreDeviceThingName": THING})

    assert main(["--project-root", str(names.project_root), "status"], clients=clients) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{THING}: core device HEALTHY; deployment rainedge-deployment: SUCCEEDED"
    assert lines[1] == f"  weather: {json.dumps(weather, sort_keys=True)}"
    assert lines[2] == "  rain: no shadow yet"


def test_status_before_the_device_is_installed(clients, names, deployed, greengrass, capsys):
    greengrass.gone("get_core_device", {"coreDeviceThingName": THING})
    assert main(["--project-root", str(names.project_root), "status"], clients=clients) == 0
    assert f"{THING}: not registered yet (run install.sh on the device)" in capsys.readouterr().out
