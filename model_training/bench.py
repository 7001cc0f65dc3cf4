"""Benchmark the two runtimes of one model artifact, each in a fresh Python process.

    python -m model_training.bench --model build/model [--json FILE] [--calls N]

Per runtime: import time, model load time, first-call latency, p50/p99 latency of single-reading
predictions, and the process's peak RSS. A fresh process per runtime keeps TensorFlow's import
and memory from leaking into the LiteRT numbers.
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

from model_training.artifact import RUNTIMES, ModelArtifactError, opened_artifact, read_metadata

DEFAULT_CALLS = 2000
# What the Raspberry Pi 3B+ (1 GiB RAM, shared with Greengrass' JVM) can afford per inference.
GOALS = {"peak_rss_mib": 150.0, "p99_ms": 5.0}
# One plausible reading; the value does not change the cost of a dense network.
READING = {"temperature": 12.0, "humidity": 93.0, "pressure": 1004.0}


def measure(runtime: str, folder: Path, calls: int) -> dict:
    """Runs inside the fresh worker process."""
    import resource

    started = time.perf_counter()
    if runtime == "savedmodel":
        import tensorflow  # noqa: F401  (the import cost is what is measured)
    else:
        import ai_edge_litert.interpreter  # noqa: F401
    import numpy as np

    from model_training.artifact import load_runtime

    imported = time.perf_counter()
    model = load_runtime(folder, runtime)
    loaded = time.perf_counter()
    inputs = {name: np.array([value], dtype=np.float32) for name, value in READING.items()}
    first_probability = float(model.predict(**inputs)[0])
    first_called = time.perf_counter()
    latencies = np.empty(calls)
    for index in range(calls):
        call_started = time.perf_counter()
        model.predict(**inputs)
        latencies[index] = time.perf_counter() - call_started
    # ru_maxrss is in KiB on Linux.
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "runtime": runtime,
        "import_s": imported - started,
        "load_s": loaded - imported,
        "first_call_ms": (first_called - loaded) * 1e3,
        "p50_ms": float(np.percentile(latencies, 50)) * 1e3,
        "p99_ms": float(np.percentile(latencies, 99)) * 1e3,
        "calls": calls,
        "peak_rss_mib": peak_rss_mib,
        "probability": first_probability,
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
    header = f"{'runtime':<11}{'import s':>10}{'load s':>9}{'1st ms':>8}{'p50 ms':>9}{'p99 ms':>9}{'peak MiB':>10}  goals"
    lines = [f"model {report['model_version']} on {report['machine']}, batch 1, {report['calls']} calls", header]
    for run in report["runs"]:
        goals = ", ".join(f"{name} {'ok' if met else 'MISSED'}" for name, met in run["goals_met"].items())
        lines.append(
            f"{run['runtime']:<11}{run['import_s']:>10.3f}{run['load_s']:>9.3f}{run['first_call_ms']:>8.2f}"
            f"{run['p50_ms']:>9.3f}{run['p99_ms']:>9.3f}{run['peak_rss_mib']:>10.0f}  {goals}"
        )
    limits = ", ".join(f"{name} <= {limit:g}" for name, limit in GOALS.items())
    lines.append(f"goals (Raspberry Pi 3B+ budget): {limits}")
    return "\n".join(lines)


def benchmark(model_path: Path, calls: int) -> dict:
    with opened_artifact(model_path) as folder:
        metadata = read_metadata(folder)
        runs = [run_worker(runtime, folder, calls) for runtime in RUNTIMES]
    for run in runs:
        run["goals_met"] = goal_check(run)
    return {
        "model_version": metadata["version"],
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
    parser.add_argument("--worker", choices=RUNTIMES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    if args.worker:
        print(json.dumps(measure(args.worker, args.model, args.calls)))
        return 0
    try:
        report = benchmark(args.model, args.calls)
    except (ModelArtifactError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
