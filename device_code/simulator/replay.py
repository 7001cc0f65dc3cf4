"""Replayed weather: hourly observations from the model's held-out test period, on an accelerated clock."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from device_code.sea_level import sea_level_pressure

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


def representative_window_start(observations: list[Observation], hours: int) -> int:
    """Index of the default window: of the windows of `hours` hours that start at 00:00 UTC, the one
    whose share of rainy hours is closest to the whole period's (the earliest of equals). A rule that
    picks neither the rainiest nor the driest stretch."""
    period_rate = sum(row.rain for row in observations) / len(observations)
    starts = [index for index, row in enumerate(observations[:len(observations) - hours + 1])
              if row.time.hour == 0 and row.time.minute == 0] or [0]
    return min(starts, key=lambda start: (abs(sum(row.rain for row in observations[start:start + hours]) / hours
                                              - period_rate), start))


def select_window(observations: list[Observation], start: datetime | None, hours: int) -> list[Observation]:
    if start is None:
        index = representative_window_start(observations, hours)
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
    busy machine delays the sensor thread. The observations give sea-level pressure; a chip at
    `altitude_m` measures the station pressure that reduces to it (the reduction is proportional to
    the pressure, so the inverse is a division by the reduction of 1 hPa). A chip `warming_c` warmer
    than the air (a Pi heating its own sensor) reads the temperature that much higher; the air, and so
    the pressure, are as observed.
    """

    def __init__(self, window: list[Observation], altitude_m: float = 0.0, warming_c: float = 0.0) -> None:
        self.window, self.altitude_m, self.warming_c = window, altitude_m, warming_c
        self.position = 0

    def environment(self) -> tuple[float, float, float]:
        row = self.window[min(self.position, len(self.window) - 1)]
        return (row.temperature + self.warming_c, row.humidity,
                row.pressure / sea_level_pressure(1.0, self.altitude_m, row.temperature))

    def advance(self) -> None:
        self.position += 1
