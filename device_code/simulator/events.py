"""Virtual time for the rollout simulator: a discrete-event loop, a clock that reads it, and a device's
local Greengrass (pub/sub and shadows) that delivers on the loop instead of on a thread.

Nothing here sleeps or reads the wall clock: an action runs when the loop reaches its time, so six
simulated hours take as long as their actions take to compute, and the same actions in the same order
give the same run.
"""
from __future__ import annotations

import heapq
import itertools
import json
import threading
from datetime import datetime, timedelta
from typing import Callable

from device_code.port import Message, MessageCallback

from .pubsub import topic_matches, validate_filter
from .shadows import LocalShadowService

Action = Callable[[], None]


class EventLoop:
    """Actions ordered by (virtual time, order of scheduling): ties run first scheduled, first run."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.now_s = 0.0
        self._queue: list[tuple[float, int, Action]] = []
        self._order = itertools.count()

    def at(self, time_s: float, action: Action) -> None:
        if time_s < self.now_s:
            raise ValueError(f"cannot schedule at {time_s:.1f} s: the loop is at {self.now_s:.1f} s")
        heapq.heappush(self._queue, (time_s, next(self._order), action))

    def after(self, delay_s: float, action: Action) -> None:
        self.at(self.now_s + delay_s, action)

    def every(self, first_s: float, interval_s: float, action: Callable[[], bool]) -> None:
        """Run `action` at `first_s` and every `interval_s` after, for as long as it returns True."""
        def tick() -> None:
            if action():
                self.after(interval_s, tick)
        self.at(first_s, tick)

    def run_until(self, end_s: float, done: Callable[[], bool] = lambda: False) -> float:
        """Run every action due up to `end_s`, or until `done()` holds after one; the time reached."""
        while self._queue and self._queue[0][0] <= end_s:
            self.now_s, _, action = heapq.heappop(self._queue)
            action()
            if done():
                return self.now_s
        self.now_s = max(self.now_s, end_s)
        return self.now_s


class VirtualClock:
    """A runtime.Clock on the loop's time. Nothing on virtual time may wait: waiting is scheduling."""

    def __init__(self, loop: EventLoop) -> None:
        self._loop = loop

    def now(self) -> datetime:
        return self._loop.start + timedelta(seconds=self._loop.now_s)

    def monotonic(self) -> float:
        return self._loop.now_s

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        raise RuntimeError("a service on virtual time is stepped by the event loop, never waits")


class ScheduledBus:
    """device_code.simulator.pubsub's local pub/sub, delivering on the loop: each message is a JSON copy
    handed to the subscribers of its topic as an action of its own, after the publisher's action (as
    Greengrass IPC calls subscribers on threads of its own, never in the publisher's call)."""

    def __init__(self, loop: EventLoop) -> None:
        self._loop = loop
        self._subscriptions: list[tuple[str, MessageCallback]] = []

    def subscribe(self, topic_filter: str, callback: MessageCallback) -> None:
        validate_filter(topic_filter)
        self._subscriptions.append((topic_filter, callback))

    def publish(self, topic: str, message: Message) -> None:
        copy = json.dumps(message, allow_nan=False)
        receivers = [callback for topic_filter, callback in self._subscriptions if topic_matches(topic_filter, topic)]
        if receivers:
            self._loop.after(0.0, lambda: [receiver(topic, json.loads(copy)) for receiver in receivers])


class VirtualGreengrass:
    """One core's local pub/sub and shadow service (the simulator's LocalShadowService) on the loop."""

    def __init__(self, loop: EventLoop) -> None:
        self.bus = ScheduledBus(loop)
        self.shadows = LocalShadowService(self.bus)


class ProcessPort:
    """The GreengrassPort of one component process on its core's VirtualGreengrass. No model deployment stops
    a process of the rollout simulator (the inference component depends on the model SOFT), so a port never
    closes."""

    def __init__(self, greengrass: VirtualGreengrass) -> None:
        self._greengrass = greengrass

    def publish(self, topic: str, message: Message) -> None:
        self._greengrass.bus.publish(topic, message)

    def subscribe(self, topic_filter: str, callback: MessageCallback) -> None:
        self._greengrass.bus.subscribe(topic_filter, callback)

    def get_shadow(self, thing_name: str, shadow_name: str) -> Message:
        return self._greengrass.shadows.get(thing_name, shadow_name)

    def update_shadow(self, thing_name: str, shadow_name: str, document: Message) -> Message:
        return self._greengrass.shadows.update(thing_name, shadow_name, document)
