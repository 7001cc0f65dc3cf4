"""Names and patterns the configuration and the pre-provisioning hook share (issue 15, sections 1 and 4):
no device name the app reserves, no key folder for two identities, a serialNumberPattern from a grammar
Python's `re` cannot backtrack catastrophically on, no system folder as greengrassRoot, and JSON that
is parsed once, strictly (no repeated key, no depth or number that raises)."""
from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.config import ConfigError, RainEdgeConfig, read_cdk_context
from infra.fleet_hook.handler import decide, serial_pattern_problem
from infra.lifecycle.fleet_bundle import BUNDLE_FOLDER


def refused(context: dict) -> str:
    with pytest.raises(ConfigError) as error:
        RainEdgeConfig.from_context(context)
    message = str(error.value)
    assert "\n" not in message and len(message) < 1000, message
    return message


def finishes(work, seconds: float = 10.0) -> None:
    """Run `work` in a thread and fail (instead of hanging the test run) when it has not returned."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            work()
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            outcome.append(error)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still running after {seconds} s"
    if outcome[0] is not None:
        raise outcome[0]


# ---- device names the app reserves -------------------------------------------------------------------
@pytest.mark.parametrize("context, says", [
    ({"devices": "rainedge-claim"}, "the claim certificate's key folder"),
    ({"devices": "RainEdge-Claim"}, "the claim certificate's key folder"),  # one folder on macOS and Windows
    ({"devices": BUNDLE_FOLDER}, "the fleet bundle's folder"),
    ({"devices": "pi-1,Fleet-Bundle"}, "the fleet bundle's folder"),
    ({"devices": "rainedge-claim-7"}, "rainedge-claim-"),
    ({"devices": "wx-claim", "namePrefix": "wx"}, "the claim certificate's key folder"),
    ({"devices": "wx-claim-00000000", "namePrefix": "wx"}, "wx-claim-"),
])
def test_a_device_named_as_the_app_names_its_own_folders_or_clients_is_refused_at_synth(context, says):
    message = refused(context)
    assert message.startswith("devices ") and says in message


def test_a_name_reserved_under_another_prefix_is_a_device_like_any_other():
    assert RainEdgeConfig.from_context({"devices": "rainedge-claim", "namePrefix": "wx"}).devices == ("rainedge-claim",)


@pytest.mark.parametrize("devices", ["a,A", "pi-1,PI-1", '["Core", "core"]'])
def test_devices_that_differ_only_in_case_would_share_a_key_folder(devices):
    message = refused({"devices": devices})
    assert message.startswith("devices ") and "case" in message and "key folder" in message


@pytest.mark.parametrize("devices", ["null", "None", "NULL", "undefined", "pi-1,null"])
def test_a_word_for_no_value_is_not_a_device_name(devices):
    message = refused({"devices": devices})
    assert message.startswith("devices ") and "not a thing name" in message and "devices=pi-1,pi-2" in message


@pytest.mark.parametrize("serial", ["claim-00000000", "CLAIM-00000000", "claim"])
def test_the_hook_refuses_a_serial_whose_thing_would_be_a_reserved_name(serial):
    allowed, reason = decide({"SerialNumber": serial}, "[A-Za-z0-9-]{1,40}", "rainedge", lambda name: False)
    assert allowed is False and "reserved" in reason


def test_stations_cannot_name_a_fleet_device_the_hook_refuses():
    context = {"serialNumberPattern": "[a-z0-9-]{1,40}", "stationAltitudes": {"rainedge-claim-00000000": 5}}
    assert "neither a listed device" in refused(context)


# ---- serialNumberPattern: a grammar without catastrophic backtracking -------------------------------
HOSTILE_PATTERNS = ["(a|a)*b", "a{4294967296}", "(ab)+", "a|b", r"\d{16}", "[^a]{3}", "a{65}", "a{3,2}", "a**",
                    "a*?", "a{,4}", "a{2,}", "^a$", "[z-a]", "[]", "[a", "a{99999999999999999999}", "(?i)a",
                    "[a-z]*[a-z]*[a-z]*b", "a?a?a?a?a?a?a?a?a?a?a?a?a?", "[0-9]*", "x" * 101]


@pytest.mark.parametrize("pattern", HOSTILE_PATTERNS)
def test_a_pattern_outside_the_grammar_is_refused_at_synth_in_one_line(pattern):
    # The stationAltitudes key made validation run the pattern; it is refused before anything runs it.
    message = refused({"serialNumberPattern": pattern, "stationAltitudes": {"rainedge-" + "a" * 40: 5}})
    assert message.startswith("serialNumberPattern ") and "no groups" in message


@pytest.mark.parametrize("pattern", HOSTILE_PATTERNS)
def test_the_hook_refuses_every_serial_under_a_pattern_outside_the_grammar(pattern):
    allowed, reason = decide({"SerialNumber": "a" * 24}, pattern, "rainedge", lambda name: False)
    assert allowed is False and "serialNumberPattern" in reason


@pytest.mark.parametrize("pattern, serial", [
    ("[0-9a-f]{16}", "10000000a1b2c3d4"), ("[a-z0-9-]{1,40}", "pi-7"), ("[A-Z]{2}[0-9]{6,10}", "AB1234567"),
    (".+", "anything-goes"), ("[a-z]+-[0-9]+", "pi-12"), ("rpi_?[0-9a-f]{8}", "rpi00000001"), ("[-_a-z]{3}", "-_a"),
])
def test_patterns_of_the_grammar_are_taken_and_match_as_python_matches_them(pattern, serial):
    assert RainEdgeConfig.from_context({"serialNumberPattern": pattern}).serial_number_pattern == pattern
    assert decide({"SerialNumber": serial}, pattern, "rainedge", lambda name: False)[0] is True


@given(st.text(alphabet="ab[]{}()|*+?.,-^$\\0123456789z", max_size=24))
def test_any_text_is_a_pattern_of_the_grammar_or_one_reason(text):
    problem = serial_pattern_problem(text)
    if problem is None:  # what the grammar takes, Python takes as it is, and it never matches nothing
        assert re.compile(text).fullmatch("") is None
    else:
        assert isinstance(problem, str) and "\n" not in problem


# ---- greengrassRoot: a folder of Greengrass's own ---------------------------------------------------------
@pytest.mark.parametrize("root", ["/tmp", "/root", "/etc", "/usr/bin", "/proc", "/dev/shm", "/tmp/gg", "/var/tmp/gg",
                                  "/usr/local/greengrass", "/etc/greengrass", "/boot/gg", "/home", "/home/pi", "/opt",
                                  "/srv", "/var/lib", "/var", "/mnt", "/run/gg", "/sys/gg", "/lib64/gg", "/bin"])
def test_a_system_folder_is_refused_as_greengrass_root(root):
    message = refused({"greengrassRoot": root})
    assert message.startswith("greengrassRoot must be a folder of Greengrass's own") and "/greengrass/v2" in message


@pytest.mark.parametrize("root", ["/greengrass/v2", "/greengrass", "/opt/greengrass", "/srv/gg/v2",
                                  "/var/lib/greengrass", "/home/pi/greengrass"])
def test_greengrass_roots_of_their_own_are_taken(root):
    assert RainEdgeConfig.from_context({"greengrassRoot": root}).greengrass_root == root


# ---- JSON: parsed once, strictly ---------------------------------------------------------------------------
def test_a_repeated_station_is_refused_naming_it():
    message = refused({"stationAltitudes": '{"rainedge-core-1": 12, "rainedge-core-1": 900}'})
    assert message.startswith("stationAltitudes ") and "'rainedge-core-1'" in message and "twice" in message


@pytest.mark.parametrize("text, says", [
    pytest.param("[" * 100_000, "nested deeper", id="deeply-nested"),
    ('{"context": {"stationAltitudes": {"a": 1, "a": 2}}}', "'a' comes twice"),
    ('{"context": {"i2cBus": NaN}}', "not JSON"),
    pytest.param('{"context": {"i2cBus": 1' + "0" * 5000 + "}}", "too long", id="5001-digits"),
])
def test_a_cdk_json_that_cannot_be_read_strictly_is_one_config_error(tmp_path, text, says):
    (tmp_path / "cdk.json").write_text(text)
    with pytest.raises(ConfigError) as error:
        read_cdk_context(tmp_path)
    message = str(error.value)
    assert message.startswith(str(tmp_path / "cdk.json")) and says in message and "\n" not in message


def test_a_fifo_as_cdk_json_is_refused_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "cdk.json")

    def read() -> None:
        with pytest.raises(ConfigError, match="not a regular file"):
            read_cdk_context(tmp_path)
    finishes(read)


def test_the_real_cdk_json_reads_as_before(project_root: Path):
    assert read_cdk_context(project_root) == json.loads((project_root / "cdk.json").read_text())["context"]
