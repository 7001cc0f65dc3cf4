"""The device's recent readings, which the trend model needs: bounded, persisted, tolerant.

- Bounded: one reading per RESOLUTION_S slot (the first that arrives for it), and nothing older than
  the trend model's window (plus one slot) before the newest reading: at most ~300 readings,
  whatever the sampling rate. The features only look near whole hours back, within a 15-minute tolerance
  (device_code.features), so a 5-minute resolution loses nothing they use.
- Persisted: written to a JSON file (atomically: temporary file + rename) whenever the kept
  readings change, i.e. at most about once per slot, so a restart keeps the hours already
  collected. An unreadable or foreign file is logged and replaced, never fatal.
- Tolerant: duplicates (same slot) are ignored, late readings are slotted in by their time,
  gaps are simply missing slots (the features then fall back), and readings stamped after `now`
  (a clock that was later set back) are dropped so they cannot hold the history hostage.
"""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np

from .contracts import MAX_CLOCK_SKEW_S, MODEL_INPUT_RANGES
from .features import HISTORY_WINDOW_S, QUANTITIES, HasReadingValues, Series

log = logging.getLogger(__name__)

RESOLUTION_S = 300
FILE_FORMAT = "rainedge-reading-history/1"


class ReadingHistory:
    def __init__(self, path: Path | None, window_s: float = HISTORY_WINDOW_S + RESOLUTION_S) -> None:
        """`path`: the JSON file in the function's work directory (None keeps it in memory only)."""
        self.path, self.window_s = path, window_s
        # slot number -> (seconds since epoch, temperature, humidity, sea-level pressure)
        self._slots: dict[int, tuple[float, float, float, float]] = self._load()

    def __len__(self) -> int:
        return len(self._slots)

    def add(self, reading: HasReadingValues, now: datetime) -> bool:
        """Keep `reading` if its slot is free, it is not stamped after `now` and it lies within the
        window before the newest reading; prune what fell out. True when the kept readings changed
        (and were saved).

        The window hangs off the newest reading, not off `now`: a reading is predicted from for as
        long as it is fresh enough (MAX_INPUT_AGE_S), and the readings its lags need must stay so long."""
        at, now_s = reading.sampled_at.timestamp(), now.timestamp()
        newest = max((t for t in [at, *(row[0] for row in self._slots.values())] if t <= now_s + MAX_CLOCK_SKEW_S),
                     default=now_s)
        changed = self._prune(now_s, newest)
        slot = int(at // RESOLUTION_S)
        if self._within(at, now_s, newest) and slot not in self._slots:
            self._slots[slot] = (at, float(reading.temperature), float(reading.humidity), float(reading.pressure))
            changed = True
        if changed:
            self._save()
        return changed

    def series(self) -> Series:
        rows = [self._slots[slot] for slot in sorted(self._slots)]
        columns = list(zip(*rows)) if rows else [()] * 4
        return Series(*(np.asarray(column, dtype=np.float64) for column in columns))

    def _within(self, at: float, now: float, newest: float) -> bool:
        return newest - self.window_s <= at <= now + MAX_CLOCK_SKEW_S

    def _prune(self, now: float, newest: float) -> bool:
        stale = [slot for slot, row in self._slots.items() if not self._within(row[0], now, newest)]
        for slot in stale:
            del self._slots[slot]
        return bool(stale)

    def _load(self) -> dict[int, tuple[float, float, float, float]]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            document = json.loads(self.path.read_text())
            if document.get("format") != FILE_FORMAT:
                raise ValueError(f"format {document.get('format')!r} is not {FILE_FORMAT!r}")
            slots = {}
            for row in document["readings"]:
                at, *values = (float(value) for value in row)
                if len(values) != len(QUANTITIES) or not all(map(math.isfinite, (at, *values))):
                    raise ValueError(f"reading {row!r} is not [time, {', '.join(QUANTITIES)}]")
                for name, value in zip(QUANTITIES, values):
                    low, high = MODEL_INPUT_RANGES[name]
                    if not low <= value <= high:
                        raise ValueError(f"{name} {value} in {row!r} is outside [{low}, {high}]")
                slots.setdefault(int(at // RESOLUTION_S), (at, *values))
            return slots
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as error:
            log.warning("reading history %s is unusable, starting afresh: %s", self.path, error)
            return {}

    def _save(self) -> None:
        if self.path is None:
            return
        document = {"format": FILE_FORMAT, "readings": [list(self._slots[slot]) for slot in sorted(self._slots)]}
        scratch = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, prefix=f".{self.path.name}.",
                                             delete=False) as scratch:
                json.dump(document, scratch, separators=(",", ":"))
            os.replace(scratch.name, self.path)
        except OSError as error:  # a full or read-only disk costs the persistence, not the prediction
            log.error("could not save the reading history to %s: %s", self.path, error)
            if scratch is not None:
                Path(scratch.name).unlink(missing_ok=True)
