"""device-setup: one ready-to-install Greengrass bundle per core device.

For each device in the stack outputs it writes, into `.secrets/<thing>/greengrass-bundle/`
(git-ignored, 0700): the certificate (fetched from IoT by id), the private key (copied, 0600),
the Amazon root CA shipped in this package, `config.yaml` for manual provisioning and `install.sh`.
It prints paths and names only, never key material.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Mapping

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from device_code.sea_level import ALTITUDE_RANGE_M
from infra.config import DEFAULT_POSIX_GROUP, DEFAULT_POSIX_USER, LAMBDA_RUNTIMES, station_file
from infra.device_keys import UnusableKey, parse_private_key, public_der
from infra.greengrass import NUCLEUS
from infra.lifecycle.aws import AwsClients, LifecycleError, call
from infra.lifecycle.outputs import Device, StackOutputs
from infra.lifecycle.settings import AppNames

ROOT_CA = Path(__file__).with_name("AmazonRootCA1.pem")
RUN_AS = f"{DEFAULT_POSIX_USER}:{DEFAULT_POSIX_GROUP}"
CERT_FILE, KEY_FILE, ROOT_CA_FILE = "device.pem.crt", "private.pem.key", "AmazonRootCA1.pem"
# The fleet provisioning plugin, saved under the name the Greengrass guide uses.
PLUGIN_JAR = "aws.greengrass.FleetProvisioningByClaim.jar"


class DeviceSetupError(LifecycleError):
    """A bundle cannot be written (missing or unusable key, key/certificate mismatch, inactive certificate)."""


@dataclass(frozen=True)
class Endpoints:
    data: str
    credentials: str


def fetch_endpoints(clients: AwsClients) -> Endpoints:
    return Endpoints(
        data=call(clients.iot.describe_endpoint, endpointType="iot:Data-ATS")["endpointAddress"],
        credentials=call(clients.iot.describe_endpoint, endpointType="iot:CredentialProvider")["endpointAddress"],
    )


def yaml_document(mapping: dict) -> str:
    """Block-style YAML; every string is written as a JSON string, which YAML reads as a
    double-quoted scalar, so no value can change the document's structure."""
    def lines(value: dict, indent: str) -> list[str]:
        out = []
        for key, item in value.items():
            if isinstance(item, dict):
                out += [f"{indent}{key}:", *lines(item, indent + "  ")]
            else:
                out.append(f"{indent}{key}: {json.dumps(item)}")
        return out
    return "\n".join(["---", *lines(mapping, ""), ""])


def config_yaml(*, thing_name: str, region: str, role_alias: str, endpoints: Endpoints, nucleus_version: str,
                greengrass_root: str) -> str:
    """The installer's --init-config file (REFERENCE.md 'Manual provisioning')."""
    return yaml_document({
        "system": {
            "certificateFilePath": f"{greengrass_root}/{CERT_FILE}",
            "privateKeyPath": f"{greengrass_root}/{KEY_FILE}",
            "rootCaPath": f"{greengrass_root}/{ROOT_CA_FILE}",
            "rootpath": greengrass_root,
            "thingName": thing_name,
        },
        "services": {
            NUCLEUS: {
                "componentType": "NUCLEUS",
                "version": nucleus_version,
                "configuration": {
                    "awsRegion": region,
                    "iotRoleAlias": role_alias,
                    "iotDataEndpoint": endpoints.data,
                    "iotCredEndpoint": endpoints.credentials,
                },
            },
        },
    })


def installer_zip(nucleus_version: str) -> str:
    return f"greengrass-{nucleus_version}.zip"


def installer_url(nucleus_version: str) -> str:
    return f"https://d2s8p88vqu9w66.cloudfront.net/releases/{installer_zip(nucleus_version)}"


# The device packages install only where they have wheels: ai-edge-litert 2.3.0 ships manylinux
# wheels for aarch64 and x86_64 and none for 32-bit ARM (PyPI, ai-edge-litert release files).
SUPPORTED_MACHINES = ("aarch64", "x86_64")


def machine_checks(python: str) -> str:
    """Shell that refuses, before anything on the machine changes, a machine the device packages
    cannot run on: a CPU without wheels, or no interpreter for the configured Lambda runtime."""
    machines = ", ".join(SUPPORTED_MACHINES)
    return f"""# Checks first: nothing below changes the machine until they pass.
case "$(uname -m)" in
  {"|".join(SUPPORTED_MACHINES)}) ;;
  *) echo "this is a $(uname -m) system; the device packages (ai-edge-litert) have wheels for {machines} only:" \\
          "install Raspberry Pi OS (64-bit) and run this again" >&2
     exit 1 ;;
esac
PYTHON={shlex.quote(python)}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  FOUND=""
  for CANDIDATE in {" ".join(LAMBDA_RUNTIMES)}; do
    if command -v "$CANDIDATE" >/dev/null 2>&1; then FOUND="$CANDIDATE"; fi
  done
  if [ -n "$FOUND" ]; then
    echo "$PYTHON (context key lambdaRuntime) is not installed here, $FOUND is: redeploy with" \\
         "-c lambdaRuntime=$FOUND (make deploy), then make device-setup again" >&2
  else
    echo "$PYTHON (context key lambdaRuntime) is not installed here: install it (apt install $PYTHON-venv)" >&2
  fi
  exit 1
fi
"""


# DRY_RUN=1 prints each command that would change the machine instead of running it.
RUN_FUNCTION = """run() {
  if [ -n "${DRY_RUN:-}" ]; then printf 'would run:'; printf ' %q' "$@"; printf '\\n'; else "$@"; fi
}
"""


# How a script runs the interpreter: -I, isolated mode, which "implies -E, -P and -s": no PYTHON*
# variable is read, and neither the user's site-packages nor the script's or the working folder is on
# sys.path (Python docs, "Command line and environment"); -B writes no .pyc files into the bundle.
# A file of the bundle's own is loaded by its path, never imported from a folder.
ISOLATED_PYTHON = '"$PYTHON" -I -B'


def folder_if_missing(path: str, mode: str) -> str:
    """Shell that makes the folder `path` (a shell word) with `mode` when it is missing and leaves an
    existing one as it is: GNU install -d also sets the mode of a folder that exists (coreutils 9.1:
    a 1777 folder became 0755, so /tmp would lose its sticky bit)."""
    return f"[ -d {path} ] || run install -d -m {mode} {path}"


def script_prologue(python: str) -> str:
    """What every install.sh does first: the machine checks, then root, then a scratch folder."""
    return f"""{RUN_FUNCTION}
{machine_checks(python)}
if [ -z "${{DRY_RUN:-}}" ] && [ "$(id -u)" -ne 0 ]; then echo "run as root: sudo $0" >&2; exit 1; fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"""


def require_download(variable: str, name: str, url: str) -> str:
    """Stop, saying how to get it, when a file the user downloads on the Pi is not there."""
    return f"""if [ ! -f "${variable}" ]; then
  echo "not found: ${variable}" >&2
  echo "download it first: curl -fsSL -o $HERE/{shlex.quote(name)} {shlex.quote(url)}" >&2
  exit 1
fi
"""


# OS prerequisites: Java for the nucleus, Python for the Lambda components, I2C for the BME680,
# openssl for a device that makes its own key. The components run as ggc_user; the sensor runs as
# ggc_user:i2c (the deployment's runWith) to open /dev/i2c-*, which belongs to group i2c.
PREREQUISITES = f"""run apt-get update
run apt-get install -y --no-install-recommends default-jre-headless python3 python3-venv unzip i2c-tools openssl
run raspi-config nonint do_i2c 0  # 0 means "enable"
getent group {DEFAULT_POSIX_GROUP} >/dev/null || run groupadd --system {DEFAULT_POSIX_GROUP}
id -u {DEFAULT_POSIX_USER} >/dev/null 2>&1 || run useradd --system --create-home --gid {DEFAULT_POSIX_GROUP} {DEFAULT_POSIX_USER}
getent group i2c >/dev/null || run groupadd --system i2c
run usermod -aG i2c {DEFAULT_POSIX_USER}
"""


def run_installer(config: str, trusted_plugin: str | None = None) -> str:
    """Unpack the installer and run it with `config` (a shell word) as --init-config, as the
    Greengrass guides do ("Install AWS IoT Greengrass Core software with manual resource
    provisioning" / "... with AWS IoT fleet provisioning": --trusted-plugin for the plugin jar).
    No --provision: the installer needs no AWS credentials on the Pi."""
    copy_plugin = plugin_option = ""
    if trusted_plugin:
        copy_plugin = f'run cp {trusted_plugin} "$WORK/GreengrassInstaller/{PLUGIN_JAR}"\n'
        plugin_option = f"  --trusted-plugin ./GreengrassInstaller/{PLUGIN_JAR} \\\n"
    return f"""run unzip -q "$INSTALLER_ZIP" -d "$WORK/GreengrassInstaller"
run cp {config} "$WORK/GreengrassInstaller/config.yaml"
{copy_plugin}cd "$WORK"
run java -Droot="$GG_ROOT" -Dlog.store=FILE \\
  -jar ./GreengrassInstaller/lib/Greengrass.jar \\
{plugin_option}  --init-config ./GreengrassInstaller/config.yaml \\
  --component-default-user {RUN_AS} \\
  --setup-system-service true
"""


def station_file_snippet(greengrass_root: str, thing_name: str, altitudes: Mapping[str, float]) -> str:
    """Shell that makes the Greengrass root and its station folder (0755, each when missing) and writes
    the station file {"altitude_m": A} (root-owned, mode 0644) into it.

    A is ALTITUDE_M from the environment when set (`sudo ALTITUDE_M=512 ./install.sh`), else the
    entry of `altitudes` (stationAltitudes) for the thing named by the shell word `thing_name` (a
    quoted name, or "$THING_NAME" in a script that learns the name on the Pi), else 0. A value that
    is not metres from -500 to 9000 with at most 2 decimals stops the script before the snippet
    changes anything: place it after the checks, before the first change. Needs bash and `run`."""
    q, path = shlex.quote, station_file(greengrass_root)
    station_folder = str(PurePosixPath(path).parent)
    folders = "\n".join(folder_if_missing(q(folder), "0755") for folder in (greengrass_root, station_folder))
    low, high = (round(bound * 100) for bound in ALTITUDE_RANGE_M)
    cases = "".join(f"  {q(name)}) STATION_ALTITUDE_M={q(f'{metres:.2f}'.rstrip('0').rstrip('.'))}; "
                    "STATION_ALTITUDE_SOURCE=stationAltitudes ;;\n" for name, metres in altitudes.items())
    return f"""# The station file: this Pi's altitude, with which the shadow writer reduces the pressure to sea level.
STATION_ALTITUDE_M=0 STATION_ALTITUDE_SOURCE="default: stationAltitudes has no entry for "{thing_name}
case {thing_name} in
{cases}esac
if [ -n "${{ALTITUDE_M:-}}" ]; then STATION_ALTITUDE_M="$ALTITUDE_M" STATION_ALTITUDE_SOURCE=ALTITUDE_M; fi
CENTIMETRES=""
if [[ "$STATION_ALTITUDE_M" =~ ^(-?)(0|[1-9][0-9]{{0,3}})(\\.([0-9]{{1,2}}))?$ ]]; then
  FRACTION="${{BASH_REMATCH[4]}}0"
  CENTIMETRES="${{BASH_REMATCH[1]}}$(( BASH_REMATCH[2] * 100 + 10#${{FRACTION:0:2}} ))"
fi
if [ -z "$CENTIMETRES" ] || (( CENTIMETRES < {low} || CENTIMETRES > {high} )); then
  echo "altitude $STATION_ALTITUDE_M ($STATION_ALTITUDE_SOURCE) is not metres from {low // 100} to {high // 100}" \\
       "with at most 2 decimals, e.g. ALTITUDE_M=512.5" >&2
  exit 1
fi
{folders}
run install -m 0644 -o root -g root /dev/stdin {q(path)} <<< "{{\\"altitude_m\\": $STATION_ALTITUDE_M}}"
echo "station file "{q(path)}": {{\\"altitude_m\\": $STATION_ALTITUDE_M}} ($STATION_ALTITUDE_SOURCE)"
"""


def install_script(*, thing_name: str, nucleus_version: str, greengrass_root: str, python: str,
                   altitude_m: float | None = None) -> str:
    """install.sh: machine checks, the station file, OS prerequisites, credentials into the Greengrass
    root, the installer. `altitude_m`: the device's stationAltitudes entry (None: none).

    The installer zip is not in the bundle: the user downloads it on the Pi (the URL is printed).
    Every value from the configuration is shell-quoted.
    """
    q = shlex.quote
    zip_name, url = installer_zip(nucleus_version), installer_url(nucleus_version)
    return f"""#!/usr/bin/env bash
# Installs the Greengrass core device {q(thing_name)} on this Raspberry Pi.
# Before running it, download the Greengrass installer on the Pi, next to this script:
#   curl -fsSL -o {q(zip_name)} {q(url)}
# then:  sudo ./install.sh [path/to/{q(zip_name)}]      (DRY_RUN=1 ./install.sh shows what it would do)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
INSTALLER_ZIP="${{1:-$HERE/{q(zip_name)}}}"
GG_ROOT={q(greengrass_root)}
{script_prologue(python)}
{require_download("INSTALLER_ZIP", zip_name, url)}
{station_file_snippet(greengrass_root, q(thing_name), {} if altitude_m is None else {thing_name: altitude_m})}{PREREQUISITES}
run install -m 0644 "$HERE/{CERT_FILE}" "$GG_ROOT/{CERT_FILE}"
run install -m 0600 "$HERE/{KEY_FILE}" "$GG_ROOT/{KEY_FILE}"
run install -m 0644 "$HERE/{ROOT_CA_FILE}" "$GG_ROOT/{ROOT_CA_FILE}"

{run_installer('"$HERE/config.yaml"')}
echo "Greengrass installed; follow it with: sudo tail -f $GG_ROOT/logs/greengrass.log"
"""


def active_certificate_pem(clients: AwsClients, certificate_id: str, owner: str, inactive_hint: str = "") -> str:
    """The PEM of an ACTIVE certificate (a bundle with any other would never connect)."""
    described = call(clients.iot.describe_certificate, certificateId=certificate_id)["certificateDescription"]
    if described["status"] != "ACTIVE":
        raise DeviceSetupError(f"certificate {certificate_id} of {owner} is {described['status']}, expected ACTIVE"
                               + (f": {inactive_hint}" if inactive_hint else ""))
    return described["certificatePem"]


def matching_private_key(key_path: Path, certificate_pem: str, certificate_id: str, owner: str) -> bytes:
    """The PEM bytes of the key `make keys` made for `owner`, checked to belong to its certificate."""
    if not key_path.exists():
        raise DeviceSetupError(f"no private key for {owner} at {key_path}: run `make keys` "
                               "(then `make deploy`, since the certificate is made from its CSR)")
    try:
        key_pem = key_path.read_bytes()
    except OSError as error:
        raise DeviceSetupError(f"cannot read {key_path} ({error.strerror}): make it readable by you "
                               "(`make keys` writes it with mode 0600)") from None
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    if public_der(certificate.public_key()) != public_der(_private_key(key_pem, key_path).public_key()):
        raise DeviceSetupError(
            f"{key_path} does not belong to certificate {certificate_id} of {owner}: "
            "the key was regenerated after the deploy; run `make deploy` to issue a certificate for it")
    return key_pem


def private_bundle_dir(bundle: Path) -> Path:
    bundle.mkdir(parents=True, exist_ok=True)
    bundle.chmod(0o700)
    return bundle


def write_bundle(clients: AwsClients, names: AppNames, outputs: StackOutputs, device: Device,
                 endpoints: Endpoints) -> Path:
    certificate_pem = active_certificate_pem(clients, device.certificate_id, device.thing_name)
    key_pem = matching_private_key(names.private_key_path(device.thing_name), certificate_pem,
                                   device.certificate_id, device.thing_name)
    bundle = private_bundle_dir(names.bundle_dir(device.thing_name))
    write_file(bundle / CERT_FILE, certificate_pem.encode(), 0o644)
    write_file(bundle / KEY_FILE, key_pem, 0o600)
    write_file(bundle / ROOT_CA_FILE, ROOT_CA.read_bytes(), 0o644)
    write_file(bundle / "config.yaml", config_yaml(
        thing_name=device.thing_name, region=outputs.region, role_alias=outputs.role_alias_name,
        endpoints=endpoints, nucleus_version=names.nucleus_version,
        greengrass_root=names.config.greengrass_root).encode(), 0o644)
    write_file(bundle / "install.sh", install_script(
        thing_name=device.thing_name, nucleus_version=names.nucleus_version,
        greengrass_root=names.config.greengrass_root, python=names.config.python_executable,
        altitude_m=names.config.station_altitude(device.thing_name)).encode(), 0o700)
    return bundle


def select_devices(outputs: StackOutputs, thing_name: str | None) -> tuple[Device, ...]:
    if thing_name is None:
        return outputs.devices
    chosen = tuple(device for device in outputs.devices if device.thing_name == thing_name)
    if not chosen:
        allowed = ", ".join(device.thing_name for device in outputs.devices)
        raise DeviceSetupError(f"--thing {thing_name!r} is not a device of the stack (allowed: {allowed})")
    return chosen


def scp_command(bundle: Path, host: str, thing_name: str) -> list[str]:
    # -p keeps the 0600/0700 modes; the remote folder is named after the device.
    return ["scp", "-rp", "--", str(bundle), f"{host}:rainedge-{thing_name}"]


def run_device_setup(clients: AwsClients, names: AppNames, outputs: StackOutputs, *,
                     thing_name: str | None = None, ssh_host: str | None = None,
                     run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                     echo: Callable[[str], None] = print) -> list[Path]:
    devices = select_devices(outputs, thing_name)
    if ssh_host and len(devices) != 1:
        raise DeviceSetupError("--ssh copies one device's bundle: add --thing NAME "
                               f"(one of {', '.join(d.thing_name for d in devices)})")
    endpoints = fetch_endpoints(clients)
    bundles = []
    for device in devices:
        bundle = write_bundle(clients, names, outputs, device, endpoints)
        bundles.append(bundle)
        echo(f"{device.thing_name}: install bundle written to {bundle}")
        if ssh_host:
            run(scp_command(bundle, ssh_host, device.thing_name), check=True)
            echo(f"{device.thing_name}: copied to {ssh_host}:rainedge-{device.thing_name}")
    echo("Next, on the Pi, in the bundle folder:\n"
         f"  curl -fsSL -o {installer_zip(names.nucleus_version)} {installer_url(names.nucleus_version)}\n"
         "  sudo ./install.sh")
    return bundles


def _private_key(key_pem: bytes, key_path: Path) -> PrivateKeyTypes:
    try:
        return parse_private_key(key_pem)
    except UnusableKey as problem:
        raise DeviceSetupError(f"{key_path} {problem}: replace it with the unencrypted key of the deployed "
                               "certificate (`openssl pkey` decrypts one), or move it away and run `make keys` to "
                               "make a new key, then `make deploy` to issue its certificate") from None


def write_file(path: Path, content: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)  # an existing file keeps its old mode through os.open
        handle.write(content)
