"""Before a device serves a new model: replay the artifact's golden rows with the device's own runtime.

The export (model_training.golden) writes `selftest.json` beside `metadata.json`: for each model of
the artifact, held-out input rows (rainy and dry hours of the test months) and the probabilities the
exported `model.tflite` gave for them, with the model version and the tolerance. `self_test(model_dir)`
loads the artifact through device_code.model as the inference function does, with the runtime a
device serves with (LiteRT: the device runtime installs no TensorFlow, so the inference function's
fallback never applies there), replays the rows and compares, and checks the artifact's contract
against this code's: the inputs, history and thresholds (read_metadata), the units and valid ranges
(device_code.contracts), and that the golden rows are for this model version.

`python -m device_code.selftest <model_dir> [--serve LINK]` prints one line and exits 0 when the
self-test passes, 1 when not; with --serve, a pass also points the symbolic link LINK at model_dir, in one
rename, which is how the inference function learns which model to serve. The model component's Startup
step runs it from the artifact's own `code/` folder (infra/components.py): a non-zero exit fails the
Greengrass deployment on that device, and the link keeps naming the model that passed before.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import files
from .contracts import SENSOR_RANGES, UNITS, finite_number, shown
from .model import METADATA_MAX_BYTES, RUNTIME_NAMES, ModelUnavailable, RainModel, load_model

GOLDEN_FILE = "selftest.json"
# The artifact's folder holding the device code the self-test runs from (code/device_code/...).
CODE_FOLDER = "code"
# Absolute, on a probability. At export LiteRT and TensorFlow agree on every Oct-Dec 2013 row within
# 5e-7 (float32 kernels summing in different orders): 1e-4 leaves a wide margin for another CPU's
# kernels, while a changed weight, an inverted output or another model moves probabilities far more.
TOLERANCE = 1e-4
# The runtime a device serves with: the first the inference function tries.
SERVING_RUNTIME = RUNTIME_NAMES[0]
GOLDEN_MAX_BYTES = 1 << 20  # a golden file is ~10 KiB


class SelfTestFailed(Exception):
    """The candidate artifact must not be served; the message is one line saying why."""


def golden_record(model: RainModel, rows: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, Any]:
    """What selftest.json holds: `rows` (model -> input -> column) as float32 values, what `model` gives
    for them, its version and the tolerance."""
    models = {}
    for name, columns in rows.items():
        inputs = {input_name: np.asarray(columns[input_name], dtype=np.float32)
                  for input_name in model.metadata.models[name].inputs}
        models[name] = {"inputs": {input_name: column.tolist() for input_name, column in inputs.items()},
                        "expected": model.run(name, inputs).tolist()}
    return {"version": model.metadata.version, "tolerance": TOLERANCE, "models": models}


def _golden_columns(name: str, rows: Mapping, inputs: tuple[str, ...]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    if not isinstance(rows["inputs"], Mapping) or sorted(rows["inputs"]) != sorted(inputs):
        raise SelfTestFailed(f"{name}: golden inputs {shown(list(rows['inputs']))} are not the model's {list(inputs)}")
    columns = {input_name: np.asarray(rows["inputs"][input_name], dtype=np.float64) for input_name in inputs}
    expected = np.asarray(rows["expected"], dtype=np.float64)
    shapes = {column.shape for column in [*columns.values(), expected]}
    if shapes != {expected.shape} or expected.ndim != 1 or expected.size == 0:
        raise SelfTestFailed(f"{name}: golden inputs and expected outputs are not columns of one length "
                             f"(shapes {sorted(shapes)})")
    return columns, expected


def compare(model: RainModel, golden: Any) -> tuple[int, float]:
    """Replay `golden` (a golden record) with `model`: (rows replayed, tolerance), or SelfTestFailed."""
    try:
        if golden["version"] != model.metadata.version:
            raise SelfTestFailed(f"{GOLDEN_FILE} is for {shown(golden['version'])}, "
                                 f"the model is {model.metadata.version}")
        tolerance = finite_number(golden["tolerance"])
        # Never looser than this code's tolerance: a loose one passes another model.
        if tolerance is None or not 0.0 < tolerance <= TOLERANCE:
            raise SelfTestFailed(f"{GOLDEN_FILE} tolerance {shown(golden['tolerance'])} is not a number within "
                                 f"(0, {TOLERANCE}]")
        replayed = 0
        for name, spec in model.metadata.models.items():
            if name not in golden["models"]:
                raise SelfTestFailed(f"{GOLDEN_FILE} has no golden rows for {name}")
            columns, expected = _golden_columns(name, golden["models"][name], spec.inputs)
            try:
                actual = model.run(name, columns)
            except Exception as error:  # a broken model fails in many library-specific ways
                raise SelfTestFailed(f"{name}: {type(error).__name__}: {error}") from None
            # NaN never compares within the tolerance, so a NaN expectation fails too.
            off = np.flatnonzero(~(np.abs(actual - expected) <= tolerance))
            if off.size:
                row = int(off[0])
                raise SelfTestFailed(f"{name}: golden row {row} gave {actual[row]:.6g}, expected {expected[row]:.6g} "
                                     f"(tolerance {tolerance:g})")
            replayed += expected.size
        return replayed, tolerance
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise SelfTestFailed(f"{GOLDEN_FILE} is not a golden record: {type(error).__name__}: {error}") from None


def _check_units_and_ranges(model_dir: Path, model: RainModel) -> None:
    """The artifact's readings are this device's: the same units and the sensor's valid ranges."""
    metadata = files.read_json(model_dir / "metadata.json", METADATA_MAX_BYTES)
    if metadata.get("units") != UNITS:
        raise SelfTestFailed(f"metadata.json units {shown(metadata.get('units'))} are not this device's {UNITS}")
    if dict(model.metadata.valid_ranges) != SENSOR_RANGES:
        raise SelfTestFailed(f"metadata.json valid_ranges {shown(dict(model.metadata.valid_ranges))} are not the "
                             f"sensor's {SENSOR_RANGES}")


def self_test(model_dir: Path) -> tuple[bool, str]:
    """(True, what passed) or (False, why not), each one line; never raises for a broken artifact."""
    model_dir = Path(model_dir)
    try:
        model = load_model(model_dir, SERVING_RUNTIME)
        _check_units_and_ranges(model_dir, model)
        replayed, tolerance = compare(model, files.read_json(model_dir / GOLDEN_FILE, GOLDEN_MAX_BYTES))
    except (ModelUnavailable, files.UnusableFile, SelfTestFailed) as error:
        return False, " ".join(str(error).split())
    return True, (f"{model.metadata.version} on {model.runtime}: {replayed} golden rows of "
                  f"{', '.join(sorted(model.metadata.models))} within {tolerance:g} of the export")


def serve(model_dir: Path, link: Path) -> None:
    """Point `link` at `model_dir`: a new link beside it renamed over it, so a reader finds the old target or
    the new one, never none (rename(2) replaces its target atomically)."""
    staged = link.with_name(f".{link.name}.{os.getpid()}")
    staged.unlink(missing_ok=True)
    os.symlink(Path(model_dir).resolve(), staged, target_is_directory=True)
    os.replace(staged, link)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m device_code.selftest", description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="the unpacked model artifact (holds metadata.json)")
    parser.add_argument("--serve", type=Path, metavar="LINK", help="on a pass, point this link at model_dir")
    args = parser.parse_args(argv)
    ok, line = self_test(args.model_dir)
    if ok and args.serve is not None:
        try:
            serve(args.model_dir, args.serve)
        except OSError as error:
            ok, line = False, f"{line}, but {args.serve} could not point at it ({error.strerror or error})"
        else:
            line = f"{line}; serving it ({args.serve})"
    print(f"self-test {'passed' if ok else 'failed'}: {line}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
