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
from pathlib import Path
from typing import Callable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from infra.config import DEFAULT_POSIX_GROUP, DEFAULT_POSIX_USER, LAMBDA_RUNTIMES
from infra.lifecycle.aws import AwsClients, LifecycleError, call
from infra.lifecycle.outputs import Device, StackOutputs
from infra.lifecycle.settings import AppNames

ROOT_CA = Path(__file__).with_name("AmazonRootCA1.pem")
RUN_AS = f"{DEFAULT_POSIX_USER}:{DEFAULT_POSIX_GROUP}"
CERT_FILE, KEY_FILE, ROOT_CA_FILE = "device.pem.crt", "private.pem.key", "AmazonRootCA1.pem"


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


def config_yaml(*, thing_name: str, region: str, role_alias: str, endpoints: Endpoints, nucleus_version: str,
                greengrass_root: str) -> str:
    """The installer's --init-config file (REFERENCE.md 'Manual provisioning').

    Values are written as JSON strings, which YAML reads as double-quoted scalars.
    """
    q = json.dumps
    return "\n".join([
        "---",
        "system:",
        f"  certificateFilePath: {q(f'{greengrass_root}/{CERT_FILE}')}",
        f"  privateKeyPath: {q(f'{greengrass_root}/{KEY_FILE}')}",
        f"  rootCaPath: {q(f'{greengrass_root}/{ROOT_CA_FILE}')}",
        f"  rootpath: {q(greengrass_root)}",
        f"  thingName: {q(thing_name)}",
        "services:",
        "  aws.greengrass.Nucleus:",
        '    componentType: "NUCLEUS"',
        f"    version: {q(nucleus_version)}",
        "    configuration:",
        f"      awsRegion: {q(region)}",
        f"      iotRoleAlias: {q(role_alias)}",
        f"      iotDataEndpoint: {q(endpoints.data)}",
        f"      iotCredEndpoint: {q(endpoints.credentials)}",
        "",
    ])


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


def install_script(*, thing_name: str, nucleus_version: str, greengrass_root: str, python: str) -> str:
    """install.sh: machine checks, OS prerequisites, credentials into the Greengrass root, the installer.

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
{RUN_FUNCTION}
{machine_checks(python)}
if [ -z "${{DRY_RUN:-}}" ] && [ "$(id -u)" -ne 0 ]; then echo "run as root: sudo $0" >&2; exit 1; fi
if [ ! -f "$INSTALLER_ZIP" ]; then
  echo "installer not found: $INSTALLER_ZIP" >&2
  echo "download it first: curl -fsSL -o $HERE/{q(zip_name)} {q(url)}" >&2
  exit 1
fi

# OS prerequisites: Java for the Nucleus, Python for the Lambda components, I2C for the BME680.
run apt-get update
run apt-get install -y --no-install-recommends default-jre-headless python3 python3-venv unzip i2c-tools
run raspi-config nonint do_i2c 0  # 0 means "enable"

# The components run as ggc_user; the sensor runs as ggc_user:i2c (the deployment's runWith) to
# open /dev/i2c-*, which belongs to group i2c.
getent group {DEFAULT_POSIX_GROUP} >/dev/null || run groupadd --system {DEFAULT_POSIX_GROUP}
id -u {DEFAULT_POSIX_USER} >/dev/null 2>&1 || run useradd --system --create-home --gid {DEFAULT_POSIX_GROUP} {DEFAULT_POSIX_USER}
getent group i2c >/dev/null || run groupadd --system i2c
run usermod -aG i2c {DEFAULT_POSIX_USER}

run install -d -m 0755 "$GG_ROOT"
run install -m 0644 "$HERE/{CERT_FILE}" "$GG_ROOT/{CERT_FILE}"
run install -m 0600 "$HERE/{KEY_FILE}" "$GG_ROOT/{KEY_FILE}"
run install -m 0644 "$HERE/{ROOT_CA_FILE}" "$GG_ROOT/{ROOT_CA_FILE}"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
run unzip -q "$INSTALLER_ZIP" -d "$WORK/GreengrassInstaller"
run cp "$HERE/config.yaml" "$WORK/GreengrassInstaller/config.yaml"
cd "$WORK"
run java -Droot="$GG_ROOT" -Dlog.store=FILE \\
  -jar ./GreengrassInstaller/lib/Greengrass.jar \\
  --init-config ./GreengrassInstaller/config.yaml \\
  --component-default-user {RUN_AS} \\
  --setup-system-service true
echo "Greengrass installed; follow it with: sudo tail -f $GG_ROOT/logs/greengrass.log"
"""


def write_bundle(clients: AwsClients, names: AppNames, outputs: StackOutputs, device: Device,
                 endpoints: Endpoints) -> Path:
    key_path = names.private_key_path(device.thing_name)
    if not key_path.exists():
        raise DeviceSetupError(f"no private key for {device.thing_name} at {key_path}: run `make keys` "
                               "(then `make deploy`, since the certificate is made from its CSR)")
    described = call(clients.iot.describe_certificate, certificateId=device.certificate_id)["certificateDescription"]
    if described["status"] != "ACTIVE":
        raise DeviceSetupError(f"certificate {device.certificate_id} of {device.thing_name} is "
                               f"{described['status']}, expected ACTIVE")
    certificate_pem = described["certificatePem"]
    try:
        key_pem = key_path.read_bytes()
    except OSError as error:
        raise DeviceSetupError(f"cannot read {key_path} ({error.strerror}): make it readable by you "
                               "(`make keys` writes it with mode 0600)") from None
    _check_key_matches(device, certificate_pem, _private_key(key_pem, key_path), key_path)

    bundle = names.bundle_dir(device.thing_name)
    bundle.mkdir(parents=True, exist_ok=True)
    bundle.chmod(0o700)
    _write(bundle / CERT_FILE, certificate_pem.encode(), 0o644)
    _write(bundle / KEY_FILE, key_pem, 0o600)
    _write(bundle / ROOT_CA_FILE, ROOT_CA.read_bytes(), 0o644)
    _write(bundle / "config.yaml", config_yaml(
        thing_name=device.thing_name, region=outputs.region, role_alias=outputs.role_alias_name,
        endpoints=endpoints, nucleus_version=names.nucleus_version,
        greengrass_root=names.config.greengrass_root).encode(), 0o644)
    _write(bundle / "install.sh", install_script(
        thing_name=device.thing_name, nucleus_version=names.nucleus_version,
        greengrass_root=names.config.greengrass_root, python=names.config.python_executable).encode(), 0o700)
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
    remake = "move it away and run `make keys` to make a new key, then `make deploy` to issue its certificate"
    try:
        return serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        # cryptography raises TypeError for an encrypted key loaded without a password.
        raise DeviceSetupError(f"{key_path} is encrypted, but Greengrass reads its key without a passphrase: "
                               f"replace it with its decrypted form (`openssl pkey`), or {remake}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise DeviceSetupError(f"{key_path} is not a PEM private key: {remake}") from None


def _check_key_matches(device: Device, certificate_pem: str, key: PrivateKeyTypes, key_path: Path) -> None:
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(*raw) != key.public_key().public_bytes(*raw):
        raise DeviceSetupError(
            f"{key_path} does not belong to certificate {device.certificate_id} of {device.thing_name}: "
            "the key was regenerated after the deploy; run `make deploy` to issue a certificate for it")


def _write(path: Path, content: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)  # an existing file keeps its old mode through os.open
        handle.write(content)
