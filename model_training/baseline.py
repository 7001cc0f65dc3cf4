"""The inputs' training baseline that the device measures drift against (device_code.drift): per input,
the annual cycle of the mean fitted by least squares on the training split, the spread of what it
leaves, and the training range."""
from __future__ import annotations

import numpy as np
import pandas as pd

from device_code.contracts import FEATURES
from device_code.drift import annual_phase


def fit_input_baseline(train: pd.DataFrame) -> dict[str, dict]:
    phase = np.array([annual_phase(moment.to_pydatetime()) for moment in train["time_hour"]])
    design = np.column_stack([np.ones(len(train)), np.cos(phase), np.sin(phase)])
    baseline = {}
    for name in FEATURES:
        values = train[name].to_numpy(dtype=float)
        (mean, cos, sin), *_ = np.linalg.lstsq(design, values, rcond=None)
        residual = values - design @ np.array([mean, cos, sin])
        baseline[name] = {"annual_cycle": {"mean": round(float(mean), 4), "cos": round(float(cos), 4),
                                           "sin": round(float(sin), 4)},
                          "residual_std": round(float(residual.std()), 4),
                          "min": round(float(values.min()), 4), "max": round(float(values.max()), 4)}
    return baseline
