"""What the devices download: the model zip (into the stack's own bucket, content-hashed key)
and the Lambda code bundle (the `device_code/` package)."""
from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.nag import acknowledge

ARTIFACT_PREFIX = "artifacts/"
DEVICE_PACKAGE = "device_code"
# Host-side tooling that never runs on the Pi.
BUNDLE_EXCLUDES = ("simulator", "__pycache__", "*.pyc")


def helper_log_group(scope: Construct, construct_id: str) -> logs.LogGroup:
    """A log group owned by the stack for one of CDK's helper functions: it goes with the stack,
    so teardown never has to find helper logs by name."""
    return logs.LogGroup(scope, construct_id, retention=logs.RetentionDays.ONE_MONTH,
                         removal_policy=RemovalPolicy.DESTROY)


class ModelArtifactError(FileNotFoundError):
    """The trained model is not where the configuration says."""


def model_digest(model_zip: Path) -> str:
    if not model_zip.is_file():
        raise ModelArtifactError(
            f"no trained model at {model_zip}: run `make train` "
            "(python -m model_training train --out build/model) before synthesising"
        )
    return hashlib.sha256(model_zip.read_bytes()).hexdigest()


def stage_device_bundle(project_root: Path) -> Path:
    """Copy `device_code/` (without the simulator and caches) into a fresh folder so the
    Lambda bundle has `device_code/` at its root; removed when the process exits."""
    source = project_root / DEVICE_PACKAGE
    if not (source / "__init__.py").is_file():
        raise FileNotFoundError(f"{source} is not a Python package: the device code is missing")
    staging = Path(tempfile.mkdtemp(prefix="rainedge-bundle-"))
    atexit.register(shutil.rmtree, staging, ignore_errors=True)
    shutil.copytree(source, staging / DEVICE_PACKAGE, ignore=shutil.ignore_patterns(*BUNDLE_EXCLUDES))
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
