"""Per-device private key + certificate signing request, made locally.

`python -m infra.device_keys ensure` creates, for each configured device that lacks them,
`<secretsDir>/<thing>/private.key` (EC P-256, mode 0600, folder 0700) and
`<secretsDir>/<thing>/device.csr`. The CDK app reads only the CSR: AWS IoT signs it into the
device certificate, so the private key never enters a template, an output, S3 or a log.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from infra.config import ConfigError, RainEdgeConfig, read_cdk_context

PRIVATE_KEY_FILE = "private.key"
CSR_FILE = "device.csr"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class DeviceKeyError(RuntimeError):
    """A device's CSR is missing or unreadable."""


def device_dir(secrets_dir: Path, thing_name: str) -> Path:
    return secrets_dir / thing_name


def ensure_device_keys(secrets_dir: Path, thing_name: str) -> bool:
    """Create the key and CSR for `thing_name` unless both exist; True when created."""
    folder = device_dir(secrets_dir, thing_name)
    key_path, csr_path = folder / PRIVATE_KEY_FILE, folder / CSR_FILE
    if key_path.is_file() and csr_path.is_file():
        return False
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(secrets_dir, 0o700)
    os.chmod(folder, 0o700)
    if key_path.is_file():
        # Keep an existing key (a device may already use it); only the CSR is re-made.
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # O_EXCL + mode at creation: the key is never readable by others, not even briefly.
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, thing_name)]))
        .sign(key, hashes.SHA256())
    )
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return True


def read_csr(secrets_dir: Path, thing_name: str) -> str:
    """The PEM CSR of a device; never touches the private key."""
    csr_path = device_dir(secrets_dir, thing_name) / CSR_FILE
    if not csr_path.is_file():
        raise DeviceKeyError(
            f"no certificate signing request for device {thing_name!r} at {csr_path}: "
            "run `make keys` (python -m infra.device_keys ensure) first"
        )
    pem = csr_path.read_text()
    try:
        x509.load_pem_x509_csr(pem.encode())
    except ValueError as error:
        raise DeviceKeyError(f"{csr_path} is not a PEM certificate signing request ({error}): "
                             "delete it and run `make keys`") from error
    return pem


def key_owners(config: RainEdgeConfig) -> tuple[str, ...]:
    """Who needs a local key and CSR: each listed device, and the fleet's claim certificate."""
    return config.devices + ((config.claim_name,) if config.fleet_provisioning else ())


def load_project_config(project_root: Path = PROJECT_ROOT) -> RainEdgeConfig:
    return RainEdgeConfig.from_context(read_cdk_context(project_root))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.device_keys", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["ensure"])
    parser.parse_args(argv)
    try:
        config = load_project_config()
    except ConfigError as error:
        print(f"cdk.json: {error}", file=sys.stderr)
        return 2
    secrets_dir = PROJECT_ROOT / config.secrets_dir
    for thing_name in key_owners(config):
        created = ensure_device_keys(secrets_dir, thing_name)
        state = "created" if created else "present"
        print(f"{thing_name}: key and CSR {state} in {device_dir(secrets_dir, thing_name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
