"""Score a model artifact on any CSV with temperature (degC), humidity (%RH), pressure (hPa), rain (0/1)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from model_training.artifact import load_runtime, opened_artifact, read_metadata
from model_training.data import FEATURES, LABEL
from model_training.metrics import classification_metrics

REQUIRED_COLUMNS = (*FEATURES, LABEL)


class EvaluationInputError(Exception):
    """The CSV cannot be scored: the message names the file, column and problem."""


def _cell(raw: pd.DataFrame, column: str, row: int) -> str:
    value = raw[column].iloc[row]
    return "" if pd.isna(value) else str(value)


def read_labelled_csv(csv_path: Path) -> pd.DataFrame:
    try:
        # Read as text so error messages quote the cell exactly as written in the file.
        raw = pd.read_csv(csv_path, dtype=str)
    except FileNotFoundError as error:
        raise EvaluationInputError(f"CSV {csv_path} does not exist") from error
    except pd.errors.EmptyDataError as error:
        raise EvaluationInputError(f"CSV {csv_path} is empty") from error
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise EvaluationInputError(f"CSV {csv_path} cannot be read: {error}") from error
    missing = [column for column in REQUIRED_COLUMNS if column not in raw.columns]
    if missing:
        raise EvaluationInputError(
            f"CSV {csv_path} lacks column(s) {missing}; required: {list(REQUIRED_COLUMNS)}"
        )
    if raw.empty:
        raise EvaluationInputError(f"CSV {csv_path} has a header but no rows")
    df = pd.DataFrame(index=raw.index)
    for column in REQUIRED_COLUMNS:
        numeric = pd.to_numeric(raw[column], errors="coerce").astype(float)
        bad = ~np.isfinite(numeric)
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise EvaluationInputError(
                f"CSV {csv_path} column {column!r} has {int(bad.sum())} missing or non-numeric "
                f"value(s), first on data row {row + 1}: {_cell(raw, column, row)!r}"
            )
        df[column] = numeric
    not_binary = ~df[LABEL].isin([0, 1])
    if not_binary.any():
        row = int(not_binary.to_numpy().argmax())
        raise EvaluationInputError(
            f"CSV {csv_path} column {LABEL!r} must be 0 or 1, found {_cell(raw, LABEL, row)!r} on data row {row + 1}"
        )
    return df


def evaluate(model_path: Path, csv_path: Path, runtime: str = "litert") -> dict:
    """Metrics of the model on the CSV at the model's stored threshold (plus model version)."""
    df = read_labelled_csv(csv_path)
    with opened_artifact(model_path) as folder:
        metadata = read_metadata(folder)
        model = load_runtime(folder, runtime)
        probability = model.predict(*(df[name].to_numpy() for name in FEATURES))
    result = classification_metrics(df[LABEL].to_numpy(), probability, float(metadata["threshold"]))
    return {**result, "model_version": metadata["version"], "runtime": runtime}
