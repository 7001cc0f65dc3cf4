"""The on-device self-test (device_code/selftest.py): it passes on the artifact `make train` builds and
fails, with one line, on every broken candidate made from a copy of it.

The command-line runs start the venv's python from an unrelated folder with only the artifact's own
code/ folder on PYTHONPATH, as the model component's Startup step does (infra/components.py)."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device_code import selftest
from device_code.model import INSTANTANEOUS, TREND, RainModel, load_model
from device_code.selftest import CODE_FOLDER, GOLDEN_FILE, SelfTestFailed, compare, self_test
from fake_model import METADATA, humid_means_rain

# The flags of the Startup step: no user site-packages, no current folder on sys.path (-I would also
# drop the PYTHONPATH that names the artifact's code).
INTERPRETER_FLAGS = ("-s", "-P")


@pytest.fixture(scope="module")
def built_artifact(trained_model_dir: Path) -> Path:
    return trained_model_dir / "rain_model"


@pytest.fixture
def candidate(built_artifact: Path, tmp_path: Path) -> Path:
    """A copy of the built artifact, unpacked as Greengrass unpacks it, to break."""
    return Path(shutil.copytree(built_artifact, tmp_path / "decompressed" / "rain_model"))


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def run_cli(model_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(model_dir / CODE_FOLDER)}
    return subprocess.run([sys.executable, *INTERPRETER_FLAGS, "-m", "device_code.selftest", str(model_dir)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def invert_expected(golden: dict) -> None:
    for model in golden["models"].values():
        model["expected"] = [1.0 - p for p in model["expected"]]


def corrupt_tflite(folder: Path) -> None:
    tflite = folder / "model.tflite"
    content = bytearray(tflite.read_bytes())
    content[: len(content) // 2] = bytes(len(content) // 2)
    tflite.write_bytes(bytes(content))


def nan_inputs(golden: dict) -> None:
    golden["models"][INSTANTANEOUS]["inputs"]["humidity"][3] = math.nan


def short_column(golden: dict) -> None:
    golden["models"][TREND]["inputs"]["pressure"].pop()


def loose_tolerance(golden: dict) -> None:
    golden["tolerance"] = 0.5


# (how the candidate is broken, what its one-line reason says)
BROKEN = {
    "inverted outputs": (lambda d: edit_json(d / GOLDEN_FILE, invert_expected),
                         "instantaneous: golden row 0 gave "),
    "corrupted model.tflite": (corrupt_tflite, "model.tflite unusable: "),
    "units differ": (lambda d: edit_json(d / "metadata.json", lambda m: m["units"].update(pressure="inHg")),
                     "metadata.json units {'humidity': '%RH', 'pressure': 'inHg', 'temperature': 'degC'} are not "
                     "this device's {'temperature': 'degC', 'humidity': '%RH', 'pressure': 'hPa'}"),
    "valid ranges differ": (lambda d: edit_json(d / "metadata.json",
                                                lambda m: m["valid_ranges"].update(humidity=[0.0, 1.0])),
                            "metadata.json valid_ranges "),
    "version differs": (lambda d: edit_json(d / GOLDEN_FILE, lambda g: g.update(version="rain-0000000000000000")),
                        f"{GOLDEN_FILE} is for 'rain-0000000000000000', the model is rain-"),
    "threshold outside (0, 1)": (lambda d: edit_json(d / "metadata.json",
                                                     lambda m: m["models"][TREND].update(threshold=1.5)),
                                 "model 'trend' has threshold 1.5; expected a number within (0, 1)"),
    "golden file missing": (lambda d: (d / GOLDEN_FILE).unlink(), f"{GOLDEN_FILE}: no such file"),
    "golden file not JSON": (lambda d: (d / GOLDEN_FILE).write_text("{"), f"{GOLDEN_FILE}: not JSON"),
    "golden file not an object": (lambda d: (d / GOLDEN_FILE).write_text("[]"),
                                  f"{GOLDEN_FILE} is not a golden record: "),
    "NaN outputs": (lambda d: edit_json(d / GOLDEN_FILE, nan_inputs),
                    "instantaneous: ValueError: model returned nan, not a probability"),
    "golden columns of different lengths": (lambda d: edit_json(d / GOLDEN_FILE, short_column),
                                            "trend: golden inputs and expected outputs are not columns of one length"),
    "a looser tolerance": (lambda d: edit_json(d / GOLDEN_FILE, loose_tolerance),
                           f"{GOLDEN_FILE} tolerance 0.5 is not a number within (0, {selftest.TOLERANCE}]"),
    "a model without golden rows": (lambda d: edit_json(d / GOLDEN_FILE, lambda g: g["models"].pop(TREND)),
                                    f"{GOLDEN_FILE} has no golden rows for trend"),
    "metadata.json missing": (lambda d: (d / "metadata.json").unlink(), "metadata.json: no such file"),
}


def test_the_built_artifact_passes_its_own_self_test(built_artifact):
    ok, reason = self_test(built_artifact)
    assert ok, reason
    version = json.loads((built_artifact / "metadata.json").read_text())["version"]
    assert reason == (f"{version} on litert: 32 golden rows of instantaneous, trend within "
                      f"{selftest.TOLERANCE:g} of the export")


@pytest.mark.parametrize("broken", BROKEN, ids=list(BROKEN))
def test_a_broken_candidate_fails_with_its_reason(candidate, broken):
    breaking, reason = BROKEN[broken]
    breaking(candidate)
    ok, line = self_test(candidate)
    assert not ok
    assert reason in line and "\n" not in line, line


def test_a_missing_model_folder_fails(tmp_path):
    ok, line = self_test(tmp_path / "nowhere")
    assert not ok and line == f"{tmp_path / 'nowhere' / 'metadata.json'}: no such file", line


def test_the_cli_passes_the_built_artifact_with_only_its_own_code(candidate, tmp_path):
    completed = run_cli(candidate, cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (line,) = completed.stdout.splitlines()
    assert line.startswith("self-test passed: rain-")


@pytest.mark.parametrize("broken", ["inverted outputs", "corrupted model.tflite", "units differ", "version differs",
                                    "golden file missing", "NaN outputs"])
def test_the_cli_fails_a_broken_candidate_with_one_line_and_exit_1(candidate, tmp_path, broken):
    breaking, reason = BROKEN[broken]
    breaking(candidate)
    completed = run_cli(candidate, cwd=tmp_path)
    assert completed.returncode == 1
    (line,) = completed.stdout.splitlines()
    assert line.startswith("self-test failed: ") and reason in line, line
    assert "Traceback" not in completed.stderr


def test_the_shipped_code_alone_is_imported(candidate, tmp_path):
    """Every device_code module the self-test imports comes from the artifact's code/ folder, none from
    the repository (which this venv could also import: the project is installed in editable mode)."""
    code = candidate / CODE_FOLDER
    probe = ("import sys, device_code.selftest; "
             "print('\\n'.join(m.__file__ for n, m in sys.modules.items() if n.split('.')[0] == 'device_code'))")
    completed = subprocess.run([sys.executable, *INTERPRETER_FLAGS, "-c", probe], cwd=tmp_path, text=True,
                               env={"PATH": os.environ["PATH"], "PYTHONPATH": str(code)}, capture_output=True)
    assert completed.returncode == 0, completed.stderr
    files = completed.stdout.split()
    assert files and all(Path(file).is_relative_to(code) for file in files), files


def test_compare_names_the_row_the_model_and_both_probabilities():
    model = RainModel(METADATA, "fake", humid_means_rain)
    golden = {"version": METADATA.version, "tolerance": selftest.TOLERANCE, "models": {
        name: {"inputs": {input_name: [50.0, 80.0] for input_name in spec.inputs}, "expected": [0.5, 0.2]}
        for name, spec in METADATA.models.items()}}
    with pytest.raises(SelfTestFailed, match=r"^instantaneous: golden row 1 gave 0.8, expected 0.2 "
                                             r"\(tolerance 0.0001\)$"):
        compare(model, golden)


def test_the_golden_record_is_what_the_model_gives_and_compares_equal(built_artifact):
    model = load_model(built_artifact, "litert")
    readings = {"temperature": [20.0, 10.0], "humidity": [50.0, 95.0], "pressure": [1013.0, 990.0]}
    rows = {name: {input_name: np.array(readings.get(input_name, [0.0, 0.0])) for input_name in spec.inputs}
            for name, spec in model.metadata.models.items()}
    golden = selftest.golden_record(model, rows)
    assert golden["version"] == model.metadata.version and golden["tolerance"] == selftest.TOLERANCE
    assert golden["models"][INSTANTANEOUS]["expected"] == model.run(INSTANTANEOUS, rows[INSTANTANEOUS]).tolist()
    compare(model, json.loads(json.dumps(golden)))  # through JSON, as the file holds it: no error
