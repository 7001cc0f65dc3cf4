"""What the devices download: the model zip (into the stack's own bucket, content-hashed key)
and the Lambda code bundle (the `device_code/` package).

Both are checked at synth: the model zip must be the model artifact the device loads, and no file
staged for upload (a file of the bundle, a member of the zip) may hold a private key.
"""
from __future__ import annotations

import atexit
import hashlib
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_der_private_key, pkcs12

from device_code.model import RUNTIMES
from infra.config import DEVICE_PACKAGE
from infra.nag import acknowledge

ARTIFACT_PREFIX = "artifacts/"
# The model artifact (DESIGN.md): metadata.json and the model of each runtime the inference
# function can load it with (device_code/model.py), at the root of the zip.
MODEL_MEMBERS = ("metadata.json", *(artifact for _, artifact, _ in RUNTIMES))
# Any PEM private key: PKCS#8 (also encrypted), PKCS#1 RSA, SEC1 EC, DSA, OpenSSH.
_PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
# Host-side tooling that never runs on the Pi.
BUNDLE_EXCLUDES = ("simulator", "__pycache__", "*.pyc")


def helper_log_group(scope: Construct, construct_id: str) -> logs.LogGroup:
    """A log group owned by the stack for one of CDK's helper functions: it goes with the stack,
    so teardown never has to find helper logs by name."""
    return logs.LogGroup(scope, construct_id, retention=logs.RetentionDays.ONE_MONTH,
                         removal_policy=RemovalPolicy.DESTROY)


class AssetError(Exception):
    """What would be uploaded is not what the devices need, or holds a secret."""


class ModelArtifactError(AssetError):
    """The trained model is not where the configuration says, or is not the model artifact."""


def is_private_key(data: bytes) -> bool:
    """Whether `data` holds a private key in any common form: a PEM block anywhere in it, or as a
    whole DER PKCS#8 / PKCS#1 / SEC1 key (encrypted too) or an unprotected PKCS#12 bundle."""
    if _PEM_PRIVATE_KEY.search(data):
        return True
    try:
        load_der_private_key(data, password=None)
        return True
    except TypeError:  # "password was not given but private key is encrypted": a key all the same
        return True
    except (ValueError, UnsupportedAlgorithm):
        pass
    try:
        return pkcs12.load_key_and_certificates(data, password=None)[0] is not None
    except (ValueError, UnsupportedAlgorithm):
        return False


def refuse_private_keys(files: Iterable[tuple[str, bytes]], asset: str) -> None:
    """Raise AssetError naming the first of (name, content) `files` of `asset` that holds a private key."""
    for name, data in files:
        if is_private_key(data):
            raise AssetError(f"{name} in {asset} holds a private key: it would be uploaded to AWS and "
                             "reach every device; move it out (device keys belong in secretsDir)")


def read_zip(path: Path) -> dict[str, bytes]:
    """Every file of a zip by name; ModelArtifactError when it is no readable zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}
    except Exception as error:  # a broken zip fails in many ways: BadZipFile, zlib.error, EOFError, ...
        raise ModelArtifactError(f"modelZip {path} is not a readable zip ({type(error).__name__}: {error}): "
                                 "run `make train`, or point modelZip at the model zip") from None


def model_digest(model_zip: Path) -> str:
    """SHA-256 of the model zip, after checking it is the artifact the device loads and holds no key."""
    if not model_zip.is_file():
        raise ModelArtifactError(
            f"no trained model at {model_zip}: run `make train` "
            "(python -m model_training train --out build/model) before synthesising"
        )
    members = read_zip(model_zip)
    missing = [name for name in MODEL_MEMBERS
               if name not in members and not any(member.startswith(f"{name}/") for member in members)]
    if missing:
        raise ModelArtifactError(f"modelZip {model_zip} is not the model artifact: it lacks {', '.join(missing)} "
                                 "at its root; run `make train`")
    refuse_private_keys(members.items(), f"modelZip {model_zip}")
    return hashlib.sha256(model_zip.read_bytes()).hexdigest()


def stage_device_bundle(project_root: Path) -> Path:
    """Copy `device_code/` (without the simulator and caches) into a fresh folder so the
    Lambda bundle has `device_code/` at its root; removed when the process exits. Refused when
    a staged file holds a private key."""
    source = project_root / DEVICE_PACKAGE
    if not (source / "__init__.py").is_file():
        raise AssetError(f"{source} is not a Python package: the device code is missing")
    staging = Path(tempfile.mkdtemp(prefix="rainedge-bundle-"))
    atexit.register(shutil.rmtree, staging, ignore_errors=True)
    shutil.copytree(source, staging / DEVICE_PACKAGE, ignore=shutil.ignore_patterns(*BUNDLE_EXCLUDES))
    staged = sorted(path for path in staging.rglob("*") if path.is_file())
    refuse_private_keys(((str(path.relative_to(staging)), path.read_bytes()) for path in staged),
                        "the Lambda code bundle")
    return staging


class ArtifactStore(Construct):
    """The stack's own artifact bucket, emptied and deleted with the stack, holding the
    model zip under `artifacts/rain-model/<sha256>/`."""

    def __init__(self, scope: Construct, construct_id: str, *, model_zip: Path) -> None:
        super().__init__(scope, construct_id)
        self.model_sha256 = model_digest(model_zip)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=False,
            # Emptied by the model upload's own delete (retain_on_delete=False below), so no
            # auto-delete helper with a log group of its own is needed.
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "Holds only build artifacts (model zip) fetched by the devices' token-exchange role; "
            "CloudTrail records the reads, and a log bucket would outlive the stack.",
        )
        self.model_key = f"{ARTIFACT_PREFIX}rain-model/{self.model_sha256}/{model_zip.name}"
        # The zip is copied as it is (the source is a folder that holds only the zip, which
        # the deployment extracts), so its key is predictable and its bytes unchanged.
        self.model_upload = s3deploy.BucketDeployment(
            self,
            "ModelUpload",
            sources=[s3deploy.Source.asset(str(model_zip.parent), exclude=["*", f"!{model_zip.name}"])],
            destination_bucket=self.bucket,
            destination_key_prefix=self.model_key.rsplit("/", 1)[0] + "/",
            prune=False,
            retain_on_delete=False,
            memory_limit=512,
            log_group=helper_log_group(self, "ModelUploadLogs"),
        )

    @property
    def model_uri(self) -> str:
        return f"s3://{self.bucket.bucket_name}/{self.model_key}"
