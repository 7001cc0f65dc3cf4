"""device-setup against a moto account holding the stack's resources."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from infra.device_keys import CSR_FILE, device_dir, ensure_device_keys
from infra.lifecycle.__main__ import main
from infra.lifecycle.device_setup import ROOT_CA, DeviceSetupError, run_device_setup
from infra.lifecycle.outputs import parse_outputs

from .conftest import REGION, THING


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run_main(clients, names, *args: str) -> int:
    return main(["--project-root", str(names.project_root), *args],
                clients=clients)


def test_bundle_config_has_the_stack_values(clients, names, deployed, capsys):
    assert run_main(clients, names, "device-setup") == 0
    bundle = names.bundle_dir(THING)
    config = yaml.safe_load((bundle / "config.yaml").read_text())

    root = names.config.greengrass_root
    assert config["system"] == {
        "certificateFilePath": f"{root}/device.pem.crt",
        "privateKeyPath": f"{root}/private.pem.key",
        "rootCaPath": f"{root}/AmazonRootCA1.pem",
        "rootpath": root,
        "thingName": THING,
    }
    nucleus = config["services"]["aws.greengrass.Nucleus"]
    assert nucleus["componentType"] == "NUCLEUS"
    assert nucleus["version"] == names.nucleus_version
    settings = nucleus["configuration"]
    assert settings["awsRegion"] == REGION
    assert settings["iotRoleAlias"] == "rainedge-tes-role-alias"
    assert settings["iotDataEndpoint"].endswith(f"-ats.iot.{REGION}.amazonaws.com")
    assert settings["iotCredEndpoint"].endswith(f".credentials.iot.{REGION}.amazonaws.com")


def test_bundle_files_and_permissions(clients, names, deployed):
    assert run_main(clients, names, "device-setup") == 0
    bundle = names.bundle_dir(THING)
    certificate_id = deployed.device_certificate().ref
    expected_pem = clients.iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["certificatePem"]

    assert mode(bundle) == 0o700
    assert (bundle / "device.pem.crt").read_text() == expected_pem
    assert (bundle / "private.pem.key").read_bytes() == names.private_key_path(THING).read_bytes()
    assert mode(bundle / "private.pem.key") == 0o600
    assert mode(bundle / "install.sh") == 0o700
    assert (bundle / "AmazonRootCA1.pem").read_bytes() == ROOT_CA.read_bytes()
    subprocess.run(["bash", "-n", str(bundle / "install.sh")], check=True)


def test_rerun_restores_a_loosened_key_mode(clients, names, deployed):
    assert run_main(clients, names, "device-setup") == 0
    key = names.bundle_dir(THING) / "private.pem.key"
    key.chmod(0o644)
    assert run_main(clients, names, "device-setup") == 0
    assert mode(key) == 0o600


def test_no_secret_is_printed(clients, names, deployed, capsys):
    assert run_main(clients, names, "device-setup") == 0
    printed = capsys.readouterr()
    key_lines = [line for line in names.private_key_path(THING).read_text().splitlines() if "-----" not in line]
    for line in key_lines:
        assert line not in printed.out and line not in printed.err
    assert "PRIVATE KEY" not in printed.out + printed.err
    assert str(names.bundle_dir(THING)) in printed.out


def test_install_script_has_prerequisites_and_the_installer_command(clients, names, deployed):
    run_device_setup(clients, names, parse_outputs(deployed.outputs), echo=lambda _: None)
    script = (names.bundle_dir(THING) / "install.sh").read_text()
    for needed in (
        "apt-get install -y --no-install-recommends default-jre-headless",
        "raspi-config nonint do_i2c 0",
        "usermod -aG i2c ggc_user",
        f'java -Droot="$GG_ROOT" -Dlog.store=FILE',
        "-jar ./GreengrassInstaller/lib/Greengrass.jar",
        "--init-config ./GreengrassInstaller/config.yaml",
        "--component-default-user ggc_user:ggc_group",
        "--setup-system-service true",
        f"https://d2s8p88vqu9w66.cloudfront.net/releases/greengrass-{names.nucleus_version}.zip",
    ):
        assert needed in script
    assert "--provision" not in script


def test_key_that_does_not_match_the_certificate_is_refused(clients, names, deployed):
    key = names.private_key_path(THING)
    key.unlink()
    (device_dir(names.secrets_dir, THING) / CSR_FILE).unlink()
    ensure_device_keys(names.secrets_dir, THING)  # a new key the certificate was not issued for
    with pytest.raises(DeviceSetupError, match="does not belong to certificate"):
        run_device_setup(clients, names, parse_outputs(deployed.outputs), echo=lambda _: None)
    assert not (names.bundle_dir(THING) / "private.pem.key").exists()


def test_missing_key_says_make_keys(clients, names, deployed, capsys):
    names.private_key_path(THING).unlink()
    assert run_main(clients, names, "device-setup") == 2
    assert "run `make keys`" in capsys.readouterr().err


def test_inactive_certificate_is_refused(clients, names, deployed):
    certificate_id = deployed.device_certificate().ref
    clients.iot.update_certificate(certificateId=certificate_id, newStatus="INACTIVE")
    with pytest.raises(DeviceSetupError, match="is INACTIVE, expected ACTIVE"):
        run_device_setup(clients, names, parse_outputs(deployed.outputs), echo=lambda _: None)


def test_unknown_thing_names_the_allowed_ones(clients, names, deployed, capsys):
    assert run_main(clients, names, "device-setup", "--thing", "nope") == 2
    assert "allowed: rainedge-core-1" in capsys.readouterr().err


def test_without_a_stack_says_deploy_first(clients, names, capsys):
    assert run_main(clients, names, "device-setup") == 2
    assert "run `make deploy` first" in capsys.readouterr().err


def test_ssh_copies_the_bundle_with_scp(clients, names, deployed, tmp_path, monkeypatch):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    record = tmp_path / "scp-args"
    (fake_bin / "scp").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    (fake_bin / "scp").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")

    assert run_main(clients, names, "device-setup", "--ssh", "pi@raspberrypi.local") == 0
    assert record.read_text().splitlines() == [
        "-rp", "--", str(names.bundle_dir(THING)), f"pi@raspberrypi.local:rainedge-{THING}"]


def test_shipped_root_ca_is_amazon_root_ca_1():
    certificate = x509.load_pem_x509_certificate(ROOT_CA.read_bytes())
    assert certificate.subject.rfc4514_string() == "CN=Amazon Root CA 1,O=Amazon,C=US"
    assert certificate.issuer == certificate.subject
    certificate.verify_directly_issued_by(certificate)  # raises unless self-signed with its own key
    assert certificate.not_valid_after_utc.year == 2038
    assert certificate.fingerprint(hashes.SHA256()).hex() == (
        "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e")
