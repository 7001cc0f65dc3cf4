"""Fixtures shared by every test layer."""
from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = PROJECT_ROOT / "build" / "model"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def trained_model_dir() -> Path:
    """The model built by `make train` (a prerequisite of `make test`)."""
    if not (MODEL_DIR / "rain_model.zip").is_file():
        pytest.fail(f"no trained model in {MODEL_DIR}: run `make train` (make test does it for you)")
    return MODEL_DIR
