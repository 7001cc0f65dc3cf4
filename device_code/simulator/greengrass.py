"""The simulator's Greengrass: local pub/sub + shadow service behind the same port as IPC,
and Lambda event sources (a topic filter -> a handler), as the Lambda manager wires them."""
from __future__ import annotations

import logging
from typing import Callable

from device_code.port import Message, MessageCallback

from .pubsub import LocalPubSub
from .shadows import LocalShadowService

log = logging.getLogger(__name__)


class LocalGreengrass:
    def __init__(self) -> None:
        self.bus = LocalPubSub()
        self.shadows = LocalShadowService(self.bus)

    # --- GreengrassPort ---
    def publish(self, topic: str, message: Message) -> None:
        self.bus.publish(topic, message)

    def subscribe(self, topic_filter: str, callback: MessageCallback) -> None:
        self.bus.subscribe(topic_filter, callback)

    def get_shadow(self, thing_name: str, shadow_name: str) -> Message:
        return self.shadows.get(thing_name, shadow_name)

    def update_shadow(self, thing_name: str, shadow_name: str, document: Message) -> Message:
        return self.shadows.update(thing_name, shadow_name, document)

    # --- Lambda manager ---
    def add_event_source(self, topic_filter: str, handler: Callable[[object, object], object]) -> None:
        """Invoke `handler(message, context)` for each message on the topic (JSON payload encoding)."""
        self.bus.subscribe(topic_filter, lambda topic, message: handler(message, None))
