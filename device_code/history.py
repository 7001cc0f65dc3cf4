"""The device's recent readings, which the trend model needs: bounded, persisted, tolerant.

- Bounded: one reading per RESOLUTION_S slot (the first that arrives for it), and nothing older than
  the trend model's window (plus one slot) before the newest reading: at most ~300 readings,
  whatever the sampling rate. The features only look near whole hours back, within a 15-minute tolerance
  (device_code.features), so a 5-minute resolution loses nothing they use.
- Persisted: written to a JSON file (atomically: temporary file + rename) whenever the kept
  readings change, i.e. at most about once per slot, so a restart keeps the hours already
  collected. The file is read through device_code.files (a FIFO, a huge file, JSON no parser
  holds cannot stop the function). A file that cannot be used (unreadable, not this format, a
  value that is no finite number within its range) is never fatal: it is logged, set aside as
  `<name>.unusable` (replacing the one set aside before: it costs no more disk than it did, and
  what it held stays there to be looked at), and the history starts empty. Only a file that cannot
  be moved is replaced by the next save: a history that goes on matters more than its remains.
- Tolerant: duplicates (same slot) are ignored, late readings are slotted in by their time,
  gaps are simply missing slots (the features then fall back), and readings stamped after `now`
  (a clock that was later set back) are dropped so they cannot hold the history hostage.
"""
from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path

import numpy as np

from . import files
from .contracts import MAX_CLOCK_SKEW_S, MODEL_INPUT_RANGES, finite_number, shown
from .features import HISTORY_WINDOW_S, QUANTITIES, HasReadingValues, Series

log = logging.getLogger(__name__)

RESOLUTION_S = 300
FILE_FORMAT = "rainedge-reading-history/1"
# ~300 readings of 4 numbers and a time take ~40 KiB; a larger file is none this function wrote.
MAX_FILE_BYTES = 1 << 20
UNUSABLE_SUFFIX = ".unusable"


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
        if self.path is None:
            return {}
        try:
            return _slots_of(files.read_json(self.path, MAX_FILE_BYTES))
        except files.FileMissing:
            return {}  # a first start
        except files.UnusableFile as error:
            problem = str(error)
        except ValueError as error:
            problem = f"{self.path}: {error}"
        aside = self.path.with_name(self.path.name + UNUSABLE_SUFFIX)
        try:
            os.replace(self.path, aside)
            kept = f"set aside as {aside}"
        except OSError as error:  # then the next save replaces it
            kept = f"could not be set aside: {error.strerror or type(error).__name__}"
        log.warning("reading history unusable, starting afresh (the file %s): %s", kept, problem)
        return {}

    def _save(self) -> None:
        if self.path is None:
            return
        document = {"format": FILE_FORMAT, "readings": [list(self._slots[slot]) for slot in sorted(self._slots)]}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            files.replace_whole(self.path, lambda scratch: json.dump(document, scratch, separators=(",", ":")))
        except OSError as error:  # a full or read-only disk costs the persistence, not the prediction
            log.error("could not save the reading history to %s: %s", self.path, error)


def _slots_of(document: object) -> dict[int, tuple[float, float, float, float]]:
    """The slots of a history file's document; ValueError unless every reading is finite and in range."""
    if not isinstance(document, dict) or document.get("format") != FILE_FORMAT:
        raise ValueError(f"not a {FILE_FORMAT!r} document")
    readings = document.get("readings")
    if not isinstance(readings, list):
        raise ValueError(f"readings {shown(readings)} is not a list")
    slots: dict[int, tuple[float, float, float, float]] = {}
    for row in readings:
        # finite_number: 10**400 is an int no float holds, true is no temperature.
        values = [finite_number(value) for value in row] if isinstance(row, list) else []
        if len(values) != 1 + len(QUANTITIES) or None in values:
            raise ValueError(f"reading {shown(row)} is not [time, {', '.join(QUANTITIES)}], finite numbers")
        at, *quantities = values
        for name, value in zip(QUANTITIES, quantities):
            low, high = MODEL_INPUT_RANGES[name]
            if not low <= value <= high:
                raise ValueError(f"{name} {value} in {shown(row)} is outside [{low}, {high}]")
        slots.setdefault(int(at // RESOLUTION_S), (at, *quantities))
    return slots
