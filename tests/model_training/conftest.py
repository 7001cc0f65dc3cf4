"""Fixtures for model_training tests: the artifact built by `make train` and the held-out data."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from model_training.data import load_observations, split_by_time


@pytest.fixture(scope="session")
def model_folder(trained_model_dir: Path) -> Path:
    return trained_model_dir / "rain_model"


@pytest.fixture(scope="session")
def metadata(model_folder: Path) -> dict:
    return json.loads((model_folder / "metadata.json").read_text())


@pytest.fixture(scope="session")
def observations() -> pd.DataFrame:
    return load_observations()


@pytest.fixture(scope="session")
def test_split(observations: pd.DataFrame) -> pd.DataFrame:
    return split_by_time(observations)[2]


@pytest.fixture(scope="session")
def test_split_csv(test_split: pd.DataFrame, tmp_path_factory) -> Path:
    """Oct-Dec 2013 in the documented evaluate CSV shape without times: the instantaneous model
    scores it (extra columns are allowed)."""
    path = tmp_path_factory.mktemp("eval") / "oct_dec.csv"
    test_split[["origin", "temperature", "humidity", "pressure", "rain"]].to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def test_split_timed_csv(test_split: pd.DataFrame, tmp_path_factory) -> Path:
    """Oct-Dec 2013 with sampled_at and station: three stations' histories in one file."""
    path = tmp_path_factory.mktemp("eval") / "oct_dec_timed.csv"
    test_split.rename(columns={"time_hour": "sampled_at", "origin": "station"}).to_csv(path, index=False)
    return path
