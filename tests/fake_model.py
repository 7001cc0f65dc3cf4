"""A fake rain model for tests of the edge functions: either model answers P(rain) = humidity / 100.
(Plain module, not conftest, so test files in any folder can import it by a unique name.)"""
from __future__ import annotations

from device_code.features import INSTANTANEOUS_INPUTS, TREND_INPUTS
from device_code.model import INSTANTANEOUS, TREND, ModelMetadata, ModelSpec

METADATA = ModelMetadata(version="rain-test",
                         valid_ranges={"temperature": (-40.0, 85.0), "humidity": (0.0, 100.0),
                                       "pressure": (300.0, 1100.0)},
                         models={INSTANTANEOUS: ModelSpec(INSTANTANEOUS, "serving_default", INSTANTANEOUS_INPUTS, 0.5),
                                 TREND: ModelSpec(TREND, "trend", TREND_INPUTS, 0.5)})


def humid_means_rain(signature, inputs):
    """A runner (device_code.model.Runner) for either model: P(rain) = humidity / 100."""
    return inputs["humidity"] / 100.0
