"""The benchmark runs both runtimes in fresh processes and reports every documented column."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from model_training.bench import main

COLUMNS = {"import_s", "load_s", "first_call_ms", "instantaneous_p50_ms", "instantaneous_p99_ms", "trend_p50_ms",
           "trend_p99_ms", "peak_rss_mib"}


def test_bench_table_and_json_cover_both_runtimes(project_root, model_folder, metadata, tmp_path):
    report_path = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, "-m", "model_training.bench", "--model", str(model_folder), "--json", str(report_path), "--calls", "20"],
        cwd=project_root,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(report_path.read_text())
    assert report["model_version"] == metadata["version"]
    runs = {run["runtime"]: run for run in report["runs"]}
    assert set(runs) == {"litert", "tensorflow"}
    for runtime, run in runs.items():
        assert COLUMNS <= set(run), runtime
        assert all(run[column] >= 0 for column in COLUMNS)
        for model in ("instantaneous", "trend"):
            assert run[f"{model}_p50_ms"] <= run[f"{model}_p99_ms"]
        assert runtime in completed.stdout
    # Same models, same reading and history, two runtimes: same answers.
    for model in ("instantaneous", "trend"):
        assert runs["litert"][f"{model}_probability"] == pytest.approx(runs["tensorflow"][f"{model}_probability"],
                                                                      abs=1e-5)
    # Each ran in its own process: TensorFlow's memory does not show up in the LiteRT run.
    assert runs["litert"]["peak_rss_mib"] < runs["tensorflow"]["peak_rss_mib"]


def test_bench_reports_a_missing_model_in_one_line(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "absent.zip")]) == 2
    assert capsys.readouterr().err.strip() == f"error: model path {tmp_path / 'absent.zip'} does not exist"
