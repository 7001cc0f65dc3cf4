"""Synthesis fixtures for the infra tests (the default synth is in tests/conftest.py)."""
from __future__ import annotations

import pytest
from infra_support import synthesize


@pytest.fixture()
def synth_variant(trained_model_dir, tmp_path, secrets_dir):
    """Synthesise with context overrides into a fresh folder."""
    counter = iter(range(100))

    def run(**overrides) -> dict:
        return synthesize(tmp_path / f"cdk.out.{next(counter)}", secrets_dir, **overrides)

    return run
