"""install.sh, run for real with bash on a stand-in machine: it checks the machine before it changes
anything, and DRY_RUN=1 shows every command that would change it, with every value quoted. Hostile
values are also run as a user that owns nothing (where the machine allows switching to one)."""
from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from infra.lifecycle.device_setup import install_script

NUCLEUS = "2.16.1"
# What the script uses besides bash built-ins before and during a dry run.
TOOLS = ("dirname", "mktemp", "rm", "getent", "id", "cat")


def machine(tmp_path: Path, arch: str, pythons: tuple[str, ...]) -> Path:
    """A bin folder holding only the basic tools, `uname -m` answering `arch`, and the given interpreters."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for tool in TOOLS:
        os.symlink(shutil.which(tool), bin_dir / tool)
    (bin_dir / "uname").write_text(f"#!/bin/sh\necho {arch}\n")
    for python in pythons:
        (bin_dir / python).write_text("#!/bin/sh\nexit 0\n")
    for path in bin_dir.iterdir():
        if not path.is_symlink():
            path.chmod(0o755)
    return bin_dir


def run_install(tmp_path: Path, bin_dir: Path, greengrass_root: str = "/greengrass/v2",
                thing: str = "rainedge-core-1", as_user: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """install.sh with DRY_RUN=1 (`as_user`: a command prefix that switches user first)."""
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    script = bundle / "install.sh"
    script.write_text(install_script(thing_name=thing, nucleus_version=NUCLEUS, greengrass_root=greengrass_root,
                                     python="python3.11"))
    (bundle / f"greengrass-{NUCLEUS}.zip").write_bytes(b"PK")
    return subprocess.run([*as_user, "/bin/bash", str(script)], capture_output=True, text=True, timeout=30,
                          env={"PATH": str(bin_dir), "DRY_RUN": "1"})


def test_a_dry_run_on_a_64_bit_pi_shows_every_change_and_makes_none(tmp_path):
    result = run_install(tmp_path, machine(tmp_path, "aarch64", ("python3.11",)))
    assert result.returncode == 0, result.stderr
    changes = [line for line in result.stdout.splitlines() if line.startswith("would run:")]
    assert "would run: apt-get update" in changes
    assert "would run: usermod -aG i2c ggc_user" in changes
    assert any(line.startswith("would run: java -Droot=/greengrass/v2") and "--init-config" in line for line in changes)


@pytest.mark.parametrize("arch", ["armv7l", "armv6l", "i686"])
def test_a_machine_without_wheels_is_refused_before_any_change(tmp_path, arch):
    result = run_install(tmp_path, machine(tmp_path, arch, ("python3.11",)))
    assert result.returncode == 1
    assert f"this is a {arch} system" in result.stderr and "Raspberry Pi OS (64-bit)" in result.stderr
    assert "would run" not in result.stdout


def test_a_missing_interpreter_names_the_lambda_runtime_to_deploy_with(tmp_path):
    # Raspberry Pi OS trixie ships Python 3.13, bookworm 3.11.
    result = run_install(tmp_path, machine(tmp_path, "aarch64", ("python3.13",)))
    assert result.returncode == 1
    assert "python3.11 (context key lambdaRuntime) is not installed here" in result.stderr
    assert "-c lambdaRuntime=python3.13" in result.stderr
    assert "would run" not in result.stdout
    bare = run_install(tmp_path, machine(tmp_path / "bare", "aarch64", ()))
    assert bare.returncode == 1 and "apt install python3.11-venv" in bare.stderr


def hostile(marker: Path) -> dict[str, str]:
    return {"greengrass_root": f"/opt/gg;touch${{IFS}}{marker};$(touch {marker})", "thing": f"t`touch {marker}`"}


def test_hostile_values_are_data_not_commands(tmp_path):
    marker = tmp_path / "pwned"
    result = run_install(tmp_path, machine(tmp_path, "aarch64", ("python3.11",)), **hostile(marker))
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    assert "would run: install -d -m 0755 /opt/gg\\;touch\\$\\{IFS\\}" in result.stdout


@pytest.fixture
def as_nobody() -> tuple[str, ...]:
    """The command prefix that runs a command as user nobody, who owns nothing (util-linux's
    setpriv; root may switch to any user); skips where this machine cannot."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("running the script as user nobody needs root and setpriv")
    prefix = (setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--")
    probe = subprocess.run([*prefix, "id", "-u"], capture_output=True, text=True)
    if probe.returncode != 0 or probe.stdout.strip() != str(pwd.getpwnam("nobody").pw_uid):
        pytest.skip(f"cannot switch to user nobody here: {probe.stderr.strip()}")
    return prefix


def test_hostile_values_run_as_a_harmless_user_execute_nothing(as_nobody):
    # A folder nobody owns, so that an injected command could leave its marker there.
    workdir = Path(tempfile.mkdtemp(prefix="rainedge-install-"))
    try:
        bin_dir = machine(workdir, "aarch64", ("python3.11",))
        marker = workdir / "pwned"
        nobody = pwd.getpwnam("nobody")
        workdir.chmod(0o755)
        for path in (workdir, *workdir.rglob("*")):
            os.chown(path, nobody.pw_uid, nobody.pw_gid, follow_symlinks=False)
        result = run_install(workdir, bin_dir, as_user=as_nobody, **hostile(marker))
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("would run:") >= 5
        assert not marker.exists()
        # The same marker written as that user does appear: the check above can fail.
        subprocess.run([*as_nobody, "/bin/sh", "-c", f"touch {marker}"], check=True)
        assert marker.exists()
    finally:
        shutil.rmtree(workdir)


# ---- the station file ----------------------------------------------------------------------------------
def dry_run(tmp_path: Path, altitude_m: float | None = None, **environment: str) -> subprocess.CompletedProcess:
    """install.sh of a listed device (stationAltitudes entry `altitude_m`) with DRY_RUN=1."""
    bundle = tmp_path / "bundle"
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "install.sh").write_text(install_script(thing_name="rainedge-core-1", nucleus_version=NUCLEUS,
                                                      greengrass_root="/greengrass/v2", python="python3.11",
                                                      altitude_m=altitude_m))
    (bundle / f"greengrass-{NUCLEUS}.zip").write_bytes(b"PK")
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        machine(tmp_path, "aarch64", ("python3.11",))
    return subprocess.run(["/bin/bash", str(bundle / "install.sh")], capture_output=True, text=True, timeout=30,
                          env={"PATH": str(bin_dir), "DRY_RUN": "1", **environment})


STATION_LINE = "station file /greengrass/v2/rainedge/station.json: "


@pytest.mark.parametrize("altitude_m, environment, written", [
    (512.5, {}, '{"altitude_m": 512.5} (stationAltitudes)'),
    (1200.0, {}, '{"altitude_m": 1200} (stationAltitudes)'),
    (None, {}, "{\"altitude_m\": 0} (default: stationAltitudes has no entry for rainedge-core-1)"),
    (512.5, {"ALTITUDE_M": "498.25"}, '{"altitude_m": 498.25} (ALTITUDE_M)'),
    (None, {"ALTITUDE_M": "-500"}, '{"altitude_m": -500} (ALTITUDE_M)'),
    (None, {"ALTITUDE_M": "9000"}, '{"altitude_m": 9000} (ALTITUDE_M)'),
    (None, {"ALTITUDE_M": "-0.5"}, '{"altitude_m": -0.5} (ALTITUDE_M)'),
])
def test_install_writes_the_station_file_before_anything_else_changes(tmp_path, altitude_m, environment, written):
    result = dry_run(tmp_path, altitude_m, **environment)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert STATION_LINE + written in lines
    changes = [line for line in lines if line.startswith("would run:")]
    assert changes[:3] == ["would run: install -d -m 0755 /greengrass/v2",
                           "would run: install -d -m 0755 /greengrass/v2/rainedge",
                           "would run: install -m 0644 -o root -g root /dev/stdin "
                           "/greengrass/v2/rainedge/station.json"]


@pytest.mark.parametrize("value", ["9000.01", "-500.5", "10000", "1e3", "007", "12.345", "five", "512,5", " 5",
                                  "$(touch pwned)", "0x10"])
def test_an_altitude_that_is_no_metres_in_range_stops_install_before_any_change(tmp_path, value):
    result = dry_run(tmp_path, 512.5, ALTITUDE_M=value)
    assert result.returncode == 1
    assert f"altitude {value} (ALTITUDE_M) is not metres from -500 to 9000" in result.stderr
    assert "would run" not in result.stdout and not (tmp_path / "bundle" / "pwned").exists()


@pytest.fixture
def as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("install -o root needs root")


def test_the_fleet_script_looks_its_thing_up_and_the_file_is_what_the_shadow_writer_reads(tmp_path, as_root):
    """The snippet as a fleet install.sh would use it, run for real into a scratch Greengrass root."""
    from device_code.shadow_writer import read_station_altitude
    from infra.lifecycle.device_setup import RUN_FUNCTION, station_file_snippet

    root = tmp_path / "greengrass"
    altitudes = {"rainedge-00000000000000aa": 120.0, "rainedge-00000000000000ab": 1499.75}
    script = "set -euo pipefail\n" + RUN_FUNCTION + station_file_snippet(str(root), '"$THING_NAME"', altitudes)

    def install(thing_name: str) -> dict:
        result = subprocess.run(["/bin/bash", "-c", script], capture_output=True, text=True, timeout=30,
                                env={"PATH": os.environ["PATH"], "THING_NAME": thing_name})
        assert result.returncode == 0, result.stderr
        station = root / "rainedge" / "station.json"
        assert stat.S_IMODE(station.stat().st_mode) == 0o644 and station.stat().st_uid == 0
        assert stat.S_IMODE(station.parent.stat().st_mode) == 0o755
        return read_station_altitude(station)

    found = install("rainedge-00000000000000ab")
    assert (found.altitude_m, found.source) == (1499.75, "station_file")
    assert install("rainedge-00000000000000ff").altitude_m == 0  # not in stationAltitudes: 0 m


# ---- folders: made when missing, an existing one left as it is --------------------------------------
def test_an_existing_greengrass_root_keeps_its_mode(tmp_path):
    """GNU install -d also sets the mode of a folder that exists (coreutils 9.1: 1777 became 0755, so /tmp
    would lose its sticky bit)."""
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o1777)
    result = run_install(tmp_path, machine(tmp_path, "aarch64", ("python3.11",)), greengrass_root=str(root))
    assert result.returncode == 0, result.stderr
    made = [line for line in result.stdout.splitlines() if line.startswith("would run: install -d")]
    assert made == [f"would run: install -d -m 0755 {root}/rainedge"]
    assert stat.S_IMODE(root.stat().st_mode) == 0o1777


def test_the_folders_are_made_with_their_mode_and_existing_ones_are_left_as_they_are(tmp_path, as_root):
    """The station file snippet run for real: it makes the Greengrass root and its station folder."""
    from infra.lifecycle.device_setup import RUN_FUNCTION, station_file_snippet

    def install(root: Path) -> None:
        script = "set -euo pipefail\n" + RUN_FUNCTION + station_file_snippet(str(root), "rainedge-core-1", {})
        result = subprocess.run(["/bin/bash", "-c", script], capture_output=True, text=True, timeout=30,
                                env={"PATH": os.environ["PATH"]})
        assert result.returncode == 0, result.stderr
        assert (root / "rainedge" / "station.json").is_file()

    missing = tmp_path / "new" / "v2"
    install(missing)
    assert [stat.S_IMODE(path.stat().st_mode) for path in (missing, missing / "rainedge")] == [0o755, 0o755]
    shared = tmp_path / "shared"
    (shared / "rainedge").mkdir(parents=True)
    for folder in (shared, shared / "rainedge"):
        folder.chmod(0o1777)
    install(shared)
    assert [stat.S_IMODE(path.stat().st_mode) for path in (shared, shared / "rainedge")] == [0o1777, 0o1777]
