"""The data lake's two rules (infra/lake.py), run by the IoT SQL evaluator on the shadow documents the real
device functions write through the simulator, and on hostile documents a faulty device could write: only a
complete reading or prediction with ISO-8601 UTC timestamps becomes a lake record, and its keys are its
table's columns and the `thing` partition. (tests/infra/test_infra_datalake.py checks that the stack deploys
exactly these rules.)"""
from __future__ import annotations

import pytest
from test_infra_shadow_records import NOW_MS, READING, THING, Device

from device_code.contracts import RAIN_SHADOW, SEA_LEVEL_PRESSURE, WEATHER_SHADOW, shadow_topic
from infra import lake
from infra.iot_sql import TopicRule

RULES = {table.name: TopicRule(table.rule.sql()) for table in lake.TABLES if table.rule is not None}
COLUMNS = {table.name: [name for name, _ in table.columns] for table in lake.TABLES}


def lake_records(documents) -> list[tuple[str, dict]]:
    """(table, record) of every record the lake's rules make of `documents` (topic, update/documents message)."""
    return [(table, record) for topic, document in documents for table, rule in RULES.items()
            if (record := rule.evaluate(topic, document, NOW_MS)) is not None]


def test_a_reading_and_a_prediction_become_one_record_each():
    device = Device()
    device.read()
    records = lake_records(device.predict())
    assert [table for table, _ in records] == [lake.READINGS.name, lake.PREDICTIONS.name]
    (_, reading), (_, prediction) = records
    assert reading == {lake.THING: THING, "sampled_at": READING["sampled_at"], "temperature": 11.5, "humidity": 93.0,
                       "pressure": 1004.2, SEA_LEVEL_PRESSURE: 1004.2}  # no station file: 0 m, the same pressure
    assert prediction == {lake.THING: THING, "sampled_at": READING["sampled_at"], "predicted_at": "2013-11-05T12:00:00.000Z",
                          "probability": 0.93, "threshold": 0.5, "raining": 1, "model": "instantaneous",
                          "model_version": "rain-test"}  # no adaptation in force: the member is left out


def test_a_record_holds_its_tables_columns_and_the_thing_partition_only():
    device = Device()
    device.read()
    for table, record in lake_records(device.predict()):
        assert set(record) <= {*COLUMNS[table], lake.THING} and record[lake.THING] == THING
    assert set(RULES) == {table.name for table in lake.TABLES if table.partitions == (lake.DAY, lake.THING)}


def test_a_status_instead_of_a_prediction_makes_no_lake_record():
    device = Device()  # no reading: the inference function reports no_input
    assert lake_records(device.predict()) == []


def weather(**changes) -> list[tuple[str, dict]]:
    """A weather update a faulty device could write: the device's reading with `changes` (None drops a field)."""
    reported = {**READING, SEA_LEVEL_PRESSURE: 1010.0, **changes}
    reported = {key: value for key, value in reported.items() if value is not None}
    return [(shadow_topic(THING, WEATHER_SHADOW, "update/documents"), {"current": {"state": {"reported": reported}}})]


def rain(**changes) -> list[tuple[str, dict]]:
    reported = {"raining": True, "probability": 0.9, "threshold": 0.5, "model": "instantaneous",
                "model_version": "rain-test", "input_sampled_at": READING["sampled_at"],
                "predicted_at": "2013-11-05T12:00:00.000Z", **changes}
    reported = {key: value for key, value in reported.items() if value is not None}
    return [(shadow_topic(THING, RAIN_SHADOW, "update/documents"), {"current": {"state": {"reported": reported}}})]


@pytest.mark.parametrize("documents", [
    # A timestamp that is not ISO-8601 UTC as the device writes it, or not text at all.
    weather(sampled_at="2013-11-05 11:59:00"), weather(sampled_at="2013-11-05T11:59:00+01:00"),
    weather(sampled_at="yesterday"), weather(sampled_at="x2013-11-05T11:59:00Z"),
    weather(sampled_at=1383652740000), weather(sampled_at=["2013-11-05T11:59:00Z"]),
    # A field missing, or a value that is no number (objects, text, null).
    weather(sampled_at=None), weather(**{SEA_LEVEL_PRESSURE: None}), weather(temperature="warm"),
    weather(humidity={"value": 93}), weather(pressure=[1004.2]),
    rain(predicted_at="2013-11-05T12:00"), rain(input_sampled_at=None), rain(input_sampled_at=1383652740),
    rain(probability="high"), rain(threshold=None), rain(raining={"yes": True}),
], ids=lambda documents: str(documents[0][1]["current"]["state"]["reported"])[:60])
def test_a_hostile_document_never_makes_a_lake_record(documents):
    assert lake_records(documents) == []


def test_a_number_written_as_text_enters_the_lake_as_a_number():
    # "Cast to decimal", String: "Tries to parse the string as a Decimal"; the column is a double either way.
    ((_, record),) = lake_records(weather(temperature="11.5"))
    assert record["temperature"] == 11.5
