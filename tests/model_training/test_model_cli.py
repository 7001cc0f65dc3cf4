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

from device_code.model import INSTANTANEOUS, TREND

EVALUATE_KEYS = {"n", "positive_rate", "roc_auc", "pr_auc", "brier", "ece", "f1", "accuracy", "precision", "recall"}
HEADER = "temperature,humidity,pressure,rain\n"
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


def test_evaluate_without_times_uses_the_instantaneous_model_and_reproduces_its_training_metrics(
    capsys, trained_model_dir, test_split_csv, metadata
):
    result = evaluate_json(capsys, trained_model_dir / "rain_model.zip", test_split_csv)
    assert result["model"] == INSTANTANEOUS
    assert result["rows_by_model"] == {TREND: 0, INSTANTANEOUS: result["n"]}
    expected = metadata["models"][INSTANTANEOUS]["metrics"]["network"]["test"]
    for key in EVALUATE_KEYS | {"threshold"}:
        assert result[key] == pytest.approx(expected[key], abs=1e-4), key
    assert result["model_version"] == metadata["version"]


def test_evaluate_with_times_and_stations_uses_the_trend_model_where_history_covers(
    capsys, model_folder, test_split_timed_csv, metadata
):
    """Three airports in one file: each station's rows are its own history, as on a device."""
    result = evaluate_json(capsys, model_folder, test_split_timed_csv)
    assert result["model"] == TREND
    assert result["threshold"] == metadata["models"][TREND]["threshold"]
    rows = result["rows_by_model"]
    # The file starts on Oct 1: each station's first day has no 24 h history yet.
    assert rows[TREND] + rows[INSTANTANEOUS] == result["n"] and 3 * 24 <= rows[INSTANTANEOUS] < 3 * 24 + 100
    trend, expected = result["by_model"][TREND], metadata["models"][TREND]["metrics"]["network"]["test"]
    for key in ("roc_auc", "pr_auc", "ece", "f1"):
        assert trend[key] == pytest.approx(expected[key], abs=0.01), key
    assert result["roc_auc"] >= 0.95 and result["pr_auc"] >= 0.60 and result["ece"] <= 0.02


def test_evaluate_trend_rows_do_not_depend_on_row_order_or_other_stations(capsys, model_folder, test_split, tmp_path):
    one_station = test_split[test_split["origin"] == "JFK"].rename(columns={"time_hour": "sampled_at"})
    in_order, shuffled = tmp_path / "in_order.csv", tmp_path / "shuffled.csv"
    one_station.to_csv(in_order, index=False)
    one_station.sample(frac=1.0, random_state=1).to_csv(shuffled, index=False)
    def rounded(result: dict) -> dict:  # summation order may differ in the last bit
        return json.loads(json.dumps(result), parse_float=lambda text: round(float(text), 9))

    assert rounded(evaluate_json(capsys, model_folder, in_order)) == rounded(evaluate_json(capsys, model_folder, shuffled))


def test_evaluate_accepts_zip_unpacked_folder_and_train_output_folder_alike(
    capsys, trained_model_dir, model_folder, small_csv
):
    results = [
        evaluate_json(capsys, path, small_csv)
        for path in (trained_model_dir / "rain_model.zip", model_folder, trained_model_dir)
    ]
    assert results[0] == results[1] == results[2]
    assert results[0]["n"] == 3 and results[0]["positive_rate"] == pytest.approx(1 / 3)


def test_evaluate_with_the_tensorflow_runtime_matches_litert(capsys, model_folder, small_csv):
    litert = evaluate_json(capsys, model_folder, small_csv)
    saved_model = evaluate_json(capsys, model_folder, small_csv, "--runtime", "tensorflow")
    assert litert["runtime"] == "litert" and saved_model["runtime"] == "tensorflow"
    for key in EVALUATE_KEYS:  # same decisions; continuous scores within the runtimes' 1e-5 agreement
        assert saved_model[key] == pytest.approx(litert[key], abs=1e-5), key


def test_evaluate_text_output_lists_every_metric(capsys, model_folder, small_csv):
    assert main(["evaluate", "--model", str(model_folder), "--csv", str(small_csv)]) == 0
    out = capsys.readouterr().out
    for key in EVALUATE_KEYS:
        assert f"  {key} " in out


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("temperature,humidity,rain\n12,97,1\n", "lacks column(s) ['pressure']"),
        (HEADER + "12,wet,1000,1\n", "column 'humidity' has 1 missing or non-numeric value(s), first on data row 1: 'wet'"),
        (HEADER + "12,97,,1\n", "column 'pressure' has 1 missing or non-numeric value(s), first on data row 1: ''"),
        (HEADER + "12,97,1000,inf\n", "column 'rain' has 1 missing or non-numeric"),
        (HEADER + "12,97,1000,2\n", "column 'rain' must be 0 or 1, found '2' on data row 1"),
        (HEADER + "12,97,1000,1\n12,97,1e39,0\n", "column 'pressure' has value(s) beyond the 32-bit floats the models take (|x| > 3.403e+38) on data row 2"),
        ("temperature,humidity,pressure,rain,temperature\n12,97,1000,1,13\n", "has 2 columns named 'temperature'; keep one"),
        ("temperature,rain,humidity,pressure,rain\n12,1,97,1000,0\n", "has 2 columns named 'rain'; keep one"),
        (HEADER + "12,97,1000,1\n500,50,1000,0\n", "column 'temperature' has 1 value(s) outside the sensor's valid range [-40, 85] on data row 2 (first: '500')"),
        (HEADER + "12,-20,1000,1\n12,-20,1000,0\n12,50,1000,0\n", "column 'humidity' has 2 value(s) outside the sensor's valid range [0, 100] on data rows 1, 2 (first: '-20')"),
        ("sampled_at," + HEADER + "yesterday,12,97,1000,1\n", "column 'sampled_at' has 1 value(s) that are not ISO-8601 timestamps on data row 1 (first: 'yesterday')"),
        ("sampled_at,station," + HEADER + "2013-10-01T00:00Z,A,12,97,1000,1\n2013-10-01T00:00Z,B,12,97,1000,1\n"
         "2013-10-01T00:00:00+00:00,A,12,90,1000,0\n", "has several rows for station 'A' at 2013-10-01T00:00:00+00:00: data rows 1, 3"),
        ("", "is empty"),
        (HEADER, "has a header but no rows"),
    ],
    ids=["missing-column", "non-numeric", "blank-value", "infinite", "label-not-binary", "float32-overflow",
         "duplicate-temperature", "duplicate-rain", "too-hot", "negative-humidity", "bad-timestamp",
         "duplicate-reading", "empty-file", "header-only"],
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

    high = json.loads(json.dumps(metadata))
    high["models"]["trend"]["threshold"] = "high"
    (broken / "metadata.json").write_text(json.dumps(high))
    assert "model 'trend' has threshold 'high'; expected a number within (0, 1)" in evaluate_error(capsys, broken, small_csv)

    (broken / "metadata.json").write_text(json.dumps({"version": "x"}))
    assert "KeyError: 'feature_order'" in evaluate_error(capsys, broken, small_csv)

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
    assert retrained["models"] == metadata["models"]


def test_train_refuses_an_out_that_is_a_file_before_training(capsys, tmp_path):
    out = tmp_path / "model"
    out.write_text("not a folder")
    assert main(["train", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"error: --out {out} is a file, not a folder"
    assert out.read_text() == "not a folder"


def test_train_refuses_an_unwritable_out_before_training(capsys, tmp_path):
    parent = tmp_path / "a-file"
    parent.write_text("")
    assert main(["train", "--out", str(parent / "model")]) == 2
    assert capsys.readouterr().err.startswith(f"error: --out {parent / 'model'} is not a writable folder")


def test_train_refuses_to_replace_a_rain_model_folder_that_is_not_an_artifact(capsys, tmp_path):
    unrelated = tmp_path / "rain_model"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("mine")
    assert main(["train", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{unrelated} exists and is not a previous rain model" in err and len(err.strip().splitlines()) == 1
    assert (unrelated / "notes.txt").read_text() == "mine"


def test_train_accepts_an_out_holding_a_previous_artifact(tmp_path, model_folder):
    from model_training.export import check_output_folder

    shutil.copytree(model_folder, tmp_path / "rain_model")
    check_output_folder(tmp_path)  # no error: the previous artifact may be replaced
    (tmp_path / "rain_model" / "extra.txt").write_text("someone else's")
    with pytest.raises(Exception, match="is not a previous rain model"):
        check_output_folder(tmp_path)


def test_evaluate_refuses_a_fifo_as_csv_instead_of_waiting_for_a_writer(capsys, model_folder, tmp_path):
    import threading

    fifo = tmp_path / "readings.csv"
    os.mkfifo(fifo)
    lines: list[str] = []
    worker = threading.Thread(target=lambda: lines.append(evaluate_error(capsys, model_folder, fifo)), daemon=True)
    worker.start()
    worker.join(20)
    assert lines, "evaluate is still waiting for a writer of the FIFO"
    assert f"CSV {fifo}: not a regular file" in lines[0]


@pytest.mark.parametrize("folder", ["device_code", "infra", "infra/fleet_hook", "model_training", "tests",
                                    "Device_Code/models"])
def test_train_refuses_an_out_inside_the_projects_source_folders(capsys, project_root, folder):
    out = project_root / folder

    def contents() -> tuple[list[str], list[str]]:
        return sorted(os.listdir(project_root)), sorted(os.listdir(out)) if out.is_dir() else []
    before = contents()
    assert main(["train", "--out", str(out)]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"error: --out {out} is inside the project's source folder") and "\n" not in line
    assert contents() == before  # refused before anything was created
