"""Test doubles shared by the edge-code tests (imported by name: pytest puts this folder on sys.path)."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from device_code.port import PortError, ShadowUpdateRejected
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

    def update_shadow(self, thing_name, shadow_name, document):
        if self.reject_updates:
            raise ShadowUpdateRejected("UpdateThingShadow: ServiceError: simulated rejection")
        return super().update_shadow(thing_name, shadow_name, document)

    def publish(self, topic, message):
        if self.publish_down:
            raise PortError("PublishToTopic: ServiceError: simulated outage")
        super().publish(topic, message)


def reading(**overrides):
    message = {"temperature": 11.5, "humidity": 93.0, "pressure": 1004.2, "sampled_at": "2013-11-05T11:59:00.000Z"}
    message.update(overrides)
    return message
