"""The fleet's data lake: what goes in, where it lies, and the queries that read it.

Every accepted update of a device's `weather` and `rain` shadows reaches an AWS IoT rule (the shadow's
`update/documents` message, as in infra/shadow_records.py); two rules select one flat JSON record each
and hand it to an Amazon Data Firehose stream, which converts it to Parquet against the Glue table below
and writes it under `<table prefix>/day=<arrival day>/thing=<thing>/` in the lake bucket. Labels (rain
0/1 per hour, from a rain gauge or a nearby official station) are CSV files the user puts under
`labels/thing=<thing>/`. Athena reads all three with partition projection, so no crawler and no
partition management: `thing` is injected (every query names its station), `day` is projected.

Plain data, no CDK: the stack (infra/datalake.py), `make dataset` (infra/lifecycle/dataset.py), the cost
estimate and the tests use these definitions. The queries stay in the SQL both Athena (Trino) and the
tests' stand-in engine (DuckDB) read alike: `?` parameters in order, substr(text, start, length) counted
from 1, `||`, avg/max, a WITH clause, comparison of ISO-8601 UTC text (which sorts as time does).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from device_code.contracts import RAIN_SHADOW, SEA_LEVEL_PRESSURE, WEATHER_SHADOW
from infra.fleet_hook.handler import THING_NAME
from infra.shadow_records import REPORTED, ShadowRule, present, reported_number

# The partition columns, in the order of the S3 prefix.
DAY, THING = "day", "thing"
# What the device's format_timestamp writes ("2026-12-07T11:38:12.123Z"); anything else never enters the lake.
ISO_UTC_SQL_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?Z$"
# The first 13 characters of such a text name its hour: "2026-12-07T11".
HOUR_CHARACTERS = 13


@dataclass(frozen=True)
class LakeTable:
    name: str
    prefix: str  # under the lake bucket, no leading or trailing '/'
    columns: tuple[tuple[str, str], ...]  # (name, Glue/Hive type), in the file's order
    partitions: tuple[str, ...]
    rule: ShadowRule | None  # the IoT rule that fills it; None for labels, which users upload
    csv: bool = False  # CSV with a header row (labels) rather than Firehose's Parquet


def _text(field: str) -> str:
    return f"{REPORTED}.{field}"


def _timestamp_condition(field: str) -> str:
    return f"regexp_matches({_text(field)}, '{ISO_UTC_SQL_PATTERN}')"


READINGS = LakeTable(
    name="readings",
    prefix="readings",
    columns=(("sampled_at", "string"), ("temperature", "double"), ("humidity", "double"),
             ("pressure", "double"), (SEA_LEVEL_PRESSURE, "double")),
    partitions=(DAY, THING),
    rule=ShadowRule(
        purpose="lake_readings",
        shadow=WEATHER_SHADOW,
        condition=" AND ".join([*(present(reported_number(field)) for field in
                                  ("temperature", "humidity", "pressure", SEA_LEVEL_PRESSURE)),
                                _timestamp_condition("sampled_at")]),
        fields=(("sampled_at", _text("sampled_at")), ("temperature", reported_number("temperature")),
                ("humidity", reported_number("humidity")), ("pressure", reported_number("pressure")),
                (SEA_LEVEL_PRESSURE, reported_number(SEA_LEVEL_PRESSURE))),
        thing_key=THING,
    ),
)
PREDICTIONS = LakeTable(
    name="predictions",
    prefix="predictions",
    columns=(("sampled_at", "string"), ("predicted_at", "string"), ("probability", "double"),
             ("threshold", "double"), ("raining", "double"), ("model", "string"), ("model_version", "string"),
             ("adaptation", "string")),
    partitions=(DAY, THING),
    rule=ShadowRule(
        purpose="lake_predictions",
        shadow=RAIN_SHADOW,
        condition=" AND ".join([*(present(reported_number(field)) for field in ("probability", "threshold", "raining")),
                                _timestamp_condition("input_sampled_at"), _timestamp_condition("predicted_at")]),
        fields=(("sampled_at", _text("input_sampled_at")), ("predicted_at", _text("predicted_at")),
                ("probability", reported_number("probability")), ("threshold", reported_number("threshold")),
                ("raining", reported_number("raining")), ("model", _text("model")),
                ("model_version", _text("model_version")), ("adaptation", _text("adaptation"))),
        thing_key=THING,
    ),
)
# What the labels' source (a nearby official station, typically) measured in the same hour, where it has it:
# `adapt` estimates the station's sensor offsets from them (model_training.evaluate.REFERENCE_COLUMNS).
REFERENCE_TEMPERATURE, REFERENCE_PRESSURE = "reference_temperature", "reference_pressure"
LABELS = LakeTable(
    name="labels",
    prefix="labels",
    # A labels file may stop after `rain`: the CSV SerDe reads missing trailing columns as NULL.
    columns=(("sampled_at", "string"), ("rain", "int"), (REFERENCE_TEMPERATURE, "double"),
             (REFERENCE_PRESSURE, "double")),
    partitions=(THING,),
    rule=None,
    csv=True,
)
TABLES = (READINGS, PREDICTIONS, LABELS)
# Athena writes query results here, in the lake bucket (the workgroup's result location).
QUERY_RESULTS_PREFIX = "athena-results"


def _hourly_readings() -> str:
    return (f"SELECT substr(sampled_at, 1, {HOUR_CHARACTERS}) AS hour, avg(temperature) AS temperature, "
            f"avg(humidity) AS humidity, avg({SEA_LEVEL_PRESSURE}) AS pressure "
            f"FROM {READINGS.name} WHERE {THING} = ? AND {DAY} >= ? AND sampled_at >= ? "
            f"GROUP BY substr(sampled_at, 1, {HOUR_CHARACTERS})")


def _hourly_labels() -> str:
    # A label the CSV SerDe cannot read as an int is NULL: such a row says nothing about its hour.
    return (f"SELECT substr(sampled_at, 1, {HOUR_CHARACTERS}) AS hour, max(rain) AS rain, "
            f"avg({REFERENCE_TEMPERATURE}) AS {REFERENCE_TEMPERATURE}, avg({REFERENCE_PRESSURE}) AS {REFERENCE_PRESSURE} "
            f"FROM {LABELS.name} WHERE {THING} = ? AND rain IS NOT NULL GROUP BY substr(sampled_at, 1, {HOUR_CHARACTERS})")


@dataclass(frozen=True)
class LakeQuery:
    name: str  # the named query's name, after the app's prefix
    description: str
    sql: str
    # What each `?` takes, in order: THING, SINCE or SINCE_DAY (query_parameters fills them).
    parameters: tuple[str, ...]
    # The CSV columns the result gives, in order (`make dataset` writes them as they are).
    columns: tuple[str, ...]


SINCE, SINCE_DAY = "since", "since_day"
# The hourly series' columns are what `python -m model_training evaluate` and `adapt` read: pressure is the
# sea-level pressure the models take; sampled_at is the hour's start.
STATION_HOURLY = LakeQuery(
    name="station-hourly",
    description="One station's hourly means of its readings (sea-level pressure as `pressure`), oldest first",
    sql=(f"WITH hourly AS ({_hourly_readings()}) "
         "SELECT hour || ':00:00Z' AS sampled_at, temperature, humidity, pressure FROM hourly ORDER BY hour"),
    parameters=(THING, SINCE_DAY, SINCE),
    columns=("sampled_at", "temperature", "humidity", "pressure"),
)
STATION_LABELLED = LakeQuery(
    name="station-hourly-labelled",
    description="One station's hourly means joined with its labels and the reference readings that came with them "
                "(hours without a label left out), oldest first",
    sql=(f"WITH hourly AS ({_hourly_readings()}), labelled AS ({_hourly_labels()}) "
         "SELECT h.hour || ':00:00Z' AS sampled_at, h.temperature, h.humidity, h.pressure, "
         f"l.{REFERENCE_TEMPERATURE}, l.{REFERENCE_PRESSURE}, l.rain "
         "FROM hourly h JOIN labelled l ON h.hour = l.hour ORDER BY h.hour"),
    parameters=(THING, SINCE_DAY, SINCE, THING),
    columns=("sampled_at", "temperature", "humidity", "pressure", REFERENCE_TEMPERATURE, REFERENCE_PRESSURE, "rain"),
)
PREDICTIONS_LABELLED = LakeQuery(
    name="predictions-labelled",
    description="One station's predictions per hour and per model version and adaptation that made them (mean "
                "probability, share of rain calls) against its labels",
    sql=(f"WITH predicted AS (SELECT substr(sampled_at, 1, {HOUR_CHARACTERS}) AS hour, model_version, adaptation, "
         "avg(probability) AS probability, avg(raining) AS raining "
         f"FROM {PREDICTIONS.name} WHERE {THING} = ? AND {DAY} >= ? AND sampled_at >= ? "
         f"GROUP BY substr(sampled_at, 1, {HOUR_CHARACTERS}), model_version, adaptation), "
         f"labelled AS ({_hourly_labels()}) "
         "SELECT p.hour || ':00:00Z' AS sampled_at, p.probability, p.raining, p.model_version, p.adaptation, l.rain "
         "FROM predicted p JOIN labelled l ON p.hour = l.hour ORDER BY p.hour, p.model_version, p.adaptation"),
    parameters=(THING, SINCE_DAY, SINCE, THING),
    columns=("sampled_at", "probability", "raining", "model_version", "adaptation", "rain"),
)
QUERIES = (STATION_HOURLY, STATION_LABELLED, PREDICTIONS_LABELLED)

# SINCE is a day (2026-12-01) or a UTC time to the second (2026-12-01T06:00:00Z); nothing else reaches SQL.
_SINCE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)?$")
# The first day Athena projects for `day` (the Glue tables' projection range, infra/datalake.py): no
# reading of this app arrived before it. Without SINCE a query starts there, a real day in the
# projection's format rather than a text below every date, which a date projection may refuse to parse.
FIRST_DAY = "2024-01-01"
BEGINNING = FIRST_DAY


class LakeQueryError(ValueError):
    """A THING or SINCE that cannot be a query parameter; the message says what is allowed."""


def query_parameters(query: LakeQuery, thing: str, since: str | None) -> list[str]:
    """The query's `?` values as SQL string literals (Athena's ExecutionParameters are substituted as SQL
    text, so they are quoted here, after the strict checks that keep a quote out of them)."""
    if not isinstance(thing, str) or not THING_NAME.fullmatch(thing):
        raise LakeQueryError(f"THING={thing!r} is not a thing name (1-64 of A-Z a-z 0-9 _ -)")
    usage = f"SINCE={since!r}: use a UTC day (2026-12-01) or time (2026-12-01T06:00:00Z)"
    if since is not None and not _SINCE.fullmatch(since):
        raise LakeQueryError(usage)
    since = since or BEGINNING
    try:
        day = date.fromisoformat(since[:10])
    except ValueError:
        raise LakeQueryError(f"{usage}; {since[:10]} is no date") from None
    # The partition day is when the object's OLDEST record arrived ("Custom prefixes for Amazon S3 objects",
    # timestamp namespace): a reading of just after midnight can lie in an object begun the day before (and a
    # device clock may run a little ahead), so the partition filter starts a day early; sampled_at cuts exactly.
    # SINCE loses its Z: '...T06:00:00Z' sorts after '...T06:00:00.123Z' (Z > .), its prefix sorts before.
    values = {THING: thing, SINCE: since.removesuffix("Z"), SINCE_DAY: (day - timedelta(days=1)).isoformat()}
    return [f"'{values[name]}'" for name in query.parameters]
