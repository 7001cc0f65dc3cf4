"""What the artifact carries for the on-device self-test (device_code.selftest): the golden record and
the device code that replays it.

- `selftest.json`: per model, held-out rows of the test months (GOLDEN_ROWS_PER_CLASS rainy and as many
  dry hours, spread over Oct-Dec), what the exported `model.tflite` gave for them, the version and the
  tolerance. The export also replays the record with the SavedModel, so a device that falls back to
  TensorFlow would pass it too.
- `code/device_code/`: the device modules the self-test imports (followed through their relative
  imports), copied from this repository at export: the model component's Startup step runs them with
  the device runtime's python, and the Lambda bundle's copy is not reachable from there.
"""
from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import device_code
from device_code import selftest
from device_code.model import load_model

if TYPE_CHECKING:
    from model_training.train import TrainingResult

GOLDEN_ROWS_PER_CLASS = 8
DEVICE_PACKAGE = Path(device_code.__file__).parent


def golden_rows(rain: np.ndarray) -> np.ndarray:
    """Indices (ascending) of GOLDEN_ROWS_PER_CLASS rainy and as many dry rows (all of a class that has
    fewer: a split without rain gives dry rows only), each evenly spread over the rows of its class."""
    picked = [rows[np.linspace(0, len(rows) - 1, min(GOLDEN_ROWS_PER_CLASS, len(rows))).round().astype(int)]
              for rows in (np.flatnonzero(rain == 1), np.flatnonzero(rain == 0))]
    return np.sort(np.concatenate(picked))


def _sibling_imports(module: Path) -> set[str]:
    """The device_code modules `module` imports relatively (`from . import x`, `from .x import y`)."""
    names = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names.update([node.module.split(".")[0]] if node.module else [alias.name for alias in node.names])
    return names


def shipped_device_modules() -> list[str]:
    """Paths (relative to the project root) of the package's __init__.py, the self-test module and every
    device_code module they import, directly or not."""
    wanted, found = ["__init__", selftest.__name__.rsplit(".", 1)[1]], set()
    while wanted:
        name = wanted.pop()
        if name not in found:
            found.add(name)
            wanted.extend(_sibling_imports(DEVICE_PACKAGE / f"{name}.py"))
    return sorted(f"{DEVICE_PACKAGE.name}/{name}.py" for name in found)


def write_self_test(result: TrainingResult, folder: Path) -> None:
    """Write selftest.json and code/ into the unpacked artifact `folder` (which holds the exported models);
    SelfTestFailed when the SavedModel does not reproduce model.tflite's record."""
    record = selftest.golden_record(load_model(folder, selftest.SERVING_RUNTIME),
                                    {name: trained.golden_inputs for name, trained in result.models.items()})
    try:
        selftest.compare(load_model(folder, "tensorflow"), record)
    except selftest.SelfTestFailed as error:
        raise selftest.SelfTestFailed(f"the SavedModel disagrees with model.tflite: {error}") from None
    (folder / selftest.GOLDEN_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    for module in shipped_device_modules():
        target = folder / selftest.CODE_FOLDER / module
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEVICE_PACKAGE.parent / module, target)
