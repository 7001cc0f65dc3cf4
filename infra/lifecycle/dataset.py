"""dataset: one station's hourly series from the data lake, as the CSV that `python -m model_training
evaluate` and `adapt` read.

The query is infra/lake.py's STATION_HOURLY (sampled_at, temperature, humidity, pressure) or, with
--labelled, STATION_LABELLED (the same and `rain`, hours without a label left out: ready for `adapt`).
It runs in the app's Athena workgroup (whose result location is in the lake bucket) against the app's Glue
database; THING and SINCE reach it only as execution parameters, checked before any AWS call
(infra.lake.query_parameters). The CSV's columns are the query's, in its order, its values Athena's text.
Offline, the tests run the same SQL on DuckDB over files laid out as Firehose writes them; what differs
between the two engines is said in tests/lifecycle/lake_duckdb.py.

The file is written whole or not at all: into a temporary file beside OUT, renamed over OUT at the end,
so an existing OUT is never left half-written.
"""
from __future__ import annotations

import csv
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from device_code.files import replace_whole
from infra.lake import LABELS, STATION_HOURLY, STATION_LABELLED, LakeQuery, LakeQueryError, query_parameters
from infra.lifecycle.aws import LifecycleError, call
from infra.lifecycle.outputs import LAKE_KEYS, LakeOutputs

# QueryExecutionStatus (Athena API reference): "The FAILED state is always terminal"; a query can go from
# RUNNING back to QUEUED on transient errors, so only these end the wait.
SUCCEEDED, ENDED_UNFINISHED = "SUCCEEDED", ("FAILED", "CANCELLED")
# A station's hourly series takes Athena seconds; past this the query is stopped rather than left scanning
# (Athena's own "DML query timeout" quota, 30 minutes by default, is longer than anyone waits at a prompt).
MAX_WAIT_S = 600
FIRST_PAUSE_S, LONGEST_PAUSE_S = 0.5, 5.0
# GetQueryResults MaxResults: "Maximum value of 1000" (Athena API reference).
PAGE_ROWS = 1000
# BufferingHints IntervalInSeconds: "Maximum value of 900" (Amazon Data Firehose API reference): the longest
# a reading can wait in a stream's buffer before its file reaches the lake.
FIREHOSE_LONGEST_BUFFER_S = 900
# The hours the queries give: substr(sampled_at, 1, 13) || ':00:00Z'.
_HOUR = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:00:00Z")
# OUT: a plain relative or absolute path to a .csv file; nothing a shell or a terminal would read otherwise.
_OUT = re.compile(r"[A-Za-z0-9_./ -]{1,251}\.csv")


@dataclass(frozen=True)
class DatasetRequest:
    thing: str
    since: str | None
    query: LakeQuery
    parameters: list[str]  # the query's ExecutionParameters, SQL string literals
    out: Path

    @property
    def labelled(self) -> bool:
        return self.query is STATION_LABELLED


def dataset_request(thing: str, since: str | None, labelled: bool, out: str | None,
                    project_root: Path) -> DatasetRequest:
    """The export asked for, every value checked: a THING or SINCE that could not be a query parameter, or
    an OUT that is not a .csv file path, is refused in one line before anything else happens."""
    query = STATION_LABELLED if labelled else STATION_HOURLY
    try:
        parameters = query_parameters(query, thing, since)
    except LakeQueryError as error:
        raise LifecycleError(str(error)) from None
    if out is not None and not _OUT.fullmatch(out):
        raise LifecycleError(f"OUT={out!r}: name a .csv file (letters, digits, space, _ . / -), such as "
                             f"build/dataset-{thing}.csv")
    path = Path(out) if out is not None else project_root / "build" / f"dataset-{thing}.csv"
    if path.is_dir():
        raise LifecycleError(f"OUT={path} is a folder: name the CSV file to write")
    return DatasetRequest(thing, since, query, parameters, path)


def export_dataset(athena: Any, lake: LakeOutputs | None, request: DatasetRequest, *,
                   sleep: Callable[[float], None] = time.sleep, echo: Callable[[str], None] = print) -> int:
    """Run the query, write its rows to request.out and say so in one line; returns how many rows."""
    if lake is None:
        raise LifecycleError(f"the stack has no data lake outputs ({', '.join(LAKE_KEYS)}): deploy the stack "
                             "with the data lake first (`make deploy`)")
    # "Use parameterized queries" (Athena user guide): the `?` take the ExecutionParameters in order.
    execution = call(athena.start_query_execution, QueryString=request.query.sql,
                     QueryExecutionContext={"Database": lake.database_name}, WorkGroup=lake.workgroup_name,
                     ExecutionParameters=request.parameters)["QueryExecutionId"]
    wait_for_query(athena, execution, sleep=sleep)
    rows = result_rows(athena, execution, request.query.columns)
    if not rows:
        raise LifecycleError(_no_data(request, lake))
    write_csv(request.out, request.query.columns, rows)
    first, last = (datetime.fromisoformat(row[0]) for row in (rows[0], rows[-1]))
    hours = (last - first) // timedelta(hours=1) + 1
    echo(f"dataset: {len(rows)} {'labelled ' if request.labelled else ''}hourly rows of {request.thing}, "
         f"{rows[0][0]} to {rows[-1][0]} ({hours} hours covered, {hours - len(rows)} without a row) "
         f"-> {request.out}")
    return len(rows)


def wait_for_query(athena: Any, execution: str, *, sleep: Callable[[float], None],
                   max_wait_s: float = MAX_WAIT_S) -> None:
    """Poll GetQueryExecution until the query succeeds; a failed or cancelled query is refused with
    Athena's StateChangeReason, one that outlasts max_wait_s (counted in pauses) is stopped."""
    waited, pause = 0.0, FIRST_PAUSE_S
    while True:
        status = call(athena.get_query_execution, QueryExecutionId=execution)["QueryExecution"]["Status"]
        state = status["State"]
        if state == SUCCEEDED:
            return
        if state in ENDED_UNFINISHED:
            reason = " ".join(status.get("StateChangeReason", "").split()) or "Athena gave no reason"
            raise LifecycleError(f"Athena query {execution} {state}: {reason}; fix that and run again "
                                 "(`aws athena get-query-execution --query-execution-id` shows the details)")
        if waited >= max_wait_s:
            call(athena.stop_query_execution, QueryExecutionId=execution)
            raise LifecycleError(f"Athena query {execution} was still {state} after {max_wait_s:g} s, so it was "
                                 "stopped: run again later (Athena queues queries when busy)")
        sleep(pause)
        waited += pause
        pause = min(2 * pause, LONGEST_PAUSE_S)


def result_rows(athena: Any, execution: str, columns: tuple[str, ...]) -> list[list[str | None]]:
    """Every row of the query's result, page by page. The first row of a SELECT's first page holds the
    column names (the AWS CLI's get-query-results example; "When the Row resultset contains Header",
    uber/athenadriver: the API reference says nothing of it): it must be the query's columns."""
    rows: list[list[str | None]] = []
    params: dict[str, Any] = {"QueryExecutionId": execution, "MaxResults": PAGE_ROWS}
    while True:
        page = call(athena.get_query_results, **params)
        # A datum without VarCharValue is a NULL.
        texts = [[datum.get("VarCharValue") for datum in row.get("Data", [])] for row in page["ResultSet"]["Rows"]]
        if "NextToken" not in params:
            header, texts = (texts[0] if texts else None), texts[1:]
            if header != list(columns):
                raise LifecycleError(f"the result of Athena query {execution} has the columns {header}, not "
                                     f"{list(columns)}: the lake's tables do not match this checkout's "
                                     "infra/lake.py; deploy it (`make deploy`), then run again")
        for row in texts:
            if len(row) != len(columns) or not _HOUR.fullmatch(row[0] or ""):
                raise LifecycleError(f"Athena query {execution} gave the row {row[:len(columns) + 1]}, not "
                                     f"{', '.join(columns)} of one hour: nothing was written")
        rows.extend(texts)
        if not page.get("NextToken"):
            return rows
        params = {**params, "NextToken": page["NextToken"]}


def write_csv(path: Path, columns: tuple[str, ...], rows: list[list[str | None]]) -> None:
    """The CSV, whole and on disk before it replaces OUT (device_code.files.replace_whole); on any failure OUT is
    as it was."""
    def write(file) -> None:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(["" if value is None else value for value in row] for row in rows)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_whole(path, write, durable=True)
    except OSError as error:
        raise LifecycleError(f"cannot write {path} ({error.strerror}): make {path.parent} a folder you can "
                             "write, or choose another OUT, then run again") from None


def _no_data(request: DatasetRequest, lake: LakeOutputs) -> str:
    since = f"since {request.since}" if request.since else "at all"
    what = "labelled hours" if request.labelled else "readings"
    labels = (f", and that s3://{lake.bucket_name}/{LABELS.prefix}/thing={request.thing}/ holds a CSV "
              f"({','.join(name for name, _ in LABELS.columns)}) of those hours" if request.labelled else "")
    return (f"the lake has no {what} of thing {request.thing} {since}: check the name (`make status` lists the "
            f"devices), that it has been reporting for a while (Firehose holds readings up to "
            f"{FIREHOSE_LONGEST_BUFFER_S // 60} minutes before they reach the lake){labels}")

