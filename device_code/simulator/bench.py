"""`python -m device_code.simulator.bench --model build/model --json FILE`: edge benchmark.

1. Throughput of the whole edge pipeline in the simulator: readings per second from the sensor
   (real bme680 driver, simulated chip) through shadow_writer to an inference prediction in the
   rain shadow, with the sensor sampling as fast as it can.
2. The inference function alone, in a process of its own (so the number is its memory, not the
   simulator's): model load time, per-cycle latency (weather document -> prediction -> rain shadow
   update) and resident memory.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from device_code import config as env
from device_code.bme680_sensor import Bme680Sensor
from device_code.config import load_inference_config, load_sensor_config, load_shadow_writer_config
from device_code.contracts import RAIN_SHADOW, READINGS_TOPIC, shadow_topic
from device_code.inference import InferenceService
from device_code.sensor import SensorService
from device_code.shadow_writer import ShadowWriter

from .__main__ import resolve_model_dir
from .chip import SimulatedBme680
from .core import standalone_environment
from .greengrass import LocalGreengrass

THING = "rainedge-bench-core"
START = datetime(2013, 11, 1, tzinfo=timezone.utc)


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


def environment(model_dir: Path) -> dict[str, str]:
    """Inputs never go stale here: the clock steps one second per read, at any rate."""
    return standalone_environment(THING, model_dir, **{env.LOG_LEVEL: "WARNING", env.MAX_INPUT_AGE_S: "1e9"})


def pipeline_throughput(model_dir: Path, readings: int) -> dict[str, float]:
    env, clock, greengrass = environment(model_dir), SteppingClock(), LocalGreengrass()
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


def inference_cycles(model_dir: Path, cycles: int) -> dict[str, float]:
    """Runs in its own process (see main): only what the inference function imports."""
    env, clock, greengrass = environment(model_dir), SteppingClock(), LocalGreengrass()
    began = time.perf_counter()
    service = InferenceService(load_inference_config(env), greengrass, clock)
    service.heartbeat()
    load_ms = (time.perf_counter() - began) * 1000
    rss_after_load = _memory_mib("VmRSS")
    latencies = []
    for cycle in range(cycles):
        document = {"state": {"reported": {"temperature": 10.0 + cycle % 7, "humidity": 60.0 + cycle % 40,
                                           "pressure": 1000.0 + cycle % 30,
                                           "sampled_at": clock.now().isoformat()}}}
        started = time.perf_counter()
        service.evaluate(document)
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return {"runtime": service.model.runtime, "cycles": cycles, "model_load_ms": round(load_ms, 1),
            "cycle_ms_p50": round(statistics.median(latencies), 3),
            "cycle_ms_p95": round(latencies[int(0.95 * len(latencies))], 3),
            "cycle_ms_max": round(latencies[-1], 3),
            "rss_mib_after_load": rss_after_load, "rss_mib_peak": _memory_mib("VmHWM")}


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
        print(json.dumps(inference_cycles(model_dir, args.cycles)))
        return 0
    child = subprocess.run([sys.executable, "-m", "device_code.simulator.bench", "--model", str(model_dir),
                            "--cycles", str(args.cycles), "--inference-only"],
                           capture_output=True, text=True, check=True)
    results = {"pipeline": pipeline_throughput(model_dir, args.readings),
               "inference": json.loads(child.stdout.strip().splitlines()[-1])}
    pipeline, inference = results["pipeline"], results["inference"]
    print("edge benchmark (device_code)")
    print(f"  pipeline sensor -> shadow_writer -> inference (simulator, one process): "
          f"{pipeline['readings_per_second']:.0f} readings/s "
          f"({pipeline['readings']} readings, {pipeline['predictions']} predictions, {pipeline['seconds']} s)")
    print(f"  inference function ({inference['runtime']}, own process): model load {inference['model_load_ms']} ms; "
          f"per cycle p50 {inference['cycle_ms_p50']} ms, p95 {inference['cycle_ms_p95']} ms, "
          f"max {inference['cycle_ms_max']} ms over {inference['cycles']} cycles")
    print(f"  inference function RSS: {inference['rss_mib_after_load']} MiB after model load, "
          f"peak {inference['rss_mib_peak']} MiB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
