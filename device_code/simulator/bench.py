"""`python -m device_code.simulator.bench --model build/model --json FILE`: edge benchmark.

1. Throughput of the whole edge pipeline in the simulator: readings per second from the sensor
   (real bme680 driver, simulated chip) through shadow_writer to an inference prediction in the
   rain shadow, with the sensor sampling as fast as it can.
2. The inference function alone, in a process of its own (so the number is its memory, not the
   simulator's): model load time, per-cycle latency (weather document -> reading history ->
   prediction -> rain shadow update) and resident memory. One reading a minute (the default
   sampleIntervalSeconds): the first day of cycles is answered by the instantaneous model while
   the history fills, the cycles after it by the trend model; both are timed, each on its own.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from device_code import config as env
from device_code.bme680_sensor import Bme680Sensor
from device_code.config import load_inference_config, load_sensor_config, load_shadow_writer_config
from device_code.contracts import RAIN_SHADOW, READINGS_TOPIC, format_timestamp, shadow_topic
from device_code.features import HISTORY_WINDOW_S
from device_code.inference import InferenceService
from device_code.model import INSTANTANEOUS, TREND
from device_code.sensor import SensorService
from device_code.shadow_writer import ShadowWriter

from .chip import SimulatedBme680
from .core import standalone_environment
from .greengrass import LocalGreengrass
from .simulation import resolve_model_dir

THING = "rainedge-bench-core"
START = datetime(2013, 11, 1, tzinfo=timezone.utc)
# One reading a minute, as the default sampleIntervalSeconds has it.
CYCLE_S = 60


class SteppingClock:
    """Each reading of the time is one second later: timestamps stay strictly increasing at any rate."""

    def __init__(self) -> None:
        self._ticks = itertools.count()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return START + timedelta(seconds=next(self._ticks))

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(seconds)


class SetClock:
    """A clock the benchmark sets to each reading's time."""

    def __init__(self) -> None:
        self.current = START

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(seconds)


def environment(model_dir: Path, folder: Path) -> dict[str, str]:
    """Inputs never go stale here; the reading history lives in `folder`."""
    return standalone_environment(THING, model_dir, **{env.LOG_LEVEL: "WARNING", env.MAX_INPUT_AGE_S: "1e9",
                                                       env.HISTORY_FILE: str(folder / "reading_history.json")})


def pipeline_throughput(model_dir: Path, readings: int, folder: Path) -> dict[str, float]:
    env, clock, greengrass = environment(model_dir, folder), SteppingClock(), LocalGreengrass()
    weather = iter(itertools.cycle([(5.0, 95.0, 1002.0), (18.0, 45.0, 1022.0), (11.0, 80.0, 1010.0)]))
    chip = SimulatedBme680(lambda: next(weather))
    sensor = SensorService(load_sensor_config(env), greengrass, clock,
                           Bme680Sensor(lambda: chip, 0x76).read)
    writer = ShadowWriter(load_shadow_writer_config(env), greengrass, clock, lambda: 0.0)
    greengrass.add_event_source(READINGS_TOPIC, lambda event, context: writer.handle(event))
    inference = InferenceService(load_inference_config(env), greengrass, clock)
    inference.heartbeat()  # load the model and subscribe, as the loop's first step does
    predictions = []
    greengrass.bus.tap(lambda topic, message, at: topic == shadow_topic(THING, RAIN_SHADOW, "update/documents")
                       and message["current"]["state"]["reported"].get("probability") is not None
                       and predictions.append(at))
    began = time.perf_counter()
    for _ in range(readings):
        sensor.sample_once()
    greengrass.bus.drain()
    elapsed = time.perf_counter() - began
    return {"readings": readings, "predictions": len(predictions), "seconds": round(elapsed, 3),
            "readings_per_second": round(readings / elapsed, 1)}


def inference_cycles(model_dir: Path, cycles: int, folder: Path) -> dict:
    """Runs in its own process (see main): only what the inference function imports."""
    env, clock, greengrass = environment(model_dir, folder), SetClock(), LocalGreengrass()
    began = time.perf_counter()
    service = InferenceService(load_inference_config(env), greengrass, clock)
    service.heartbeat()
    load_ms = (time.perf_counter() - began) * 1000
    rss_after_load = _memory_mib("VmRSS")
    latencies: dict[str, list[float]] = {INSTANTANEOUS: [], TREND: []}
    # A day of readings fills the history (instantaneous model), then `cycles` more (trend model).
    for cycle in range(HISTORY_WINDOW_S // CYCLE_S + 1 + cycles):
        clock.current = START + timedelta(seconds=cycle * CYCLE_S)
        pressure = 1000.0 + cycle % 30
        document = {"state": {"reported": {"temperature": 10.0 + cycle % 7, "humidity": 60.0 + cycle % 40,
                                           "pressure": pressure, "sea_level_pressure": pressure,
                                           "sampled_at": format_timestamp(clock.current)}}}
        started = time.perf_counter()
        reported = service.evaluate(document)
        latencies[reported["model"]].append((time.perf_counter() - started) * 1000)
    return {"runtime": service.model.runtime, "model_load_ms": round(load_ms, 1),
            "cycles": {name: _percentiles(values) for name, values in latencies.items()},
            "rss_mib_after_load": rss_after_load, "rss_mib_peak": _memory_mib("VmHWM")}


def _percentiles(milliseconds: list[float]) -> dict[str, float]:
    ordered = sorted(milliseconds)
    return {"count": len(ordered), "p50_ms": round(statistics.median(ordered), 3),
            "p95_ms": round(ordered[int(0.95 * len(ordered))], 3), "max_ms": round(ordered[-1], 3)}


def _memory_mib(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of /proc/self/status, in MiB.

    Both from one source, counted alike: getrusage's ru_maxrss is counted differently and could
    read 0.1 MiB below the VmRSS taken after the load.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no {field} in /proc/self/status")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m device_code.simulator.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("build/model"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--readings", type=int, default=2000)
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--inference-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the warm-up's "no input yet" status is expected
    model_dir = resolve_model_dir(args.model)
    if args.inference_only:
        with tempfile.TemporaryDirectory(prefix="rainedge-bench-") as folder:
            print(json.dumps(inference_cycles(model_dir, args.cycles, Path(folder))))
        return 0
    child = subprocess.run([sys.executable, "-m", "device_code.simulator.bench", "--model", str(model_dir),
                            "--cycles", str(args.cycles), "--inference-only"],
                           capture_output=True, text=True, check=True)
    with tempfile.TemporaryDirectory(prefix="rainedge-bench-") as folder:
        results = {"pipeline": pipeline_throughput(model_dir, args.readings, Path(folder)),
                   "inference": json.loads(child.stdout.strip().splitlines()[-1])}
    pipeline, inference = results["pipeline"], results["inference"]
    print("edge benchmark (device_code)")
    print(f"  pipeline sensor -> shadow_writer -> inference (simulator, one process): "
          f"{pipeline['readings_per_second']:.0f} readings/s "
          f"({pipeline['readings']} readings, {pipeline['predictions']} predictions, {pipeline['seconds']} s)")
    print(f"  inference function ({inference['runtime']}, own process): model load {inference['model_load_ms']} ms; "
          f"one reading a minute")
    for name, cycle in inference["cycles"].items():
        print(f"    {name} model: per cycle p50 {cycle['p50_ms']} ms, p95 {cycle['p95_ms']} ms, max {cycle['max_ms']} ms "
              f"over {cycle['count']} cycles")
    print(f"  inference function RSS: {inference['rss_mib_after_load']} MiB after model load, "
          f"peak {inference['rss_mib_peak']} MiB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
