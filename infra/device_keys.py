"""Per-device private key + certificate signing request, made locally.

`python -m infra.device_keys ensure` creates, for each configured device that lacks them,
`<secretsDir>/<thing>/private.key` (EC P-256, mode 0600, folder 0700) and
`<secretsDir>/<thing>/device.csr`. The CDK app reads only the CSR: AWS IoT signs it into the
device certificate, so the private key never enters a template, an output, S3 or a log.

What already exists is checked, never silently accepted or changed: a key or folder others may
read, a key that is no unencrypted private key, a CSR not made from the key, or a secrets folder
that leads into an asset source is reported with what to do. Modes are set only on what this
command creates; a folder reached through a symbolic link is checked where it really is.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
from pathlib import Path
from typing import Iterator

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from infra.config import ConfigError, RainEdgeConfig, overlaps, read_cdk_context

PRIVATE_KEY_FILE = "private.key"
CSR_FILE = "device.csr"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
FOLDER_MODE, KEY_MODE = 0o700, 0o600


class DeviceKeyError(RuntimeError):
    """A device's key or CSR is missing, unreadable, readable by others or inconsistent; the
    message says what to do."""


def device_dir(secrets_dir: Path, thing_name: str) -> Path:
    return secrets_dir / thing_name


@contextlib.contextmanager
def _writing() -> Iterator[None]:
    """What cannot be written (a file where a folder should be, no permission) is a DeviceKeyError too."""
    try:
        yield
    except OSError as error:
        raise DeviceKeyError(f"cannot write {error.filename} ({error.strerror}): secretsDir must be a folder "
                             "you can write") from None


def _private_folder(folder: Path) -> None:
    """Create `folder` for the owner only, or check that an existing one is."""
    if not folder.exists():
        if folder.is_symlink():
            raise DeviceKeyError(f"{folder} is a symbolic link to {os.readlink(folder)}, which does not exist")
        with _writing():
            folder.mkdir(parents=True)
            os.chmod(folder, FOLDER_MODE)  # exactly: mkdir's mode would pass through the umask
        return
    if not folder.is_dir():
        raise DeviceKeyError(f"{folder} is not a folder: move it away, the keys need a folder there")
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o077:
        raise DeviceKeyError(f"{folder} is open to others (mode {mode:04o}): the private keys in it must be the "
                             f"owner's alone; run chmod 700 {folder.resolve()}")


class UnusableKey(ValueError):
    """What is wrong with a private key file, said as the end of "<file> ..."."""


def parse_private_key(pem: bytes) -> PrivateKeyTypes:
    """The key of a PEM file as Greengrass reads it (unattended: no passphrase); UnusableKey otherwise."""
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except TypeError:  # cryptography's answer to an encrypted key loaded without a password
        raise UnusableKey("is encrypted, but Greengrass reads its key without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm) as error:
        raise UnusableKey(f"is not a PEM private key ({error})") from None


def _read_key(key_path: Path) -> PrivateKeyTypes | None:
    if not key_path.exists():
        return None
    mode = stat.S_IMODE(key_path.stat().st_mode)
    if mode & 0o077:
        raise DeviceKeyError(f"{key_path} is readable by others (mode {mode:04o}): run chmod 600 {key_path}; "
                             "if someone may have copied it, delete its folder and run `make keys` for a new key")
    try:
        return parse_private_key(key_path.read_bytes())
    except UnusableKey as problem:
        raise DeviceKeyError(f"{key_path} {problem}: put the device's unencrypted key back, or delete its folder "
                             "and run `make keys` for a new key (then `make deploy` and `make device-setup`)") from None


def _check_pair(key: PrivateKeyTypes, csr_path: Path, thing_name: str) -> None:
    """The CSR must be signed by `key` for `thing_name`, or the certificate AWS IoT makes from it
    would not fit the key the device gets."""
    try:
        csr = x509.load_pem_x509_csr(csr_path.read_bytes())
        names = [attribute.value for attribute in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        matches = csr.is_signature_valid and names == [thing_name] and public_der(csr.public_key()) == public_der(
            key.public_key())
    except ValueError:
        matches = False
    if not matches:
        raise DeviceKeyError(
            f"{csr_path} was not made from {csr_path.parent / PRIVATE_KEY_FILE} for {thing_name} (was the key "
            f"replaced?): to keep this key, delete {csr_path} and run `make keys`, then `make deploy` issues a "
            "certificate for it and `make device-setup` installs it; otherwise put the original key back")


def public_der(public_key) -> bytes:
    """A public key's DER SubjectPublicKeyInfo: equal for a certificate or CSR and the key it was made from."""
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def ensure_device_keys(secrets_dir: Path, thing_name: str) -> bool:
    """Create the key and CSR for `thing_name` unless both exist; True when something was created.

    An existing key is kept (a device may already use it) and checked; a missing CSR is made from
    it. Everything is built in memory first and a new key is removed again if its CSR cannot be
    written, so a key never stays without its CSR. Raises DeviceKeyError (see the module doc)."""
    folder = device_dir(secrets_dir, thing_name)
    _private_folder(secrets_dir)
    _private_folder(folder)
    key_path, csr_path = folder / PRIVATE_KEY_FILE, folder / CSR_FILE
    key = _read_key(key_path)
    if key is not None and csr_path.exists():
        _check_pair(key, csr_path, thing_name)
        return False
    new_key = key is None
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, thing_name)]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    with _writing():
        if new_key:
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            # O_EXCL + mode at creation: the key is never readable by others, not even briefly.
            descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_MODE)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(pem)
        try:
            csr_path.write_bytes(csr)
        except OSError:
            if new_key:
                key_path.unlink()
            raise
    return True


def check_secrets_dir(secrets_dir: Path, config: RainEdgeConfig, project_root: Path) -> str | None:
    """Refuse a secrets folder that really lies in an asset source (config.py checks the name; a
    symbolic link can lead elsewhere) or that others may open; create it when absent. Returns a
    note when the folder is reached through a link."""
    _private_folder(secrets_dir)
    real = secrets_dir.resolve()
    if real.is_relative_to(project_root):
        for source, what in config.asset_sources.items():
            if overlaps(str(real.relative_to(project_root)), source):
                raise DeviceKeyError(f"secretsDir {secrets_dir} leads to {real}, which overlaps {source} ({what}): "
                                     "private keys would be uploaded to AWS; point it elsewhere")
    if real != secrets_dir.absolute():
        return f"note: secretsDir {secrets_dir} leads to {real}: its modes are checked there, never changed"
    return None


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


def main(argv: list[str] | None = None, project_root: Path = PROJECT_ROOT) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.device_keys", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["ensure"])
    parser.parse_args(argv)
    try:
        config = load_project_config(project_root)
    except ConfigError as error:
        print(f"cdk.json: {error}", file=sys.stderr)
        return 2
    secrets_dir = project_root / config.secrets_dir
    try:
        note = check_secrets_dir(secrets_dir, config, project_root)
    except DeviceKeyError as error:
        print(f"rainedge: {error}", file=sys.stderr)
        return 1
    if note:
        print(note)
    problems = 0
    for thing_name in key_owners(config):
        try:
            created = ensure_device_keys(secrets_dir, thing_name)
        except DeviceKeyError as error:
            print(f"{thing_name}: {error}", file=sys.stderr)
            problems += 1
            continue
        state = "created" if created else "present, the CSR matches the key"
        print(f"{thing_name}: key and CSR {state} in {device_dir(secrets_dir, thing_name)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
