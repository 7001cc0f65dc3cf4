"""What synth uploads is checked first (issue 9, section 2): the model zip is the model artifact,
and no staged file (of the Lambda code bundle or the model zip) holds a private key; a bad value
stops `cdk synth` with one line naming the key."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from datetime import datetime

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3_assets as s3_assets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from infra.artifacts import AssetError, ModelArtifactError, is_private_key, model_digest, refuse_private_keys_in_assets

EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM, DER = serialization.Encoding.PEM, serialization.Encoding.DER
PKCS8, TRADITIONAL, OPENSSH = (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL,
                               serialization.PrivateFormat.OpenSSH)
PLAIN, LOCKED = serialization.NoEncryption(), serialization.BestAvailableEncryption(b"secret")


def certificate() -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pi-1")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(EC_KEY.public_key())
            .serial_number(1).not_valid_before(datetime(2025, 1, 1)).not_valid_after(datetime(2035, 1, 1))
            .sign(EC_KEY, hashes.SHA256()))


KEYS = {
    "PKCS#8 PEM": EC_KEY.private_bytes(PEM, PKCS8, PLAIN),
    "PKCS#8 PEM, encrypted": EC_KEY.private_bytes(PEM, PKCS8, LOCKED),
    "SEC1 PEM": EC_KEY.private_bytes(PEM, TRADITIONAL, PLAIN),
    "PKCS#1 RSA PEM": RSA_KEY.private_bytes(PEM, TRADITIONAL, PLAIN),
    "OpenSSH": EC_KEY.private_bytes(PEM, OPENSSH, PLAIN),
    "PKCS#8 DER": EC_KEY.private_bytes(DER, PKCS8, PLAIN),
    "PKCS#8 DER, encrypted": EC_KEY.private_bytes(DER, PKCS8, LOCKED),
    "SEC1 DER": EC_KEY.private_bytes(DER, TRADITIONAL, PLAIN),
    "PKCS#1 RSA DER": RSA_KEY.private_bytes(DER, TRADITIONAL, PLAIN),
    "PKCS#12": pkcs12.serialize_key_and_certificates(b"pi-1", EC_KEY, certificate(), None, PLAIN),
    "PEM inside a Python file": b'KEY = """\n' + EC_KEY.private_bytes(PEM, PKCS8, PLAIN) + b'"""\n',
}
NOT_KEYS = {
    "certificate": certificate().public_bytes(PEM),
    "public key PEM": EC_KEY.public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    "public key DER": EC_KEY.public_key().public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo),
    "certificate DER": certificate().public_bytes(DER),
    "empty": b"",
    "code": b"def handler(event, context):\n    return {}\n",
}


@pytest.mark.parametrize("data", KEYS.values(), ids=KEYS.keys())
def test_every_common_private_key_form_is_recognised(data):
    assert is_private_key(data)


@pytest.mark.parametrize("data", NOT_KEYS.values(), ids=NOT_KEYS.keys())
def test_public_material_and_code_are_not_keys(data):
    assert not is_private_key(data)


def write_zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


MODEL = {"metadata.json": b"{}", "model.tflite": b"TFL3", "saved_model/saved_model.pb": b"pb"}


def stack_with_asset(tmp_path, source):
    """A stack staging one asset from `source`, as the Lambda code and the model upload are staged."""
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path / "cdk.out")), "Probe")
    s3_assets.Asset(stack, "Upload", path=str(source))
    return stack


def test_a_key_in_a_staged_folder_stops_synth(tmp_path):
    (tmp_path / "code" / "keys").mkdir(parents=True)
    (tmp_path / "code" / "handler.py").write_bytes(NOT_KEYS["code"])
    (tmp_path / "code" / "keys" / "private.key").write_bytes(KEYS["SEC1 DER"])
    with pytest.raises(AssetError, match=r"^keys/private.key in the asset Probe/Upload \(from .*code\) holds a "
                                         r"private key: .* move it out"):
        refuse_private_keys_in_assets(stack_with_asset(tmp_path, tmp_path / "code"))


def test_a_key_inside_a_staged_zip_stops_synth(tmp_path):
    (tmp_path / "model").mkdir()
    write_zip(tmp_path / "model" / "rain_model.zip", {**MODEL, "saved_model/assets/id_ecdsa": KEYS["OpenSSH"]})
    with pytest.raises(AssetError, match=r"^rain_model.zip:saved_model/assets/id_ecdsa in the asset Probe/Upload"):
        refuse_private_keys_in_assets(stack_with_asset(tmp_path, tmp_path / "model"))


def test_synth_checks_every_staged_asset(synth_variant, tmp_path, monkeypatch, project_root):
    bundle = tmp_path / "bundle"
    shutil.copytree(project_root / "device_code", bundle / "device_code",
                    ignore=shutil.ignore_patterns("simulator", "__pycache__"))
    (bundle / "device_code" / "id_rsa").write_bytes(KEYS["PKCS#1 RSA PEM"])
    monkeypatch.setattr("infra.components.stage_device_bundle", lambda root: bundle)
    with pytest.raises(AssetError, match=r"^device_code/id_rsa in the asset RainEdge/Components/\w+Function/Code"):
        synth_variant()


def test_the_default_assets_hold_no_key(synthesized):
    assert synthesized[1]["Resources"]  # the default synth ran the check and passed


@pytest.mark.parametrize("members, problem", [
    (None, "is not a readable zip"),
    ({"metadata.json": b"{}"}, "lacks model.tflite, saved_model"),
    ({"rain_model/metadata.json": b"{}", "rain_model/model.tflite": b"", "rain_model/saved_model/x": b""},
     "lacks metadata.json, model.tflite, saved_model at its root"),
])
def test_a_model_zip_that_is_not_the_model_artifact_stops_synth(tmp_path, members, problem):
    model_zip = tmp_path / "rain_model.zip"
    if members is None:
        model_zip.write_bytes(KEYS["PKCS#8 PEM"])  # e.g. modelZip pointing at a key
    else:
        write_zip(model_zip, members)
    with pytest.raises(ModelArtifactError, match=problem) as error:
        model_digest(model_zip)
    assert "PRIVATE" not in str(error.value)  # the message never quotes the file


@pytest.mark.parametrize("context, message", [
    ({"greengrassRoot": "/opt/gg;touch${IFS}/tmp/x"}, "rainedge: greengrassRoot must be an absolute path"),
    ({"devices": '["pi-1"'}, "rainedge: devices is not a JSON list"),
    ({"name_prefix": "wx"}, "rainedge: unknown context key 'name_prefix' (did you mean namePrefix?)"),
    ({"modelZip": "build/missing/rain_model.zip"}, "rainedge: no trained model at"),
])
def test_synth_stops_with_one_line_naming_the_problem(tmp_path, project_root, context, message):
    # How the CDK CLI hands `-c key=value` and cdk.json to the app.
    environment = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "app.py"], cwd=project_root, env=environment, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if not line.startswith("!!")]  # jsii's Node banner
    assert lines and lines[0].startswith(message) and len(lines) == 1, result.stderr
    assert not list(tmp_path.iterdir())
