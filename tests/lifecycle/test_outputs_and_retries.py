"""Stack-output parsing and the AWS call helpers (retries, 'already gone')."""
from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from infra.lifecycle import aws as aws_module
from infra.lifecycle.aws import call, delete_if_present, paginate
from infra.lifecycle.outputs import REQUIRED_KEYS, OutputsError, describe_stack, load, parse_outputs, save

from .conftest import EXAMPLE_OUTPUTS as RAW
from .conftest import unreadable_file


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "Operation")


def test_outputs_are_parsed():
    outputs = parse_outputs(RAW)
    assert outputs.thing_names == ("core-a", "core-b")
    assert outputs.component_names == ("com.rainedge.Sensor", "com.rainedge.Inference")
    assert outputs.function_names == ("rainedge-sensor", "rainedge-inference")
    assert (outputs.name_prefix, outputs.component_prefix) == ("rainedge", "com.rainedge")
    assert [(d.thing_name, d.certificate_id, d.policy_name) for d in outputs.devices] == [
        ("core-a", "c-a", "rainedge-device-core-a"), ("core-b", "c-b", "rainedge-device-core-b")]


def test_missing_output_keys_are_named():
    raw = {key: value for key, value in RAW.items() if key not in ("Devices", "Region")}
    with pytest.raises(OutputsError, match="lacks the outputs Region, Devices"):
        parse_outputs(raw)
    assert "Devices" in REQUIRED_KEYS


@pytest.mark.parametrize("devices", ['[{"thingName": "core-a", "certificateId": "c-a"}]', "5", "null", "{}",
                                     '[{"thingName": 1, "certificateId": "c", "policyName": "p"}]', "not json"])
def test_malformed_devices_output(devices):
    with pytest.raises(OutputsError, match='output Devices must be a JSON list of {"thingName", "certificateId", '
                                           '"policyName"}'):
        parse_outputs({**RAW, "Devices": devices})


def test_saved_outputs_use_the_cdk_outputs_file_format(tmp_path):
    path = tmp_path / "build" / "stack-outputs.json"
    save(RAW, path)
    assert json.loads(path.read_text()) == {"RainEdge": RAW}
    assert load(path) == parse_outputs(RAW)
    assert load(tmp_path / "absent.json") is None



@pytest.mark.parametrize("content, problem", [
    ("[]", "with a RainEdge entry"), ("null", "with a RainEdge entry"), ('{"OtherStack": {}}', "with a RainEdge entry"),
    ('{"RainEdge": []}', "with a RainEdge entry"), ("{not json", "not JSON"), ("\udcff", "not UTF-8"),
    pytest.param("[" * 100_000, "nested deeper", id="deeply-nested"),
    ('{"RainEdge": {"NamePrefix": 7}}', "must map each key to a string"), ('{"RainEdge": {}}', "lacks the outputs"),
])
def test_a_broken_saved_outputs_file_is_named_with_the_fix(tmp_path, content, problem):
    path = tmp_path / "stack-outputs.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(OutputsError, match=problem) as raised:
        load(path)
    assert str(path) in str(raised.value) and f"fix or remove {path}" in str(raised.value)


def test_a_folder_or_unreadable_saved_outputs_file_is_named(tmp_path):
    folder = tmp_path / "stack-outputs.json"
    folder.mkdir()
    with pytest.raises(OutputsError, match=f"^{folder}: Is a directory: fix or remove"):
        load(folder)
    with unreadable_file(tmp_path / "unreadable.json") as unreadable:
        with pytest.raises(OutputsError, match=f"^{unreadable}: .*: fix or remove"):
            load(unreadable)


def test_missing_stack_is_none(session):
    assert describe_stack(session.client("cloudformation")) is None


def test_throttling_is_retried_then_given_up(monkeypatch):
    delays: list[float] = []
    monkeypatch.setattr(aws_module.time, "sleep", delays.append)
    attempts = []

    def always_throttled(**params):
        attempts.append(params)
        raise client_error("ThrottlingException")

    with pytest.raises(ClientError, match="ThrottlingException"):
        call(always_throttled, attempts=4, Name="x")
    assert len(attempts) == 4 and attempts[0] == {"Name": "x"}
    assert delays == [0.5, 1.0, 2.0]


def test_other_errors_are_not_retried(monkeypatch):
    monkeypatch.setattr(aws_module.time, "sleep", lambda _: pytest.fail("must not wait"))
    attempts = []

    def denied():
        attempts.append(1)
        raise client_error("AccessDeniedException")

    with pytest.raises(ClientError):
        call(denied)
    assert attempts == [1]


@pytest.mark.parametrize("code", ["ResourceNotFoundException", "NoSuchEntity", "NoSuchBucket"])
def test_delete_of_something_already_gone_is_success(code):
    def gone():
        raise client_error(code)
    assert delete_if_present(gone) is False
    assert delete_if_present(lambda: {}) is True


def test_paginate_follows_the_named_token():
    pages = {None: {"items": [1, 2], "nextMarker": "m1"}, "m1": {"items": [3]}}
    seen = []

    def list_items(marker=None):
        seen.append(marker)
        return pages[marker]

    assert paginate(list_items, "items", token=("marker", "nextMarker")) == [1, 2, 3]
    assert seen == [None, "m1"]
