"""What `make train` puts into the artifact for the on-device self-test: held-out golden rows of both
models, what the exported models gave for them, and the device code that replays them."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from device_code import selftest
from device_code.model import load_model
from device_code.selftest import CODE_FOLDER, GOLDEN_FILE
from model_training.golden import GOLDEN_ROWS_PER_CLASS, golden_rows, shipped_device_modules

READINGS = ("temperature", "humidity", "pressure")


@pytest.fixture(scope="module")
def golden(model_folder: Path) -> dict:
    return json.loads((model_folder / GOLDEN_FILE).read_text())


def test_the_golden_record_covers_both_models_of_this_version(golden, metadata):
    assert golden["version"] == metadata["version"]
    assert golden["tolerance"] == selftest.TOLERANCE
    assert set(golden["models"]) == set(metadata["models"])
    for name, rows in golden["models"].items():
        assert sorted(rows["inputs"]) == sorted(metadata["models"][name]["inputs"])
        assert {len(column) for column in rows["inputs"].values()} == {len(rows["expected"])} == {
            2 * GOLDEN_ROWS_PER_CLASS}


def test_the_golden_rows_exercise_both_decisions(golden, metadata):
    for name, rows in golden["models"].items():
        expected, threshold = np.array(rows["expected"]), metadata["models"][name]["threshold"]
        assert (expected >= threshold).any() and (expected < threshold).any(), name


def test_the_golden_rows_are_held_out_readings(golden, test_split):
    """Each row's reading is one of Oct-Dec 2013 (the test split), never one the models trained on."""
    held_out = {tuple(row) for row in test_split[list(READINGS)].to_numpy(dtype=np.float32)}
    for rows in golden["models"].values():
        readings = zip(*(np.array(rows["inputs"][name], dtype=np.float32) for name in READINGS))
        assert all(reading in held_out for reading in readings)


def test_expected_is_what_model_tflite_gives_and_the_saved_model_agrees_far_within_the_tolerance(golden,
                                                                                                  model_folder):
    """The tolerance (1e-4) against what the two float32 runtimes differ by on the golden rows."""
    litert, tensorflow = load_model(model_folder, "litert"), load_model(model_folder, "tensorflow")
    for name, rows in golden["models"].items():
        assert litert.run(name, rows["inputs"]).tolist() == rows["expected"]
        difference = np.abs(tensorflow.run(name, rows["inputs"]) - rows["expected"])
        assert difference.max() < selftest.TOLERANCE / 20, (name, difference.max())


def test_golden_rows_are_as_many_rainy_as_dry_spread_over_the_split():
    rain = np.zeros(1000, dtype=int)
    rain[100:160] = 1
    rows = golden_rows(rain)
    assert len(rows) == 2 * GOLDEN_ROWS_PER_CLASS and list(rows) == sorted(rows)
    assert rain[rows].sum() == GOLDEN_ROWS_PER_CLASS
    assert rows[0] == 0 and rows[-1] == 999 and {100, 159} <= set(rows)
    # A split without rain (one station's months in leave-one-station-out): dry rows only.
    assert list(golden_rows(np.array([0, 0, 0]))) == [0, 1, 2] and golden_rows(np.array([], dtype=int)).size == 0


def test_the_artifact_ships_the_device_code_the_self_test_imports(model_folder, project_root):
    shipped = {path.relative_to(model_folder / CODE_FOLDER).as_posix(): path.read_bytes()
               for path in (model_folder / CODE_FOLDER).rglob("*") if path.is_file()}
    modules = shipped_device_modules()
    assert {"device_code/__init__.py", "device_code/selftest.py", "device_code/model.py"} <= set(modules)
    # One source: the repository's files, byte for byte.
    assert shipped == {name: (project_root / name).read_bytes() for name in modules}


def test_make_retrains_when_shipped_code_changes(project_root):
    """build/model's rule lists every shipped module, so the artifact never carries stale device code."""
    makefile = (project_root / "Makefile").read_text().replace("\\\n", " ")
    (rule,) = re.findall(r"^\$\(MODEL\):(.*)$", makefile, flags=re.MULTILINE)
    assert set(shipped_device_modules()) <= set(rule.split())
