"""What the devices download: the model zip (into the stack's own bucket, content-hashed key)
and the Lambda code bundle (the `device_code/` package).

Both are checked at synth: the model zip must be the model artifact the device loads, and no file
staged for upload (a file of the bundle, a member of the zip) may hold a private key.
"""
from __future__ import annotations

import atexit
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from aws_cdk import AssetStaging, RemovalPolicy
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_der_private_key, pkcs12

from infra.config import DEVICE_PACKAGE
from infra.model_artifact import AssetError, ModelArtifactError, model_digest, model_version, read_zip
from infra.nag import acknowledge

ARTIFACT_PREFIX = "artifacts/"
# Any PEM private key: PKCS#8 (also encrypted), PKCS#1 RSA, SEC1 EC, DSA, OpenSSH.
_PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
# Host-side tooling that never runs on the Pi.
BUNDLE_EXCLUDES = ("simulator", "__pycache__", "*.pyc")


def helper_log_group(scope: Construct, construct_id: str) -> logs.LogGroup:
    """A log group owned by the stack for one of CDK's helper functions: it goes with the stack,
    so teardown never has to find helper logs by name."""
    return logs.LogGroup(scope, construct_id, retention=logs.RetentionDays.ONE_MONTH,
                         removal_policy=RemovalPolicy.DESTROY)


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


def _staged_files(root: Path) -> Iterator[tuple[str, bytes]]:
    """(name, content) of every file staged at `root` (a file or a folder), and of each member of a zip."""
    for path in [root] if root.is_file() else sorted(path for path in root.rglob("*") if path.is_file()):
        name = path.name if path == root else str(path.relative_to(root))
        yield name, path.read_bytes()
        if zipfile.is_zipfile(path):
            yield from ((f"{name}:{member}", data) for member, data in read_zip(path).items())


def refuse_private_keys_in_assets(scope: Construct) -> None:
    """Synth-time check: no file staged for upload from this project (the Lambda code bundle, the
    model zip and its members, the fleet hook; CDK's own handler code from node_modules aside) holds
    a private key. Raises AssetError naming the file and the asset."""
    for staging in scope.node.find_all():
        if isinstance(staging, AssetStaging) and "node_modules" not in Path(staging.source_path).parts:
            for name, data in _staged_files(Path(staging.absolute_staged_path)):
                if is_private_key(data):
                    raise AssetError(
                        f"{name} in the asset {staging.node.scope.node.path} (from {staging.source_path}) holds a "
                        "private key: it would be uploaded to AWS and reach every device; move it out (device "
                        "keys belong in secretsDir)")


def stage_device_bundle(project_root: Path) -> Path:
    """Copy `device_code/` (without the simulator and caches) into a fresh folder so the
    Lambda bundle has `device_code/` at its root; removed when the process exits."""
    source = project_root / DEVICE_PACKAGE
    if not (source / "__init__.py").is_file():
        raise AssetError(f"{source} is not a Python package: the device code is missing")
    staging = Path(tempfile.mkdtemp(prefix="rainedge-bundle-"))
    atexit.register(shutil.rmtree, staging, ignore_errors=True)
    shutil.copytree(source, staging / DEVICE_PACKAGE, ignore=shutil.ignore_patterns(*BUNDLE_EXCLUDES))
    return staging


@dataclass(frozen=True)
class ModelRelease:
    """One model zip in the artifact bucket."""

    sha256: str
    version: str  # metadata.json "version"
    key: str
    upload: s3deploy.BucketDeployment
    uri: str
    # The folder the nucleus unarchives the zip into: "Each artifact unzips to a folder within the
    # decompressed path, where the folder has the same name as the artifact minus its extension"
    # (component recipe reference, Recipe variables > artifacts:decompressedPath).
    folder: str


class ArtifactStore(Construct):
    """The stack's own artifact bucket, emptied and deleted with the stack, holding each model zip a ring
    runs under `artifacts/rain-model/<sha256>/`."""

    def __init__(self, scope: Construct, construct_id: str, *, model_zips: list[Path]) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=False,
            # Emptied by the model uploads' own deletes (retain_on_delete=False below), so no
            # auto-delete helper with a log group of its own is needed.
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "Holds only build artifacts (model zip) fetched by the devices' token-exchange role; "
            "CloudTrail records the reads, and a log bucket would outlive the stack.",
        )
        self.upload_logs = helper_log_group(self, "ModelUploadLogs")
        self._by_digest: dict[str, ModelRelease] = {}
        self.models = {model_zip: self._release(model_zip) for model_zip in model_zips}

    @property
    def releases(self) -> list[ModelRelease]:
        """Each distinct model zip once (both rings may run one)."""
        return list(self._by_digest.values())

    def _release(self, model_zip: Path) -> ModelRelease:
        """One upload per distinct zip, named by its content: an upload deletes its own prefix when it goes, so
        no two of them may share one."""
        sha256 = model_digest(model_zip)
        if sha256 in self._by_digest:
            return self._by_digest[sha256]
        key = f"{ARTIFACT_PREFIX}rain-model/{sha256}/{model_zip.name}"
        # The zip is copied as it is (the source is a folder of which only the zip is taken; the
        # deployment extracts it), so its key is predictable and its bytes unchanged.
        upload = s3deploy.BucketDeployment(
            self,
            f"ModelUpload{sha256[:12]}",
            sources=[s3deploy.Source.asset(str(model_zip.parent), exclude=["*", f"!{model_zip.name}"])],
            destination_bucket=self.bucket,
            destination_key_prefix=key.rsplit("/", 1)[0] + "/",
            prune=False,
            retain_on_delete=False,
            memory_limit=512,
            log_group=self.upload_logs,
        )
        release = ModelRelease(sha256, model_version(model_zip), key, upload,
                               f"s3://{self.bucket.bucket_name}/{key}", model_zip.stem)
        self._by_digest[sha256] = release
        return release
