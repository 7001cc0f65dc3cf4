"""Device key + CSR creation: private, idempotent, and the app reads only the CSR."""
from __future__ import annotations

import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from infra.device_keys import CSR_FILE, PRIVATE_KEY_FILE, DeviceKeyError, ensure_device_keys, read_csr


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
