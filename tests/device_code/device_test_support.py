"""Test doubles shared by the edge-code tests (imported by name: pytest puts this folder on sys.path)."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from fake_model import METADATA, humid_means_rain

from device_code.config import load_inference_config, load_shadow_writer_config
from device_code.history import ReadingHistory
from device_code.inference import InferenceService
from device_code.model import RainModel
from device_code.port import PortError, ShadowUpdateRejected
from device_code.shadow_writer import ShadowWriter
from device_code.simulator.core import standalone_environment
from device_code.simulator.greengrass import LocalGreengrass

THING = "test-core"
NOW = datetime(2013, 11, 5, 12, 0, tzinfo=timezone.utc)


class ManualClock:
    """A runtime.Clock the test moves by hand; wait() returns at once, as if it had slept."""

    def __init__(self, start: datetime = NOW) -> None:
        self.current = start
        self.waits: list[float] = []

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return (self.current - NOW).total_seconds()

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        self.waits.append(seconds)
        self.advance(seconds)
        return stop.is_set()

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class FlakyGreengrass(LocalGreengrass):
    """The simulator's Greengrass with switchable failures of shadow updates and publishing."""

    def __init__(self) -> None:
        super().__init__()
        self.reject_updates = False
        self.publish_down = False
        self.unreadable_shadows: set[str] = set()

    def get_shadow(self, thing_name, shadow_name):
        if shadow_name in self.unreadable_shadows:
            raise PortError("GetThingShadow: ServiceError: simulated outage")
        return super().get_shadow(thing_name, shadow_name)

    def update_shadow(self, thing_name, shadow_name, document):
        if self.reject_updates:
            raise ShadowUpdateRejected("UpdateThingShadow: ServiceError: simulated rejection")
        return super().update_shadow(thing_name, shadow_name, document)

    def publish(self, topic, message):
        if self.publish_down:
            raise PortError("PublishToTopic: ServiceError: simulated outage")
        super().publish(topic, message)


def returns_promptly(call, timeout_s: float = 10.0):
    """call() on a daemon thread: its result (or its exception), or a test failure while it is still
    blocked after `timeout_s`, so that a test of "never blocks" cannot hang the suite itself."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as error:  # handed to the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="returns-promptly", daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), f"{call} still blocked after {timeout_s} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def reading(**overrides):
    """A reading as the sensor publishes it, and (with its sea-level pressure, which the writer adds at
    0 m) as the weather shadow holds it."""
    message = {"temperature": 11.5, "humidity": 93.0, "pressure": 1004.2, "sea_level_pressure": 1004.2,
               "sampled_at": "2013-11-05T11:59:00.000Z"}
    message.update(overrides)
    return message


__all__ = ["METADATA", "humid_means_rain"]  # the fake model, re-exported for the edge tests


def make_writer(greengrass, clock, compensation="off", cpu=lambda: 50.0, station_file="/nonexistent/station.json"):
    config = load_shadow_writer_config(standalone_environment(THING, CPU_TEMP_COMPENSATION=compensation,
                                                              STATION_FILE=str(station_file)))
    return ShadowWriter(config, greengrass, clock, cpu)


def make_service(greengrass, clock, load=None, max_age="300", model_dir="/nonexistent", history=None):
    """The inference service with a fake model (P(rain) = humidity / 100) and, unless given one, a
    reading history in memory."""
    config = load_inference_config(standalone_environment(THING, model_dir, MAX_INPUT_AGE_S=max_age))
    load = load or (lambda path: RainModel(METADATA, "fake", humid_means_rain))
    return InferenceService(config, greengrass, clock, load, ReadingHistory(None) if history is None else history)
