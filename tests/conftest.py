"""Fixtures shared by every test layer."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = PROJECT_ROOT / "build" / "model"

# Property-based tests (hypothesis): the same examples on every run and machine (no flaky CI, no
# example database left in the tree), and no per-example deadline on a busy shared machine.
settings.register_profile("rainedge", derandomize=True, database=None, deadline=None)
settings.load_profile("rainedge")


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def trained_model_dir() -> Path:
    """The model built by `make train` (a prerequisite of `make test`)."""
    if not (MODEL_DIR / "rain_model.zip").is_file():
        pytest.fail(f"no trained model in {MODEL_DIR}: run `make train` (make test does it for you)")
    return MODEL_DIR


@pytest.fixture(scope="session")
def secrets_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("secrets")


@pytest.fixture(scope="session")
def synthesized(trained_model_dir, tmp_path_factory, secrets_dir) -> tuple[Path, dict]:
    """(cdk.out folder, RainEdge template) of the default configuration: a real, offline synth."""
    from infra_support import synthesize

    out_dir = tmp_path_factory.mktemp("cdk.out")
    return out_dir, synthesize(out_dir, secrets_dir)


@pytest.fixture(scope="session")
def template(synthesized) -> dict:
    return synthesized[1]
