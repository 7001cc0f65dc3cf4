"""Benchmark the two runtimes of one model artifact, each in a fresh Python process.

    python -m model_training.bench --model build/model [--json FILE] [--calls N]

Per runtime: import time, load time of both models (device_code.model.load_model, as on the
device), first-call latency, p50/p99 latency of one prediction by each model, and the process's
peak RSS. A trend prediction is what the device does per reading: the features from a full day of
history (device_code.features) plus the trend model. A fresh process per runtime keeps
TensorFlow's import and memory from leaking into the LiteRT numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from device_code.model import RUNTIME_NAMES, ModelUnavailable, read_metadata
from model_training.artifact import ModelArtifactError, opened_artifact

DEFAULT_CALLS = 2000
# What the Raspberry Pi 3B+ (1 GiB RAM, shared with Greengrass' JVM) can afford per inference.
GOALS = {"peak_rss_mib": 150.0, "instantaneous_p99_ms": 5.0, "trend_p99_ms": 5.0}
# One plausible reading, and a day of history every 5 minutes (what the device's history keeps)
# ending 5 minutes before it; the values do not change the cost of a dense network.
READING = {"temperature": 12.0, "humidity": 93.0, "pressure": 1004.0}
HISTORY_STEP_S = 300


def _latencies(predict, calls: int):
    import numpy as np

    latencies = np.empty(calls)
    for index in range(calls):
        started = time.perf_counter()
        predict()
        latencies[index] = time.perf_counter() - started
    return float(np.percentile(latencies, 50)) * 1e3, float(np.percentile(latencies, 99)) * 1e3


def measure(runtime: str, folder: Path, calls: int) -> dict:
    """Runs inside the fresh worker process."""
    import resource
    from datetime import datetime, timezone

    started = time.perf_counter()
    if runtime == "tensorflow":
        import tensorflow  # noqa: F401  (the import cost is what is measured)
    else:
        import ai_edge_litert.interpreter  # noqa: F401
    import numpy as np

    from device_code.contracts import Reading
    from device_code.features import HISTORY_WINDOW_S, Series
    from device_code.model import load_model

    imported = time.perf_counter()
    model = load_model(folder, runtime)
    loaded = time.perf_counter()
    reading = Reading(sampled_at=datetime(2013, 11, 5, 12, tzinfo=timezone.utc), **READING)
    now = reading.sampled_at.timestamp()
    at = np.arange(now - HISTORY_WINDOW_S, now, HISTORY_STEP_S, dtype=np.float64)
    history = Series(at, *(np.full(len(at), READING[name]) for name in ("temperature", "humidity", "pressure")))
    no_history = Series.from_readings([])  # a first start: the instantaneous model answers
    first = model.predict(reading, history)
    first_called = time.perf_counter()
    if first.model != "trend":
        raise RuntimeError(f"a full day of history should select the trend model, got {first.model}")
    instantaneous_p50, instantaneous_p99 = _latencies(lambda: model.predict(reading, no_history), calls)
    trend_p50, trend_p99 = _latencies(lambda: model.predict(reading, history), calls)
    # ru_maxrss is in KiB on Linux.
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "runtime": runtime,
        "import_s": imported - started,
        "load_s": loaded - imported,
        "first_call_ms": (first_called - loaded) * 1e3,
        "instantaneous_p50_ms": instantaneous_p50,
        "instantaneous_p99_ms": instantaneous_p99,
        "trend_p50_ms": trend_p50,
        "trend_p99_ms": trend_p99,
        "calls": calls,
        "peak_rss_mib": peak_rss_mib,
        "trend_probability": first.probability,
        "instantaneous_probability": model.predict(reading, no_history).probability,
    }


def run_worker(runtime: str, folder: Path, calls: int) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run(
        [sys.executable, "-m", "model_training.bench", "--worker", runtime, "--model", str(folder), "--calls", str(calls)],
        capture_output=True,
        text=True,
        env=env,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{runtime} benchmark failed: {completed.stderr.strip().splitlines()[-1:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def goal_check(run: dict) -> dict[str, bool]:
    return {name: run[name] <= limit for name, limit in GOALS.items()}


def format_table(report: dict) -> str:
    header = (f"{'runtime':<11}{'import s':>10}{'load s':>9}{'1st ms':>8}{'inst p50':>10}{'inst p99':>10}"
              f"{'trend p50':>11}{'trend p99':>11}{'peak MiB':>10}  goals")
    lines = [f"model {report['model_version']} on {report['machine']}, one reading per call, {report['calls']} calls "
             "(trend: features from a day of history + trend model)", header]
    for run in report["runs"]:
        goals = ", ".join(f"{name} {'ok' if met else 'MISSED'}" for name, met in run["goals_met"].items())
        lines.append(
            f"{run['runtime']:<11}{run['import_s']:>10.3f}{run['load_s']:>9.3f}{run['first_call_ms']:>8.2f}"
            f"{run['instantaneous_p50_ms']:>10.3f}{run['instantaneous_p99_ms']:>10.3f}"
            f"{run['trend_p50_ms']:>11.3f}{run['trend_p99_ms']:>11.3f}{run['peak_rss_mib']:>10.0f}  {goals}"
        )
    limits = ", ".join(f"{name} <= {limit:g}" for name, limit in GOALS.items())
    lines.append(f"goals (Raspberry Pi 3B+ budget): {limits}")
    return "\n".join(lines)


def benchmark(model_path: Path, calls: int) -> dict:
    with opened_artifact(model_path) as folder:
        metadata = read_metadata(folder)
        runs = [run_worker(runtime, folder, calls) for runtime in RUNTIME_NAMES]
    for run in runs:
        run["goals_met"] = goal_check(run)
    return {
        "model_version": metadata.version,
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "calls": calls,
        "goals": GOALS,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_training.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="rain_model.zip, its folder, or build/model")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--calls", type=int, default=DEFAULT_CALLS, help=f"timed calls (default {DEFAULT_CALLS})")
    parser.add_argument("--worker", choices=RUNTIME_NAMES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    if args.worker:
        print(json.dumps(measure(args.worker, args.model, args.calls)))
        return 0
    try:
        report = benchmark(args.model, args.calls)
    except (ModelArtifactError, ModelUnavailable, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    publish(format_table(report), report, args.json)
    return 0


def publish(table: str, report: dict, json_path: Path | None) -> None:
    """Print a benchmark's table, and write its report as JSON when asked."""
    print(table)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written to {json_path}")


if __name__ == "__main__":
    sys.exit(main())
