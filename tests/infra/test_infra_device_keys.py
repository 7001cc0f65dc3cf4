"""Device key + CSR creation: private, idempotent, and the app reads only the CSR."""
from __future__ import annotations

import json
import shutil
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from infra.device_keys import CSR_FILE, PRIVATE_KEY_FILE, DeviceKeyError, ensure_device_keys, main, read_csr


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_creates_a_private_key_only_the_owner_can_read_and_a_matching_csr(tmp_path):
    secrets = tmp_path / ".secrets"
    assert ensure_device_keys(secrets, "pi-1") is True
    key, csr_path = secrets / "pi-1" / PRIVATE_KEY_FILE, secrets / "pi-1" / CSR_FILE
    assert mode(key) == 0o600
    assert mode(secrets / "pi-1") == 0o700 and mode(secrets) == 0o700
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "pi-1"
    assert isinstance(csr.public_key(), ec.EllipticCurvePublicKey)
    assert csr.public_key().curve.name == "secp256r1"


def test_second_run_keeps_the_existing_key(tmp_path):
    ensure_device_keys(tmp_path, "pi-1")
    before = (tmp_path / "pi-1" / PRIVATE_KEY_FILE).read_bytes()
    assert ensure_device_keys(tmp_path, "pi-1") is False
    (tmp_path / "pi-1" / CSR_FILE).unlink()
    assert ensure_device_keys(tmp_path, "pi-1") is True  # the CSR is re-made from the same key
    assert (tmp_path / "pi-1" / PRIVATE_KEY_FILE).read_bytes() == before
    csr = x509.load_pem_x509_csr((tmp_path / "pi-1" / CSR_FILE).read_bytes())
    assert csr.is_signature_valid


def test_read_csr_returns_the_request_and_never_the_key(tmp_path):
    ensure_device_keys(tmp_path, "pi-1")
    pem = read_csr(tmp_path, "pi-1")
    assert pem.startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert "PRIVATE KEY" not in pem


def test_missing_csr_says_to_run_make_keys(tmp_path):
    with pytest.raises(DeviceKeyError, match=r"pi-9.*make keys"):
        read_csr(tmp_path, "pi-9")


def test_garbage_csr_is_rejected(tmp_path):
    (tmp_path / "pi-1").mkdir()
    (tmp_path / "pi-1" / CSR_FILE).write_text("not a csr")
    with pytest.raises(DeviceKeyError, match="not a PEM certificate signing request"):
        read_csr(tmp_path, "pi-1")


# ---- what exists is checked, never silently accepted or changed (issue 9, section 2) --------------
def replace_key(folder) -> None:
    (folder / PRIVATE_KEY_FILE).unlink()
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (folder / PRIVATE_KEY_FILE).write_bytes(pem)
    (folder / PRIVATE_KEY_FILE).chmod(0o600)


def test_a_replaced_key_whose_csr_no_longer_matches_is_reported_with_what_to_do(tmp_path):
    ensure_device_keys(tmp_path, "pi-1")
    replace_key(tmp_path / "pi-1")
    with pytest.raises(DeviceKeyError) as error:
        ensure_device_keys(tmp_path, "pi-1")
    message = str(error.value)
    assert "device.csr was not made from" in message and "was the key replaced?" in message
    assert f"delete {tmp_path / 'pi-1' / CSR_FILE} and run `make keys`" in message
    (tmp_path / "pi-1" / CSR_FILE).unlink()  # doing what it says
    assert ensure_device_keys(tmp_path, "pi-1") is True
    assert ensure_device_keys(tmp_path, "pi-1") is False


def test_a_csr_copied_from_another_device_is_reported(tmp_path):
    ensure_device_keys(tmp_path, "pi-1")
    shutil.copytree(tmp_path / "pi-1", tmp_path / "pi-2")
    with pytest.raises(DeviceKeyError, match="was not made from .* for pi-2"):
        ensure_device_keys(tmp_path, "pi-2")


@pytest.mark.parametrize("content, problem", [
    (b"not a key", "is not a PEM private key"),
    (ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")), "is encrypted"),
])
def test_a_key_that_cannot_be_used_is_reported_not_a_traceback(tmp_path, content, problem):
    (tmp_path / "pi-1").mkdir(mode=0o700)
    (tmp_path / "pi-1" / PRIVATE_KEY_FILE).write_bytes(content)
    (tmp_path / "pi-1" / PRIVATE_KEY_FILE).chmod(0o600)
    with pytest.raises(DeviceKeyError, match=f"{problem}.*make keys"):
        ensure_device_keys(tmp_path, "pi-1")
    assert not (tmp_path / "pi-1" / CSR_FILE).exists()


def test_a_key_readable_by_others_is_reported_and_left_as_it_is(tmp_path):
    ensure_device_keys(tmp_path, "pi-1")
    key = tmp_path / "pi-1" / PRIVATE_KEY_FILE
    key.chmod(0o644)
    with pytest.raises(DeviceKeyError, match=rf"readable by others \(mode 0644\): run chmod 600 {key}"):
        ensure_device_keys(tmp_path, "pi-1")
    assert mode(key) == 0o644


@pytest.mark.parametrize("loose", ["secrets", "device"])
def test_a_folder_open_to_others_is_reported_and_left_as_it_is(tmp_path, loose):
    secrets = tmp_path / ".secrets"
    ensure_device_keys(secrets, "pi-1")
    folder = secrets if loose == "secrets" else secrets / "pi-1"
    folder.chmod(0o755)
    with pytest.raises(DeviceKeyError, match=rf"{folder} is open to others \(mode 0755\): .*; run chmod 700 {folder}"):
        ensure_device_keys(secrets, "pi-1")
    assert mode(folder) == 0o755


def test_a_symlinked_secrets_folder_is_checked_where_it_is_and_never_chmod_ed(tmp_path):
    real = tmp_path / "vault"
    real.mkdir(mode=0o755)
    real.chmod(0o755)
    link = tmp_path / ".secrets"
    link.symlink_to(real)
    with pytest.raises(DeviceKeyError, match=rf"open to others \(mode 0755\): .*; run chmod 700 {real}"):
        ensure_device_keys(link, "pi-1")
    assert mode(real) == 0o755  # the user's folder behind the link is not changed
    real.chmod(0o700)
    assert ensure_device_keys(link, "pi-1") is True
    (tmp_path / "gone").symlink_to(tmp_path / "missing")
    with pytest.raises(DeviceKeyError, match="symbolic link to .*missing, which does not exist"):
        ensure_device_keys(tmp_path / "gone", "pi-1")


def test_a_key_is_never_left_without_its_csr(tmp_path):
    with pytest.raises(ValueError):
        ensure_device_keys(tmp_path, "p" * 65)  # no certificate request takes a common name this long
    assert list((tmp_path / ("p" * 65)).iterdir()) == []
    (tmp_path / "pi-1").mkdir(mode=0o700)
    (tmp_path / "pi-1" / CSR_FILE).mkdir()  # the CSR cannot be written
    with pytest.raises(DeviceKeyError, match="cannot write"):
        ensure_device_keys(tmp_path, "pi-1")
    assert not (tmp_path / "pi-1" / PRIVATE_KEY_FILE).exists()


# ---- `make keys` (python -m infra.device_keys ensure) -------------------------------------------------
@pytest.fixture
def project(tmp_path, project_root):
    shutil.copy(project_root / "cdk.json", tmp_path / "cdk.json")
    return tmp_path


def set_context(project, **values) -> None:
    cdk_json = json.loads((project / "cdk.json").read_text())
    cdk_json["context"].update(values)
    (project / "cdk.json").write_text(json.dumps(cdk_json))


def test_make_keys_says_what_it_did_and_checks_on_the_next_run(project, capsys):
    assert main(["ensure"], project_root=project) == 0
    assert "rainedge-core-1: key and CSR created in" in capsys.readouterr().out
    assert main(["ensure"], project_root=project) == 0
    assert "present, the CSR matches the key" in capsys.readouterr().out
    replace_key(project / ".secrets" / "rainedge-core-1")
    assert main(["ensure"], project_root=project) == 1
    err = capsys.readouterr().err
    assert err.startswith("rainedge-core-1: ") and "was not made from" in err and err.count("\n") == 1


def test_make_keys_refuses_a_secrets_folder_linked_into_an_asset_source(project, capsys):
    (project / "device_code" / "keys").mkdir(parents=True, mode=0o700)
    (project / ".secrets").symlink_to(project / "device_code" / "keys")
    assert main(["ensure"], project_root=project) == 1
    assert "overlaps device_code (the Lambda code bundle)" in capsys.readouterr().err
    assert list((project / "device_code" / "keys").iterdir()) == []


def test_make_keys_notes_a_linked_secrets_folder_elsewhere(project, tmp_path_factory, capsys):
    vault = tmp_path_factory.mktemp("vault")
    (project / ".secrets").symlink_to(vault)
    assert main(["ensure"], project_root=project) == 0
    assert f"leads to {vault}: its modes are checked there, never changed" in capsys.readouterr().out


def test_make_keys_reports_a_bad_configuration_in_one_line_and_makes_nothing(project, capsys):
    set_context(project, devices=["p" * 65])
    assert main(["ensure"], project_root=project) == 2
    err = capsys.readouterr().err
    assert err.startswith("cdk.json: devices entries") and err.count("\n") == 1
    assert not (project / ".secrets").exists()


@pytest.mark.parametrize("content", ["{", "[]", '{"app": "python app.py"}', None])
def test_make_keys_reports_an_unreadable_cdk_json_in_one_line(project, capsys, content):
    if content is None:
        (project / "cdk.json").unlink()
    else:
        (project / "cdk.json").write_text(content)
    assert main(["ensure"], project_root=project) == 2
    err = capsys.readouterr().err
    assert err.startswith("cdk.json: ") and "restore it (git checkout cdk.json)" in err and err.count("\n") == 1


@pytest.mark.parametrize("secrets_dir, problem", [
    (".secrets", ".secrets is not a folder: move it away"),
    ("blocked/keys", "(Not a directory): secretsDir must be a folder you can write"),
])
def test_make_keys_reports_a_secrets_folder_it_cannot_make_in_one_line(project, capsys, secrets_dir, problem):
    set_context(project, secretsDir=secrets_dir)
    (project / secrets_dir.split("/")[0]).write_text("a file where a folder should be")
    assert main(["ensure"], project_root=project) == 1
    err = capsys.readouterr().err
    assert err.startswith("rainedge: ") and problem in err and err.count("\n") == 1
