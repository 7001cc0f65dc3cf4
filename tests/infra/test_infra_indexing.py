"""Fleet indexing: the settings handler against moto's account-wide indexing configuration (real botocore
request validation), and the offline query evaluator against the documented query semantics."""
from __future__ import annotations

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from infra import fleet_index as fx
from infra.index_query import UnsupportedQuery, compile_query, search, thing_document
from infra.index_settings.handler import (MAX_NAMED_SHADOWS, MODE_ORDER, IndexingRefused, merged, on_event, recorded,
                                          without)

PROPERTIES = {"NamedShadowNames": list(fx.INDEXED_SHADOWS)}


@pytest.fixture
def iot(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("iot", region_name="us-east-1")


def configuration(iot) -> dict:
    return iot.get_indexing_configuration()["thingIndexingConfiguration"]


def test_create_turns_on_what_the_queries_need_and_delete_takes_back_only_the_shadow_names(iot):
    created = on_event({"RequestType": "Create", "ResourceProperties": PROPERTIES}, iot)
    after = configuration(iot)
    assert (after["thingIndexingMode"], after["thingConnectivityIndexingMode"], after["namedShadowIndexingMode"]) == \
        ("REGISTRY_AND_SHADOW", "STATUS", "ON")
    assert after["filter"]["namedShadowNames"] == ["rain"]
    assert recorded(created["PhysicalResourceId"]) == ["rain"]
    on_event({"RequestType": "Delete", "ResourceProperties": PROPERTIES, **created}, iot)
    # "Downgrading data sources by updating fleet indexing configuration is not supported": modes stay.
    assert configuration(iot)["filter"]["namedShadowNames"] == []
    assert configuration(iot)["thingIndexingMode"] == "REGISTRY_AND_SHADOW"


def test_another_applications_indexing_is_kept_and_survives_teardown(iot):
    theirs = {"thingIndexingMode": "REGISTRY_AND_SHADOW", "namedShadowIndexingMode": "ON",
              "customFields": [{"name": "attributes.model", "type": "String"}],
              "filter": {"namedShadowNames": ["battery", "rain"]}}
    iot.update_indexing_configuration(thingIndexingConfiguration=theirs)
    created = on_event({"RequestType": "Create", "ResourceProperties": PROPERTIES}, iot)
    assert recorded(created["PhysicalResourceId"]) == []  # "rain" was theirs already
    assert configuration(iot)["customFields"] == [{"name": "attributes.model", "type": "String"}]
    on_event({"RequestType": "Delete", "ResourceProperties": PROPERTIES, **created}, iot)
    assert configuration(iot)["filter"]["namedShadowNames"] == ["battery", "rain"]
    assert configuration(iot)["customFields"] == [{"name": "attributes.model", "type": "String"}]


def test_an_update_keeps_the_record_of_what_create_added(iot):
    created = on_event({"RequestType": "Create", "ResourceProperties": PROPERTIES}, iot)
    updated = on_event({"RequestType": "Update", "ResourceProperties": PROPERTIES, **created}, iot)
    assert updated == created


def test_a_full_named_shadow_filter_is_refused_in_one_line(iot):
    full = [f"shadow{i}" for i in range(MAX_NAMED_SHADOWS)]
    iot.update_indexing_configuration(thingIndexingConfiguration={
        "thingIndexingMode": "REGISTRY_AND_SHADOW", "namedShadowIndexingMode": "ON",
        "filter": {"namedShadowNames": full}})
    with pytest.raises(IndexingRefused, match="limit of 10") as refused:
        on_event({"RequestType": "Create", "ResourceProperties": PROPERTIES}, iot)
    assert "\n" not in str(refused.value)
    assert configuration(iot)["filter"]["namedShadowNames"] == full  # nothing changed


def test_a_delete_of_an_id_this_handler_never_wrote_changes_nothing(iot):
    on_event({"RequestType": "Create", "ResourceProperties": PROPERTIES}, iot)
    on_event({"RequestType": "Delete", "ResourceProperties": PROPERTIES, "PhysicalResourceId": "lookalike"}, iot)
    assert configuration(iot)["filter"]["namedShadowNames"] == ["rain"]


names = st.lists(st.sampled_from(["rain", "weather", "battery", "gps", "door"]), unique=True, max_size=5)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(MODE_ORDER), names, names)
def test_merging_never_lowers_a_mode_nor_drops_a_name_and_removal_restores_the_names(mode, present, ours):
    current = {"thingIndexingMode": mode, "filter": {"namedShadowNames": list(present)}}
    config, added = merged(current, list(ours))
    assert MODE_ORDER.index(config["thingIndexingMode"]) >= max(MODE_ORDER.index(mode), 2)
    assert config["filter"]["namedShadowNames"][:len(present)] == list(present)
    assert set(ours) <= set(config["filter"]["namedShadowNames"])
    assert without(config, added)["filter"]["namedShadowNames"] == list(present)


# ---- the offline evaluator, from "Query syntax" and "Example thing queries" ----------------------
DOCS = [
    thing_document("rainedge-a", ["rainedge-cores"], True, {"rain": {"raining": True, "status": None}}),
    thing_document("rainedge-b", ["rainedge-cores", "lab"], False, {"rain": {"status": "stale_input"}}),
    thing_document("other-c", ["lab"], False, {"battery": {"level": 3}}),
]


@pytest.mark.parametrize("query, expected", [
    ("thingGroupNames:rainedge-cores", ["rainedge-a", "rainedge-b"]),
    # "The default operator is AND."
    ("thingGroupNames:lab connectivity.connected:false", ["rainedge-b", "other-c"]),
    ("thingGroupNames:rainedge-cores AND NOT connectivity.connected:true", ["rainedge-b"]),
    ("shadow.name.rain.reported.raining:true OR shadow.name.battery.reported.level:3", ["rainedge-a", "other-c"]),
    # "Search is case insensitive"; a field a document lacks matches nothing; null is not indexed.
    ("shadow.name.rain.reported.status:STALE_INPUT", ["rainedge-b"]),
    ("shadow.name.rain.reported.drift.verdict:drifting", []),
])
def test_queries_select_as_documented(query, expected):
    assert [doc["thingName"] for doc in search(query, DOCS)] == expected


@pytest.mark.parametrize("query", ["thingName:(tv* AND -plasma)", "attributes.x:'a'", "a:b)", "(a:b"])
def test_syntax_outside_the_modelled_subset_is_refused(query):
    with pytest.raises(UnsupportedQuery):
        compile_query(query)


def test_every_fleet_query_of_the_app_is_in_the_modelled_subset():
    for query in fx.fleet_queries(("rain-0123456789abcdef", "rain-fedcba9876543210")):
        compile_query(query.query(("rainedge-cores", "rainedge-canary")))


@pytest.mark.parametrize("value", ["a b", "x'y", "-lead", "a/b", "*", ""])
def test_a_query_value_that_is_not_one_plain_word_is_refused(value):
    with pytest.raises(ValueError):
        fx.term("thingGroupNames", value)


def test_a_dead_device_among_many_is_counted_as_silent():
    """Issue "what the documentation says": a device that sends nothing must still be counted. Its thing
    stays in the index with connectivity false (SearchIndex: a device that never connected or went away
    has connected=false), so the silent fleet metric counts it, whatever the others do."""
    fleet = [thing_document(f"rainedge-{i}", ["rainedge-cores"], True, {"rain": {"raining": False}})
             for i in range(49)]
    dead = thing_document("rainedge-dead", ["rainedge-cores"], False, {"rain": {"raining": False}})
    sensor_gone = thing_document("rainedge-stale", ["rainedge-cores"], True, {"rain": {"status": "stale_input"}})
    silent = fx.SILENT.query(("rainedge-cores",))
    assert [doc["thingName"] for doc in search(silent, [*fleet, dead, sensor_gone])] == \
        ["rainedge-dead", "rainedge-stale"]
