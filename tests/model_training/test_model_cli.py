"""`python -m model_training evaluate|card|train` end to end, including every evaluate error path."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from model_training.cli import main

EVALUATE_KEYS = {"n", "positive_rate", "roc_auc", "pr_auc", "threshold", "f1", "accuracy", "precision", "recall"}
QUIET_TF = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "model_training", *args], cwd=cwd, env=QUIET_TF, capture_output=True, text=True
    )


def evaluate_json(capsys, model: Path, csv: Path, *extra: str) -> dict:
    assert main(["evaluate", "--model", str(model), "--csv", str(csv), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def evaluate_error(capsys, model: Path, csv: Path) -> str:
    """Run evaluate expecting failure; return its single stderr line."""
    assert main(["evaluate", "--model", str(model), "--csv", str(csv)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture()
def small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "small.csv"
    path.write_text("temperature,humidity,pressure,rain\n12,97,1000,1\n25,40,1025,0\n18,60,1015,0\n")
    return path


def test_evaluate_json_reproduces_the_training_metrics_on_the_test_split(
    capsys, trained_model_dir, test_split_csv, metadata
):
    result = evaluate_json(capsys, trained_model_dir / "rain_model.zip", test_split_csv)
    assert EVALUATE_KEYS <= set(result)
    expected = metadata["metrics"]["network"]["test"]
    for key in EVALUATE_KEYS:
        assert result[key] == pytest.approx(expected[key], abs=1e-4), key
    assert result["model_version"] == metadata["version"]


def test_evaluate_accepts_zip_unpacked_folder_and_train_output_folder_alike(
    capsys, trained_model_dir, model_folder, small_csv
):
    results = [
        evaluate_json(capsys, path, small_csv)
        for path in (trained_model_dir / "rain_model.zip", model_folder, trained_model_dir)
    ]
    assert results[0] == results[1] == results[2]
    assert results[0]["n"] == 3 and results[0]["positive_rate"] == pytest.approx(1 / 3)


def test_evaluate_with_the_savedmodel_runtime_matches_litert(capsys, model_folder, small_csv):
    litert = evaluate_json(capsys, model_folder, small_csv)
    saved_model = evaluate_json(capsys, model_folder, small_csv, "--runtime", "savedmodel")
    assert saved_model["runtime"] == "savedmodel"
    assert {k: saved_model[k] for k in EVALUATE_KEYS} == {k: litert[k] for k in EVALUATE_KEYS}


def test_evaluate_text_output_lists_every_metric(capsys, model_folder, small_csv):
    assert main(["evaluate", "--model", str(model_folder), "--csv", str(small_csv)]) == 0
    out = capsys.readouterr().out
    for key in EVALUATE_KEYS:
        assert f"  {key} " in out


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("temperature,humidity,rain\n12,97,1\n", "lacks column(s) ['pressure']"),
        ("temperature,humidity,pressure,rain\n12,wet,1000,1\n", "column 'humidity' has 1 missing or non-numeric value(s), first on data row 1: 'wet'"),
        ("temperature,humidity,pressure,rain\n12,97,,1\n", "column 'pressure' has 1 missing or non-numeric value(s), first on data row 1: ''"),
        ("temperature,humidity,pressure,rain\n12,97,1000,inf\n", "column 'rain' has 1 missing or non-numeric"),
        ("temperature,humidity,pressure,rain\n12,97,1000,2\n", "column 'rain' must be 0 or 1, found '2' on data row 1"),
        ("", "is empty"),
        ("temperature,humidity,pressure,rain\n", "has a header but no rows"),
    ],
    ids=["missing-column", "non-numeric", "blank-value", "infinite", "label-not-binary", "empty-file", "header-only"],
)
def test_evaluate_rejects_bad_csv_naming_the_problem(capsys, model_folder, tmp_path, content, expected):
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    assert expected in evaluate_error(capsys, model_folder, csv)


def test_evaluate_rejects_a_csv_that_does_not_exist(capsys, model_folder, tmp_path):
    assert "does not exist" in evaluate_error(capsys, model_folder, tmp_path / "nope.csv")


def test_evaluate_rejects_unreadable_models(capsys, model_folder, metadata, small_csv, tmp_path):
    not_a_zip = tmp_path / "model.zip"
    not_a_zip.write_text("not a zip")
    assert "is not a zip file" in evaluate_error(capsys, not_a_zip, small_csv)

    assert "does not exist" in evaluate_error(capsys, tmp_path / "missing.zip", small_csv)

    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()
    assert "holds no metadata.json" in evaluate_error(capsys, empty_folder, small_csv)

    zip_without_metadata = tmp_path / "no_metadata.zip"
    with zipfile.ZipFile(zip_without_metadata, "w") as archive:
        archive.write(model_folder / "model.tflite", "model.tflite")
    assert "has no metadata.json at its root" in evaluate_error(capsys, zip_without_metadata, small_csv)

    broken = tmp_path / "broken"
    shutil.copytree(model_folder, broken)
    (broken / "model.tflite").write_bytes(b"\x00" * 64)
    assert "model.tflite" in evaluate_error(capsys, broken, small_csv)

    (broken / "metadata.json").write_text(json.dumps({**metadata, "threshold": "high"}))
    assert "has threshold 'high'; expected a number in [0, 1]" in evaluate_error(capsys, broken, small_csv)

    (broken / "metadata.json").write_text(json.dumps({"version": "x"}))
    assert "lacks keys ['feature_order', 'threshold', 'valid_ranges']" in evaluate_error(capsys, broken, small_csv)

    (broken / "metadata.json").write_text("{not json")
    assert "metadata.json" in evaluate_error(capsys, broken, small_csv)


def test_errors_exit_non_zero_with_one_line_from_the_command_line(project_root, model_folder, tmp_path):
    csv = tmp_path / "no_rain.csv"
    csv.write_text("temperature,humidity,pressure\n12,97,1000\n")
    completed = run_module("evaluate", "--model", str(model_folder), "--csv", str(csv), cwd=project_root)
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.strip().splitlines() == [
        f"error: CSV {csv} lacks column(s) ['rain']; required: ['temperature', 'humidity', 'pressure', 'rain']"
    ]


def test_card_prints_the_model_card(project_root, trained_model_dir, metadata):
    completed = run_module("card", "--model", str(trained_model_dir), cwd=project_root)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == (trained_model_dir / "model_card.md").read_text()
    assert metadata["version"] in completed.stdout


@pytest.mark.slow
def test_training_is_deterministic_and_the_version_follows_the_content(project_root, tmp_path, metadata):
    """Retrains once: same code and seed must give the same weights, hence the same version."""
    completed = run_module("train", "--out", str(tmp_path), cwd=project_root)
    assert completed.returncode == 0, completed.stderr
    retrained = json.loads((tmp_path / "rain_model" / "metadata.json").read_text())
    assert retrained["version"] == metadata["version"], "build/model is stale? run `make train`"
    assert retrained["metrics"] == metadata["metrics"]
