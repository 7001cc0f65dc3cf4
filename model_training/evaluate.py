"""Score a model artifact on any labelled CSV, the way the device would predict those readings.

Columns: temperature (degC), humidity (%RH), pressure (hPa, sea level), rain (0/1); optionally
sampled_at (ISO-8601; without a zone it is taken as UTC), station, and reference_temperature /
reference_pressure (what a nearby reference station, e.g. the official one whose rain reports give the
labels, measured in the same hour; blank where it has none: `adapt` estimates the sensor's offsets from
them). With sampled_at, each
station's rows form its reading history and every row is scored by the trend model when that
history covers the window, by the instantaneous model otherwise (as on the device); without it,
by the instantaneous model. Other columns are ignored.

With an adaptation (device_code.adaptation, fitted by `adapt`), every row is scored on its inputs
corrected by the adaptation's offsets, and the rows its model scored take the adapted probability and
the adaptation's threshold; the other rows keep their model's threshold.
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from device_code.features import Series
from device_code.files import FileMissing, UnusableFile, read_json, read_text
from device_code.model import INSTANTANEOUS, TREND, RainModel, load_model, read_metadata
from device_code.adaptation import MAX_ADAPTATION_BYTES, apply_adaptation, offset_inputs, validate_adaptation
from model_training.artifact import opened_artifact
from model_training.data import FEATURES, LABEL, station_series
from model_training.metrics import classification_metrics

REQUIRED_COLUMNS = (*FEATURES, LABEL)
TIME_COLUMN, STATION_COLUMN = "sampled_at", "station"
# Optional: a nearby reference station's readings of the same hour, for the inputs whose sensor offset
# a reference can show (relative humidity differs between sites with their temperature, so it has none).
REFERENCE_COLUMNS = {"temperature": "reference_temperature", "pressure": "reference_pressure"}
FLOAT32_MAX = float(np.finfo(np.float32).max)
# How many offending rows an error message lists.
ROWS_NAMED = 5
# The CSV is read whole, once: a year of readings a minute is about 40 MB.
MAX_CSV_BYTES = 256 * 1024 * 1024


class EvaluationInputError(Exception):
    """The CSV cannot be scored: the message names the file, column, row and problem."""


def _rows(mask: np.ndarray) -> str:
    rows = (np.flatnonzero(mask) + 1).tolist()
    named = ", ".join(map(str, rows[:ROWS_NAMED]))
    return f"data row {named}" if len(rows) == 1 else f"data rows {named}{', ...' if len(rows) > ROWS_NAMED else ''}"


def _csv_text(csv_path: Path) -> str:
    """The CSV's text: a regular file, opened without blocking (a FIFO would wait for a writer), at most
    MAX_CSV_BYTES of UTF-8."""
    try:
        return read_text(csv_path, MAX_CSV_BYTES)
    except FileMissing:
        raise EvaluationInputError(f"CSV {csv_path} does not exist") from None
    except UnusableFile as problem:
        raise EvaluationInputError(f"CSV {problem}") from None


def _header(text: str, csv_path: Path) -> list[str]:
    try:
        return next(csv.reader(io.StringIO(text, newline="")), [])
    except csv.Error as error:
        raise EvaluationInputError(f"CSV {csv_path} cannot be read: {error}") from error


def _numeric(raw: pd.DataFrame, column: str, csv_path: Path, blank_allowed: bool = False) -> pd.Series:
    values = pd.to_numeric(raw[column], errors="coerce").astype(float)
    bad = ~np.isfinite(values.to_numpy())
    if blank_allowed:
        bad &= raw[column].fillna("").str.strip().ne("").to_numpy()
    if bad.any():
        first = int(bad.argmax())
        raise EvaluationInputError(
            f"CSV {csv_path} column {column!r} has {int(bad.sum())} missing or non-numeric value(s), first on "
            f"data row {first + 1}: {'' if pd.isna(raw[column].iloc[first]) else raw[column].iloc[first]!r}"
        )
    too_large = np.abs(values.to_numpy()) > FLOAT32_MAX
    if too_large.any():
        raise EvaluationInputError(
            f"CSV {csv_path} column {column!r} has value(s) beyond the 32-bit floats the models take "
            f"(|x| > {FLOAT32_MAX:.4g}) on {_rows(too_large)}"
        )
    return values


def read_labelled_csv(csv_path: Path, valid_ranges: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """The CSV's readings, label and (when present) parsed sampled_at and station, validated."""
    text = _csv_text(csv_path)
    header = _header(text, csv_path)
    counts = Counter(header)
    for column in (*REQUIRED_COLUMNS, TIME_COLUMN, STATION_COLUMN):
        if counts[column] > 1:
            raise EvaluationInputError(f"CSV {csv_path} has {counts[column]} columns named {column!r}; keep one")
    try:
        # Read as text so error messages quote the cell exactly as written in the file.
        raw = pd.read_csv(io.StringIO(text), dtype=str)
    except pd.errors.EmptyDataError as error:
        raise EvaluationInputError(f"CSV {csv_path} is empty") from error
    except pd.errors.ParserError as error:
        raise EvaluationInputError(f"CSV {csv_path} cannot be read: {error}") from error
    missing = [column for column in REQUIRED_COLUMNS if column not in raw.columns]
    if missing:
        raise EvaluationInputError(f"CSV {csv_path} lacks column(s) {missing}; required: {list(REQUIRED_COLUMNS)}")
    if raw.empty:
        raise EvaluationInputError(f"CSV {csv_path} has a header but no rows")
    df = pd.DataFrame({column: _numeric(raw, column, csv_path) for column in REQUIRED_COLUMNS})
    not_binary = ~df[LABEL].isin([0, 1]).to_numpy()
    if not_binary.any():
        first = int(not_binary.argmax())
        raise EvaluationInputError(
            f"CSV {csv_path} column {LABEL!r} must be 0 or 1, found {raw[LABEL].iloc[first]!r} on data row {first + 1}"
        )
    for name, column in REFERENCE_COLUMNS.items():
        if column in raw.columns:
            df[column] = _numeric(raw, column, csv_path, blank_allowed=True)
    checked = [(column, column) for column in FEATURES] + [(name, column) for name, column in REFERENCE_COLUMNS.items()
                                                           if column in df.columns]
    for name, column in checked:
        low, high = valid_ranges[name]
        outside = ~(df[column].between(low, high) | df[column].isna()).to_numpy()
        if outside.any():
            raise EvaluationInputError(
                f"CSV {csv_path} column {column!r} has {int(outside.sum())} value(s) outside the sensor's valid range "
                f"[{low:g}, {high:g}] on {_rows(outside)} (first: {raw[column].iloc[int(outside.argmax())]!r})"
            )
    if TIME_COLUMN in raw.columns:
        df[TIME_COLUMN] = _timestamps(raw[TIME_COLUMN], csv_path)
        if STATION_COLUMN in raw.columns:
            df[STATION_COLUMN] = raw[STATION_COLUMN].fillna("")
        _refuse_duplicate_readings(df, csv_path)
    return df


def _timestamps(text: pd.Series, csv_path: Path) -> pd.Series:
    parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise EvaluationInputError(
            f"CSV {csv_path} column {TIME_COLUMN!r} has {int(bad.sum())} value(s) that are not ISO-8601 timestamps "
            f"on {_rows(bad)} (first: {'' if pd.isna(text.iloc[int(bad.argmax())]) else text.iloc[int(bad.argmax())]!r})"
        )
    return parsed


def _refuse_duplicate_readings(df: pd.DataFrame, csv_path: Path) -> None:
    keys = [STATION_COLUMN, TIME_COLUMN] if STATION_COLUMN in df.columns else [TIME_COLUMN]
    repeated = df.duplicated(keys, keep=False).to_numpy()
    if repeated.any():
        first = df.iloc[int(repeated.argmax())]
        where = f"station {first[STATION_COLUMN]!r} at " if STATION_COLUMN in df.columns else ""
        same = (df[keys] == first[keys]).all(axis=1).to_numpy()
        raise EvaluationInputError(
            f"CSV {csv_path} has several rows for {where}{first[TIME_COLUMN].isoformat()}: {_rows(same)}"
        )


def score(model: RainModel, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's probability and the model that made it, as the device would predict."""
    if TIME_COLUMN not in df.columns:
        # No times, no history: the times of the series are never read.
        readings = Series(np.zeros(len(df)), *(df[name].to_numpy(dtype=np.float64) for name in FEATURES))
        return model.predict_series(readings, history=None)
    probability = np.empty(len(df))
    used = np.empty(len(df), dtype=object)
    station = STATION_COLUMN if STATION_COLUMN in df.columns else None
    for positions, series in station_series(df, TIME_COLUMN, station):
        probability[positions], used[positions] = model.predict_series(series, series)
    return probability, used


def read_adaptation(path: Path, model_version: str) -> dict:
    """The adaptation file at `path`, valid for the model `model_version`."""
    try:
        adaptation = read_json(path, MAX_ADAPTATION_BYTES)
    except UnusableFile as problem:
        raise EvaluationInputError(f"adaptation {problem}") from None
    problem = validate_adaptation(adaptation, model_version)
    if problem:
        raise EvaluationInputError(f"adaptation {path}: {problem}")
    return adaptation


def corrected(adaptation: dict, df: pd.DataFrame) -> pd.DataFrame:
    """The readings as the models see them under `adaptation` (its input offsets added)."""
    return df.assign(**offset_inputs(adaptation, {name: df[name] for name in FEATURES}))


def adapted_scores(model: RainModel, adaptation: dict, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's probability under `adaptation` and the model that made it, as the device would predict:
    the models score the corrected readings, and the rows of the adaptation's model are recalibrated."""
    inputs = corrected(adaptation, df)
    probability, used = score(model, inputs)
    rows = used == adaptation["model"]
    probability[rows] = apply_adaptation(adaptation, probability[rows],
                                         {name: inputs[name].to_numpy(dtype=np.float64)[rows] for name in FEATURES})
    return probability, used


def evaluate(model_path: Path, csv_path: Path, runtime: str = "litert", adaptation_path: Path | None = None) -> dict:
    """Metrics on the CSV at the models' stored thresholds (or the adaptation's, on the rows it
    adapts), overall and per model that scored."""
    with opened_artifact(model_path) as folder:
        metadata = read_metadata(folder)
        adaptation = read_adaptation(adaptation_path, metadata.version) if adaptation_path else None
        df = read_labelled_csv(csv_path, metadata.valid_ranges)
        model = load_model(folder, runtime)
        probability, used = adapted_scores(model, adaptation, df) if adaptation else score(model, df)
    specs = model.metadata.models
    model_thresholds = {name: spec.threshold for name, spec in specs.items()}
    if adaptation:
        model_thresholds[adaptation["model"]] = adaptation["threshold"]
    mode = TREND if TIME_COLUMN in df.columns and TREND in specs else INSTANTANEOUS
    rain = df[LABEL].to_numpy()
    thresholds = np.array([model_thresholds[name] for name in used])
    by_model = {
        name: {**classification_metrics(rain[used == name], probability[used == name], model_thresholds[name]),
               "threshold": model_thresholds[name]}
        for name in (TREND, INSTANTANEOUS) if np.any(used == name)
    }
    adaptation_summary = {"adaptation": {"id": adaptation["id"], "model": adaptation["model"],
                                         "rows": int(np.sum(used == adaptation["model"]))}} if adaptation else {}
    return {
        **classification_metrics(rain, probability, thresholds),
        "threshold": model_thresholds[mode],
        "model": mode,
        "rows_by_model": {name: int(np.sum(used == name)) for name in (TREND, INSTANTANEOUS) if name in specs},
        "by_model": by_model,
        "model_version": model.metadata.version,
        "runtime": model.runtime,
        **adaptation_summary,
    }
