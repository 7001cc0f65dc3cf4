"""Open a model artifact (zip, unpacked folder, or the `train --out` folder) and run it.

Two runtimes run the same serving signature: LiteRT on `model.tflite` (what the device uses,
~50 MiB) and TensorFlow on `saved_model/` (the reference, ~700 MiB).
"""
from __future__ import annotations

import contextlib
import json
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# The artifact's contract, shared with export.py (which writes it).
SIGNATURE = "serving_default"
OUTPUT_NAME = "probability"
UNPACKED_NAME = "rain_model"
RUNTIMES = ("litert", "savedmodel")
REQUIRED_METADATA = ("version", "feature_order", "threshold", "valid_ranges")


class ModelArtifactError(Exception):
    """The model path is missing, not a model artifact, or its files are unreadable."""


@contextlib.contextmanager
def opened_artifact(path: Path) -> Iterator[Path]:
    """Yield a folder holding metadata.json, model.tflite and saved_model/.

    `path` may be the zip, its unpacked folder, or the folder `train --out` wrote (which holds both).
    """
    path = Path(path)
    if path.is_dir() and (path / "metadata.json").is_file():
        yield path
    elif path.is_dir() and (path / UNPACKED_NAME / "metadata.json").is_file():
        yield path / UNPACKED_NAME
    elif path.is_file():
        if not zipfile.is_zipfile(path):
            raise ModelArtifactError(f"model {path} is not a zip file")
        with tempfile.TemporaryDirectory(prefix="rain_model_") as scratch:
            try:
                with zipfile.ZipFile(path) as archive:
                    archive.extractall(scratch)
            except (zipfile.BadZipFile, OSError) as error:
                raise ModelArtifactError(f"model zip {path} cannot be unpacked: {error}") from error
            if not (Path(scratch) / "metadata.json").is_file():
                raise ModelArtifactError(f"model zip {path} has no metadata.json at its root")
            yield Path(scratch)
    elif path.exists():
        raise ModelArtifactError(f"model folder {path} holds no metadata.json (nor {UNPACKED_NAME}/metadata.json)")
    else:
        raise ModelArtifactError(f"model path {path} does not exist")


def read_metadata(folder: Path) -> dict:
    try:
        metadata = json.loads((folder / "metadata.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelArtifactError(f"metadata.json in {folder} is unreadable: {error}") from error
    if not isinstance(metadata, dict):
        raise ModelArtifactError(f"metadata.json in {folder} is not a JSON object")
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ModelArtifactError(f"metadata.json in {folder} lacks keys {missing}")
    threshold = metadata["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ModelArtifactError(f"metadata.json in {folder} has threshold {threshold!r}; expected a number in [0, 1]")
    return metadata


def signature_inputs(temperature, humidity, pressure) -> dict[str, np.ndarray]:
    """The serving signature's named inputs: one float32 [batch] array per feature."""
    return {
        "temperature": np.asarray(temperature, dtype=np.float32).reshape(-1),
        "humidity": np.asarray(humidity, dtype=np.float32).reshape(-1),
        "pressure": np.asarray(pressure, dtype=np.float32).reshape(-1),
    }


class LiteRTModel:
    def __init__(self, folder: Path):
        from ai_edge_litert.interpreter import Interpreter

        try:
            interpreter = Interpreter(model_path=str(folder / "model.tflite"))
            self._run = interpreter.get_signature_runner(SIGNATURE)
        except (ValueError, RuntimeError, OSError) as error:
            raise ModelArtifactError(f"model.tflite in {folder} cannot be loaded: {error}") from error

    def predict(self, temperature, humidity, pressure) -> np.ndarray:
        return self._run(**signature_inputs(temperature, humidity, pressure))[OUTPUT_NAME]


class SavedModel:
    def __init__(self, folder: Path):
        import tensorflow as tf

        try:
            self._run = tf.saved_model.load(str(folder / "saved_model")).signatures[SIGNATURE]
        except (OSError, KeyError, ValueError, RuntimeError) as error:
            raise ModelArtifactError(f"saved_model in {folder} cannot be loaded: {error}") from error

    def predict(self, temperature, humidity, pressure) -> np.ndarray:
        # The concrete function converts the float32 arrays to tensors itself.
        return self._run(**signature_inputs(temperature, humidity, pressure))[OUTPUT_NAME].numpy()


def load_runtime(folder: Path, runtime: str) -> LiteRTModel | SavedModel:
    if runtime == "litert":
        return LiteRTModel(folder)
    if runtime == "savedmodel":
        return SavedModel(folder)
    raise ValueError(f"runtime {runtime!r} is not one of {list(RUNTIMES)}")
