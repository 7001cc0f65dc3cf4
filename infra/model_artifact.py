"""The model artifact's checks, without CDK: synth (infra/artifacts.py) and preflight use them."""
from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

from device_code import selftest
from device_code.model import RUNTIMES

# The model artifact (DESIGN.md): metadata.json and the model of each runtime the inference
# function can load it with (device_code/model.py), at the root of the zip.
MODEL_MEMBERS = ("metadata.json", *(artifact for _, artifact, _ in RUNTIMES))
# What model_training writes as metadata.json "version" (content hash); it goes into fleet-indexing
# queries, so nothing else is taken.
MODEL_VERSION = re.compile(r"rain-[0-9a-f]{16}")
# What the model component's Startup step runs (infra/components.py): the golden record and the code.
SELF_TEST_MEMBERS = (selftest.GOLDEN_FILE, f"{selftest.CODE_FOLDER}/{selftest.__name__.replace('.', '/')}.py")


class AssetError(Exception):
    """What would be uploaded is not what the devices need, or holds a secret."""


class ModelArtifactError(AssetError):
    """The trained model is not where the configuration says, or is not the model artifact."""


def read_zip(path: Path) -> dict[str, bytes]:
    """Every file of a zip by name; AssetError when it is no readable zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}
    except Exception as error:  # a broken zip fails in many ways: BadZipFile, zlib.error, EOFError, ...
        raise AssetError(f"{path} is not a readable zip ({type(error).__name__}: {error})") from None


def model_digest(model_zip: Path) -> str:
    """SHA-256 of the model zip, after checking it is the artifact the device loads."""
    if not model_zip.is_file():
        raise ModelArtifactError(
            f"no trained model at {model_zip}: run `make train` "
            "(python -m model_training train --out build/model) before synthesising"
        )
    try:
        members = read_zip(model_zip)
    except AssetError as error:
        raise ModelArtifactError(f"modelZip {error}: run `make train`, or point modelZip at the model zip") from None
    missing = [name for name in MODEL_MEMBERS
               if name not in members and not any(member.startswith(f"{name}/") for member in members)]
    if missing:
        raise ModelArtifactError(f"modelZip {model_zip} is not the model artifact: it lacks {', '.join(missing)} "
                                 "at its root; run `make train`")
    return hashlib.sha256(model_zip.read_bytes()).hexdigest()


def model_version(model_zip: Path) -> str:
    """metadata.json "version" of the model zip (checked by model_digest first), reading no other member;
    ModelArtifactError too when the zip lacks the self-test, which would fail on every device."""
    try:
        with zipfile.ZipFile(model_zip) as archive:
            missing = [name for name in SELF_TEST_MEMBERS if name not in archive.namelist()]
            version = json.loads(archive.read("metadata.json")).get("version")
    except (KeyError, ValueError, AttributeError, zipfile.BadZipFile):
        missing, version = [], None
    if missing:
        raise ModelArtifactError(f"modelZip {model_zip} carries no on-device self-test (it lacks "
                                 f"{', '.join(missing)}): the model component's Startup step would fail on every "
                                 "device; run `make train`")
    if not isinstance(version, str) or not MODEL_VERSION.fullmatch(version):
        raise ModelArtifactError(f"modelZip {model_zip}: metadata.json has no version of the form rain-<16 hex>: "
                                 "run `make train`")
    return version
