"""logs: the devices' log lines, from CloudWatch Logs, where Greengrass's log manager uploads them.

"Log manager" (Greengrass V2 developer guide): log groups are /aws/greengrass/<componentType>/<region>/
<componentName> — UserComponent for our components (exact names from the ComponentNames output),
GreengrassSystemComponent with the name System for the nucleus and plugins (a group shared with every
other Greengrass app of the account) — and each core writes the stream /<yyyy>/<MM>/<dd>/thing/<thingName>
(the date of the lines, UTC), with a ':' of the thing name written as '+'. Only the app's devices'
streams are read, so another app's lines in the shared System group are never shown.

Each group is read with one paginated FilterLogEvents over the whole span, which goes back no further
than a line of the group can be from (its retention, and its creation less the 14 days by which
CloudWatch Logs takes lines late); a longer --since is cut to that, and says so in one line.
"""
from __future__ import annotations

import os
import re
import sys
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
# FilterLogEvents startTime: milliseconds after Jan 1, 1970 00:00:00 UTC, "min": 0 (botocore's model of the API).
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# PutLogEvents: "Events older than 14 days or preceding the log group's retention period are rejected"
# (CloudWatch Logs API reference), so a group holds no line older than its creation less 14 days.
MAX_LATE_LINE = timedelta(days=14)


@dataclass(frozen=True)
class Horizon:
    """The oldest moment a line in the log groups can be from, and why."""

    when: datetime
    why: str


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
    devices = set(outputs.thing_names).union(*(group_members(clients, group) for group in outputs.thing_group_names))
    if thing is None:
        return devices
    if not _THING_NAME.fullmatch(thing):
        raise LifecycleError(f"--thing {thing!r} is not a thing name (1-128 of a-z A-Z 0-9 : _ -)")
    if thing not in devices:
        raise LifecycleError(f"--thing {thing}: not a device of this app (neither listed in the stack nor in "
                             f"its thing groups {' and '.join(outputs.thing_group_names)}); `make status` lists them")
    return {thing}


def horizon(clients: AwsClients, sources: Iterable[LogSource], now: datetime) -> Horizon | None:
    """How far back any of the groups can hold a line; None while none of them exists."""
    limits = []
    for source in sources:
        groups = paginate(clients.logs.describe_log_groups, "logGroups", logGroupNamePrefix=source.group)
        group = next((group for group in groups if group["logGroupName"] == source.group), None)
        if group is None:
            continue
        created = datetime.fromtimestamp(group["creationTime"] / 1000, timezone.utc)
        limit = Horizon(created - MAX_LATE_LINE, f"{source.group} was created {created:%Y-%m-%d %H:%M} UTC, and "
                                                 f"CloudWatch Logs takes no line more than {MAX_LATE_LINE.days} days late")
        # DescribeLogGroups: without retentionInDays "that log group's events do not expire".
        days = group.get("retentionInDays")
        if days is not None and now - timedelta(days=days) > limit.when:
            limit = Horizon(now - timedelta(days=days), f"the retention of {source.group}: {days} day"
                                                        f"{'' if days == 1 else 's'}")
        limits.append(limit)
    return min(limits, key=lambda limit: limit.when, default=None)


def stream_prefix(things: set[str], start: datetime, end: datetime) -> str:
    """The longest stream-name prefix of every stream the log manager writes for `things` between start
    and end: one call covers the whole span, the exact streams are kept afterwards."""
    first, last = day_prefix(start.date()), day_prefix(end.date())
    if first == last and len(things) == 1:
        return log_stream_name(start.date(), next(iter(things)))
    return os.path.commonprefix([first, last])


def fetch(clients: AwsClients, sources: Iterable[LogSource], things: set[str], start: datetime,
          end: datetime) -> list[dict[str, Any]]:
    """The events of `things` between start and end, each with the source's label, oldest first."""
    streams = {stream_thing(thing): thing for thing in things}
    found = []
    for source in sources:
        try:
            events = paginate(clients.logs.filter_log_events, "events", logGroupName=source.group,
                              logStreamNamePrefix=stream_prefix(things, start, end),
                              startTime=_ms(start), endTime=_ms(end))
        except ClientError as error:
            if is_gone(error):  # the log manager creates a group with its first upload
                continue
            raise
        for event in events:
            # The prefix also matches other names: keep the app's devices' streams exactly.
            thing = streams.get(event["logStreamName"].split("/thing/", 1)[-1])
            if thing is not None:
                found.append({**event, "thing": thing, "label": source.label, "group": source.group})
    return sorted(found, key=lambda event: (event["timestamp"], event["group"], event["logStreamName"]))


def format_event(event: dict[str, Any]) -> str:
    when = datetime.fromtimestamp(event["timestamp"] / 1000, timezone.utc).isoformat(timespec="milliseconds")
    return f"{when.replace('+00:00', 'Z')} {event['thing']} {event['label']}: {event['message'].rstrip()}"


def show_logs(clients: AwsClients, sources: list[LogSource], things: set[str], since: timedelta, *,
              follow: bool = False, echo: Callable[[str], None] = print,
              warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
              now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
              sleep: Callable[[float], None] = time.sleep) -> int:
    """Print the lines of the last `since` (as far back as the groups hold any, said with `warn`); with
    `follow`, keep printing new ones until Ctrl-C. Returns how many lines were printed."""
    moment = now()
    oldest = horizon(clients, sources, moment)
    earliest = oldest.when if oldest else EPOCH
    start = floor = moment - min(since, moment - earliest)  # never before 1970: no OverflowError either
    if oldest is not None and since > moment - earliest:
        warn(f"logs: reading from {earliest:%Y-%m-%d %H:%M} UTC, the oldest a line can be ({oldest.why})")
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


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
