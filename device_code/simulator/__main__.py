"""`python -m device_code.simulator`: the synthesized deployment on a laptop, with the real handlers and model.

Reads the template `make synth` wrote to cdk.out/, replays hourly weather from the model's held-out
test period through a simulated BME680, runs the deployment's Lambda components (sensor ->
shadow_writer -> inference) on a local Greengrass stand-in that enforces the deployment's IPC
access control, syncs the shadows ShadowManager is configured to sync to a moto server on
127.0.0.1 as far as the core's IoT policy allows, then prints a summary and writes a plot.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from device_code.config import ConfigError
from device_code.drift import DRIFTING
from device_code.model import INSTANTANEOUS, TREND, load_model
from device_code.sea_level import ALTITUDE_RANGE_M
from infra import config as app_config
from infra.synthesized import SynthesizedStack, TemplateError

from .adaptation_demo import run_adaptation_demo
from .cloud import CloudUnavailable, MotoCloud
from .core import SimulatedCore
from .dashboard import DASHBOARD_FILE, ShadowDocuments, render
from .fleet import run_fleet
from .replay import load_test_period, select_window
from .report import DemoReport
from .simulation import EdgeSimulation, SimulationSettings, Step, resolve_model_dir

DEFAULT_PLOT = Path("build/demo/rain_demo.png")
# The project whose cdk.json says where each device stands (stationAltitudes), as device-setup reads it.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Each simulated core runs four threads; beyond this the process spends its time switching them.
MAX_FLEET = 500
# A warmer chip still reads within the BME680's -40..85 °C for every replayed hour (NYC stays below 40 °C).
SENSOR_WARMING_RANGE_C = (0.0, 40.0)


def within(bounds: tuple[float, float], unit: str):
    """An argparse type: a number within `bounds`, else one line naming them."""
    low, high = bounds

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not {unit} from {low:g} to {high:g}")
        return value
    return parse


altitude = within(ALTITUDE_RANGE_M, "metres above sea level")
warming = within(SENSOR_WARMING_RANGE_C, "degrees Celsius")


def station_altitudes(project_root: Path) -> dict[str, float]:
    """stationAltitudes of the project's cdk.json (validated as for the stack)."""
    try:
        config = app_config.RainEdgeConfig.from_context(app_config.read_cdk_context(project_root))
    except app_config.ConfigError as error:
        raise SystemExit(f"simulator: cdk.json: {error}") from None
    return dict(config.station_altitudes)


def utc_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is no ISO-8601 time such as 2013-11-01T00:00") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m device_code.simulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("build/model"), help="trained model (default build/model)")
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"),
                        help="the synthesized cloud assembly to run (default cdk.out, written by `make synth`)")
    parser.add_argument("--thing", help="the listed core device to simulate (default: the template's first)")
    parser.add_argument("--devices", type=int,
                        help="simulate a fleet of N cores provisioned by claim instead, each replaying its own "
                             "airport and window; prints one line per device")
    parser.add_argument("--origin", default="JFK", help="airport whose observations are replayed (EWR, JFK, LGA)")
    parser.add_argument("--start", type=utc_time,
                        help="first replayed hour, e.g. 2013-11-01T00:00 (default: of the windows starting at "
                             "00:00 UTC, the one whose share of rainy hours is closest to the test period's)")
    parser.add_argument("--altitude", type=altitude,
                        help="station altitude of the simulated core(s) in metres: its station file holds it and "
                             "the chip measures the pressure there (default: the core's stationAltitudes entry in "
                             "cdk.json, else 0)")
    parser.add_argument("--sensor-warming", type=warming, default=0.0,
                        help="degrees the chip reads above the air, as on a Pi that heats its own sensor; the "
                             "drift monitor should call such a station drifting (default 0)")
    parser.add_argument("--steps", type=int, default=96, help="replayed hours = readings (default 96)")
    parser.add_argument("--step-seconds", type=float, default=0.25,
                        help="wall-clock seconds per replayed hour (default 0.25)")
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help=f"PNG to write (default {DEFAULT_PLOT})")
    parser.add_argument("--adapt-demo", action="store_true",
                        help="instead: one biased station of --origin over the whole test period, adapted on its "
                             "first 30 %% of hours by `make adapt`'s steps, and its scores before and after")
    parser.add_argument("--moto-port", type=int, default=0,
                        help="port of the moto server on 127.0.0.1 (default: any free port)")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2")
    if not 0.01 <= args.step_seconds <= 60:
        parser.error("--step-seconds must be within [0.01, 60]")
    if not 0 <= args.moto_port <= 65535:
        parser.error("--moto-port must be within [0, 65535]")
    if args.devices is not None and not 1 <= args.devices <= MAX_FLEET:
        parser.error(f"--devices must be within [1, {MAX_FLEET}]")
    if args.devices is not None and args.thing:
        parser.error("--devices simulates provisioned cores; --thing picks a listed one: give one of them")
    if args.adapt_demo and args.devices is not None:
        parser.error("--adapt-demo runs one station; leave --devices out")
    problem = unwritable(args.plot) if args.devices is None else None  # a fleet run writes no plot
    if problem:
        parser.error(f"--plot {args.plot}: {problem}")
    return args


def unwritable(plot: Path) -> str | None:
    """Why the PNG cannot be written there (checked before the run, not after it), or None."""
    if plot.suffix.lower() != ".png":
        return "name a .png file"
    try:
        plot.parent.mkdir(parents=True, exist_ok=True)
        existed = plot.exists()
        with plot.open("ab"):
            pass
        if not existed:
            plot.unlink()
    except OSError as error:
        return f"cannot be written ({error.strerror}: {error.filename}): pick another path"
    return None


def progress_line(step: Step) -> str:
    row, reading, prediction = step.observation, step.reading, step.prediction
    verdict = "RAIN" if prediction["raining"] else "dry "
    actual = "rain" if row.rain else "dry "
    mark = "ok" if bool(prediction["raining"]) == bool(row.rain) else "--"
    return (f"{row.time:%Y-%m-%d %H:%M}  {reading['temperature']:6.2f} °C {reading['humidity']:6.2f} %RH "
            f"{reading['pressure']:7.2f} hPa  ->  P(rain) {prediction['probability']:.3f} {verdict} "
            f"({prediction['model']:<13})  actual {actual} {mark}  ({step.latency_s * 1000:.1f} ms)")


def summary(sim: EdgeSimulation, report: DemoReport, cloud_matches: dict[str, bool], wall_s: float) -> list[str]:
    done = [s for s in sim.steps if s.prediction is not None]
    latencies = sorted(s.latency_s * 1000 for s in done)
    model = done[0].prediction if done else {}
    lines = [
        f"replayed {len(sim.steps)} hours ({sim.steps[0].observation.time:%Y-%m-%d %H:%M} .. "
        f"{sim.steps[-1].observation.time:%Y-%m-%d %H:%M} UTC) in {wall_s:.1f} s",
        f"model {model.get('model_version')} on {model.get('runtime')}",
        *report.lines(),
    ]
    lines += drift_lines(done)
    if latencies:
        lines.append(f"reading -> prediction latency: median {statistics.median(latencies):.1f} ms, "
                     f"max {latencies[-1]:.1f} ms")
    refused = sim.sync.refused if sim.sync else {}
    for name, same in cloud_matches.items():
        if name in refused:
            lines.append(f"cloud shadow {name!r} NOT synced: {refused[name]}")
        else:
            lines.append(f"cloud shadow {name!r} equals local shadow: {'yes' if same else 'NO'}")
    for call in dict.fromkeys(sim.core.refusals()):
        lines.append(f"IPC refused: {call.component} may not {call.operation} on {call.resource}")
    for topic, count in sim.unheard_topics().items():
        lines.append(f"local topic {topic!r} reached no subscriber and no event source ({count} message(s))")
    return lines


def drift_lines(done: list[Step]) -> list[str]:
    """The rain shadow's drift verdict at the end of the run, and when it first said drifting."""
    drifts = [step.prediction.get("drift") or {} for step in done]
    if not drifts:
        return []
    last = drifts[-1]
    inputs = last.get("inputs") or {}
    detail = ", ".join(f"{name} shift {values['shift']:+.2f} σ, {values['outside']:.0%} outside the training range"
                       for name, values in inputs.items())
    lines = [f"input drift: {last.get('verdict')} after {last.get('hours')} hours" + (f" ({detail})" if detail else "")]
    first = next((index for index, drift in enumerate(drifts) if drift.get("verdict") == DRIFTING), None)
    if first is not None:
        lines.append(f"input drift: first reported drifting at reading {first + 1}")
    return lines


def write_plot(sim: EdgeSimulation, report: DemoReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [s.observation.time for s in sim.steps]
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.fill_between(times, 0, [s.observation.rain for s in sim.steps], step="mid", alpha=0.25,
                    color="tab:blue", label="observed rain")
    if report.times:
        ax.plot(report.times, report.instantaneous, linestyle=":", color="tab:gray",
                label="instantaneous model alone")
        ax.plot(report.times, report.probability, color="tab:red", linewidth=1, alpha=0.6)
        for name, marker, face in ((TREND, "o", "tab:red"), (INSTANTANEOUS, "s", "none")):
            mine = report.model == name
            if mine.any():
                ax.plot(np.array(report.times)[mine], report.probability[mine], linestyle="none", marker=marker,
                        markersize=4, markerfacecolor=face, color="tab:red", label=f"P(rain) shown, {name} model")
        ax.step(report.times, report.threshold, where="mid", linestyle="--", color="grey",
                label="threshold of the model that answered")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("probability / rain")
    ax.set_title(f"rainedge simulator: {sim.steps[0].observation.time:%Y-%m-%d} .. "
                 f"{sim.steps[-1].observation.time:%Y-%m-%d} (held-out test period), station at {sim.altitude_m:g} m")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.autofmt_xdate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def start_cloud(port: int) -> MotoCloud:
    try:
        return MotoCloud(port).start()
    except CloudUnavailable as error:
        raise SystemExit(f"simulator: {error}: pick another --moto-port or leave it out") from None


def simulate_fleet(stack: SynthesizedStack, settings: SimulationSettings, args: argparse.Namespace) -> int:
    print(f"rainedge simulator: a fleet of {args.devices} cores provisioned by claim from {args.cdk_out}, "
          f"{args.steps} hours each, {args.step_seconds} s per hour")
    # One line per device: the functions' start-up warnings of N cores would drown them.
    settings = dataclasses.replace(settings, log_level="ERROR")
    with start_cloud(args.moto_port) as cloud:
        try:
            run = run_fleet(stack, settings, args.devices, args.steps, cloud,
                            timeout_s=args.steps * args.step_seconds * 10 + 30)
        except ConfigError as error:
            raise SystemExit(f"simulator: a function of the deployment cannot start: {error}") from None
    for line in run.lines():
        print(line)
    return 0 if run.healthy() else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    model_dir = resolve_model_dir(args.model)
    settings = SimulationSettings(model_dir, args.step_seconds, altitude_m=args.altitude,
                                  station_altitudes=station_altitudes(PROJECT_ROOT),
                                  sensor_warming_c=args.sensor_warming)
    try:
        stack = SynthesizedStack.load(args.cdk_out)
    except OSError as error:
        raise SystemExit(f"simulator: cannot read {error.filename} ({error.strerror}): point --cdk-out at the "
                         "folder `make synth` writes (cdk.out)") from None
    except TemplateError as error:
        raise SystemExit(f"simulator: {error}") from None
    try:
        if args.devices is not None:
            return simulate_fleet(stack, settings, args)
        core = SimulatedCore.listed(stack, args.thing or next(iter(stack.thing_names()), ""))
        if args.adapt_demo:
            with start_cloud(args.moto_port) as cloud:
                return run_adaptation_demo(core, load_test_period(args.origin), settings, cloud, PROJECT_ROOT)
        window = select_window(load_test_period(args.origin), args.start, args.steps)
    except (TemplateError, ValueError) as error:
        raise SystemExit(f"simulator: {error}") from None
    print(f"rainedge simulator: {args.steps} hours at {args.origin}, {args.step_seconds} s per hour; "
          f"model {model_dir}")
    print(f"deployment: {', '.join(core.components)} from {args.cdk_out}, as core {core.thing_name}; "
          f"simulator sets {', '.join(sorted(settings.overrides(Path())))}")
    source = "--altitude" if args.altitude is not None else (
        "stationAltitudes in cdk.json" if core.thing_name in settings.station_altitudes else "no stationAltitudes entry")
    print(f"station file: altitude {settings.altitude_of(core.thing_name):g} m ({source}); the chip measures the "
          "pressure there" + (f", and reads {args.sensor_warming:g} °C above the air" if args.sensor_warming else ""))
    with start_cloud(args.moto_port) as cloud:
        cloud.create_thing(core.thing_name)
        print(f"cloud: moto server at {cloud.endpoint}")
        sim = EdgeSimulation(window, settings, core, cloud.client("iot-data"))
        documents = ShadowDocuments.attach(sim)
        timeout_per_step = 10 * args.step_seconds + 5
        began = datetime.now()
        try:
            sim.start()
            for step in sim.steps:
                if not sim.wait_for(lambda: step.prediction is not None, timeout_per_step):
                    print(f"{step.observation.time:%Y-%m-%d %H:%M}  no prediction within {timeout_per_step:.0f} s")
                    if sim.predicted_steps() == 0:
                        print("stopping: not one prediction came; the summary says what the core refused")
                        break
                    continue
                print(progress_line(step))
        except ConfigError as error:
            raise SystemExit(f"simulator: a function of the deployment cannot start: {error}") from None
        finally:
            synced = sim.stop()
        wall_s = (datetime.now() - began).total_seconds()
        matches = sim.cloud_matches(cloud, synced)
    report = DemoReport.of(sim.steps, load_model(model_dir))
    print()
    for line in summary(sim, report, matches, wall_s):
        print(line)
    try:
        write_plot(sim, report, args.plot)
        render(documents.recorded, stack, args.plot.with_name(DASHBOARD_FILE))
    except OSError as error:
        raise SystemExit(f"simulator: could not write the plot {args.plot}: {error.strerror}") from None
    print(f"plot: {args.plot}; dashboard: {args.plot.with_name(DASHBOARD_FILE)}")
    return 0 if sim.healthy(matches) else 1


if __name__ == "__main__":
    sys.exit(main())
