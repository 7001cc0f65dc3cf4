"""The rain models' inputs, computed from a time-ordered series of readings: the one definition.

Training (`model_training`, on hourly airport observations) and the inference function (on the
device's own reading history) both call `instantaneous_inputs` and `trend_inputs`, so the two
cannot drift apart. numpy only: this runs on the Pi.

A past value "1 h ago" is the reading nearest to exactly one hour before, provided it lies within
LAG_TOLERANCE_S of that moment; when any needed past value is missing the trend inputs of that
reading are NaN and the caller falls back to the instantaneous model. Readings may come at any
rate (hourly in training, every few seconds or minutes on the device): only readings near the
lag points are used, so the features mean the same at every sampling rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Protocol

import numpy as np

from .contracts import FEATURES as QUANTITIES  # temperature (degC), humidity (%RH), pressure (hPa, sea level)

# Past moments the trend model looks at: 1, 2 and 3 hours ago (short-term change and its range)
# and 24 hours ago (day-to-day change, free of the daily temperature/humidity cycle).
RANGE_LAGS_S = (3600, 7200, 10800)
DAY_LAG_S = 86400
LAG_TOLERANCE_S = 900
# How far back the history must reach for the trend model.
HISTORY_WINDOW_S = DAY_LAG_S + LAG_TOLERANCE_S

INSTANTANEOUS_INPUTS = QUANTITIES
TREND_INPUTS = (
    *QUANTITIES,
    *(f"{name}_change_1h" for name in QUANTITIES),
    *(f"{name}_change_3h" for name in QUANTITIES),
    *(f"{name}_change_24h" for name in QUANTITIES),
    # The highest and lowest of the values now, 1 h, 2 h and 3 h ago, relative to now (both >= 0).
    *(f"{name}_3h_max_minus_now" for name in QUANTITIES),
    *(f"{name}_now_minus_3h_min" for name in QUANTITIES),
)


class HasReadingValues(Protocol):
    temperature: float
    humidity: float
    pressure: float
    sampled_at: datetime


@dataclass(frozen=True)
class Series:
    """Readings of one station sorted by time: `at` in seconds since the epoch (UTC), float64 arrays."""

    at: np.ndarray
    temperature: np.ndarray
    humidity: np.ndarray
    pressure: np.ndarray

    def __post_init__(self) -> None:
        lengths = {len(getattr(self, name)) for name in ("at", *QUANTITIES)}
        if len(lengths) != 1:
            raise ValueError(f"series arrays differ in length: {sorted(lengths)}")
        if np.any(np.diff(self.at) < 0):
            raise ValueError("series is not sorted by time")

    @classmethod
    def from_readings(cls, readings: Iterable[HasReadingValues]) -> "Series":
        rows = sorted((r.sampled_at.timestamp(), r.temperature, r.humidity, r.pressure) for r in readings)
        columns = np.array(rows, dtype=np.float64).reshape(-1, 4).T
        return cls(*columns)

    def __len__(self) -> int:
        return len(self.at)


def instantaneous_inputs(now: Series) -> dict[str, np.ndarray]:
    """The instantaneous model's inputs: the readings themselves."""
    return {name: getattr(now, name) for name in INSTANTANEOUS_INPUTS}


def values_ago(now: Series, history: Series, lag_s: float) -> dict[str, np.ndarray]:
    """For each reading in `now`, the history's values `lag_s` earlier (nearest reading within
    LAG_TOLERANCE_S); NaN where the history has no reading that close."""
    wanted = now.at - lag_s
    if len(history) == 0:
        return {name: np.full(len(now), np.nan) for name in QUANTITIES}
    after = np.clip(np.searchsorted(history.at, wanted), 0, len(history) - 1)
    before = np.clip(after - 1, 0, len(history) - 1)
    nearest = np.where(np.abs(history.at[before] - wanted) <= np.abs(history.at[after] - wanted), before, after)
    close_enough = np.abs(history.at[nearest] - wanted) <= LAG_TOLERANCE_S
    return {name: np.where(close_enough, getattr(history, name)[nearest], np.nan) for name in QUANTITIES}


def trend_inputs(now: Series, history: Series) -> dict[str, np.ndarray]:
    """The trend model's inputs for each reading in `now`, past values looked up in `history`
    (which may be `now` itself, as in training). NaN where the history does not cover them."""
    recent = [values_ago(now, history, lag) for lag in RANGE_LAGS_S]
    day_ago = values_ago(now, history, DAY_LAG_S)
    one_hour_ago, _, three_hours_ago = recent
    inputs: dict[str, np.ndarray] = {}
    for name in QUANTITIES:
        current = getattr(now, name)
        window = np.stack([current, *(past[name] for past in recent)])
        inputs[name] = current
        inputs[f"{name}_change_1h"] = current - one_hour_ago[name]
        inputs[f"{name}_change_3h"] = current - three_hours_ago[name]
        inputs[f"{name}_change_24h"] = current - day_ago[name]
        # max/min of a column holding NaN is NaN: an incomplete window stays uncovered.
        inputs[f"{name}_3h_max_minus_now"] = window.max(axis=0) - current
        inputs[f"{name}_now_minus_3h_min"] = current - window.min(axis=0)
    return {name: inputs[name] for name in TREND_INPUTS}


def covered(inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Rows whose inputs are all known (the history covered every lag)."""
    return np.all(np.isfinite(np.stack(list(inputs.values()))), axis=0)
