"""How the device's drift verdict (device_code.drift) behaves on held-out weather, as a table.

    python -m model_training.drift_check --model build/model [--json FILE]

Every week-long window of the held-out months (validation and test, Sep-Dec 2013) that starts at
midnight, per airport, is replayed hour by hour through a fresh DriftMonitor with the artifact's
baseline, in three scenarios: as recorded; the sensor 15 °C warmer than the air (a Pi heating its own
sensor, or a station in another climate); a station at 1,500 m whose altitude is not set (its station
pressure taken for sea-level pressure). For each: the share of verdicts that say drifting, the share of
windows that say it within the week, and the reading at which they first do.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median
from typing import Callable

import pandas as pd

from device_code.contracts import Reading
from device_code.drift import DRIFTING, OK, WINDOW_HOURS, DriftMonitor, InputBaseline
from device_code.sea_level import sea_level_pressure

HOUR = pd.Timedelta(hours=1)
UNSET_ALTITUDE_M = 1500.0
WARMER_C = 15.0
Scenario = Callable[[float, float, float], tuple[float, float, float]]  # recorded -> what the device reads


def _unset_altitude(temperature: float, humidity: float, pressure: float) -> tuple[float, float, float]:
    return temperature, humidity, pressure / sea_level_pressure(1.0, UNSET_ALTITUDE_M, temperature)


SCENARIOS: dict[str, Scenario] = {
    "as recorded": lambda t, h, p: (t, h, p),
    f"{WARMER_C:g} °C warmer": lambda t, h, p: (t + WARMER_C, h, p),
    f"at {UNSET_ALTITUDE_M:,.0f} m, altitude not set": _unset_altitude,
}


@dataclass(frozen=True)
class ScenarioResult:
    scenario: str
    windows: int
    verdicts: int
    drifting_verdicts: int
    first_drifting: list[int]  # reading number (1 = the window's first) of each window that drifted

    @property
    def windows_drifting(self) -> int:
        return len(self.first_drifting)

    @property
    def median_first(self) -> float | None:
        return median(self.first_drifting) if self.first_drifting else None


def week_windows(hours: pd.DataFrame) -> list[list]:
    """Per airport, each WINDOW_HOURS run of consecutive hours starting at midnight."""
    windows = []
    for _, rows in hours.sort_values("time_hour").groupby("origin"):
        rows = list(rows.itertuples())
        for start, row in enumerate(rows[:len(rows) - WINDOW_HOURS + 1]):
            last = rows[start + WINDOW_HOURS - 1]
            if row.time_hour.hour == 0 and last.time_hour - row.time_hour == (WINDOW_HOURS - 1) * HOUR:
                windows.append(rows[start:start + WINDOW_HOURS])
    return windows


def run_scenario(name: str, reads: Scenario, baselines: dict[str, InputBaseline], windows: list[list]) -> ScenarioResult:
    verdicts = drifting = 0
    firsts = []
    for window in windows:
        monitor, first = DriftMonitor(baselines), None
        for number, row in enumerate(window, start=1):
            temperature, humidity, pressure = reads(row.temperature, row.humidity, row.pressure)
            monitor.add(Reading(temperature, humidity, pressure, row.time_hour.to_pydatetime()))
            verdict = monitor.summary()["verdict"]
            if verdict in (DRIFTING, OK):
                verdicts += 1
            if verdict == DRIFTING:
                drifting += 1
                first = first or number
        if first:
            firsts.append(first)
    return ScenarioResult(name, len(windows), verdicts, drifting, firsts)


def check(baselines: dict[str, InputBaseline], held_out: pd.DataFrame) -> list[ScenarioResult]:
    windows = week_windows(held_out)
    return [run_scenario(name, reads, baselines, windows) for name, reads in SCENARIOS.items()]


def table(results: list[ScenarioResult]) -> list[str]:
    lines = [f"{'scenario':<30} {'windows':>7} {'drifting verdicts':>18} {'windows drifting':>17} "
             f"{'first at reading (median, max)':>31}"]
    for r in results:
        first = f"{r.median_first:g}, {max(r.first_drifting)}" if r.first_drifting else "-"
        lines.append(f"{r.scenario:<30} {r.windows:>7} {r.drifting_verdicts:>8} of {r.verdicts:<7} "
                     f"{r.windows_drifting:>8} of {r.windows:<6} {first:>31}")
    return lines


def main(argv: list[str] | None = None) -> int:
    from device_code.model import ModelUnavailable, read_metadata
    from model_training.artifact import ModelArtifactError, opened_artifact
    from model_training.data import load_observations, split_by_time

    parser = argparse.ArgumentParser(prog="python -m model_training.drift_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("build/model"), help="trained model (default build/model)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    try:
        with opened_artifact(args.model) as folder:
            baselines = read_metadata(folder).baselines
    except (ModelArtifactError, ModelUnavailable) as error:
        raise SystemExit(f"drift_check: {error}") from None
    if baselines is None:
        raise SystemExit(f"drift_check: {args.model} carries no input baseline: train it again with `make train`")
    _, validation, test = split_by_time(load_observations())
    results = check(baselines, pd.concat([validation, test]))
    for line in table(results):
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) | {"windows_drifting": r.windows_drifting,
                                                        "median_first": r.median_first} for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
