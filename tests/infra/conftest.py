"""Synthesis fixtures for the infra tests: real CDK synth, offline, CSRs in tmp dirs."""
from __future__ import annotations

from pathlib import Path

import pytest
from infra_support import synthesize


@pytest.fixture(scope="session")
def secrets_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("secrets")


@pytest.fixture(scope="session")
def synthesized(trained_model_dir, tmp_path_factory, secrets_dir) -> tuple[Path, dict]:
    """(cdk.out folder, RainEdge template) of the default configuration."""
    out_dir = tmp_path_factory.mktemp("cdk.out")
    return out_dir, synthesize(out_dir, secrets_dir)


@pytest.fixture(scope="session")
def template(synthesized) -> dict:
    return synthesized[1]


@pytest.fixture()
def synth_variant(trained_model_dir, tmp_path, secrets_dir):
    """Synthesise with context overrides into a fresh folder."""
    counter = iter(range(100))

    def run(**overrides) -> dict:
        return synthesize(tmp_path / f"cdk.out.{next(counter)}", secrets_dir, **overrides)

    return run
