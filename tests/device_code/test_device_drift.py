"""Drift of a device's inputs (device_code.drift), against the baseline the real training run wrote into
the model artifact, on the NYC held-out months (Sep-Dec 2013) as each airport saw them, and on the same
hours read by a sensor 15 °C warmer or at a station whose altitude was not set (model_training.drift_check);
then the verdict's rule on made-up readings."""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_code.contracts import FEATURES, Reading
from device_code.drift import (DRIFTING, MIN_HOURS, OK, OUTSIDE_LIMIT, UNKNOWN, WARMING_UP, WINDOW_HOURS,
                               DriftMonitor, InputBaseline, read_baselines, shift_limit)
from device_code.model import ModelUnavailable, read_metadata
from model_training.drift_check import check, table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def baselines(trained_model_dir):
    return read_metadata(trained_model_dir / "rain_model").baselines


@pytest.fixture(scope="module")
def test_hours():
    from model_training.data import load_observations, split_by_time
    _, _, test = split_by_time(load_observations())
    return {origin: part.sort_values("time_hour") for origin, part in test.groupby("origin")}


@pytest.fixture(scope="module")
def held_out_weeks(baselines):
    """model_training.drift_check on every held-out week (Sep-Dec 2013) of the three airports."""
    from model_training.data import load_observations, split_by_time
    _, validation, test = split_by_time(load_observations())
    return {result.scenario: result for result in check(baselines, pd.concat([validation, test]))}


def verdicts(baselines, hours) -> list[str]:
    """The verdict after each reading of one airport's hours, read as recorded."""
    monitor, found = DriftMonitor(baselines), []
    for row in hours.itertuples():
        monitor.add(Reading(row.temperature, row.humidity, row.pressure, row.time_hour.to_pydatetime()))
        found.append(monitor.summary()["verdict"])
    return found


def test_the_artifact_carries_a_baseline_for_every_input(baselines):
    assert set(baselines) == set(FEATURES)
    # NYC: warmest in summer (the annual cycle's mean is lowest near 1 January: a negative cosine term).
    assert baselines["temperature"].cos < -5 and 0 < baselines["temperature"].residual_std < 10


@pytest.mark.parametrize("airport", ["EWR", "JFK", "LGA"])
def test_the_nyc_test_period_read_on_and_on_never_drifts(baselines, test_hours, airport):
    found = verdicts(baselines, test_hours[airport])
    assert found[:MIN_HOURS - 1] == [WARMING_UP] * (MIN_HOURS - 1)
    assert set(found[MIN_HOURS - 1:]) == {OK}


def test_no_held_out_week_as_recorded_is_ever_called_drifting(held_out_weeks):
    result = held_out_weeks["as recorded"]
    # Each week gives a verdict from its 24th reading on; none of them says drifting.
    assert result.windows > 250 and result.verdicts == result.windows * (WINDOW_HOURS - MIN_HOURS + 1)
    assert result.drifting_verdicts == 0


def test_every_held_out_week_15_degrees_warmer_is_called_drifting_within_the_week(held_out_weeks):
    result = held_out_weeks["15 °C warmer"]
    assert result.windows_drifting == result.windows
    assert min(result.first_drifting) >= MIN_HOURS and max(result.first_drifting) <= WINDOW_HOURS


def test_a_station_at_1500_m_without_its_altitude_drifts_from_the_first_verdict(held_out_weeks):
    result = held_out_weeks["at 1,500 m, altitude not set"]
    assert result.drifting_verdicts == result.verdicts and set(result.first_drifting) == {MIN_HOURS}


def test_the_drift_check_prints_one_row_per_scenario(held_out_weeks):
    lines = table(list(held_out_weeks.values()))
    assert len(lines) == 4 and lines[1].startswith("as recorded") and " 0 of " in lines[1]


@pytest.mark.parametrize("hours", [MIN_HOURS, 48, 100, WINDOW_HOURS])
def test_the_verdict_says_drifting_exactly_beyond_the_shift_limit_of_its_hours(hours):
    limit = shift_limit(hours)
    for shift, expected in ((limit * 0.99, OK), (limit * 1.01, DRIFTING), (-limit * 1.01, DRIFTING)):
        # Mean 10, residual std 2, and a range wide enough that every reading is inside it.
        monitor = DriftMonitor({name: dataclasses.replace(baseline, minimum=-100.0, maximum=100.0)
                                for name, baseline in FLAT.items()})
        for reading in hourly([10.0 + 2.0 * shift] * hours):
            monitor.add(reading)
        assert monitor.summary()["verdict"] == expected, (hours, shift)


def test_the_verdict_says_drifting_once_most_readings_are_outside_the_training_range():
    for outside, expected in ((OUTSIDE_LIMIT - 0.05, OK), (OUTSIDE_LIMIT + 0.05, DRIFTING)):
        count = round(outside * 100)
        # Half of them just above the range, half just below: the mean stays at the baseline's.
        values = [20.5, -0.5] * (count // 2) + [10.0] * (100 - count // 2 * 2)
        monitor = DriftMonitor(FLAT)
        for reading in hourly(values):
            monitor.add(reading)
        assert monitor.summary()["verdict"] == expected, outside


UTC = timezone.utc
FLAT = {name: InputBaseline(mean=10.0, cos=0.0, sin=0.0, residual_std=2.0, minimum=0.0, maximum=20.0)
        for name in FEATURES}


def hourly(values: list[float], start=datetime(2013, 1, 1, tzinfo=UTC)) -> list[Reading]:
    return [Reading(v, v, v, start + timedelta(hours=i)) for i, v in enumerate(values)]


def test_a_reading_seen_twice_or_late_is_counted_once():
    monitor = DriftMonitor(FLAT)
    first, second = hourly([30.0, 10.0])
    for reading in (first, first, second, first):  # event, heartbeat, next, a late copy
        monitor.add(reading)
    summary = monitor.summary()
    assert summary["hours"] == 2
    assert summary["inputs"]["temperature"] == {"shift": 5.0, "outside": 0.5}  # (10 + 0) / 2 sigma; 1 of 2 outside


def test_the_window_keeps_the_last_week_before_the_newest_reading():
    monitor = DriftMonitor(FLAT)
    for reading in hourly([30.0] * 24 + [10.0] * WINDOW_HOURS):
        monitor.add(reading)
    summary = monitor.summary()
    assert summary["hours"] == WINDOW_HOURS and summary["verdict"] == OK
    assert summary["inputs"]["temperature"]["shift"] == 0.0


def test_without_a_baseline_the_verdict_is_unknown_and_nothing_is_kept():
    monitor = DriftMonitor(None)
    monitor.add(hourly([10.0])[0])
    assert monitor.summary() == {"verdict": UNKNOWN, "hours": 0, "inputs": None}


def test_a_malformed_baseline_makes_the_artifact_unusable(trained_model_dir, tmp_path):
    import shutil
    copy = tmp_path / "model"
    shutil.copytree(trained_model_dir / "rain_model", copy)
    metadata = json.loads((copy / "metadata.json").read_text())
    metadata["input_baseline"]["pressure"]["residual_std"] = 0
    (copy / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelUnavailable, match="residual_std"):
        read_metadata(copy)
    assert read_baselines(None) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
                min_size=1, max_size=60),
       st.lists(st.integers(min_value=-400, max_value=400), min_size=1, max_size=60))
def test_any_readings_in_any_order_give_a_summary(values, offsets):
    monitor = DriftMonitor(FLAT)
    start = datetime(2013, 6, 1, tzinfo=UTC)
    for value, offset in zip(values, offsets * len(values)):
        monitor.add(Reading(value, value, value, start + timedelta(hours=offset)))
    summary = monitor.summary()
    assert summary["verdict"] in (OK, DRIFTING, WARMING_UP)
    assert 0 < summary["hours"] <= WINDOW_HOURS
    json.dumps(summary, allow_nan=False)
