"""Which model each ring runs, from the release record in `releases/`. Plain files, no CDK: the stack reads
them at synth, `make promote` and `make rollback` (infra/lifecycle/promote.py) write them.

Two rings, each a thing group with its own deployment: the fleet ring runs the promoted model, the canary
ring the candidate (`modelZip`, what `make train` wrote). No device is in both groups: a core device
"runs the combination of the software from the deployments that target the device" and checks "whether
each component's dependencies are compatible with version constraints from other deployments to different
targets" (developer guide, "Deploy AWS IoT Greengrass components to devices"); two deployments that pin
two versions of one component leave no version that meets both, and the nucleus fails the newer one
(aws-greengrass-nucleus DependencyResolver / NoAvailableComponentVersionException: "thinggroup/A requires
=1.0.5, thinggroup/B requires =1.0.6"). So a device belongs to one ring from the day it is made, and a ring
changes version only by its own deployment.

- `releases/promoted/rain_model.zip`: the promoted model's zip, copied there by a passed gate. Before the
  first promotion there is none and both rings run the candidate: there is no older model to protect.
- `releases/decisions.jsonl`: one JSON line per decision (promoted, refused, rolled back) with its evidence.
  A candidate rolled back runs on neither ring; the canary ring runs the promoted model until a new
  candidate (a new `make train`) replaces it.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from device_code.files import InvalidJson, UnusableFile, parse_json, read_text, replace_whole
from infra.model_artifact import model_version

# The project's release folder; every function takes the folder (the tests synthesise with their own).
RELEASES = Path("releases")
PROMOTED_ZIP = Path("promoted") / "rain_model.zip"
DECISIONS = Path("decisions.jsonl")
PROMOTED, REFUSED, ROLLED_BACK = "promoted", "refused", "rolled back"
MAX_DECISIONS_BYTES = 16 << 20


class ReleaseError(ValueError):
    """The release record cannot be read, or a release step cannot be taken; says what to do."""


@dataclass(frozen=True)
class RingModels:
    fleet: Path  # the model zip the fleet ring runs
    canary: Path  # the model zip the canary ring runs
    first_release: bool  # nothing promoted yet: both rings run the candidate

    @property
    def versions(self) -> tuple[str, str]:
        """(promoted, candidate) model versions: what the fleet ring and the canary ring answer with."""
        return model_version(self.fleet), model_version(self.canary)


def decisions(folder: Path) -> list[dict[str, Any]]:
    """Every recorded decision, oldest first."""
    path = folder / DECISIONS
    if not path.exists():
        return []
    try:
        lines = read_text(path, MAX_DECISIONS_BYTES).splitlines()
        records = [parse_json(line) for line in lines if line.strip()]
    except (UnusableFile, InvalidJson) as problem:
        raise ReleaseError(f"{path}: {problem}: restore it from your backup or git") from None
    if not all(isinstance(record, dict) and isinstance(record.get("decision"), str) for record in records):
        raise ReleaseError(f"{path} holds a line that is no decision record: restore it from your backup or git")
    return records


def _rolled_back(folder: Path) -> Iterator[str]:
    for record in decisions(folder):
        if record["decision"] == ROLLED_BACK:
            yield record.get("candidate")


def ring_models(folder: Path, candidate_zip: Path) -> RingModels:
    promoted = folder / PROMOTED_ZIP
    if not promoted.is_file():
        return RingModels(fleet=candidate_zip, canary=candidate_zip, first_release=True)
    rejected = model_version(candidate_zip) in set(_rolled_back(folder))
    return RingModels(fleet=promoted, canary=promoted if rejected else candidate_zip, first_release=False)


def record(folder: Path, entry: dict[str, Any]) -> None:
    """Append one decision; a line is written whole or not at all (O_APPEND, one write)."""
    path = folder / DECISIONS
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)


def promote_zip(folder: Path, candidate_zip: Path) -> None:
    """Make the candidate the promoted model: a copy replaced in one rename, never a half-written zip."""
    target = folder / PROMOTED_ZIP
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(candidate_zip, "rb") as source:
        replace_whole(target, lambda staged: shutil.copyfileobj(source, staged), binary=True)
