"""status: the cloud `weather` and `rain` shadows and the Greengrass state of each core device."""
from __future__ import annotations

import json
from typing import Any, Callable

from infra.greengrass import SHADOW_NAMES
from infra.lifecycle.aws import AwsClients, call, call_unless_gone


def reported_state(clients: AwsClients, thing_name: str, shadow_name: str) -> dict[str, Any] | None:
    """The shadow's `state.reported`, or None when the shadow does not exist yet."""
    response = call_unless_gone(clients.iot_data.get_thing_shadow, thingName=thing_name, shadowName=shadow_name)
    if response is None:
        return None
    return json.loads(response["payload"].read()).get("state", {}).get("reported", {})


def core_device_summary(clients: AwsClients, thing_name: str) -> str:
    core = call_unless_gone(clients.greengrassv2.get_core_device, coreDeviceThingName=thing_name)
    if core is None:
        return "not registered yet (run install.sh on the device)"
    deployments = call(clients.greengrassv2.list_effective_deployments,
                       coreDeviceThingName=thing_name).get("effectiveDeployments", [])
    parts = [f"core device {core['status']}"]
    parts += [f"deployment {item.get('deploymentName', item['deploymentId'])}: {item['coreDeviceExecutionStatus']}"
              + (f" ({item['reason']})" if item.get("reason") else "")
              for item in deployments]
    return "; ".join(parts) if deployments else parts[0] + "; no deployment has reached it yet"


def show_status(clients: AwsClients, thing_names: tuple[str, ...], echo: Callable[[str], None] = print) -> None:
    for thing_name in thing_names:
        echo(f"{thing_name}: {core_device_summary(clients, thing_name)}")
        for shadow_name in SHADOW_NAMES:
            state = reported_state(clients, thing_name, shadow_name)
            shown = "no shadow yet" if state is None else json.dumps(state, sort_keys=True)
            echo(f"  {shadow_name}: {shown}")
