"""logs against moto's CloudWatch Logs, with the log groups and streams the log manager writes: the
app's devices' lines, merged by time, from the groups the outputs name; look-alike streams and other
apps' devices in the shared System group left out; --since, --component, --thing, pagination, --follow."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from infra.lifecycle.__main__ import main
from infra.lifecycle.aws import AwsClients
from infra.lifecycle.logs import log_sources, log_stream_name, show_logs, system_log_group
from infra.lifecycle.outputs import parse_outputs

from .conftest import REGION, THING

SENSOR = f"/aws/greengrass/UserComponent/{REGION}/com.rainedge.Sensor"
INFERENCE = f"/aws/greengrass/UserComponent/{REGION}/com.rainedge.Inference"
SYSTEM = system_log_group(REGION)


def write(clients, group: str, thing: str, minutes_ago: float, message: str) -> datetime:
    """One line as the log manager uploads it: into /<yyyy>/<MM>/<dd>/thing/<thing> of the line's date."""
    when = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    stream = log_stream_name(when.date(), thing)
    if not clients.logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
        clients.logs.create_log_group(logGroupName=group)
    if not clients.logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=stream)["logStreams"]:
        clients.logs.create_log_stream(logGroupName=group, logStreamName=stream)
    clients.logs.put_log_events(logGroupName=group, logStreamName=stream,
                                logEvents=[{"timestamp": int(when.timestamp() * 1000), "message": message}])
    return when


def run_logs(clients, names, *args: str) -> int:
    return main(["--project-root", str(names.project_root), "logs", *args], clients=clients)


@pytest.fixture
def fleet_logs(clients, deployed):
    provisioned = deployed.provision("10000000a1b2c3d4").thing_name
    first = write(clients, SENSOR, THING, 30, "sensor: reading 18.2 C")
    write(clients, INFERENCE, THING, 20, "inference: p=0.83 raining\n")
    write(clients, SYSTEM, THING, 25, "nucleus: deployment SUCCEEDED")
    write(clients, SENSOR, provisioned, 10, "sensor: reading 9.5 C")
    write(clients, SENSOR, THING, 90, "sensor: an old line")
    # Streams the app's devices' prefixes also match, and another app's core in the shared System group.
    write(clients, SYSTEM, f"{THING}0", 15, "not ours: a longer name")
    write(clients, SYSTEM, "weather-lab-core", 5, "not ours: another app")
    return provisioned, first


def test_the_apps_devices_lines_from_every_group_by_time(clients, names, fleet_logs, capsys):
    provisioned, first = fleet_logs
    assert run_logs(clients, names) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        f"{THING} Sensor: sensor: reading 18.2 C",
        f"{THING} system: nucleus: deployment SUCCEEDED",
        f"{THING} Inference: inference: p=0.83 raining",
        f"{provisioned} Sensor: sensor: reading 9.5 C",
    ]
    assert lines[0].split()[0] == first.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_one_device_one_component_and_since(clients, names, fleet_logs, capsys):
    assert run_logs(clients, names, "--thing", THING, "--component", "Sensor", "--since", "2h") == 0
    assert [line.split(" ", 1)[1] for line in capsys.readouterr().out.splitlines()] == [
        f"{THING} Sensor: sensor: an old line", f"{THING} Sensor: sensor: reading 18.2 C"]
    assert run_logs(clients, names, "--thing", THING, "--component", "system") == 0
    assert [line.split(" ", 1)[1] for line in capsys.readouterr().out.splitlines()] == [
        f"{THING} system: nucleus: deployment SUCCEEDED"]


class RecordedLogs:
    """The account's CloudWatch Logs client, recording each FilterLogEvents request (in pages of `limit`)."""

    def __init__(self, logs, limit: int | None = None) -> None:
        self.logs, self.limit, self.pages = logs, limit, []

    def filter_log_events(self, **params):
        self.pages.append(params)
        return self.logs.filter_log_events(**params, **({"limit": self.limit} if self.limit else {}))

    def __getattr__(self, name: str):
        return getattr(self.logs, name)


def recorded(session, clients, limit: int | None = None) -> tuple[AwsClients, RecordedLogs]:
    logs = RecordedLogs(clients.logs, limit)
    return AwsClients(session, overrides={"logs": logs}), logs


def test_pages_are_followed(session, clients, fleet_logs, deployed, greengrass):
    """Pages of two events: every line still arrives, each once."""
    for minute in range(1, 8):
        write(clients, SENSOR, THING, minute, f"line {minute}")
    paged, logs = recorded(session, clients, limit=2)
    outputs = parse_outputs(deployed.outputs)
    printed: list[str] = []
    assert show_logs(paged, log_sources(outputs, "Sensor"), {THING}, timedelta(hours=1), echo=printed.append) == 8
    assert sum("nextToken" in page for page in logs.pages) >= 3  # 8 lines, 2 a page
    assert [line.rsplit(": ", 1)[1] for line in printed][-7:] == [f"line {minute}" for minute in range(7, 0, -1)]


def test_follow_prints_new_and_late_lines_once_and_stops_on_ctrl_c(clients, deployed, fleet_logs):
    outputs = parse_outputs(deployed.outputs)
    printed: list[str] = []
    polls = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            write(clients, SENSOR, THING, 0, "new after the first poll")
            # Uploaded late: written before the newest line already shown.
            write(clients, INFERENCE, THING, 8, "uploaded late by the log manager")
        if len(polls) == 3:
            raise KeyboardInterrupt

    count = show_logs(clients, log_sources(outputs, None), {THING}, timedelta(hours=1), follow=True,
                      echo=printed.append, sleep=sleep)

    assert count == len(printed) == 5
    assert [line.split(": ", 1)[1] for line in printed[3:]] == [
        "uploaded late by the log manager", "new after the first poll"]
    assert polls == [10, 10, 10]


def test_a_long_span_is_one_paginated_call_per_log_group(session, clients, deployed, fleet_logs):
    """3650 days used to be one FilterLogEvents per day and group (14,668 calls): now one per group."""
    outputs = parse_outputs(deployed.outputs)
    counted, logs = recorded(session, clients)
    sources = log_sources(outputs, None)
    printed: list[str] = []
    shown = show_logs(counted, sources, {THING, fleet_logs[0]}, timedelta(days=3650), echo=printed.append,
                      warn=printed.append)
    assert shown == 5 and len(printed) == 6  # every line of the app's devices, and the one line on the span
    assert sorted(page["logGroupName"] for page in logs.pages) == sorted(source.group for source in sources)


@pytest.mark.parametrize("since", ["3650d", "99999d", "999999d"])
def test_a_span_beyond_what_the_log_groups_can_hold_is_cut_and_said_in_one_line(clients, names, fleet_logs,
                                                                                capsys, since):
    assert run_logs(clients, names, "--since", since) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 5
    (line,) = captured.err.splitlines()
    # The groups were made just now: CloudWatch Logs takes no line more than 14 days older than that.
    assert line.startswith("logs: reading from ") and "14 days" in line, line


def test_the_span_is_cut_to_a_log_groups_retention(clients, names, fleet_logs, capsys):
    clients.logs.put_retention_policy(logGroupName=SENSOR, retentionInDays=1)
    assert run_logs(clients, names, "--component", "Sensor", "--since", "30d") == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3
    (line,) = captured.err.splitlines()
    assert line.startswith("logs: reading from ") and f"retention of {SENSOR}: 1 day" in line, line


def test_a_span_within_what_the_groups_hold_says_nothing_about_it(clients, names, fleet_logs, capsys):
    assert run_logs(clients, names, "--since", "2h") == 0
    assert capsys.readouterr().err == ""


def test_no_log_group_yet_is_not_an_error(clients, names, deployed, capsys):
    assert run_logs(clients, names) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no line in the last 1h" in captured.err


@pytest.mark.parametrize("args, says", [
    (("--since", "yesterday"), "--since 'yesterday': give a number and a unit"),
    (("--since", "0h"), "give a number and a unit"),
    (("--component", "Sensorx"), "--component 'Sensorx': choose one of "),
    (("--thing", "pi-7"), "--thing pi-7: not a device of this app"),
    (("--thing", "a b"), "--thing 'a b' is not a thing name"),
])
def test_bad_options_get_one_line(clients, names, deployed, capsys, args, says):
    assert run_logs(clients, names, *args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and says in err, err
    if args[0] == "--component":
        assert all(choice in err for choice in ("Sensor", "ShadowWriter", "Inference", "system"))


def test_a_colon_in_a_thing_name_is_a_plus_in_its_stream():
    assert log_stream_name(date(2026, 11, 6), "pi:7") == "/2026/11/06/thing/pi+7"
