"""Local publish/subscribe like Greengrass's: MQTT topic filters, JSON messages, asynchronous delivery.

Messages are delivered in publish order on one dispatcher thread (Greengrass IPC, too, calls
subscribers on threads of its own, never in the publisher's call). A failing subscriber is logged
and does not stop delivery to the others.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Callable

from device_code.port import Message, MessageCallback

log = logging.getLogger(__name__)
Tap = Callable[[str, Message, float], None]


def validate_filter(topic_filter: str) -> None:
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError(f"topic filter {topic_filter!r}: '#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise ValueError(f"topic filter {topic_filter!r}: '+' must be a whole level")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT 3.1.1 matching; wildcards in the first level do not match topics starting with '$'."""
    wanted, levels = topic_filter.split("/"), topic.split("/")
    if topic.startswith("$") and wanted[0] in ("+", "#"):
        return False
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(levels) or level not in ("+", levels[index]):
            return False
    return len(wanted) == len(levels)


class LocalPubSub:
    def __init__(self) -> None:
        self._subscriptions: list[tuple[str, MessageCallback]] = []
        self._taps: list[Tap] = []
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        # Topics whose messages reached no subscriber, with how many (a renamed topic shows up here).
        self.unheard: dict[str, int] = {}
        self._dispatcher = threading.Thread(target=self._dispatch, name="local-pubsub", daemon=True)
        self._dispatcher.start()

    def subscribe(self, topic_filter: str, callback: MessageCallback) -> None:
        validate_filter(topic_filter)
        with self._lock:
            self._subscriptions.append((topic_filter, callback))

    def tap(self, observer: Tap) -> None:
        """Observe every publication synchronously, with its perf_counter time (measurements)."""
        with self._lock:
            self._taps.append(observer)

    def publish(self, topic: str, message: Message) -> None:
        if not topic or "+" in topic or "#" in topic:
            raise ValueError(f"cannot publish to {topic!r}: a topic has no wildcards")
        # A JSON round trip: what a subscriber gets is a copy, as over IPC.
        message = json.loads(json.dumps(message, allow_nan=False))
        published_at = time.perf_counter()
        with self._lock:
            taps = list(self._taps)
        for observer in taps:
            observer(topic, message, published_at)
        self._queue.put((topic, message))

    def drain(self) -> None:
        """Wait until every message published so far (and what it caused) has been delivered."""
        self._queue.join()

    def _dispatch(self) -> None:
        while True:
            topic, message = self._queue.get()
            try:
                with self._lock:
                    receivers = [cb for flt, cb in self._subscriptions if topic_matches(flt, topic)]
                    if not receivers:
                        self.unheard[topic] = self.unheard.get(topic, 0) + 1
                for callback in receivers:
                    try:
                        callback(topic, json.loads(json.dumps(message)))
                    except Exception:
                        log.exception("subscriber of %s failed", topic)
            finally:
                self._queue.task_done()
