"""device_code.features on hand-made series: lags, tolerance, gaps, the 3-hour range."""
from __future__ import annotations

import numpy as np
import pytest

from device_code.features import (HISTORY_WINDOW_S, LAG_TOLERANCE_S, TREND_INPUTS, Series, covered,
                                  instantaneous_inputs, trend_inputs, values_ago)

HOUR = 3600.0


def hourly(hours: int, temperature=None, humidity=None, pressure=None, start: float = 0.0) -> Series:
    at = start + HOUR * np.arange(hours, dtype=float)
    steady = np.ones(hours)
    return Series(at, np.asarray(temperature if temperature is not None else 10 * steady, dtype=float),
                  np.asarray(humidity if humidity is not None else 50 * steady, dtype=float),
                  np.asarray(pressure if pressure is not None else 1010 * steady, dtype=float))


def test_the_history_window_reaches_24_hours_plus_the_tolerance():
    assert HISTORY_WINDOW_S == 24 * HOUR + LAG_TOLERANCE_S == 87_300


def test_changes_and_range_on_an_hourly_series():
    pressure = 1000.0 + np.arange(26.0)  # +1 hPa per hour
    humidity = np.full(26, 60.0)
    humidity[-3] = 90.0  # two hours ago a humid spike
    series = hourly(26, humidity=humidity, pressure=pressure)
    inputs = trend_inputs(series, series)
    last = {name: values[-1] for name, values in inputs.items()}
    assert list(inputs) == list(TREND_INPUTS)
    assert last["pressure"] == 1025.0
    assert last["pressure_change_1h"] == 1.0 and last["pressure_change_3h"] == 3.0 and last["pressure_change_24h"] == 24.0
    assert last["pressure_3h_max_minus_now"] == 0.0 and last["pressure_now_minus_3h_min"] == 3.0
    assert last["humidity_3h_max_minus_now"] == 30.0 and last["humidity_now_minus_3h_min"] == 0.0
    assert last["temperature_change_24h"] == 0.0
    # The first 24 hours lack a reading a day earlier: not covered.
    assert covered(inputs).tolist() == [False] * 24 + [True] * 2


def test_a_past_reading_within_the_tolerance_stands_in_for_the_exact_hour():
    history = Series(np.array([-HOUR - 600.0, -HOUR + 1000.0]), np.array([5.0, 6.0]), np.array([40.0, 41.0]),
                     np.array([1000.0, 1001.0]))
    now = Series(np.array([0.0]), np.array([7.0]), np.array([42.0]), np.array([1002.0]))
    assert values_ago(now, history, HOUR)["temperature"].tolist() == [5.0]  # 600 s off beats 1000 s off
    history_too_far = Series(history.at[1:], history.temperature[1:], history.humidity[1:], history.pressure[1:])
    assert np.isnan(values_ago(now, history_too_far, HOUR)["temperature"][0])  # 1000 s > 900 s tolerance


def test_a_gap_in_the_history_leaves_the_readings_around_it_uncovered():
    series = hourly(30)
    keep = np.ones(30, dtype=bool)
    keep[27] = False  # one missing hour
    gappy = Series(series.at[keep], series.temperature[keep], series.humidity[keep], series.pressure[keep])
    flags = covered(trend_inputs(gappy, gappy))
    # Rows at hours 28 (needs 27 as 1 h ago) and 29 (needs 27 as 2 h ago) lose coverage; 24..26 keep it.
    assert flags[-5:].tolist() == [True, True, True, False, False]


def test_empty_history_covers_nothing_and_instantaneous_inputs_are_the_reading():
    now = hourly(1)
    empty = Series(*(np.array([]) for _ in range(4)))
    assert not covered(trend_inputs(now, empty)).any()
    assert {name: values.tolist() for name, values in instantaneous_inputs(now).items()} == {
        "temperature": [10.0], "humidity": [50.0], "pressure": [1010.0]}


def test_series_must_be_sorted_and_of_one_length():
    with pytest.raises(ValueError, match="not sorted"):
        Series(np.array([2.0, 1.0]), np.ones(2), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="differ in length"):
        Series(np.array([1.0]), np.ones(2), np.ones(2), np.ones(2))
