"""device_code.history.ReadingHistory: bounded, persisted, tolerant of gaps, duplicates, disorder."""
from __future__ import annotations

import json
import logging
import os
import stat
from datetime import datetime, timedelta, timezone

import pytest
from device_test_support import returns_promptly

from device_code.contracts import Reading
from device_code.features import HISTORY_WINDOW_S, covered, trend_inputs, Series
from device_code.history import FILE_FORMAT, RESOLUTION_S, UNUSABLE_SUFFIX, ReadingHistory

START = datetime(2013, 11, 5, tzinfo=timezone.utc)


def reading(minutes: float, pressure: float = 1010.0) -> Reading:
    return Reading(temperature=10.0, humidity=80.0, pressure=pressure, sampled_at=START + timedelta(minutes=minutes))


def feed(history: ReadingHistory, minutes_list) -> None:
    for minutes in minutes_list:
        history.add(reading(minutes), reading(minutes).sampled_at)


def test_keeps_one_reading_per_slot_and_nothing_older_than_the_window():
    history = ReadingHistory(None)
    feed(history, range(0, 48 * 60))  # two days, one reading a minute
    series = history.series()
    assert HISTORY_WINDOW_S // RESOLUTION_S <= len(history) <= (HISTORY_WINDOW_S + RESOLUTION_S) // RESOLUTION_S + 1
    assert series.at[-1] - series.at[0] <= HISTORY_WINDOW_S + RESOLUTION_S
    assert set(series.at % RESOLUTION_S) == {0.0}  # the first reading of each slot


def test_a_day_of_history_lets_the_trend_model_run_for_the_next_reading():
    history = ReadingHistory(None)
    feed(history, range(0, 24 * 60 + 1))
    now = Series.from_readings([reading(24 * 60 + 1)])
    assert covered(trend_inputs(now, history.series())).all()


def test_duplicates_are_ignored_and_late_readings_are_slotted_in_by_time():
    history = ReadingHistory(None)
    assert history.add(reading(10), reading(10).sampled_at)
    assert not history.add(reading(10, pressure=999.0), reading(11).sampled_at)  # same moment again
    assert not history.add(reading(12), reading(12).sampled_at)  # same 5-minute slot
    assert history.add(reading(0), reading(13).sampled_at)  # late, but its slot was free
    series = history.series()
    assert series.at.tolist() == [reading(0).sampled_at.timestamp(), reading(10).sampled_at.timestamp()]
    assert series.pressure.tolist() == [1010.0, 1010.0]


def test_readings_from_the_future_are_dropped_when_the_clock_is_set_back():
    history = ReadingHistory(None)
    future = reading(60 * 24 * 365)  # stamped a year ahead by a clock not yet synchronised
    history.add(future, future.sampled_at)
    history.add(reading(0), reading(0).sampled_at)  # the clock is right again
    assert history.series().at.tolist() == [reading(0).sampled_at.timestamp()]


def test_a_long_gap_empties_the_history_instead_of_mixing_old_and_new():
    history = ReadingHistory(None)
    feed(history, range(0, 120, 5))
    feed(history, [60 * 30])  # 30 hours later
    assert len(history) == 1


def test_survives_a_restart_through_its_file(tmp_path):
    path = tmp_path / "work" / "history.json"
    history = ReadingHistory(path)
    feed(history, range(0, 60, 5))
    restarted = ReadingHistory(path)
    for name in ("at", "temperature", "humidity", "pressure"):
        assert getattr(restarted.series(), name).tolist() == getattr(history.series(), name).tolist()
    assert json.loads(path.read_text())["format"] == FILE_FORMAT
    assert [p.name for p in path.parent.iterdir()] == ["history.json"]  # no temporary file left behind


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format": "other", "readings": []}),
                                     json.dumps({"format": FILE_FORMAT, "readings": [[1, 2, 3]]}),
                                     json.dumps({"format": FILE_FORMAT, "readings": [[1, 500.0, 50.0, 1000.0]]}),
                                     json.dumps([1, 2]),
                                     # What no parser or float holds: RecursionError and OverflowError before.
                                     "[" * 100_000,
                                     json.dumps({"format": FILE_FORMAT, "readings": [[10**400, 10.0, 80.0, 1010.0]]}),
                                     json.dumps({"format": FILE_FORMAT, "readings": [[0, 10.0, 80.0, 10**400]]}),
                                     json.dumps({"format": FILE_FORMAT, "readings": [[0, True, 80.0, 1010.0]]}),
                                     json.dumps({"format": FILE_FORMAT, "readings": [[0, 10.0, 80.0, 1e400]]}),
                                     " " * (2 << 20) + "{}"])
def test_an_unusable_file_is_logged_and_set_aside_not_fatal(tmp_path, caplog, content):
    path = tmp_path / "history.json"
    path.write_text(content)
    with caplog.at_level(logging.WARNING):
        history = ReadingHistory(path)
    assert len(history) == 0 and "starting afresh" in caplog.text and str(path) in caplog.text
    assert max(len(record.getMessage()) for record in caplog.records) < 400
    # What could not be read is kept for a look, not overwritten; the history goes on in a new file.
    assert (tmp_path / f"history.json{UNUSABLE_SUFFIX}").read_text() == content
    history.add(reading(0), reading(0).sampled_at)
    assert json.loads(path.read_text())["readings"][0][3] == 1010.0


def test_a_fifo_in_place_of_the_file_neither_blocks_nor_stays_in_the_way(tmp_path):
    path = tmp_path / "history.json"
    os.mkfifo(path)
    history = returns_promptly(lambda: ReadingHistory(path))
    assert len(history) == 0 and stat.S_ISFIFO(os.stat(tmp_path / f"history.json{UNUSABLE_SUFFIX}").st_mode)
    history.add(reading(0), reading(0).sampled_at)
    assert len(ReadingHistory(path)) == 1


def test_a_missing_file_is_a_first_start_not_a_problem(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert len(ReadingHistory(tmp_path / "history.json")) == 0
    assert caplog.text == "" and list(tmp_path.iterdir()) == []


def test_a_failing_disk_costs_persistence_not_the_history(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    history = ReadingHistory(blocker / "history.json")
    with caplog.at_level(logging.ERROR):
        assert history.add(reading(0), reading(0).sampled_at)
    assert len(history) == 1 and "could not save the reading history" in caplog.text
