"""logs: the devices' log lines, from CloudWatch Logs, where Greengrass's log manager uploads them.

"Log manager" (Greengrass V2 developer guide): log groups are /aws/greengrass/<componentType>/<region>/
<componentName> — UserComponent for our components (exact names from the ComponentNames output),
GreengrassSystemComponent with the name System for the nucleus and plugins (a group shared with every
other Greengrass app of the account) — and each core writes the stream /<yyyy>/<MM>/<dd>/thing/<thingName>
(the date of the lines, UTC), with a ':' of the thing name written as '+'. Only the app's devices'
streams are read, so another app's lines in the shared System group are never shown.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from botocore.exceptions import ClientError

from infra.greengrass import component_log_group, system_log_group
from infra.lifecycle.aws import AwsClients, LifecycleError, is_gone, paginate
from infra.lifecycle.outputs import StackOutputs
from infra.lifecycle.scope import group_members

SYSTEM = "system"
_SINCE = re.compile(r"([1-9][0-9]{0,5})([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
# A thing name as CreateThing accepts it (AWS IoT API reference).
_THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
POLL_INTERVAL_S = 10
# The log manager uploads every periodicUploadIntervalSec (300 s by default), so a line reaches
# CloudWatch up to minutes after it was written: --follow re-reads this window and prints each line once.
FOLLOW_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True)
class LogSource:
    label: str  # what the user names with --component
    group: str


def parse_since(text: str) -> timedelta:
    match = _SINCE.fullmatch(text)
    if not match:
        raise LifecycleError(f"--since {text!r}: give a number and a unit, such as 30m, 1h or 2d (s, m, h, d)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def stream_thing(thing: str) -> str:
    """A thing name as the log manager writes it in a stream name."""
    return thing.replace(":", "+")


def day_prefix(day: date) -> str:
    return f"/{day:%Y/%m/%d}/thing/"


def log_stream_name(day: date, thing: str) -> str:
    return day_prefix(day) + stream_thing(thing)


def log_sources(outputs: StackOutputs, component: str | None) -> list[LogSource]:
    """The log groups to read: one component's, the system log, or (no --component) all of them."""
    prefix = f"{outputs.component_prefix}."
    sources = [LogSource(name.removeprefix(prefix), component_log_group(outputs.region, name))
               for name in outputs.component_names]
    sources.append(LogSource(SYSTEM, system_log_group(outputs.region)))
    if component is None:
        return sources
    chosen = [source for source in sources if source.label == component]
    if not chosen:
        raise LifecycleError(f"--component {component!r}: choose one of {', '.join(s.label for s in sources)}")
    return chosen


def app_devices(clients: AwsClients, outputs: StackOutputs, thing: str | None) -> set[str]:
    """The devices whose lines are shown: `thing`, which must be one of the app's, or all of them."""
    devices = set(outputs.thing_names) | set(group_members(clients, outputs.thing_group_name))
    if thing is None:
        return devices
    if not _THING_NAME.fullmatch(thing):
        raise LifecycleError(f"--thing {thing!r} is not a thing name (1-128 of a-z A-Z 0-9 : _ -)")
    if thing not in devices:
        raise LifecycleError(f"--thing {thing}: not a device of this app (neither listed in the stack nor in "
                             f"its thing group {outputs.thing_group_name}); `make status` lists them")
    return {thing}


def fetch(clients: AwsClients, sources: Iterable[LogSource], things: set[str], start: datetime,
          end: datetime) -> list[dict[str, Any]]:
    """The events of `things` between start and end, each with the source's label, oldest first."""
    streams = {stream_thing(thing): thing for thing in things}
    single = next(iter(things)) if len(things) == 1 else None  # one device: ask for its streams only
    found = []
    for source in sources:
        for day in _days(start, end):
            try:
                events = paginate(clients.logs.filter_log_events, "events", logGroupName=source.group,
                                  logStreamNamePrefix=log_stream_name(day, single) if single else day_prefix(day),
                                  startTime=_ms(start), endTime=_ms(end))
            except ClientError as error:
                if is_gone(error):  # the log manager creates a group with its first upload
                    break
                raise
            for event in events:
                # The prefix also matches longer names: keep the app's devices' streams exactly.
                thing = streams.get(event["logStreamName"].split("/thing/", 1)[-1])
                if thing is not None:
                    found.append({**event, "thing": thing, "label": source.label, "group": source.group})
    return sorted(found, key=lambda event: (event["timestamp"], event["group"], event["logStreamName"]))


def format_event(event: dict[str, Any]) -> str:
    when = datetime.fromtimestamp(event["timestamp"] / 1000, timezone.utc).isoformat(timespec="milliseconds")
    return f"{when.replace('+00:00', 'Z')} {event['thing']} {event['label']}: {event['message'].rstrip()}"


def show_logs(clients: AwsClients, sources: list[LogSource], things: set[str], since: timedelta, *,
              follow: bool = False, echo: Callable[[str], None] = print,
              now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
              sleep: Callable[[float], None] = time.sleep) -> int:
    """Print the lines of the last `since`; with `follow`, keep printing new ones until Ctrl-C.
    Returns how many lines were printed."""
    start = floor = now() - since
    seen: dict[tuple[str, str, str], int] = {}
    printed = 0
    try:
        while True:
            end = now()
            for event in fetch(clients, sources, things, start, end):
                key = (event["group"], event["logStreamName"], event["eventId"])
                if key not in seen:
                    seen[key] = event["timestamp"]
                    echo(format_event(event))
                    printed += 1
            if not follow:
                return printed
            start = max(floor, end - FOLLOW_WINDOW)
            seen = {key: stamp for key, stamp in seen.items() if stamp >= _ms(start)}
            sleep(POLL_INTERVAL_S)
    except KeyboardInterrupt:
        return printed


def _days(start: datetime, end: datetime) -> list[date]:
    return [start.date() + timedelta(days=offset) for offset in range((end.date() - start.date()).days + 1)]


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
