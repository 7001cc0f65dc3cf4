"""fleet-bundle: one install bundle with which any number of Pis join by fleet provisioning.

`.secrets/fleet-bundle/` (git-ignored, 0700) holds the claim certificate (fetched from IoT by the
ClaimCertificateId output; it must be ACTIVE), the claim's private key (copied from
`.secrets/<prefix>-claim/`, 0600, checked to belong to the certificate), Amazon Root CA 1,
`config.yaml` for the Greengrass installer with the aws.greengrass.FleetProvisioningByClaim plugin,
the pre-provisioning hook's own code, and `install.sh`. On each Pi, install.sh reads the serial
number from the device tree, checks it with the hook's code, makes the device's key and CSR on
the Pi (the key never leaves it), fills in the serial number and runs the installer with the plugin.
Nothing here prints key material.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Callable, Mapping

from infra.fleet_hook import handler as fleet_hook
from infra.greengrass import NUCLEUS
from infra.fleet_hook.handler import BUNDLE_FOLDER, claim_name
from infra.lifecycle.aws import AwsClients
from infra.lifecycle.device_setup import (ISOLATED_PYTHON, PLUGIN_JAR, PREREQUISITES, ROOT_CA, ROOT_CA_FILE,
                                          Endpoints, active_certificate_pem, fetch_endpoints,
                                          folder_if_missing, installer_url, installer_zip, matching_private_key,
                                          private_bundle_dir, require_download, run_installer, script_prologue,
                                          station_file_snippet, write_file, yaml_document)
from infra.lifecycle.outputs import FleetOutputs, OutputsError, StackOutputs
from infra.lifecycle.settings import AppNames

CLAIM_CERT_FILE, CLAIM_KEY_FILE = "claim.pem.crt", "claim.private.pem.key"
# install.sh checks the serial number with the pre-provisioning hook's own code, shipped under this name.
HOOK_FILE = "fleet_hook.py"
# Under the Greengrass root: the claim (as in the guide's example config) and the key + CSR the Pi makes.
CLAIM_DIR, DEVICE_KEY_DIR = "claim-certs", "device-key"
DEVICE_KEY_FILE, DEVICE_CSR_FILE = "private.pem.key", "device.csr"
# Stands for the Pi's serial number in config.yaml until install.sh fills it in.
SERIAL_SLOT = "@SERIAL_NUMBER@"
# A Raspberry Pi's firmware publishes its serial number in the device tree, NUL-terminated.
SERIAL_NUMBER_FILES = ("/proc/device-tree/serial-number", "/sys/firmware/devicetree/base/serial-number")
# install.sh reads at most this much of the serial number file: a thing name has at most 64 characters
# (fleet_hook.MAX_THING_NAME), so no longer text is a serial number the hook allows.
SERIAL_READ_BYTES = 256
# "Install AWS IoT Greengrass Core software with AWS IoT fleet provisioning" (Greengrass V2 developer
# guide): download the plugin from this address and save it as aws.greengrass.FleetProvisioningByClaim.jar.
PLUGIN_URL = ("https://d2s8p88vqu9w66.cloudfront.net/releases/aws-greengrass-FleetProvisioningByClaim/"
              "fleetprovisioningbyclaim-latest.jar")


def fleet_config_yaml(*, outputs: StackOutputs, fleet: FleetOutputs, endpoints: Endpoints, nucleus_version: str,
                      greengrass_root: str, claim: str) -> str:
    """The installer's --init-config for provisioning by claim. Every key is one of the plugin's
    parameters in "Configure the AWS IoT fleet provisioning plugin" (Greengrass V2 developer guide);
    the nucleus is the version the deployment pins."""
    return yaml_document({"services": {
        NUCLEUS: {"version": nucleus_version},
        "aws.greengrass.FleetProvisioningByClaim": {"configuration": {
            "rootPath": greengrass_root,
            "awsRegion": outputs.region,
            "iotDataEndpoint": endpoints.data,
            "iotCredentialEndpoint": endpoints.credentials,
            "iotRoleAlias": outputs.role_alias_name,
            "provisioningTemplate": fleet.template_name,
            "claimCertificatePath": f"{greengrass_root}/{CLAIM_DIR}/{CLAIM_CERT_FILE}",
            "claimCertificatePrivateKeyPath": f"{greengrass_root}/{CLAIM_DIR}/{CLAIM_KEY_FILE}",
            "rootCaPath": f"{greengrass_root}/{ROOT_CA_FILE}",
            "templateParameters": {fleet_hook.SERIAL_PARAMETER: SERIAL_SLOT},
            # The MQTT client id of the claim: the claim policy allows connecting only as <claim>-<serial>.
            "deviceId": f"{claim}-{SERIAL_SLOT}",
            # With csrPath the plugin asks AWS IoT to sign the Pi's own CSR (CreateCertificateFromCsr)
            # and installs the key it was made from; without it AWS IoT would make the key.
            "csrPath": f"{greengrass_root}/{DEVICE_KEY_DIR}/{DEVICE_CSR_FILE}",
            "csrPrivateKeyPath": f"{greengrass_root}/{DEVICE_KEY_DIR}/{DEVICE_KEY_FILE}",
        }},
    }})


def fleet_install_script(*, name_prefix: str, serial_pattern: str, nucleus_version: str, greengrass_root: str,
                         python: str, altitudes: Mapping[str, float]) -> str:
    """install.sh of the fleet bundle. Every configured value is shell-quoted, or a Python literal
    inside a quoted here-document (which the shell does not expand). `altitudes`: stationAltitudes,
    looked up by the name the Pi joins as (ALTITUDE_M at install wins)."""
    q = shlex.quote
    zip_name, url = installer_zip(nucleus_version), installer_url(nucleus_version)
    key = f'"$GG_ROOT/{DEVICE_KEY_DIR}/{DEVICE_KEY_FILE}"'
    return f"""#!/usr/bin/env bash
# Installs this Raspberry Pi as a Greengrass core device of {q(name_prefix)}: it joins by fleet
# provisioning as {q(name_prefix)}-<its serial number>. Before running it, download next to this script:
#   curl -fsSL -o {q(zip_name)} {q(url)}
#   curl -fsSL -o {PLUGIN_JAR} {q(PLUGIN_URL)}
# then:  sudo ./install.sh      (DRY_RUN=1 ./install.sh shows what it would do)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
INSTALLER_ZIP="$HERE/{q(zip_name)}"
PLUGIN="$HERE/{PLUGIN_JAR}"
GG_ROOT={q(greengrass_root)}
{script_prologue(python)}
{require_download("INSTALLER_ZIP", zip_name, url)}
{require_download("PLUGIN", PLUGIN_JAR, PLUGIN_URL)}
# The serial number, from the device tree (SERIAL_NUMBER_FILE names another file, on a board without one).
# Only a regular file, and only its first {SERIAL_READ_BYTES} bytes: a device (/dev/zero) or a FIFO would never end.
SERIAL_FILE="${{SERIAL_NUMBER_FILE:-}}"
if [ -z "$SERIAL_FILE" ]; then
  for CANDIDATE in {" ".join(SERIAL_NUMBER_FILES)}; do
    if [ -f "$CANDIDATE" ] && [ -r "$CANDIDATE" ]; then SERIAL_FILE="$CANDIDATE"; break; fi
  done
  if [ -z "$SERIAL_FILE" ]; then
    echo "no serial number in the device tree ({", ".join(SERIAL_NUMBER_FILES)}): run this on a Raspberry Pi," \\
         "or set SERIAL_NUMBER_FILE to a file holding this board's serial number" >&2
    exit 1
  fi
elif [ ! -f "$SERIAL_FILE" ] || [ ! -r "$SERIAL_FILE" ]; then
  echo "$SERIAL_FILE (SERIAL_NUMBER_FILE) is not a readable regular file:" \\
       "set SERIAL_NUMBER_FILE to a file holding this board's serial number" >&2
  exit 1
fi
SERIAL="$(head -c {SERIAL_READ_BYTES} -- "$SERIAL_FILE" | tr -d '\\000')"
# The pre-provisioning hook's own rule (its code is {HOOK_FILE}, loaded by its path), so that a Pi it
# would refuse stops here, before anything changes; then the serial number goes into config.yaml.
THING="$({ISOLATED_PYTHON} - "$HERE/{HOOK_FILE}" "$SERIAL" "$SERIAL_FILE" "$HERE/config.yaml" "$WORK/config.yaml" \\
  <<'CHECK_SERIAL'
import importlib.util
import sys
hook_file, serial, source, template, filled = sys.argv[1:]
# Python docs, importlib, "Importing a source file directly".
spec = importlib.util.spec_from_file_location({Path(HOOK_FILE).stem!r}, hook_file)
hook = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = hook
spec.loader.exec_module(hook)
parameters = {{{fleet_hook.SERIAL_PARAMETER!r}: serial}}
allowed, reason = hook.decide(parameters, {serial_pattern!r}, {name_prefix!r}, lambda name: False)
if not allowed:
    sys.exit(f"this board cannot join the fleet: {{reason}} (serial number read from {{source}})")
with open(template) as text, open(filled, "w") as target:
    target.write(text.read().replace({SERIAL_SLOT!r}, serial))
print(hook.thing_name({name_prefix!r}, serial))
CHECK_SERIAL
)"
echo "this Pi joins as $THING (serial number $SERIAL from $SERIAL_FILE)"
{station_file_snippet(greengrass_root, '"$THING"', altitudes)}
{PREREQUISITES}
run install -m 0644 "$HERE/{ROOT_CA_FILE}" "$GG_ROOT/{ROOT_CA_FILE}"
{folder_if_missing(f'"$GG_ROOT/{CLAIM_DIR}"', "0700")}
run install -m 0644 "$HERE/{CLAIM_CERT_FILE}" "$GG_ROOT/{CLAIM_DIR}/{CLAIM_CERT_FILE}"
run install -m 0600 "$HERE/{CLAIM_KEY_FILE}" "$GG_ROOT/{CLAIM_DIR}/{CLAIM_KEY_FILE}"
# The device's own key (EC P-256) and CSR, made here: the private key never leaves this Pi.
{folder_if_missing(f'"$GG_ROOT/{DEVICE_KEY_DIR}"', "0700")}
run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {key}
run chmod 0600 {key}
run openssl req -new -key {key} -subj "/CN=$THING" -out "$GG_ROOT/{DEVICE_KEY_DIR}/{DEVICE_CSR_FILE}"

{run_installer('"$WORK/config.yaml"', trusted_plugin='"$PLUGIN"')}
echo "Greengrass installed as $THING; follow it with: sudo tail -f $GG_ROOT/logs/greengrass.log"
echo "Once make status lists $THING, remove the claim from this Pi: sudo rm -rf $GG_ROOT/{CLAIM_DIR} $HERE"
"""


def write_fleet_bundle(clients: AwsClients, names: AppNames, outputs: StackOutputs, endpoints: Endpoints) -> Path:
    fleet = outputs.fleet
    if fleet is None:
        raise OutputsError("the stack has no fleet provisioning (context key fleetProvisioning is false): "
                           "deploy with it on, or install listed devices with `make device-setup`")
    claim = claim_name(outputs.name_prefix)  # the prefix the stack was deployed with
    owner = f"the fleet's claim ({claim})"
    certificate_pem = active_certificate_pem(
        clients, fleet.claim_certificate_id, owner,
        inactive_hint="it was revoked; rotate the claim as `make revoke-claim` describes, then run this again")
    key_pem = matching_private_key(names.private_key_path(claim), certificate_pem, fleet.claim_certificate_id, owner)
    greengrass_root = names.config.greengrass_root
    bundle = private_bundle_dir(names.secrets_dir / BUNDLE_FOLDER)
    write_file(bundle / CLAIM_CERT_FILE, certificate_pem.encode(), 0o644)
    write_file(bundle / CLAIM_KEY_FILE, key_pem, 0o600)
    write_file(bundle / ROOT_CA_FILE, ROOT_CA.read_bytes(), 0o644)
    write_file(bundle / HOOK_FILE, Path(fleet_hook.__file__).read_bytes(), 0o644)
    write_file(bundle / "config.yaml", fleet_config_yaml(
        outputs=outputs, fleet=fleet, endpoints=endpoints, nucleus_version=names.nucleus_version,
        greengrass_root=greengrass_root, claim=claim).encode(), 0o644)
    write_file(bundle / "install.sh", fleet_install_script(
        name_prefix=outputs.name_prefix, serial_pattern=fleet.serial_number_pattern,
        nucleus_version=names.nucleus_version, greengrass_root=greengrass_root,
        python=names.config.python_executable, altitudes=names.config.station_altitudes).encode(), 0o700)
    return bundle


def run_fleet_bundle(clients: AwsClients, names: AppNames, outputs: StackOutputs,
                     echo: Callable[[str], None] = print) -> Path:
    bundle = write_fleet_bundle(clients, names, outputs, fetch_endpoints(clients))
    echo(f"fleet bundle written to {bundle}: it holds the claim's private key, so treat it like a password "
         "(`make revoke-claim` if it leaks)")
    echo("Next, copy it to each Pi (scp -rp keeps the file modes), and there, in the bundle folder:\n"
         f"  curl -fsSL -o {installer_zip(names.nucleus_version)} {installer_url(names.nucleus_version)}\n"
         f"  curl -fsSL -o {PLUGIN_JAR} {PLUGIN_URL}\n"
         "  sudo ./install.sh")
    return bundle
