"""install.sh, run for real with bash on a stand-in machine: it checks the machine before it changes
anything, and DRY_RUN=1 shows every command that would change it, with every value quoted. Hostile
values are also run as a user that owns nothing (where the machine allows switching to one)."""
from __future__ import annotations

import os
import pwd
import shutil
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
