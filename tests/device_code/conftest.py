"""Fixtures for the edge-code tests: a hand-moved clock, the simulator's Greengrass as the port."""
from __future__ import annotations

import pytest
from device_test_support import FlakyGreengrass, ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def greengrass() -> FlakyGreengrass:
    return FlakyGreengrass()
