"""Every lifecycle command fails on bad input with one line that says what to do, exit 2, no
traceback (issue 9, section 4): a broken saved-outputs file, a missing CDK CLI, an empty or
malformed AWS_REGION, a garbage or encrypted private key, a stack that is not deployed."""
from __future__ import annotations

import os
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from infra.lifecycle.__main__ import OUTPUTS_FILE, main
from infra.lifecycle.outputs import OutputsError, parse_outputs, save

from .conftest import EXAMPLE_OUTPUTS, THING, unreadable_file

COMMANDS = (("preflight",), ("device-setup",), ("fleet-bundle",), ("status",), ("logs",), ("revoke-claim",),
            ("destroy",), ("audit",))


def run(clients, names, *command: str) -> int:
    return main(["--project-root", str(names.project_root), *command], clients=clients)


def one_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


@pytest.mark.parametrize("content", ["[]", "null", "{}", '{"RainEdge": null}', "{", "\x00\xff",
                                     pytest.param("[" * 100_000, id="deeply-nested"),
                                     '{"RainEdge": {"Region": "a", "Region": "b"}}'])
@pytest.mark.parametrize("command", ["destroy", "audit", "status", "device-setup", "fleet-bundle", "logs",
                                     "revoke-claim"])
def test_a_broken_saved_outputs_file(clients, names, greengrass, capsys, content, command):
    state = names.project_root / OUTPUTS_FILE
    state.parent.mkdir(parents=True)
    state.write_text(content)
    assert run(clients, names, command) == 2
    line = one_line(capsys)
    assert line.startswith(f"{command}: {state}") and f"fix or remove {state}, then run again" in line


@pytest.mark.parametrize("command", ["destroy", "audit"])
def test_a_saved_outputs_folder_or_unreadable_file(clients, names, greengrass, capsys, command):
    state = names.project_root / OUTPUTS_FILE
    state.mkdir(parents=True)
    assert run(clients, names, command) == 2
    assert f"{state}: Is a directory" in one_line(capsys)
    state.rmdir()
    with unreadable_file(state):
        assert run(clients, names, command) == 2
        assert one_line(capsys).startswith(f"{command}: {state}: ")


@pytest.mark.parametrize("command", ["destroy", "audit", "status"])
def test_a_fifo_as_the_saved_outputs_is_refused_not_waited_on(clients, names, greengrass, capsys, command):
    state = names.project_root / OUTPUTS_FILE
    state.parent.mkdir(parents=True)
    os.mkfifo(state)
    codes: list[int] = []
    worker = threading.Thread(target=lambda: codes.append(run(clients, names, command)), daemon=True)
    worker.start()
    worker.join(20)
    assert codes == [2], "still waiting for a writer of the FIFO"
    assert f"{state}: not a regular file" in one_line(capsys)


@pytest.mark.parametrize("key, value, says", [
    pytest.param("Devices", "[" * 100_000, "output Devices must be a JSON list", id="Devices-deeply-nested"),
    ("SerialNumberPattern", "(a|a)*b", "output SerialNumberPattern"),
    ("SerialNumberPattern", "a{4294967296}", "output SerialNumberPattern"),
])
def test_outputs_that_would_raise_or_hang_are_one_outputs_error(key, value, says):
    fleet = {"ProvisioningTemplateName": "rainedge-fleet", "ClaimCertificateId": "ab" * 32,
             "ClaimPolicyName": "rainedge-claim-policy", "SerialNumberPattern": "[0-9a-f]{16}",
             "LedgerTableName": "rainedge-ledger"}
    with pytest.raises(OutputsError) as error:
        parse_outputs({**EXAMPLE_OUTPUTS, **fleet, key: value})
    assert says in str(error.value) and "\n" not in str(error.value) and len(str(error.value)) < 400


def test_a_file_where_the_build_folder_should_be_is_one_outputs_error(tmp_path):
    (tmp_path / "build").write_text("not a folder")
    with pytest.raises(OutputsError, match=f"cannot save the stack outputs to {tmp_path / OUTPUTS_FILE}"):
        save(EXAMPLE_OUTPUTS, tmp_path / OUTPUTS_FILE)


def test_destroy_with_a_file_as_the_build_folder_stops_before_any_change(clients, names, deployed, capsys):
    (names.project_root / "build").write_text("not a folder")
    assert run(clients, names, "destroy", "--cdk", "/bin/true") == 2
    line = one_line(capsys)
    assert line.startswith("destroy: cannot save the stack outputs") and "build" in line
    assert clients.iot.describe_thing(thingName=THING)  # nothing was touched


@pytest.mark.parametrize("command", COMMANDS)
def test_a_garbage_endpoint_url_is_one_line(names, aws_env, monkeypatch, capsys, command):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "garbage")
    cdk = ("--cdk", "/bin/true") if command == ("destroy",) else ()
    assert main(["--project-root", str(names.project_root), *command, *cdk]) == 2
    line = one_line(capsys)
    assert "AWS_ENDPOINT_URL" in line and "garbage" in line


def test_a_deeply_nested_cdk_json_is_one_line(clients, names, capsys):
    (names.project_root / "cdk.json").write_text("[" * 100_000)
    assert run(clients, names, "audit") == 2
    assert "nested deeper" in one_line(capsys)


def test_a_missing_cdk_cli(clients, names, greengrass, deployed, capsys):
    assert run(clients, names, "destroy", "--cdk", "/nonexistent") == 2
    line = one_line(capsys)
    assert "--cdk /nonexistent: no such executable" in line and "make setup" in line
    assert clients.iot.describe_thing(thingName=THING)  # checked before anything was touched


def test_a_cdk_cli_that_cannot_run(clients, names, greengrass, deployed, tmp_path, capsys):
    broken = tmp_path / "cdk"
    broken.write_bytes(b"\x7fELF garbage")
    broken.chmod(0o755)
    greengrass.answer("delete_core_device", {}, {"coreDeviceThingName": THING})  # the steps before cdk ran
    assert run(clients, names, "destroy", "--cdk", str(broken)) == 2
    assert f"cannot run {broken}" in one_line(capsys)


@pytest.mark.parametrize("region, says", [
    ("", "AWS_REGION is set but empty"), ("   ", "AWS_REGION is set but empty"),
    ("eu west 1", "'eu west 1' is not an AWS region name"), ("eu-west-1;rm", "is not an AWS region name"),
])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_aws_region(names, aws_env, monkeypatch, capsys, command, region, says):
    monkeypatch.setenv("AWS_REGION", region)
    assert main(["--project-root", str(names.project_root), *command]) == 2
    assert says in one_line(capsys)


def test_no_region_at_all(names, aws_env, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    for command in COMMANDS:
        assert main(["--project-root", str(names.project_root), *command]) == 2
        assert "no AWS region: set AWS_REGION" in one_line(capsys)


def test_a_garbage_private_key(clients, names, deployed, capsys):
    key = names.private_key_path(THING)
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n")
    assert run(clients, names, "device-setup") == 2
    line = one_line(capsys)
    assert f"{key} is not a PEM private key" in line and "make keys" in line


def test_an_encrypted_private_key(clients, names, deployed, capsys):
    key = names.private_key_path(THING)
    key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")))
    assert run(clients, names, "device-setup") == 2
    line = one_line(capsys)
    assert f"{key} is encrypted" in line and "without a passphrase" in line
    assert not (names.bundle_dir(THING) / "private.pem.key").exists()


def test_an_unreadable_private_key(clients, names, deployed, capsys):
    key = names.private_key_path(THING)
    key.unlink()
    with unreadable_file(key):
        assert run(clients, names, "device-setup") == 2
        assert f"cannot read {key}" in one_line(capsys)


@pytest.mark.parametrize("command", ["fleet-bundle", "logs", "revoke-claim", "status"])
def test_without_a_stack_says_deploy_first(clients, names, greengrass, capsys, command):
    assert run(clients, names, command) == 2
    assert "run `make deploy` first" in one_line(capsys)
