"""status: every core device of the app, listed and provisioned, in one table.

Per device: the Greengrass core-device status, the app's deployment on it, the time of the last
reading (the `weather` shadow) and the rain prediction or the reason there is none (the `rain`
shadow). Each list call is paginated, so a fleet of thousands is shown whole; rows are printed as
they are read. Under a device on which a deployment failed come the error types and error stack
Greengrass reports for it, not just FAILED.
"""
from __future__ import annotations

import json
from typing import Any, Callable
from urllib.parse import quote

from infra.greengrass import SHADOW_NAMES
from infra.lifecycle.aws import AwsClients, call_unless_gone, paginate
from infra.lifecycle.outputs import StackOutputs
from infra.lifecycle.scope import group_members

WEATHER, RAIN = SHADOW_NAMES
# Execution statuses of a deployment on a core device that mean it did not apply (GreengrassV2 API
# reference, EffectiveDeployment.coreDeviceExecutionStatus); Greengrass explains them in `reason`
# and `statusDetails` (errorStack, errorTypes).
FAILED_STATUSES = ("FAILED", "REJECTED", "TIMED_OUT")
COLUMNS = ("THING", "CORE DEVICE", "DEPLOYMENT", "LAST READING", "RAIN")


def reported_state(clients: AwsClients, thing_name: str, shadow_name: str) -> dict[str, Any] | None:
    """The shadow's `state.reported`, or None when the shadow does not exist yet."""
    response = call_unless_gone(clients.iot_data.get_thing_shadow, thingName=thing_name, shadowName=shadow_name)
    if response is None:
        return None
    return json.loads(response["payload"].read()).get("state", {}).get("reported", {})


def rain_cell(rain: dict[str, Any] | None) -> str:
    if rain is None:
        return "no shadow yet"
    if rain.get("status"):
        return f"no prediction: {rain['status']}"
    probability = rain.get("probability")
    if isinstance(rain.get("raining"), bool) and isinstance(probability, (int, float)):
        return f"{'raining' if rain['raining'] else 'dry'} p={probability:.2f}"
    return "-"


def failure_lines(deployment: dict[str, Any]) -> list[str]:
    details = deployment.get("statusDetails", {})
    name = deployment.get("deploymentName") or deployment["deploymentId"]
    lines = [f"deployment {name} ({deployment['deploymentId']}) {deployment['coreDeviceExecutionStatus']}"
             + (f": {deployment['reason']}" if deployment.get("reason") else "")]
    if details.get("errorTypes"):
        lines.append(f"error types: {', '.join(details['errorTypes'])}")
    if details.get("errorStack"):
        lines.append(f"error stack: {' > '.join(details['errorStack'])}")
    return lines


def dashboard_url(region: str, dashboard_name: str) -> str:
    """The CloudWatch console's address of a dashboard (the form the console itself links to)."""
    return (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
            f"#dashboards:name={quote(dashboard_name)}")


def show_status(clients: AwsClients, outputs: StackOutputs, echo: Callable[[str], None] = print) -> None:
    gg = clients.greengrassv2
    members = group_members(clients, outputs.thing_group_name)
    things = list(dict.fromkeys([*outputs.thing_names, *sorted(members)]))
    group = call_unless_gone(clients.iot.describe_thing_group, thingGroupName=outputs.thing_group_name)
    # One paginated call for the status of every core device in the group (GreengrassV2 ListCoreDevices).
    cores = {core["coreDeviceThingName"]: core for core in paginate(
        gg.list_core_devices, "coreDevices", thingGroupArn=group["thingGroupArn"])} if group else {}

    widths = (max([len(COLUMNS[0]), *map(len, things)]), 14, 12, 22)
    echo(_row(COLUMNS, widths))
    counts: dict[str, int] = {}
    failed = 0
    for thing in things:
        core = cores.get(thing)
        status = core["status"] if core else "not registered"
        counts[status] = counts.get(status, 0) + 1
        deployments = paginate(gg.list_effective_deployments, "effectiveDeployments",
                               coreDeviceThingName=thing) if core else []
        ours = next((item["coreDeviceExecutionStatus"] for item in deployments
                     if item["deploymentId"] == outputs.deployment_id), "-")
        weather = reported_state(clients, thing, WEATHER)
        reading = str(weather.get("sampled_at", "-")) if weather else "no shadow yet"
        echo(_row((thing, status, ours, reading, rain_cell(reported_state(clients, thing, RAIN))), widths))
        failures = [item for item in deployments if item["coreDeviceExecutionStatus"] in FAILED_STATUSES]
        failed += bool(failures)
        for item in failures:
            echo("\n".join(f"    {line}" for line in failure_lines(item)))
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    echo(f"{len(things)} core devices ({summary or 'none yet'}); {failed} with a failed deployment")
    if not things:
        echo("no device yet: install one with `make device-setup` (listed) or `make fleet-bundle` (fleet)")
    if outputs.dashboard_name:
        echo(f"dashboard: {dashboard_url(outputs.region, outputs.dashboard_name)}")


def _row(cells: tuple[str, ...], widths: tuple[int, ...]) -> str:
    """Columns padded to `widths`; the last one, the widest, is not padded."""
    return "  ".join([*(cell.ljust(width) for cell, width in zip(cells, widths)), cells[-1]])
