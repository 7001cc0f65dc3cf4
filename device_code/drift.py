"""Drift of a device's inputs away from what the model was trained on, measured on the device.

The model artifact carries, per input (temperature, humidity, sea-level pressure), a baseline fitted
on the training split: the annual cycle of its mean (mean + a·cos + b·sin of the day of the year),
the standard deviation of what the cycle leaves, and the training minimum and maximum. Weather has
seasons; a baseline without them would call every winter "drift".

Each device keeps, for the last WINDOW_HOURS hours before its newest reading, hourly sums of its
standardised residuals and of its readings outside the training range (a few numbers an hour,
whatever the sampling rate). Per input, the summary says
- `shift`: the window's mean residual in residual standard deviations;
- `outside`: the share of readings outside the training [min, max].
The verdict is `warming_up` until MIN_HOURS hours hold readings, then `drifting` when an input's
|shift| exceeds shift_limit(hours) = SHIFT_LIMIT·(WINDOW_HOURS / hours)^SHIFT_WIDENING (a mean over
fewer hours varies more, so the limit widens as the window is shorter) or its `outside` share exceeds OUTSIDE_LIMIT; else `ok`. The three limits
were chosen together on the NYC held-out months (Sep-Dec 2013), every week-long window starting at midnight, with
`python -m model_training.drift_check` (part of `make bench`): as recorded no window ever drifts; 15 °C
warmer, every window drifts within its week; a station at 1,500 m whose altitude is not set drifts
from the first verdict. The window lives in memory: after a restart the verdict warms up again.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from .contracts import FEATURES, MODEL_INPUT_RANGES, finite_number, shown
from .features import HasReadingValues

WINDOW_HOURS = 168
MIN_HOURS = 24
SHIFT_LIMIT = 1.75
SHIFT_WIDENING = 0.55
OUTSIDE_LIMIT = 0.8
OK, DRIFTING, WARMING_UP, UNKNOWN = "ok", "drifting", "warming_up", "unknown"
YEAR_DAYS = 365.25
# The smallest residual_std a baseline may give, relative to its input's range: standardised residuals
# then stay below ~10^6 each, and their sums finite (NYC's are 0.2-20 % of the range).
MIN_RELATIVE_STD = 1e-6


def annual_phase(moment: datetime) -> float:
    """Where in the year `moment` lies, as an angle (radians): the baseline's cos/sin argument."""
    start = datetime(moment.year, 1, 1, tzinfo=moment.tzinfo)
    return 2.0 * math.pi * ((moment - start).total_seconds() / 86400.0) / YEAR_DAYS


def shift_limit(hours: int) -> float:
    """The |shift| beyond which a window of `hours` hours is drifting."""
    return SHIFT_LIMIT * (WINDOW_HOURS / hours) ** SHIFT_WIDENING


@dataclass(frozen=True)
class InputBaseline:
    mean: float
    cos: float
    sin: float
    residual_std: float
    minimum: float
    maximum: float

    def expected(self, moment: datetime) -> float:
        phase = annual_phase(moment)
        return self.mean + self.cos * math.cos(phase) + self.sin * math.sin(phase)

    @classmethod
    def from_metadata(cls, name: str, raw: Any) -> "InputBaseline":
        """Input `name`'s entry of metadata.json `input_baseline`; ValueError when it is not one.

        Its numbers must lie within what the input can be (MODEL_INPUT_RANGES), so that the drift sums
        stay finite: a mean of 1e308 or a residual_std of 5e-324 would make `shift` infinite, which no
        JSON shadow document holds, and every rain shadow write would be refused."""
        if not isinstance(raw, Mapping) or not isinstance(raw.get("annual_cycle"), Mapping):
            raise ValueError(f"not an input baseline: {shown(raw)}")
        cycle = raw["annual_cycle"]
        values = [finite_number(v) for v in (cycle.get("mean"), cycle.get("cos"), cycle.get("sin"),
                                             raw.get("residual_std"), raw.get("min"), raw.get("max"))]
        low, high = MODEL_INPUT_RANGES[name]
        span = high - low
        if (any(v is None for v in values) or not all(low <= values[i] <= high for i in (0, 4, 5))
                or not (abs(values[1]) <= span and abs(values[2]) <= span)
                or not span * MIN_RELATIVE_STD <= values[3] <= span or values[4] > values[5]):
            raise ValueError(f"input baseline of {name} needs mean, min <= max within [{low:g}, {high:g}], "
                             f"|cos|, |sin| <= {span:g} and residual_std from {span * MIN_RELATIVE_STD:g} to "
                             f"{span:g}: {shown(raw)}")
        return cls(*values)


def read_baselines(raw: Any) -> dict[str, InputBaseline] | None:
    """metadata.json's `input_baseline` for every input, or None when the artifact has none (an older
    model: drift is then `unknown`). A malformed one raises ValueError (the artifact is broken)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError("input_baseline is not an object")
    return {name: InputBaseline.from_metadata(name, raw.get(name)) for name in FEATURES}


class DriftMonitor:
    def __init__(self, baselines: Mapping[str, InputBaseline] | None) -> None:
        self.baselines = baselines
        # hour number -> [readings, sum of residual z per input..., readings outside range per input...]
        self._hours: dict[int, list[float]] = {}
        self._newest: datetime | None = None

    def add(self, reading: HasReadingValues) -> None:
        """Count a reading newer than every one counted so far (the same reading arrives by event and by
        heartbeat; a late one is left out rather than counted twice)."""
        at = reading.sampled_at
        if self.baselines is None or (self._newest is not None and at <= self._newest):
            return
        self._newest = at
        hour = int(at.timestamp() // 3600)  # the newest hour: only newer readings get here
        bucket = self._hours.setdefault(hour, [0.0] * (1 + 2 * len(FEATURES)))
        bucket[0] += 1
        for index, name in enumerate(FEATURES):
            baseline, value = self.baselines[name], float(getattr(reading, name))
            bucket[1 + index] += (value - baseline.expected(at)) / baseline.residual_std
            bucket[1 + len(FEATURES) + index] += not baseline.minimum <= value <= baseline.maximum
        for old in [h for h in self._hours if h <= hour - WINDOW_HOURS]:
            del self._hours[old]

    def summary(self) -> dict[str, Any]:
        """{"verdict", "hours", "inputs": {name: {"shift", "outside"}}} for the rain shadow."""
        if self.baselines is None:
            return {"verdict": UNKNOWN, "hours": 0, "inputs": None}
        hours = len(self._hours)
        count = sum(bucket[0] for bucket in self._hours.values())
        if not count:
            return {"verdict": WARMING_UP, "hours": 0, "inputs": None}
        inputs = {}
        for index, name in enumerate(FEATURES):
            shift = sum(bucket[1 + index] for bucket in self._hours.values()) / count
            outside = sum(bucket[1 + len(FEATURES) + index] for bucket in self._hours.values()) / count
            inputs[name] = {"shift": round(shift, 2), "outside": round(outside, 3)}
        return {"verdict": self._verdict(hours, inputs), "hours": hours, "inputs": inputs}

    @staticmethod
    def _verdict(hours: int, inputs: Mapping[str, Mapping[str, float]]) -> str:
        if hours < MIN_HOURS:
            return WARMING_UP
        limit = shift_limit(hours)
        drifting = any(abs(v["shift"]) > limit or v["outside"] > OUTSIDE_LIMIT for v in inputs.values())
        return DRIFTING if drifting else OK
