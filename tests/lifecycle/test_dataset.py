"""make dataset (issue 18, section 1): infra/lake.py's queries over a lake laid out as Firehose writes it,
run by DuckDB (tests/lifecycle/lake_duckdb.py), with hourly means computed by hand; and the command itself
against moto's Athena (its state transitions, its results queue) and CloudFormation, the CSV it writes read
by model_training's `evaluate`. What moto never does (fail a query, page a result) is a Stubber's part."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from botocore.loaders import create_loader
from botocore.stub import Stubber
from hypothesis import given, strategies as st
from moto.moto_api import state_manager

from device_code.model import read_metadata
from infra.config import APP_TAG
from infra.fleet_hook.handler import THING_NAME
from infra.lake import (PREDICTIONS_LABELLED, QUERIES, STATION_HOURLY, STATION_LABELLED, LakeQueryError,
                        query_parameters)
from infra.lifecycle.__main__ import main
from infra.lifecycle.aws import AwsClients, LifecycleError
from infra.lifecycle.dataset import (FIRST_PAUSE_S, LONGEST_PAUSE_S, MAX_WAIT_S, PAGE_ROWS, dataset_request,
                                     export_dataset, wait_for_query)
from infra.lifecycle.outputs import parse_outputs
from infra.lifecycle.settings import load_names
from model_training.artifact import opened_artifact
from model_training.evaluate import read_labelled_csv

from .conftest import ACCOUNT, EXAMPLE_OUTPUTS, REGION, create_stack
from .lake_duckdb import Lake, athena_text

LAKE_OUTPUTS = {"LakeBucketName": "rainedge-lake-123456789012", "LakeDatabaseName": "rainedge_lake",
                "LakeWorkGroupName": "rainedge-lake",
                "LakeDeliveryStreamNames": "rainedge-readings,rainedge-predictions",
                "LakeTopicRuleNames": "rainedge_lake_readings,rainedge_lake_predictions"}
LAKE = parse_outputs({**EXAMPLE_OUTPUTS, **LAKE_OUTPUTS}).lake
EXECUTION = "a1b2c3d4-5678-90ab-cdef-000000000001"


def reading(sampled_at: str, temperature: float, sea_level: float = 1013.0, humidity: float = 80.0) -> dict:
    # The station pressure differs from the sea-level one: the series' `pressure` must be the latter.
    return {"sampled_at": sampled_at, "temperature": temperature, "humidity": humidity, "pressure": sea_level - 50,
            "sea_level_pressure": sea_level}


# ---- the queries, on DuckDB --------------------------------------------------------------------
@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


@pytest.fixture
def station(lake: Lake) -> Lake:
    """core-a's readings over two arrival days, and readings that must not count."""
    lake.readings("2026-12-01", "core-a", [
        reading("2026-12-01T09:59:59.999Z", 0.0),  # before SINCE=2026-12-01T10:00:00Z
        reading("2026-12-01T10:05:00.000Z", 10.0, 1010.0, 70.0),
        reading("2026-12-01T10:35:00.000Z", 12.0, 1012.0, 80.0),
        reading("2026-12-01T23:10:00.000Z", 4.0, 1000.0),
    ])
    lake.readings("2026-12-01", "core-a", [reading("2026-12-01T10:55:00.000Z", 14.0, 1014.0, 90.0)])
    # 23:50 arrived after midnight: the hour 23 spans the two arrival days.
    lake.readings("2026-12-02", "core-a", [reading("2026-12-01T23:50:00.000Z", 6.0, 1002.0),
                                           reading("2026-12-02T01:00:00.000Z", 8.0)])
    # Another station, and one whose name starts with core-a's.
    lake.readings("2026-12-01", "core-b", [reading("2026-12-01T10:15:00.000Z", 30.0)])
    lake.readings("2026-12-01", "core-a2", [reading("2026-12-01T10:15:00.000Z", 40.0)])
    return lake


def test_hourly_means_of_one_station(station):
    assert station.run_query(STATION_HOURLY, "core-a", "2026-12-01T10:00:00Z") == [
        ("2026-12-01T10:00:00Z", 12.0, 80.0, 1012.0),  # (10 + 12 + 14) / 3 from two files of one day
        ("2026-12-01T23:00:00Z", 5.0, 80.0, 1001.0),  # (4 + 6) / 2 over two arrival days
        ("2026-12-02T01:00:00Z", 8.0, 80.0, 1013.0),
    ]
    assert station.run_query(STATION_HOURLY, "core-a", None)[0] == ("2026-12-01T09:00:00Z", 0.0, 80.0, 1013.0)
    assert station.run_query(STATION_HOURLY, "core-a2", None) == [("2026-12-01T10:00:00Z", 40.0, 80.0, 1013.0)]


def test_a_thing_named_like_a_number_is_still_its_name(lake):
    # Partition values are text (the Glue table's string keys): 0123 is not 123.
    lake.readings("2026-12-01", "0123", [reading("2026-12-01T10:15:00.000Z", 1.0)])
    lake.readings("2026-12-01", "123", [reading("2026-12-01T10:15:00.000Z", 2.0)])
    assert lake.run_query(STATION_HOURLY, "0123", None) == [("2026-12-01T10:00:00Z", 1.0, 80.0, 1013.0)]


def test_since_a_day_starts_at_its_midnight_and_skips_earlier_arrival_days(station):
    assert [row[0] for row in station.run_query(STATION_HOURLY, "core-a", "2026-12-02")] == ["2026-12-02T01:00:00Z"]


def test_a_reading_filed_under_the_day_before_since_is_still_found(lake):
    """The partition day is the arrival of the object's OLDEST record ("Custom prefixes for Amazon S3 objects"):
    an object begun at 23:55 holds a reading of 00:05 under the day before."""
    lake.readings("2026-12-01", "core-a", [reading("2026-12-01T23:55:00.000Z", 1.0),
                                           reading("2026-12-02T00:05:00.000Z", 3.0)])
    lake.readings("2026-11-30", "core-a", [reading("2026-11-30T23:50:00.000Z", 99.0)])  # two days before: not scanned
    assert station_rows(lake, "2026-12-02") == [("2026-12-02T00:00:00Z", 3.0, 80.0, 1013.0)]
    assert station_rows(lake, "2026-12-02T00:05:00Z") == [("2026-12-02T00:00:00Z", 3.0, 80.0, 1013.0)]


def station_rows(lake: Lake, since: str) -> list[tuple]:
    return lake.run_query(STATION_HOURLY, "core-a", since)


def test_an_unparseable_label_says_nothing_about_its_hour(station):
    # The CSV SerDe reads `rain` as int: "yes" and "1.0" are NULL, and a NULL label is no label.
    station.labels("core-a", [("2026-12-01T10:00:00Z", "yes"), ("2026-12-02T01:00:00Z", 1)])
    assert [(row[0], row[-1]) for row in station.run_query(STATION_LABELLED, "core-a", None)] == [
        ("2026-12-02T01:00:00Z", 1)]


def test_since_a_time_keeps_the_readings_within_its_second(lake):
    # '...T10:00:00.250Z' sorts before '...T10:00:00Z' as text ('.' < 'Z'); the query must still count it.
    lake.readings("2026-12-01", "core-a", [reading("2026-12-01T09:59:59.750Z", 100.0),
                                           reading("2026-12-01T10:00:00.250Z", 2.0),
                                           reading("2026-12-01T10:00:00Z", 4.0)])
    assert lake.run_query(STATION_HOURLY, "core-a", "2026-12-01T10:00:00Z") == [
        ("2026-12-01T10:00:00Z", 3.0, 80.0, 1013.0)]


def test_the_labelled_series_keeps_only_labelled_hours(station):
    # Any rain in the hour; the reference readings averaged over the hour, a blank cell left out.
    station.labels("core-a", [("2026-12-01T10:00:00Z", 0, 11.0, 1013.0), ("2026-12-01T10:30:00Z", 1, 13.0, None),
                              ("2026-12-02T01:00:00Z", 0), ("2026-12-03T00:00:00Z", 1)])  # the last: no readings
    station.labels("core-b", [("2026-12-01T23:00:00Z", 1)])  # another station's label for core-a's hour 23
    assert station.run_query(STATION_LABELLED, "core-a", "2026-12-01T10:00:00Z") == [
        ("2026-12-01T10:00:00Z", 12.0, 80.0, 1012.0, 12.0, 1013.0, 1),
        ("2026-12-02T01:00:00Z", 8.0, 80.0, 1013.0, None, None, 0),
    ]


def test_a_labels_file_without_reference_columns_gives_empty_reference_cells(station):
    station.labels("core-a", [("2026-12-01T10:00:00Z", 1)])
    assert station.run_query(STATION_LABELLED, "core-a", None) == [
        ("2026-12-01T10:00:00Z", 12.0, 80.0, 1012.0, None, None, 1)]


def test_predictions_against_labels(lake):
    def predicted(sampled_at: str, probability: float, raining: float, adaptation: str = "") -> dict:
        return {"sampled_at": sampled_at, "predicted_at": sampled_at, "probability": probability, "threshold": 0.5,
                "raining": raining, "model": "trend", "model_version": "rain-00000000000000aa",
                "adaptation": adaptation}

    lake.predictions("2026-12-01", "core-a", [predicted("2026-12-01T10:05:00.000Z", 0.2, 0.0),
                                              predicted("2026-12-01T10:45:00.000Z", 0.8, 1.0, "ad-1"),
                                              predicted("2026-12-01T11:05:00.000Z", 0.9, 1.0)])
    lake.predictions("2026-12-01", "core-b", [predicted("2026-12-01T10:05:00.000Z", 0.99, 1.0)])
    lake.labels("core-a", [("2026-12-01T10:00:00Z", 1)])
    # One row per model version and adaptation that predicted in the hour: the global model's, then ad-1's.
    assert lake.run_query(PREDICTIONS_LABELLED, "core-a", None) == [
        ("2026-12-01T10:00:00Z", 0.2, 0.0, "rain-00000000000000aa", "", 1),
        ("2026-12-01T10:00:00Z", 0.8, 1.0, "rain-00000000000000aa", "ad-1", 1)]


@pytest.mark.parametrize("query", QUERIES, ids=lambda query: query.name)
def test_athenas_substituted_literals_and_duckdbs_bound_values_give_one_result(station, query):
    station.labels("core-a", [("2026-12-01T10:00:00Z", 1), ("2026-12-01T23:00:00Z", 0)])
    station.predictions("2026-12-01", "core-a", [{"sampled_at": "2026-12-01T23:10:00.000Z", "probability": 0.4,
                                                  "raining": 0.0, "model_version": "v", "adaptation": ""}])
    for since in (None, "2026-12-01", "2026-12-01T10:30:00Z"):
        bound = station.run_query(query, "core-a", since)
        assert bound and bound == station.run_substituted(query, "core-a", since)


# ---- the parameters ----------------------------------------------------------------------------
@given(thing=st.text(), since=st.one_of(st.none(), st.text()))
def test_a_parameter_is_refused_or_one_quote_free_literal(thing, since):
    for query in QUERIES:
        try:
            literals = query_parameters(query, thing, since)
        except LakeQueryError as error:
            assert "\n" not in str(error)
            continue
        assert len(literals) == query.sql.count("?")
        assert all(literal[0] == literal[-1] == "'" and "'" not in literal[1:-1] and "\\" not in literal
                   for literal in literals)
        assert f"'{thing}'" in literals


@given(thing=st.from_regex(THING_NAME, fullmatch=True))
def test_every_thing_name_is_a_parameter(thing):
    assert query_parameters(STATION_HOURLY, thing, None)[0] == f"'{thing}'"


# ---- the command -------------------------------------------------------------------------------
# Athena's botocore model with its wire protocol set back to the JSON one (AmazonAthena.<Operation> targets)
# that moto 5.2 serves: botocore 1.44 speaks rest-json to Athena, which moto answers with 404 "Not yet
# implemented". Only the wire format changes; the operations, their shapes and validation stay botocore's.
@pytest.fixture(scope="session")
def athena_json_model(tmp_path_factory) -> Path:
    model = create_loader().load_service_model("athena", "service-2")
    model["metadata"].update(protocol="json", protocols=["json"], jsonVersion="1.1", targetPrefix="AmazonAthena")
    for operation in model["operations"].values():
        operation["http"] = {"method": "POST", "requestUri": "/"}
    folder = tmp_path_factory.mktemp("botocore-data")
    (folder / "athena" / "2017-05-18").mkdir(parents=True)
    (folder / "athena" / "2017-05-18" / "service-2.json").write_text(json.dumps(model))
    return folder


@pytest.fixture
def moto_athena(session, athena_json_model):
    """moto's Athena, with the app's workgroup as the stack makes it."""
    session._session.get_component("data_loader").search_paths.insert(0, str(athena_json_model))
    client = session.client("athena", region_name=REGION)
    client.create_work_group(Name=LAKE.workgroup_name, Configuration={"ResultConfiguration": {
        "OutputLocation": f"s3://{LAKE.bucket_name}/athena-results/"}})
    return client


def queue_result(rows: list[list[str | None]]) -> None:
    """The rows moto's GetQueryResults gives the next query, through its documented endpoint."""
    result = {"rows": [{"Data": [{} if value is None else {"VarCharValue": value} for value in row]} for row in rows],
              "column_info": [{"Name": name, "Type": "varchar"} for name in (rows[0] if rows else [])]}
    answer = requests.post("http://motoapi.amazonaws.com/moto-api/static/athena/query-results",
                           json={"account_id": ACCOUNT, "region": REGION, "results": [result]})
    assert answer.status_code == 201


def the_execution(athena) -> dict:
    """The one query `dataset` ran in the app's workgroup, as Athena records it."""
    [execution] = athena.list_query_executions(WorkGroup=LAKE.workgroup_name)["QueryExecutionIds"]
    return athena.get_query_execution(QueryExecutionId=execution)["QueryExecution"]


@pytest.fixture
def slow_queries():
    """Each query state lasts `times` GetQueryExecution calls (moto's manual transitions)."""
    def last(times: int) -> None:
        state_manager.set_transition(model_name="athena::execution",
                                     transition={"progression": "manual", "times": times})

    yield last
    state_manager.unset_transition("athena::execution")


class AthenaStub:
    """Answers moto cannot give (a failed query, pages), in the order `dataset` must ask for them."""

    def __init__(self, session) -> None:
        self.client = session.client("athena", region_name=REGION)
        self.stubber = Stubber(self.client)
        self.stubber.activate()

    def started(self, query=STATION_HOURLY) -> None:
        self.stubber.add_response("start_query_execution", {"QueryExecutionId": EXECUTION}, {
            "QueryString": query.sql, "QueryExecutionContext": {"Database": LAKE.database_name},
            "WorkGroup": LAKE.workgroup_name, "ExecutionParameters": query_parameters(query, "core-a", None)})

    def state(self, state: str, reason: str | None = None) -> None:
        status = {"State": state, **({"StateChangeReason": reason} if reason else {})}
        self.stubber.add_response("get_query_execution", {"QueryExecution": {
            "QueryExecutionId": EXECUTION, "Status": status}}, {"QueryExecutionId": EXECUTION})

    def page(self, rows: list[list[str | None]], token: str | None = None, next_token: str | None = None) -> None:
        response = {"ResultSet": {"Rows": [{"Data": [{} if value is None else {"VarCharValue": value}
                                                     for value in row]} for row in rows]}}
        if next_token:
            response["NextToken"] = next_token
        self.stubber.add_response("get_query_results", response,
                                  {"QueryExecutionId": EXECUTION, "MaxResults": PAGE_ROWS,
                                   **({"NextToken": token} if token else {})})


@pytest.fixture
def athena(session):
    stub = AthenaStub(session)
    yield stub
    stub.stubber.assert_no_pending_responses()


@pytest.fixture
def project(tmp_path: Path, project_root: Path):
    """A scratch project root with the real cdk.json."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "cdk.json").write_text((project_root / "cdk.json").read_text())
    return load_names(root)


def app_clients(session, athena_client, fake_greengrass, outputs: dict[str, str]) -> AwsClients:
    clients = AwsClients(session, overrides={"athena": athena_client, "greengrassv2": fake_greengrass})
    create_stack(clients.cloudformation, outputs, {APP_TAG: "rainedge"})
    return clients


@pytest.fixture
def deployed_lake(session, moto_athena, fake_greengrass) -> AwsClients:
    """The app's stack with the data lake, Athena moto's."""
    return app_clients(session, moto_athena, fake_greengrass, {**EXAMPLE_OUTPUTS, **LAKE_OUTPUTS})


def run_dataset(clients, project, *args: str) -> int:
    return main(["--project-root", str(project.project_root), "dataset", *args], clients=clients)


def one_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


def as_athena(rows) -> list[list[str | None]]:
    return [[athena_text(value) for value in row] for row in rows]


def labelled_station(lake: Lake, hours: int = 48) -> None:
    """Two days of readings, four a hour, labelled every hour, rain when the pressure is low."""
    readings, labels = [], []
    for hour in range(hours):
        when = f"2026-12-{1 + hour // 24:02d}T{hour % 24:02d}"
        low = hour % 6 in (4, 5)
        readings += [reading(f"{when}:{minute:02d}:00.000Z", 5.0 + minute / 15, 995.0 if low else 1022.5,
                             95.0 if low else 60.0) for minute in (0, 15, 30, 45)]
        # The reference station, a little warmer, reads the pressure the station should have.
        labels.append((f"{when}:00:00Z", int(low), 6.5, 995.5 if low else 1023.0))
    lake.readings("2026-12-01", "core-a", readings)
    lake.labels("core-a", labels)


def test_the_labelled_csv_is_the_query_result_and_evaluate_reads_it(deployed_lake, project, moto_athena, lake,
                                                                   capsys, trained_model_dir):
    labelled_station(lake)
    rows = as_athena(lake.run_query(STATION_LABELLED, "core-a", None))
    rows[0][3] = "1.0225E3"  # Athena may print a double in E notation: passed on as it is
    queue_result([list(STATION_LABELLED.columns), *rows])
    out = project.project_root / "station.csv"
    assert run_dataset(deployed_lake, project, "--thing", "core-a", "--labelled", "--out", str(out)) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"dataset: 48 labelled hourly rows of core-a, 2026-12-01T00:00:00Z to 2026-12-02T23:00:00Z "
        f"(48 hours covered, 0 without a row) -> {out}"]
    execution = the_execution(moto_athena)
    assert (execution["Query"], execution["QueryExecutionContext"], execution["ExecutionParameters"]) == (
        STATION_LABELLED.sql, {"Database": LAKE.database_name}, ["'core-a'", "'2023-12-31'", "'2024-01-01'",
                                                                 "'core-a'"])
    assert list(csv.reader(io.StringIO(out.read_text()))) == [list(STATION_LABELLED.columns), *rows]
    with opened_artifact(trained_model_dir / "rain_model.zip") as folder:
        frame = read_labelled_csv(out, read_metadata(folder).valid_ranges)
    assert frame["rain"].tolist() == [int(row[6]) for row in rows] and frame["pressure"].iloc[0] == 1022.5
    assert frame["reference_pressure"].iloc[0] == 1023.0 and frame["reference_temperature"].iloc[0] == 6.5


def test_evaluate_scores_the_exported_csv(deployed_lake, project, lake, trained_model_dir):
    labelled_station(lake)
    queue_result([list(STATION_LABELLED.columns), *as_athena(lake.run_query(STATION_LABELLED, "core-a", None))])
    assert run_dataset(deployed_lake, project, "--thing", "core-a", "--labelled") == 0
    exported = project.project_root / "build" / "dataset-core-a.csv"
    scored = subprocess.run([sys.executable, "-m", "model_training", "evaluate", "--model",
                             str(trained_model_dir / "rain_model.zip"), "--csv", str(exported), "--json"],
                            capture_output=True, text=True, timeout=300)
    assert scored.returncode == 0, scored.stderr
    assert sum(json.loads(scored.stdout)["rows_by_model"].values()) == 48


def test_the_unlabelled_series_without_rain_and_its_gaps(deployed_lake, project, moto_athena, station, capsys):
    since = "2026-12-01T10:00:00Z"
    queue_result([list(STATION_HOURLY.columns), *as_athena(station.run_query(STATION_HOURLY, "core-a", since))])
    assert run_dataset(deployed_lake, project, "--thing", "core-a", "--since", since) == 0
    out = project.project_root / "build" / "dataset-core-a.csv"
    assert out.read_text().splitlines() == ["sampled_at,temperature,humidity,pressure",
                                            "2026-12-01T10:00:00Z,12.0,80.0,1012.0",
                                            "2026-12-01T23:00:00Z,5.0,80.0,1001.0",
                                            "2026-12-02T01:00:00Z,8.0,80.0,1013.0"]
    assert capsys.readouterr().out.strip().endswith(
        "3 hourly rows of core-a, 2026-12-01T10:00:00Z to 2026-12-02T01:00:00Z (16 hours covered, 13 without a row) "
        f"-> {out}")
    assert the_execution(moto_athena)["ExecutionParameters"] == query_parameters(STATION_HOURLY, "core-a", since)


@pytest.mark.parametrize("labelled", [False, True])
def test_no_rows_says_where_to_look_and_writes_nothing(deployed_lake, project, capsys, labelled):
    queue_result([list((STATION_LABELLED if labelled else STATION_HOURLY).columns)])
    args = ["--thing", "core-c", "--since", "2026-12-05", *(["--labelled"] if labelled else [])]
    assert run_dataset(deployed_lake, project, *args) == 2
    line = one_line(capsys)
    assert "core-c since 2026-12-05" in line and "make status" in line and "Firehose" in line and "15 minutes" in line
    assert (f"s3://{LAKE.bucket_name}/labels/thing=core-c/" in line) == labelled
    assert not (project.project_root / "build").exists()


def test_a_stack_without_the_lake_is_refused(session, moto_athena, fake_greengrass, project, capsys):
    clients = app_clients(session, moto_athena, fake_greengrass, EXAMPLE_OUTPUTS)
    assert run_dataset(clients, project, "--thing", "core-a") == 2
    assert "deploy the stack with the data lake first" in one_line(capsys)
    assert moto_athena.list_query_executions()["QueryExecutionIds"] == []


HOSTILE = [
    ("--thing", "core-a'"), ("--thing", "x'; DROP TABLE readings; --"), ("--thing", "../../etc/passwd"),
    ("--thing", "a" * 65), ("--thing", "café"), ("--thing", "ｃｏｒｅ"), ("--thing", "core a"), ("--thing", ""),
    ("--thing", "core-a\n"), ("--thing", "core%"), ("--since", "2026-12-01' OR '1'='1"), ("--since", "yesterday"),
    ("--since", "2026-12-01T06:00:00"), ("--since", "２０２６-12-01"), ("--since", "2026-12-01\n"),
    ("--out", "dataset.txt"), ("--out", "a\nb.csv"), ("--out", "$(touch x).csv"), ("--out", ".csv"),
]


@pytest.mark.parametrize(("option", "value"), HOSTILE)
def test_a_hostile_value_is_refused_in_one_line_before_any_aws_call(session, project, capsys, option, value):
    calls: list[str] = []
    session.events.register("before-call", lambda event_name, **_: calls.append(event_name))
    args = {"--thing": "core-a", option: value}
    assert run_dataset(AwsClients(session), project, *(f"{name}={text}" for name, text in args.items())) == 2
    assert one_line(capsys).startswith("dataset: ") and calls == []
    assert not (project.project_root / "build").exists()


def test_out_may_not_be_a_folder(tmp_path):
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(LifecycleError, match="is a folder: name the CSV file to write"):
        dataset_request("core-a", None, False, str(tmp_path / "d.csv"), tmp_path)


def test_a_failed_write_leaves_the_previous_csv_whole(deployed_lake, project, station, capsys, monkeypatch):
    out = project.project_root / "old.csv"
    out.write_text("sampled_at,temperature,humidity,pressure\nkept\n")
    queue_result([list(STATION_HOURLY.columns), *as_athena(station.run_query(STATION_HOURLY, "core-a", None))])

    def full_disk(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    assert run_dataset(deployed_lake, project, "--thing", "core-a", "--out", str(out)) == 2
    assert f"cannot write {out} (No space left on device)" in one_line(capsys)
    assert out.read_text().endswith("kept\n")
    assert sorted(out.parent.iterdir()) == [project.project_root / "cdk.json", out]  # no partial file left


@pytest.mark.parametrize(("rows", "problem"), [
    ([["sampled_at", "temperature", "humidity"]], "has the columns ['sampled_at', 'temperature', 'humidity']"),
    ([], "has the columns None"),
    ([list(STATION_HOURLY.columns), ["2026-12-01T10:00:00Z", "1.0", "2.0"]], "gave the row"),
    ([list(STATION_HOURLY.columns), ["2026-12-01T10:30:00Z", "1.0", "2.0", "3.0"]], "gave the row"),
])
def test_a_result_not_shaped_as_the_query_is_refused(deployed_lake, project, capsys, rows, problem):
    out = project.project_root / "old.csv"
    out.write_text("previous\n")
    queue_result(rows)
    assert run_dataset(deployed_lake, project, "--thing", "core-a", "--out", str(out)) == 2
    assert problem in one_line(capsys) and out.read_text() == "previous\n"


def test_the_query_is_polled_on_virtual_time_until_it_succeeds(moto_athena, slow_queries, tmp_path):
    slow_queries(2)  # QUEUED for two polls, RUNNING for two, then SUCCEEDED
    queue_result([list(STATION_HOURLY.columns), ["2026-12-01T10:00:00Z", "1.0", "2.0", "3.0"]])
    pauses: list[float] = []
    request = dataset_request("core-a", None, False, None, tmp_path)
    assert export_dataset(moto_athena, LAKE, request, sleep=pauses.append, echo=lambda line: None) == 1
    assert pauses == [FIRST_PAUSE_S, 2 * FIRST_PAUSE_S, 4 * FIRST_PAUSE_S]


def test_a_query_that_outlasts_the_wait_is_stopped(moto_athena, slow_queries, tmp_path):
    slow_queries(10 ** 6)
    pauses: list[float] = []
    request = dataset_request("core-a", None, False, None, tmp_path)
    with pytest.raises(LifecycleError, match=f"was still QUEUED after {MAX_WAIT_S} s, so it was stopped"):
        export_dataset(moto_athena, LAKE, request, sleep=pauses.append)
    assert sum(pauses) >= MAX_WAIT_S > sum(pauses[:-1]) and max(pauses) == LONGEST_PAUSE_S
    assert the_execution(moto_athena)["Status"]["State"] == "CANCELLED"
    assert not request.out.exists()


def test_a_query_back_in_the_queue_is_still_waited_for(athena):
    pauses: list[float] = []
    for state in ("RUNNING", "QUEUED", "SUCCEEDED"):  # "the state transitions from RUNNING back to QUEUED"
        athena.state(state)
    wait_for_query(athena.client, EXECUTION, sleep=pauses.append)
    assert len(pauses) == 2


@pytest.mark.parametrize("state", ["FAILED", "CANCELLED"])
def test_a_query_that_ends_unfinished_says_why_in_one_line(session, athena, fake_greengrass, project, capsys, state):
    athena.started()
    athena.state(state, "TABLE_NOT_FOUND: line 1:8:\n  Table 'awsdatacatalog.rainedge_lake.readings' does not exist")
    clients = app_clients(session, athena.client, fake_greengrass, {**EXAMPLE_OUTPUTS, **LAKE_OUTPUTS})
    assert run_dataset(clients, project, "--thing", "core-a") == 2
    assert one_line(capsys) == (
        f"dataset: Athena query {EXECUTION} {state}: TABLE_NOT_FOUND: line 1:8: Table "
        "'awsdatacatalog.rainedge_lake.readings' does not exist; fix that and run again "
        "(`aws athena get-query-execution --query-execution-id` shows the details)")


def test_results_are_read_page_by_page(athena, tmp_path):
    request = dataset_request("core-a", None, False, None, tmp_path)
    athena.started()
    athena.state("SUCCEEDED")
    athena.page([list(STATION_HOURLY.columns), ["2026-12-01T10:00:00Z", "1.0", "2.0", "3.0"]], next_token="t1")
    athena.page([["2026-12-01T11:00:00Z", "4.0", "5.0", "6.0"]], token="t1", next_token="t2")
    athena.page([["2026-12-01T12:00:00Z", "7.0", "8.0", None]], token="t2")
    assert export_dataset(athena.client, LAKE, request, sleep=pytest.fail, echo=lambda line: None) == 3
    assert request.out.read_text().splitlines()[1:] == ["2026-12-01T10:00:00Z,1.0,2.0,3.0",
                                                        "2026-12-01T11:00:00Z,4.0,5.0,6.0",
                                                        "2026-12-01T12:00:00Z,7.0,8.0,"]


def test_make_dataset_needs_a_thing_and_passes_values_through_the_environment(project_root):
    def make(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["make", "-n", "--no-print-directory", "dataset", *args], cwd=project_root,
                              capture_output=True, text=True, timeout=60)

    missing = make()
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert "make dataset THING=<name>" in missing.stderr
    assert make("THING=core-a", "LABELLED=yes").returncode == 2
    printed = make("THING=x'; rm -rf build; '", "SINCE=$$(id)", "OUT=a b.csv", "LABELLED=1").stdout
    assert ('dataset --thing="$THING" --since="$SINCE" --labelled' in printed and '--out="$OUT"' in printed
            and "rm -rf" not in printed and "a b.csv" not in printed)
