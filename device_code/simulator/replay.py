"""Replayed weather: hourly observations from the model's held-out test period, on an accelerated clock."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

HOUR_S = 3600.0


class SimClock:
    """Simulated UTC time running `speed` times faster than the wall clock (a runtime.Clock)."""

    def __init__(self, start: datetime, speed: float) -> None:
        self.start, self.speed = start, speed
        self._origin = time.perf_counter()

    def monotonic(self) -> float:
        return (time.perf_counter() - self._origin) * self.speed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.monotonic())

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(max(0.0, seconds) / self.speed)


@dataclass(frozen=True)
class Observation:
    time: datetime
    temperature: float
    humidity: float
    pressure: float
    rain: int


def load_test_period(origin: str) -> list[Observation]:
    """The held-out test split (Oct-Dec 2013) for one airport, one row per hour."""
    from model_training.data import load_observations, split_by_time

    _, _, test = split_by_time(load_observations())
    origins = sorted(test["origin"].unique())
    if origin not in origins:
        raise ValueError(f"--origin {origin!r} is not in the data: use one of {', '.join(origins)}")
    rows = test[test["origin"] == origin]
    return [Observation(row.time_hour.to_pydatetime(), float(row.temperature), float(row.humidity),
                        float(row.pressure), int(row.rain)) for row in rows.itertuples()]


def rainiest_window_start(observations: list[Observation], hours: int) -> int:
    """Index of the first window of `hours` rows with the most rain onsets (dry -> rain); earliest wins."""
    onsets = [int(b.rain and not a.rain) for a, b in zip(observations, observations[1:])]
    best, best_count = 0, -1
    for start in range(0, max(1, len(observations) - hours + 1)):
        count = sum(onsets[start:start + hours - 1])
        if count > best_count:
            best, best_count = start, count
    return best


def select_window(observations: list[Observation], start: datetime | None, hours: int) -> list[Observation]:
    if start is None:
        index = rainiest_window_start(observations, hours)
    else:
        index = next((i for i, row in enumerate(observations) if row.time >= start), None)
        if index is None:
            raise ValueError(f"--start {start.isoformat()} is after the test period "
                             f"({observations[0].time:%Y-%m-%d} .. {observations[-1].time:%Y-%m-%d})")
    window = observations[index:index + hours]
    if len(window) < hours:
        raise ValueError(f"only {len(window)} hours from {window[0].time:%Y-%m-%d %H:%M} to the end of the "
                         f"test period; use a smaller --steps or an earlier --start")
    return window


class WeatherReplay:
    """The environment of the simulated chip: one observation per published reading, in order.

    Advancing on each reading (not on the clock) keeps one reading per replayed hour even when a
    busy machine delays the sensor thread.
    """

    def __init__(self, window: list[Observation]) -> None:
        self.window = window
        self.position = 0

    def environment(self) -> tuple[float, float, float]:
        row = self.window[min(self.position, len(self.window) - 1)]
        return row.temperature, row.humidity, row.pressure

    def advance(self) -> None:
        self.position += 1
