"""The model component runs the artifact's self-test before anything serves the model: its Startup step
(synthesised recipe) runs device_code.selftest with the device runtime's venv python, after the runtime
component it depends on HARD, and the step's own command passes the built artifact and fails a broken one."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra.config import SELF_TEST_TIMEOUT_SECONDS
from infra.model_artifact import ModelArtifactError, model_version
from test_infra_stack import components_by_name

pytestmark = pytest.mark.slow

MODEL, RUNTIME = "com.rainedge.RainModel", "com.rainedge.DeviceRuntime"


@pytest.fixture(scope="module")
def recipe(template) -> dict:
    return components_by_name(template)[MODEL]


@pytest.fixture(scope="module")
def startup(recipe) -> dict:
    return recipe["Manifests"][0]["Lifecycle"]["Startup"]


def test_startup_runs_the_self_test_with_the_runtime_venv_python(startup):
    assert startup["Script"] == (f"{{{RUNTIME}:work:path}}/venv/bin/python -s -P -m device_code.selftest "
                                 "{artifacts:decompressedPath}/rain_model --serve {work:path}/serving")
    assert startup["Setenv"] == {"PYTHONPATH": "{artifacts:decompressedPath}/rain_model/code"}
    assert startup["Timeout"] == SELF_TEST_TIMEOUT_SECONDS
    assert startup["RequiresPrivilege"] is False


def test_the_model_depends_hard_on_exactly_the_deployed_runtime(recipe, template):
    runtime_version = components_by_name(template)[RUNTIME]["ComponentVersion"]
    assert recipe["ComponentDependencies"] == {
        RUNTIME: {"VersionRequirement": f"={runtime_version}", "DependencyType": "HARD"}}


def test_the_model_has_no_install_step(recipe):
    """Install runs before dependencies are ready (nucleus Lifecycle.handleCurrentStateNew): on a first
    deployment the venv would not exist yet."""
    assert set(recipe["Manifests"][0]["Lifecycle"]) == {"Startup"}


def run_step(step: dict, decompressed: Path, runtime_work: Path, cwd: Path) -> subprocess.CompletedProcess:
    """The step as the nucleus runs it: recipe variables replaced, its Setenv, `sh -c` in the work folder
    (`cwd`, the component's own: {work:path})."""
    def interpolate(text: str) -> str:
        return (text.replace("{artifacts:decompressedPath}", str(decompressed))
                .replace(f"{{{RUNTIME}:work:path}}", str(runtime_work)).replace("{work:path}", str(cwd)))

    assert not re.search(r"\{[^}]*\}", interpolate(step["Script"])), "a recipe variable this test does not know"
    env = {"PATH": os.environ["PATH"], **{name: interpolate(value) for name, value in step["Setenv"].items()}}
    return subprocess.run(["sh", "-c", interpolate(step["Script"])], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=step["Timeout"])


@pytest.fixture
def device(tmp_path, trained_model_dir) -> tuple[Path, Path, Path]:
    """(decompressed path with the model zip unarchived as Greengrass does, the runtime's work folder
    whose venv is this test's venv, the model component's own work folder)."""
    decompressed, runtime_work, work = tmp_path / "decompressed", tmp_path / "runtime-work", tmp_path / "work"
    with zipfile.ZipFile(trained_model_dir / "rain_model.zip") as archive:
        archive.extractall(decompressed / "rain_model")
    runtime_work.mkdir()
    (runtime_work / "venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    work.mkdir()
    return decompressed, runtime_work, work


def test_the_startup_step_passes_the_built_model_and_serves_it(startup, device, template):
    decompressed, _, work = device
    completed = run_step(startup, *device)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.startswith("self-test passed: rain-")
    # The inference function's MODEL_DIR is this link: it now names the artifact that passed.
    assert (work / "serving").resolve() == (decompressed / "rain_model").resolve()
    inference = components_by_name(template)["com.rainedge.Inference"]
    model_dir = inference["ComponentLambdaParameters"]["EnvironmentVariables"]["MODEL_DIR"]
    assert model_dir == "/greengrass/v2/work/com.rainedge.RainModel/serving"


def test_the_startup_step_fails_an_inverted_candidate(startup, device):
    decompressed = device[0]
    golden_file = decompressed / "rain_model" / "selftest.json"
    golden = json.loads(golden_file.read_text())
    for model in golden["models"].values():
        model["expected"] = [1.0 - p for p in model["expected"]]
    golden_file.write_text(json.dumps(golden))
    served_before = device[2] / "previous-model"
    served_before.mkdir()
    (device[2] / "serving").symlink_to(served_before, target_is_directory=True)
    completed = run_step(startup, *device)
    assert completed.returncode == 1
    (line,) = completed.stdout.splitlines()
    assert line.startswith("self-test failed: instantaneous: golden row 0 gave ")
    # The model that passed before goes on being served.
    assert (device[2] / "serving").resolve() == served_before.resolve()


def test_synth_refuses_a_model_zip_without_its_self_test(tmp_path, trained_model_dir):
    """An artifact from before the self-test (or one stripped of it) would fail its Startup on every device."""
    model_zip = tmp_path / "rain_model.zip"
    with zipfile.ZipFile(trained_model_dir / "rain_model.zip") as built, zipfile.ZipFile(model_zip, "w") as copy:
        for member in built.namelist():
            if member != "selftest.json":
                copy.writestr(member, built.read(member))
    with pytest.raises(ModelArtifactError, match=r"carries no on-device self-test \(it lacks selftest.json\)"):
        model_version(model_zip)
    assert model_version(trained_model_dir / "rain_model.zip").startswith("rain-")
