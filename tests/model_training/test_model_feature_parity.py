"""No training/serving skew: the same readings through the training path (model_training.data on
a station's hourly table) and through the device path (ReadingHistory fed one reading at a time,
then RainModel.predict, as the inference function will) give the same inputs and predictions."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from device_code.contracts import Reading
from device_code.features import TREND_INPUTS, Series, covered, trend_inputs
from device_code.history import ReadingHistory
from device_code.model import INSTANTANEOUS, TREND, load_model
from model_training.data import trend_frame


@pytest.fixture(scope="module")
def three_days(observations) -> pd.DataFrame:
    """JFK, 2013-11-25 .. 27: rain on several hours (real data)."""
    jfk = observations[(observations["origin"] == "JFK") & (observations["time_hour"] >= "2013-11-25")
                       & (observations["time_hour"] < "2013-11-28")]
    assert jfk["rain"].sum() > 3
    return jfk.reset_index(drop=True)


def device_predictions(model, readings: list[Reading], hourly_times) -> dict:
    """Feed every reading through the history as the device does; predict at the hourly ones."""
    history = ReadingHistory(None)
    predictions = {}
    for reading in readings:
        if reading.sampled_at in hourly_times:
            predictions[reading.sampled_at] = model.predict(reading, history.series())
            predictions[reading.sampled_at, "inputs"] = trend_inputs(Series.from_readings([reading]), history.series())
        history.add(reading, reading.sampled_at)
    return predictions


def training_predictions(model, table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    inputs = trend_frame(table)
    rows = covered({name: inputs[name].to_numpy() for name in TREND_INPUTS})
    probability = model.run(INSTANTANEOUS, {name: table[name].to_numpy() for name in ("temperature", "humidity", "pressure")})
    probability[rows] = model.run(TREND, {name: inputs[name].to_numpy()[rows] for name in TREND_INPUTS})
    return inputs, probability


def as_readings(table: pd.DataFrame) -> list[Reading]:
    return [Reading(row.temperature, row.humidity, row.pressure, row.time_hour.to_pydatetime())
            for row in table.itertuples()]


@pytest.mark.parametrize("minutes_between_readings", [60, 5], ids=["hourly", "every-5-minutes"])
def test_training_and_device_paths_agree(model_folder, three_days, minutes_between_readings):
    model = load_model(model_folder)
    hourly = as_readings(three_days)
    readings = list(hourly)
    if minutes_between_readings < 60:  # the device samples in between the hours as well
        for before, after in zip(hourly, hourly[1:]):
            for minute in range(minutes_between_readings, 60, minutes_between_readings):
                share = minute / 60
                readings.append(Reading(*(getattr(before, name) + share * (getattr(after, name) - getattr(before, name))
                                          for name in ("temperature", "humidity", "pressure")),
                                        sampled_at=before.sampled_at + timedelta(minutes=minute)))
        readings.sort(key=lambda reading: reading.sampled_at)
    on_device = device_predictions(model, readings, {reading.sampled_at for reading in hourly})
    inputs, probability = training_predictions(model, three_days)

    used = [on_device[reading.sampled_at].model for reading in hourly]
    assert used.count(TREND) == len(hourly) - 24  # the first day builds the history
    for index, reading in enumerate(hourly):
        device_inputs = on_device[reading.sampled_at, "inputs"]
        for name in TREND_INPUTS:
            np.testing.assert_allclose(device_inputs[name][0], inputs[name].iloc[index], rtol=0, atol=1e-9,
                                       err_msg=f"{name} at {reading.sampled_at}")
        assert on_device[reading.sampled_at].probability == pytest.approx(probability[index], abs=1e-6)
