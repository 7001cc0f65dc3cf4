"""The fleet bundle's install.sh, run with bash on a stand-in machine with a fake device-tree serial
number: the machine checks of the listed path, the serial number checked by the hook's own code
before anything changes, the device key and CSR made on the Pi, the installer run with the plugin;
every value is data, never a command."""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.fleet_hook import handler as fleet_hook
from infra.lifecycle.device_setup import install_script, yaml_document
from infra.lifecycle.fleet_bundle import HOOK_FILE, PLUGIN_JAR, SERIAL_SLOT, fleet_install_script

from .test_install_script import NUCLEUS, machine

SERIAL = "10000000a1b2c3d4"
PATTERN = "[0-9a-f]{16}"


def pi(tmp_path: Path, arch: str = "aarch64") -> Path:
    """The stand-in machine with the lambdaRuntime interpreter (a real one: the script runs the hook's
    code with it), `tr`, and an `rm` that keeps the scratch folder so that the test can read it."""
    bin_dir = machine(tmp_path, arch, ())
    os.symlink(sys.executable, bin_dir / "python3.11")
    for tool in ("tr", "head"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    (bin_dir / "rm").unlink()
    (bin_dir / "rm").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "rm").chmod(0o755)
    return bin_dir


def run_install(tmp_path: Path, bin_dir: Path, serial: bytes | None = SERIAL.encode() + b"\0", *,
                pattern: str = PATTERN, greengrass_root: str = "/greengrass/v2",
                downloads: tuple[str, ...] = (f"greengrass-{NUCLEUS}.zip", PLUGIN_JAR),
                altitudes: dict[str, float] | None = None, altitude: str | None = None,
                serial_file: str | None = None, cwd: Path | None = None, environment: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess:
    """The fleet install.sh with DRY_RUN=1; the serial number is written to a file that SERIAL_NUMBER_FILE
    names (`serial_file`: name that file instead; `serial` None: no SERIAL_NUMBER_FILE)."""
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / "install.sh").write_text(fleet_install_script(
        name_prefix="rainedge", serial_pattern=pattern, nucleus_version=NUCLEUS, greengrass_root=greengrass_root,
        python="python3.11", altitudes=altitudes or {}))
    shutil.copy(fleet_hook.__file__, bundle / HOOK_FILE)
    (bundle / "config.yaml").write_text(yaml_document({"templateParameters": {"SerialNumber": SERIAL_SLOT},
                                                       "deviceId": f"rainedge-claim-{SERIAL_SLOT}"}))
    for name in downloads:
        (bundle / name).write_bytes(b"PK")
    env = {"PATH": str(bin_dir), "DRY_RUN": "1", "TMPDIR": str(tmp_path / "tmp"),
           **({"ALTITUDE_M": altitude} if altitude is not None else {}), **(environment or {})}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    if serial_file is not None:
        env["SERIAL_NUMBER_FILE"] = serial_file
    elif serial is not None:
        (tmp_path / "serial-number").write_bytes(serial)
        env["SERIAL_NUMBER_FILE"] = str(tmp_path / "serial-number")
    return subprocess.run(["/bin/bash", str(bundle / "install.sh")], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def changes(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("would run:")]


def test_a_dry_run_on_a_pi_joins_as_prefix_serial_with_its_own_key(tmp_path):
    result = run_install(tmp_path, pi(tmp_path))
    assert result.returncode == 0, result.stderr
    thing = f"rainedge-{SERIAL}"
    assert f"this Pi joins as {thing} (serial number {SERIAL} from {tmp_path}/serial-number)" in result.stdout
    done = changes(result)
    key = "/greengrass/v2/device-key/private.pem.key"
    csr = "/greengrass/v2/device-key/device.csr"
    assert done.index(f"would run: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {key}") \
        < done.index(f"would run: chmod 0600 {key}") \
        < done.index(f"would run: openssl req -new -key {key} -subj /CN={thing} -out {csr}")
    assert "would run: install -m 0600 " in "\n".join(done)  # the claim key, 0600
    [java] = [line for line in done if line.startswith("would run: java")]
    assert (" -jar ./GreengrassInstaller/lib/Greengrass.jar --trusted-plugin "
            f"./GreengrassInstaller/{PLUGIN_JAR} --init-config ./GreengrassInstaller/config.yaml "
            "--component-default-user ggc_user:ggc_group --setup-system-service true") in java
    assert "--provision" not in java
    # The serial number went into the configuration the installer gets.
    [filled] = (tmp_path / "tmp").glob("*/config.yaml")
    assert yaml.safe_load(filled.read_text()) == {"templateParameters": {"SerialNumber": SERIAL},
                                                  "deviceId": f"rainedge-claim-{SERIAL}"}
    assert "PRIVATE KEY" not in result.stdout + result.stderr


@pytest.mark.parametrize("serial, says", [
    (b"10000000A1B2C3D4\0", "does not match [0-9a-f]{16}"),  # the pattern is matched in full, case and all
    (b"10000000a1b2c3d\0", "does not match"),
    (b"10000000a1b2c3d4\n10000000a1b2c3d4\0", "does not match"),
    (b"\0", "does not match"),
])
def test_a_serial_number_the_hook_would_refuse_stops_before_any_change(tmp_path, serial, says):
    result = run_install(tmp_path, pi(tmp_path), serial)
    assert result.returncode == 1
    assert "this board cannot join the fleet" in result.stderr and says in result.stderr
    assert changes(result) == []


def test_a_pattern_that_admits_a_name_aws_iot_refuses_is_caught_by_the_hooks_name_rule(tmp_path):
    result = run_install(tmp_path, pi(tmp_path), b"pi:7\0", pattern=".+")
    assert result.returncode == 1 and "is not 1-64 of A-Z a-z 0-9 _ -" in result.stderr
    assert changes(result) == []


def test_without_a_device_tree_serial_number(tmp_path):
    result = run_install(tmp_path, pi(tmp_path), serial=None)
    assert result.returncode == 1
    assert "no serial number in the device tree" in result.stderr and "SERIAL_NUMBER_FILE" in result.stderr
    assert changes(result) == []


def test_a_missing_plugin_jar_says_how_to_download_it(tmp_path):
    result = run_install(tmp_path, pi(tmp_path), downloads=(f"greengrass-{NUCLEUS}.zip",))
    assert result.returncode == 1
    assert "fleetprovisioningbyclaim-latest.jar" in result.stderr and changes(result) == []


def test_the_machine_checks_of_the_listed_path_come_first(tmp_path):
    result = run_install(tmp_path, pi(tmp_path, arch="armv7l"))
    assert result.returncode == 1 and "this is a armv7l system" in result.stderr
    assert "joins as" not in result.stdout and changes(result) == []


def test_hostile_values_are_data_not_commands(tmp_path):
    marker = tmp_path / "pwned"
    hostile = f"$(touch {marker})`touch {marker}`;touch {marker}"
    root = run_install(tmp_path, pi(tmp_path), greengrass_root=f"/opt/gg;{hostile}")
    assert root.returncode == 0, root.stderr
    serial = run_install(tmp_path, tmp_path / "bin", hostile.encode() + b"\0", pattern=f".*'''\"\"\"{hostile}")
    assert serial.returncode == 1 and "this board cannot join the fleet" in serial.stderr
    assert not marker.exists()


@pytest.mark.parametrize("altitudes, altitude, expected", [
    ({}, None, '{"altitude_m": 0} (default: stationAltitudes has no entry for rainedge-10000000a1b2c3d4)'),
    ({f"rainedge-{SERIAL}": 512.5, "rainedge-1000000000000000": 80}, None, '{"altitude_m": 512.5} (stationAltitudes)'),
    ({f"rainedge-{SERIAL}": 512.5}, "1200", '{"altitude_m": 1200} (ALTITUDE_M)'),
])
def test_the_pi_writes_its_station_altitude_looked_up_by_the_name_it_joins_as(tmp_path, altitudes, altitude,
                                                                              expected):
    result = run_install(tmp_path, pi(tmp_path), altitudes=altitudes, altitude=altitude)
    assert result.returncode == 0, result.stderr
    assert f"station file /greengrass/v2/rainedge/station.json: {expected}" in result.stdout


def test_a_bad_altitude_stops_the_install_before_any_change(tmp_path):
    result = run_install(tmp_path, pi(tmp_path), altitude="high; touch /tmp/x")
    assert result.returncode == 1
    assert "is not metres from -500 to 9000" in result.stderr
    assert changes(result) == []


# ---- nothing runs from where the user stands --------------------------------------------------------
def plant(folder: Path, markers: Path, modules: tuple[str, ...] = ("typing", "re", "json", "importlib")) -> None:
    """Modules in `folder` named like standard ones, each leaving a marker in `markers` when imported."""
    folder.mkdir(parents=True, exist_ok=True)
    for module in modules:
        (folder / f"{module}.py").write_text(f"open({str(markers / f'{folder.name}-{module}')!r}, 'w').close()\n")


def test_no_module_planted_where_the_script_runs_or_in_the_bundle_or_on_pythonpath_is_imported(tmp_path):
    """Under `sudo ./install.sh` a module planted in the working folder would run as root; the interpreter
    runs isolated and the hook's code is loaded by its path, so only the standard library is imported."""
    markers = tmp_path / "markers"
    markers.mkdir()
    planted = {name: tmp_path / name for name in ("cwd", "pythonpath")}
    for folder in planted.values():
        plant(folder, markers)
    plant(tmp_path / "bundle", markers)
    result = run_install(tmp_path, pi(tmp_path), cwd=planted["cwd"],
                         environment={"PYTHONPATH": str(planted["pythonpath"])})
    assert result.returncode == 0, result.stderr
    assert f"this Pi joins as rainedge-{SERIAL}" in result.stdout
    assert sorted(marker.name for marker in markers.iterdir()) == []
    # The planted modules do run where the working folder is on sys.path: the check above can fail.
    subprocess.run([sys.executable, "-c", "import typing"], cwd=planted["cwd"], check=True)
    assert [marker.name for marker in markers.iterdir()] == ["cwd-typing"]


INTERPRETER_CALL = re.compile(r'(?<!command -v )"\$PYTHON"(?P<options>(?: -[A-Za-z]+)*)')


def test_every_interpreter_call_of_every_generated_script_is_isolated():
    scripts = {"device-setup": install_script(thing_name="rainedge-core-1", nucleus_version=NUCLEUS,
                                              greengrass_root="/greengrass/v2", python="python3.11"),
               "fleet-bundle": fleet_install_script(name_prefix="rainedge", serial_pattern=PATTERN,
                                                    nucleus_version=NUCLEUS, greengrass_root="/greengrass/v2",
                                                    python="python3.11", altitudes={})}
    calls = {name: [call["options"].split() for call in INTERPRETER_CALL.finditer(script)]
             for name, script in scripts.items()}
    assert calls["fleet-bundle"], "the fleet script runs the hook's code"
    assert all("-I" in options for options in [*calls["device-setup"], *calls["fleet-bundle"]]), calls


def test_the_hooks_code_runs_on_a_pi_whose_python_has_only_the_standard_library(tmp_path):
    """Raspberry Pi OS has no boto3 or botocore: the serial check must need nothing else (-S: no site-packages)."""
    bin_dir = pi(tmp_path)
    (bin_dir / "python3.11").unlink()
    (bin_dir / "python3.11").write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    (bin_dir / "python3.11").chmod(0o755)
    result = run_install(tmp_path, bin_dir)
    assert result.returncode == 0, result.stderr


# ---- the Greengrass root and the folders in it ------------------------------------------------------
def test_an_existing_greengrass_root_keeps_its_mode_and_only_missing_folders_are_made(tmp_path):
    """GNU install -d also sets the mode of a folder that exists (coreutils 9.1: 1777 became 0755)."""
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o1777)
    (root / "claim-certs").mkdir(mode=0o750)
    result = run_install(tmp_path, pi(tmp_path), greengrass_root=str(root))
    assert result.returncode == 0, result.stderr
    made = [line for line in changes(result) if line.startswith("would run: install -d")]
    assert made == [f"would run: install -d -m 0755 {root}/rainedge", f"would run: install -d -m 0700 {root}/device-key"]
    assert stat.S_IMODE(root.stat().st_mode) == 0o1777
    assert stat.S_IMODE((root / "claim-certs").stat().st_mode) == 0o750


# ---- the serial number file -------------------------------------------------------------------------
def fifo(tmp_path: Path) -> str:
    os.mkfifo(tmp_path / "serial-fifo")
    return str(tmp_path / "serial-fifo")


def link_to_dev_zero(tmp_path: Path) -> str:
    (tmp_path / "serial-link").symlink_to("/dev/zero")
    return str(tmp_path / "serial-link")


@pytest.mark.parametrize("serial_file", [lambda tmp_path: "/dev/zero", fifo, link_to_dev_zero, str],
                         ids=["/dev/zero", "FIFO", "link to /dev/zero", "folder"])
def test_a_serial_number_file_that_is_no_regular_file_is_refused_at_once_in_one_line(tmp_path, serial_file):
    path = serial_file(tmp_path)
    # The timeout only guards the test run: reading /dev/zero or a FIFO with no writer never ends.
    result = run_install(tmp_path, pi(tmp_path), serial_file=path, timeout=20)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"{path} (SERIAL_NUMBER_FILE) is not a readable regular file: set "
                                          "SERIAL_NUMBER_FILE to a file holding this board's serial number"]
    assert changes(result) == []


def test_only_the_start_of_a_long_serial_number_file_is_read(tmp_path):
    result = run_install(tmp_path, pi(tmp_path), b"0" * 5_000_000)
    assert result.returncode == 1 and "this board cannot join the fleet" in result.stderr
    assert len(result.stderr) < 1_000 and len(result.stderr.splitlines()) == 1
