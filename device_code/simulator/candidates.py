"""Candidate model artifacts for the rollout simulator, made from a real one by changing what its models compute.

Each model of the artifact ends in its calibration layer, sigmoid(slope * logit) (model_training.export),
whose slope is one float32 constant of `model.tflite`; metadata.json names its value
(models.<name>.calibration.slope). Scaling that constant changes what the real LiteRT model answers, with
no wrapper around it: a slope times -1 gives exactly 1 - p (an inverted model), times 1.05 a sharper
calibration (a genuinely different model). The golden record is then written from the edited model with
device_code.selftest.golden_record on the source's golden inputs, as the export writes it, so the edited
artifact passes its own self-test. Its version is derived from its content, as the export's is.

`saved_model/` is left out: it would still compute the source's model; a device serves model.tflite
(device_code.selftest.SERVING_RUNTIME), and without saved_model/ no fallback can answer with another model.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path

import numpy as np

from device_code import files, selftest
from device_code.model import METADATA_MAX_BYTES, TFLITE_MAX_BYTES, load_model

SAVED_MODEL = "saved_model"


def _float32(value: float) -> bytes:
    return struct.pack("<f", value)


def _content_version(tflite: bytes, metadata: dict) -> str:
    """Same model file, inputs and thresholds: same version; any change, a new one."""
    digest = hashlib.sha256(tflite)
    for name in sorted(metadata["models"]):
        spec = metadata["models"][name]
        digest.update(json.dumps({"model": name, "threshold": spec["threshold"], "inputs": spec["inputs"]}).encode())
    return f"rain-{digest.hexdigest()[:16]}"


def recalibrated(source: Path, target: Path, slope_factor: float) -> Path:
    """A copy of the artifact folder `source` in `target` whose models' calibration slopes are multiplied by
    `slope_factor`, with its own version and golden record; `target`."""
    metadata = files.read_json(source / "metadata.json", METADATA_MAX_BYTES)
    tflite = bytearray(files.read_bytes(source / "model.tflite", TFLITE_MAX_BYTES))
    for name, spec in metadata["models"].items():
        calibration = spec["calibration"]
        slope = _float32(calibration["slope"])
        # The slope must be one constant of the file, or editing the bytes could change another weight.
        if tflite.count(slope) != 1:
            raise ValueError(f"{source}/model.tflite holds {name}'s calibration slope {tflite.count(slope)} times, "
                             "not once: it cannot be edited in place")
        scaled = float(np.float32(calibration["slope"]) * np.float32(slope_factor))
        at = tflite.find(slope)
        tflite[at:at + len(slope)] = _float32(scaled)
        calibration["slope"] = scaled
    metadata["version"] = _content_version(bytes(tflite), metadata)
    metadata["created_by"] += f"; calibration slopes x{slope_factor:g} by {__name__} (metrics are the source's)"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(SAVED_MODEL))
    (target / "model.tflite").write_bytes(bytes(tflite))
    (target / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    golden = files.read_json(source / selftest.GOLDEN_FILE, selftest.GOLDEN_MAX_BYTES)
    rows = {name: {column: np.asarray(values) for column, values in record["inputs"].items()}
            for name, record in golden["models"].items()}
    record = selftest.golden_record(load_model(target, selftest.SERVING_RUNTIME), rows)
    (target / selftest.GOLDEN_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return target


def with_model_file_of(candidate: Path, other: Path, target: Path) -> Path:
    """`candidate` packaged with `other`'s model.tflite (a build that zipped the wrong model file): its
    metadata and golden record describe a model it does not hold; `target`."""
    shutil.copytree(candidate, target)
    shutil.copyfile(other / "model.tflite", target / "model.tflite")
    return target
