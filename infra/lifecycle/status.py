"""status: every core device of the app, listed and provisioned, in one table.

Per device: its connectivity, the Greengrass core-device status, the app's deployment on it, the time
of the last reading, the drift verdict, the station's adaptation (the one it holds in force, one asked for
that it has not reported on yet, or why it rejected one: its `adaptation` shadow, read per device, as the
fleet index holds only the rain shadow) and the rain prediction or the reason there is none. The
cloud-side state comes from AWS IoT fleet indexing in one paginated SearchIndex (the app's thing group,
with connectivity and the `rain` shadow, which names the reading it answered: infra/fleet_index.py);
where the index is not there (a stack deployed before it, or indexing not ready yet) from the group
listing and two shadow reads per device, and the connectivity column shows "-". Greengrass has no
index: each device's health and deployment are looked up on their own (GetCoreDevice, ListEffectiveDeployments): a group
listing (ListCoreDevices with thingGroupArn) "includes only core devices that have successfully
deployed a deployment that targets the thing group" (GreengrassV2 API reference), which would hide
exactly the devices whose first deployment failed. Rows are printed as they are read. Under a device
on which a deployment failed come the error types and error stack Greengrass reports for it.

Every device can write its own shadows, and what Greengrass reports of a device (its status, a
deployment's reason and error stack) comes from its nucleus: everything a device or the cloud wrote
goes through one helper, `shown`, that escapes it and cuts it short, so that a control character or a
newline can never forge a row; a number is formatted only once it is checked to be in its range.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable
from urllib.parse import quote

from botocore.exceptions import ClientError

from device_code.adaptation_shadow import ADAPTATION_KEY, APPLIED, REJECTED, parse_adaptation_text
from device_code.contracts import ADAPTATION_SHADOW, RAIN_SHADOW, WEATHER_SHADOW, finite_number
from infra import fleet_index as fx
from infra.lake_delivery import ERRORS_PREFIX, error_folder, fed_tables
from infra.lifecycle.aws import AwsClients, call_unless_gone, error_code, paginate
from infra.lifecycle.outputs import LakeOutputs, StackOutputs
from infra.lifecycle.scope import group_members

# Execution statuses of a deployment on a core device that mean it did not apply (GreengrassV2 API
# reference, EffectiveDeployment.coreDeviceExecutionStatus); Greengrass explains them in `reason`
# and `statusDetails` (errorStack, errorTypes).
FAILED_STATUSES = ("FAILED", "REJECTED", "TIMED_OUT")
COLUMNS = ("THING", "RING", "CONNECTED", "CORE DEVICE", "DEPLOYMENT", "MODEL", "LAST READING", "DRIFT", "ADAPTATION",
           "RAIN")
# SearchIndex errors that mean "no index to read" (AWS IoT API reference, SearchIndex: Errors).
INDEX_UNAVAILABLE = frozenset({"IndexNotReadyException", "ResourceNotFoundException"})
# SearchIndex maxResults: "This maximum number cannot exceed 100".
SEARCH_PAGE = 100
# Longest text of a device's own that a cell shows; a failure line (Greengrass's reason, the error
# stack) may be longer, and a thing name is at most 128 characters (CreateThing thingName).
MAX_SHOWN, MAX_LINE_SHOWN, MAX_THING_SHOWN = 48, 240, 128
# The model's output is a probability (device_code/model.py refuses any other).
PROBABILITY_RANGE = (0.0, 1.0)
# An adaptation's id (device_code/adaptation.py content_id), shown by its first hex digits.
ADAPTATION_ID = re.compile(r"sha256:[0-9a-f]{16}")
SHORT_ID = len("sha256:") + 8


def shown(value: Any, limit: int = MAX_SHOWN, *, quoted: bool = False) -> str:
    """Text a device or the cloud wrote (the repr of any other value, and of a string too when `quoted`,
    where a value was expected) as one printable line: every non-printable character (control,
    escape, line or paragraph separator, bidi override: str.isprintable) as its Python escape, cut
    between escapes to `limit` characters. Never raises."""
    try:
        text = value if isinstance(value, str) and not quoted else repr(value)
    except RecursionError:  # a list or object nested deeper than repr goes, yet not too deep for json.loads
        text = f"<{type(value).__name__} nested too deep to show>"
    pieces: list[str] = []
    length = 0
    for ch in text:
        pieces.append(ch if ch.isprintable() else ascii(ch)[1:-1])
        length += len(pieces[-1])
        if length > limit:
            while length > limit - 1:
                length -= len(pieces.pop())
            return "".join(pieces) + "…"
    return "".join(pieces)


def number_in(value: Any, bounds: tuple[float, float]) -> float | None:
    """`value` as a float when it is a finite JSON number within `bounds`, else None."""
    number = finite_number(value)
    return number if number is not None and bounds[0] <= number <= bounds[1] else None


def shadow_state(clients: AwsClients, thing_name: str, shadow_name: str) -> Any:
    """The shadow's `state` ({} when it has none), None when the shadow does not exist yet, or the text
    "unreadable document" when its document cannot be read as JSON at all."""
    response = call_unless_gone(clients.iot_data.get_thing_shadow, thingName=thing_name, shadowName=shadow_name)
    if response is None:
        return None
    try:
        document = json.loads(response["payload"].read())
    except (ValueError, RecursionError):
        return "unreadable document"
    state = document.get("state") if isinstance(document, dict) else None
    return state if isinstance(state, dict) else {}


def reported_state(clients: AwsClients, thing_name: str, shadow_name: str) -> Any:
    """The shadow's `state.reported` (whatever JSON the device put there); None and "unreadable document"
    as shadow_state."""
    state = shadow_state(clients, thing_name, shadow_name)
    return state.get("reported", {}) if isinstance(state, dict) else state


def rain_cell(rain: Any) -> str:
    if rain is None:
        return "no shadow yet"
    if not isinstance(rain, dict):
        return f"malformed: {shown(rain)}"
    if rain.get("status"):
        return f"no prediction: {shown(rain['status'])}"
    if "raining" not in rain and "probability" not in rain:
        return "-"
    raining, probability = rain.get("raining"), number_in(rain.get("probability"), PROBABILITY_RANGE)
    if not isinstance(raining, bool):
        return f"invalid raining: {shown(raining, quoted=True)}"
    if probability is None:
        return f"invalid probability: {shown(rain.get('probability'), quoted=True)}"
    return f"{'raining' if raining else 'dry'} p={probability:.2f}"


def reading_cell(reported: Any, field: str = "sampled_at") -> str:
    """`field` of a shadow's reported state: the weather shadow's sampled_at, or the rain shadow's
    input_sampled_at (the reading it answered)."""
    if reported is None:
        return "no shadow yet"
    if not isinstance(reported, dict):
        return f"malformed: {shown(reported)}"
    value = reported.get(field)
    return "-" if value is None else shown(value)


def model_cell(rain: Any) -> str:
    """The model version the rain shadow says answered."""
    version = rain.get("model_version") if isinstance(rain, dict) else None
    return "-" if version is None else shown(version)


def short_id(value: Any) -> str:
    return value[:SHORT_ID] if isinstance(value, str) and ADAPTATION_ID.fullmatch(value) else "invalid id"


def adaptation_cell(state: Any) -> tuple[str, str | None]:
    """The adaptation shadow's cell (the adaptation in force; "pending" while the one the cloud asks for is not
    what the device reports on; "rejected"; "-" for none) and, for a rejection, the device's reason as a line."""
    if state is None:
        return "-", None
    if not isinstance(state, dict):
        return f"malformed: {shown(state, 12)}", None
    desired, reported = state.get("desired"), state.get("reported")
    wanted, _ = parse_adaptation_text(desired.get(ADAPTATION_KEY) if isinstance(desired, dict) else None)
    wanted_id = wanted.get("id") if isinstance(wanted, dict) else None
    reported = reported if isinstance(reported, dict) else {}
    status, in_force = reported.get("status"), reported.get("in_force")
    reason = shown(f"adaptation rejected: {reported.get('detail')}", MAX_LINE_SHOWN) if status == REJECTED else None
    # The device's verdict is on the offer it names; an offer it has not checked yet is pending.
    if wanted_id is not None and wanted_id != reported.get("offered"):
        return f"pending {short_id(wanted_id)}", None
    if status == REJECTED:
        # A rejected offer leaves the adaptation that was in force in force.
        return (f"{short_id(in_force)} (rejected)" if in_force else "rejected"), reason
    if status == APPLIED:
        return short_id(in_force), None
    return "-", None


def drift_cell(rain: Any) -> str:
    drift = rain.get("drift") if isinstance(rain, dict) else None
    verdict = drift.get("verdict") if isinstance(drift, dict) else None
    return "-" if verdict is None else shown(verdict)


@dataclass(frozen=True)
class CloudSide:
    connected: str
    reading: str
    model: str
    drift: str
    rain: str


def indexed_rain(shadow: Any) -> Any:
    """The `rain` shadow's reported state from a SearchIndex thing document's `shadow` (a JSON string of
    {"name": {<shadow>: {"reported": ...}}}), None when it has none."""
    try:
        document = json.loads(shadow) if isinstance(shadow, str) else shadow
    except (ValueError, RecursionError):
        return "unreadable document"
    named = document.get("name") if isinstance(document, dict) else None
    rain = named.get(RAIN_SHADOW) if isinstance(named, dict) else None
    return rain.get("reported", {}) if isinstance(rain, dict) else None


def from_index(clients: AwsClients, groups: tuple[str, ...]) -> dict[str, CloudSide] | None:
    """Every thing of the app's groups as the fleet index holds it, or None when there is no index."""
    try:
        documents = paginate(clients.iot.search_index, "things", indexName=fx.INDEX_NAME,
                             queryString=fx.status_query(groups), maxResults=SEARCH_PAGE)
    except ClientError as error:
        if error_code(error) in INDEX_UNAVAILABLE:
            return None
        raise
    found = {}
    for document in documents:
        name = document.get("thingName")
        if not isinstance(name, str):
            continue
        connected = (document.get("connectivity") or {}).get("connected")
        rain = indexed_rain(document.get("shadow"))
        found[name] = CloudSide("yes" if connected is True else "no" if connected is False else "-",
                                reading_cell(rain, "input_sampled_at"), model_cell(rain), drift_cell(rain),
                                rain_cell(rain))
    return found


def from_shadows(clients: AwsClients, thing: str) -> CloudSide:
    rain = reported_state(clients, thing, RAIN_SHADOW)
    return CloudSide("-", reading_cell(reported_state(clients, thing, WEATHER_SHADOW)), model_cell(rain), drift_cell(rain),
                     rain_cell(rain))


def failure_lines(deployment: dict[str, Any]) -> list[str]:
    """What Greengrass reports of a deployment that did not apply, each line shown escaped."""
    details = deployment.get("statusDetails", {})
    name = deployment.get("deploymentName") or deployment["deploymentId"]
    lines = [f"deployment {name} ({deployment['deploymentId']}) {deployment['coreDeviceExecutionStatus']}"
             + (f": {deployment['reason']}" if deployment.get("reason") else "")]
    if details.get("errorTypes"):
        lines.append(f"error types: {', '.join(details['errorTypes'])}")
    if details.get("errorStack"):
        lines.append(f"error stack: {' > '.join(details['errorStack'])}")
    return [shown(line, MAX_LINE_SHOWN) for line in lines]


def dashboard_url(region: str, dashboard_name: str) -> str:
    """The CloudWatch console's address of a dashboard (the form the console itself links to)."""
    return (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
            f"#dashboards:name={quote(dashboard_name)}")


def decision_line(decision: dict[str, Any]) -> str:
    """The last release decision (infra/releases.py), shown escaped: the record is a local file."""
    return shown(f"last decision: {decision.get('decision')} {decision.get('candidate')} at {decision.get('at')}: "
                 f"{decision.get('reason')}", MAX_LINE_SHOWN)


def lake_errors_line(clients: AwsClients, lake: LakeOutputs, day: date) -> str:
    """What Firehose could not deliver into the lake on `day` (UTC), by table and error type, from the objects
    under each table's error prefix (infra/lake_delivery.py): records over the active-partition quota
    (activePartitionExceeded) or that failed conversion land there, and no alarm counts them."""
    found = []
    for table in fed_tables():
        folder = error_folder(table)
        kinds = paginate(clients.s3.list_objects_v2, "CommonPrefixes", token=("ContinuationToken", "NextContinuationToken"),
                         Bucket=lake.bucket_name, Prefix=folder, Delimiter="/")
        for kind in kinds:
            objects = paginate(clients.s3.list_objects_v2, "Contents",
                               token=("ContinuationToken", "NextContinuationToken"),
                               Bucket=lake.bucket_name, Prefix=f"{kind['Prefix']}{day.isoformat()}/")
            if objects:
                found.append(f"{table.name} {shown(kind['Prefix'][len(folder):].rstrip('/'))} {len(objects)} object(s)")
    if not found:
        return f"lake: no delivery errors on {day.isoformat()} (UTC)"
    return (f"lake: delivery errors on {day.isoformat()} (UTC): {'; '.join(found)} "
            f"(s3://{lake.bucket_name}/{ERRORS_PREFIX}/)")


def show_status(clients: AwsClients, outputs: StackOutputs, echo: Callable[[str], None] = print,
                last_decision: dict[str, Any] | None = None, today: date | None = None) -> None:
    gg = clients.greengrassv2
    rings = {group: set(group_members(clients, group)) for group in outputs.thing_group_names}
    ring_of = {thing: ("canary" if group == outputs.canary_group_name else "fleet")
               for group, members in rings.items() for thing in members}
    indexed = from_index(clients, outputs.thing_group_names)
    members = sorted(set(indexed) | set(ring_of)) if indexed is not None else sorted(ring_of)
    things = list(dict.fromkeys([*outputs.thing_names, *members]))
    if indexed is None:
        echo("fleet index not available: reading each device's shadows (connectivity unknown)")

    labels = {thing: shown(thing, MAX_THING_SHOWN) for thing in things}
    widths = (max([len(COLUMNS[0]), *map(len, labels.values())]), 6, 9, 14, 12, 20, 24, 10, 23)
    echo(_row(COLUMNS, widths))
    counts: dict[str, int] = {}
    failed = 0
    for thing in things:
        core = call_unless_gone(gg.get_core_device, coreDeviceThingName=thing)
        status = shown(core["status"]) if core else "not registered"
        counts[status] = counts.get(status, 0) + 1
        deployments = paginate(gg.list_effective_deployments, "effectiveDeployments",
                               coreDeviceThingName=thing) if core else []
        ours = next((shown(item["coreDeviceExecutionStatus"]) for item in deployments
                     if item["deploymentId"] in outputs.deployment_ids), "-")
        cloud = (indexed.get(thing) or CloudSide("no", "not indexed", "-", "-", "not indexed")) \
            if indexed is not None else from_shadows(clients, thing)
        adaptation, rejection = adaptation_cell(shadow_state(clients, thing, ADAPTATION_SHADOW))
        echo(_row((labels[thing], ring_of.get(thing, "none"), cloud.connected, status, ours, cloud.model,
                   cloud.reading, cloud.drift, adaptation, cloud.rain), widths))
        if rejection:
            echo(f"    {rejection}")
        failures = [item for item in deployments if item["coreDeviceExecutionStatus"] in FAILED_STATUSES]
        failed += bool(failures)
        for item in failures:
            echo("\n".join(f"    {line}" for line in failure_lines(item)))
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    echo(f"{len(things)} core devices ({summary or 'none yet'}); {failed} with a failed deployment")
    echo(f"models: fleet ring {outputs.promoted_model_version} (promoted), canary ring "
         f"{outputs.candidate_model_version}")
    if last_decision:
        echo(decision_line(last_decision))
    if not things:
        echo("no device yet: install one with `make device-setup` (listed) or `make fleet-bundle` (fleet)")
    if outputs.lake:
        echo(lake_errors_line(clients, outputs.lake, today or datetime.now(timezone.utc).date()))
    if outputs.dashboard_name:
        echo(f"dashboard: {dashboard_url(outputs.region, outputs.dashboard_name)}")


def _row(cells: tuple[str, ...], widths: tuple[int, ...]) -> str:
    """Columns padded to `widths`; the last one, the widest, is not padded."""
    return "  ".join([*(cell.ljust(width) for cell, width in zip(cells, widths)), cells[-1]])
