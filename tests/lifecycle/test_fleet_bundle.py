"""fleet-bundle against a moto account holding the deployed stack: the files, their modes, the plugin
configuration checked key by key against the Greengrass guide, and the refusals."""
from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from infra.device_keys import CSR_FILE, device_dir, ensure_device_keys
from infra.fleet_hook import handler as fleet_hook
from infra.iot_policy import allows
from infra.lifecycle.__main__ import main
from infra.lifecycle.device_setup import ROOT_CA
from infra.lifecycle.fleet_bundle import SERIAL_SLOT
from infra.lifecycle.outputs import FLEET_KEYS

from .conftest import ACCOUNT, REGION, create_stack

SERIAL = "10000000a1b2c3d4"
# "Configure the AWS IoT fleet provisioning plugin" (Greengrass V2 developer guide): every parameter.
PLUGIN_PARAMETERS = {
    "rootPath", "awsRegion", "iotDataEndpoint", "iotCredentialEndpoint", "iotRoleAlias", "provisioningTemplate",
    "claimCertificatePath", "claimCertificatePrivateKeyPath", "rootCaPath", "templateParameters", "deviceId",
    "mqttPort", "proxyUrl", "proxyUserName", "proxyPassword", "csrPath", "csrPrivateKeyPath",
}
# Those the plugin refuses to start without (aws-greengrass-fleet-provisioning-by-claim,
# FleetProvisioningByClaimPlugin.validateParameters); csrPrivateKeyPath too when csrPath is set.
REQUIRED = {"provisioningTemplate", "claimCertificatePath", "claimCertificatePrivateKeyPath", "rootCaPath",
            "iotDataEndpoint", "rootPath", "csrPrivateKeyPath"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run(clients, names, *command: str) -> int:
    return main(["--project-root", str(names.project_root), *command], clients=clients)


def bundle_of(names) -> Path:
    return names.secrets_dir / "fleet-bundle"


def test_bundle_files_and_modes(clients, names, deployed, capsys):
    assert run(clients, names, "fleet-bundle") == 0
    bundle = bundle_of(names)
    claim_id = deployed.outputs["ClaimCertificateId"]
    claim_pem = clients.iot.describe_certificate(certificateId=claim_id)["certificateDescription"]["certificatePem"]

    assert sorted(path.name for path in bundle.iterdir()) == [
        "AmazonRootCA1.pem", "claim.pem.crt", "claim.private.pem.key", "config.yaml", "fleet_hook.py", "install.sh"]
    assert mode(bundle) == 0o700
    assert (bundle / "claim.pem.crt").read_text() == claim_pem
    assert (bundle / "claim.private.pem.key").read_bytes() == names.private_key_path("rainedge-claim").read_bytes()
    assert mode(bundle / "claim.private.pem.key") == 0o600
    assert (bundle / "AmazonRootCA1.pem").read_bytes() == ROOT_CA.read_bytes()
    assert (bundle / "fleet_hook.py").read_bytes() == Path(fleet_hook.__file__).read_bytes()
    assert mode(bundle / "install.sh") == 0o700
    assert {mode(bundle / name) for name in ("claim.pem.crt", "AmazonRootCA1.pem", "config.yaml")} == {0o644}


def test_config_is_the_plugin_configuration_of_the_guide(clients, names, deployed):
    assert run(clients, names, "fleet-bundle") == 0
    config = yaml.safe_load((bundle_of(names) / "config.yaml").read_text())
    services = config["services"]
    assert services["aws.greengrass.Nucleus"] == {"version": names.nucleus_version}
    plugin = services["aws.greengrass.FleetProvisioningByClaim"]["configuration"]
    assert set(plugin) <= PLUGIN_PARAMETERS and REQUIRED <= set(plugin)
    root = names.config.greengrass_root
    assert plugin["rootPath"] == root
    assert plugin["awsRegion"] == REGION
    assert plugin["iotDataEndpoint"].endswith(f"-ats.iot.{REGION}.amazonaws.com")
    assert plugin["iotCredentialEndpoint"].endswith(f".credentials.iot.{REGION}.amazonaws.com")
    assert plugin["iotRoleAlias"] == deployed.outputs["RoleAliasName"]
    assert plugin["provisioningTemplate"] == deployed.outputs["ProvisioningTemplateName"] == "rainedge-fleet"
    assert plugin["rootCaPath"] == f"{root}/AmazonRootCA1.pem"
    assert plugin["templateParameters"] == {"SerialNumber": SERIAL_SLOT}
    assert {plugin["claimCertificatePath"], plugin["claimCertificatePrivateKeyPath"],
            plugin["csrPath"], plugin["csrPrivateKeyPath"]} == {
        f"{root}/claim-certs/claim.pem.crt", f"{root}/claim-certs/claim.private.pem.key",
        f"{root}/device-key/device.csr", f"{root}/device-key/private.pem.key"}


def test_the_claim_policy_lets_the_claim_connect_with_the_device_id_and_nothing_else(clients, names, deployed):
    assert run(clients, names, "fleet-bundle") == 0
    plugin = yaml.safe_load((bundle_of(names) / "config.yaml").read_text())[
        "services"]["aws.greengrass.FleetProvisioningByClaim"]["configuration"]
    document = json.loads(clients.iot.get_policy(policyName=deployed.outputs["ClaimPolicyName"])["policyDocument"])

    def client(client_id: str) -> str:
        return f"arn:aws:iot:{REGION}:{ACCOUNT}:client/{client_id}"
    assert allows(document, "iot:Connect", client(plugin["deviceId"].replace(SERIAL_SLOT, SERIAL)))
    assert not allows(document, "iot:Connect", client(fleet_hook.thing_name("rainedge", SERIAL)))  # a core's id


def test_no_key_material_is_printed(clients, names, deployed, capsys):
    assert run(clients, names, "fleet-bundle") == 0
    printed = capsys.readouterr()
    key_lines = [line for line in names.private_key_path("rainedge-claim").read_text().splitlines()
                 if "-----" not in line]
    assert not any(line in printed.out + printed.err for line in key_lines)
    assert "PRIVATE KEY" not in printed.out + printed.err
    assert str(bundle_of(names)) in printed.out
    assert "fleetprovisioningbyclaim-latest.jar" in printed.out and "sudo ./install.sh" in printed.out


def test_a_revoked_claim_is_refused_with_the_way_out(clients, names, deployed, capsys):
    clients.iot.update_certificate(certificateId=deployed.outputs["ClaimCertificateId"], newStatus="INACTIVE")
    assert run(clients, names, "fleet-bundle") == 2
    err = capsys.readouterr().err
    assert "is INACTIVE, expected ACTIVE" in err and "make revoke-claim" in err
    assert not bundle_of(names).exists()


def test_a_claim_key_made_after_the_deploy_is_refused(clients, names, deployed, capsys):
    names.private_key_path("rainedge-claim").unlink()
    (device_dir(names.secrets_dir, "rainedge-claim") / CSR_FILE).unlink()
    ensure_device_keys(names.secrets_dir, "rainedge-claim")
    assert run(clients, names, "fleet-bundle") == 2
    assert "does not belong to certificate" in capsys.readouterr().err
    assert not (bundle_of(names) / "claim.private.pem.key").exists()


@pytest.mark.parametrize("command", ["fleet-bundle", "revoke-claim"])
def test_a_stack_without_fleet_provisioning_says_so(clients, names, deployed, capsys, command):
    clients.cloudformation.delete_stack(StackName="RainEdge")
    listed_only = {key: value for key, value in deployed.outputs.items()
                   if key not in FLEET_KEYS}
    create_stack(clients.cloudformation, listed_only, deployed.app.stack_tags)
    assert run(clients, names, command) == 2
    assert "fleetProvisioning" in capsys.readouterr().err
