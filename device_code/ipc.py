"""Production adapter of the port: Greengrass IPC through the AWS IoT Device SDK v2 (clientv2).

The only module that imports the AWS SDK. `GreengrassCoreIPCClientV2` runs subscription callbacks
on its own threads; a failing callback is logged and the stream stays open.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from awsiot.greengrasscoreipc import model
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

from .port import Message, MessageCallback, PortError, ShadowNotFound, ShadowUpdateRejected

log = logging.getLogger(__name__)


# Beyond the IPC error shapes, a lost connection raises awscrt errors: every failure becomes a
# PortError so the functions log it and go on.


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {getattr(error, 'message', None) or error}"


class IpcPort:
    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def connect(cls) -> "IpcPort":
        """Connects with the socket path and token Greengrass puts in the component's environment."""
        return cls(GreengrassCoreIPCClientV2())

    def publish(self, topic: str, message: Message) -> None:
        try:
            self._client.publish_to_topic(
                topic=topic, publish_message=model.PublishMessage(json_message=model.JsonMessage(message=message)))
        except Exception as error:
            raise PortError(f"publish to {topic}: {_describe(error)}") from error

    def subscribe(self, topic_filter: str, callback: MessageCallback) -> None:
        def on_stream_event(event: model.SubscriptionResponseMessage) -> None:
            try:
                if event.json_message is not None:
                    topic, message = event.json_message.context.topic, event.json_message.message
                else:
                    topic, message = event.binary_message.context.topic, json.loads(event.binary_message.message)
                callback(topic, message)
            except Exception:  # one bad message must not close the subscription
                log.exception("message on %s could not be handled", topic_filter)

        def on_stream_error(error: Exception) -> bool:
            log.error("subscription %s: %s", topic_filter, _describe(error))
            return False  # keep the stream open

        try:
            self._client.subscribe_to_topic(topic=topic_filter, on_stream_event=on_stream_event,
                                            on_stream_error=on_stream_error)
        except Exception as error:
            raise PortError(f"subscribe to {topic_filter}: {_describe(error)}") from error

    def get_shadow(self, thing_name: str, shadow_name: str) -> Message:
        try:
            response = self._client.get_thing_shadow(thing_name=thing_name, shadow_name=shadow_name)
        except model.ResourceNotFoundError as error:
            raise ShadowNotFound(f"shadow {thing_name}/{shadow_name}: {_describe(error)}") from error
        except Exception as error:
            raise PortError(f"get shadow {thing_name}/{shadow_name}: {_describe(error)}") from error
        return json.loads(response.payload)

    def update_shadow(self, thing_name: str, shadow_name: str, document: Message) -> Message:
        try:
            response = self._client.update_thing_shadow(thing_name=thing_name, shadow_name=shadow_name,
                                                        payload=json.dumps(document).encode("utf-8"))
        except (model.ConflictError, model.InvalidArgumentsError) as error:
            raise ShadowUpdateRejected(f"update shadow {thing_name}/{shadow_name}: {_describe(error)}") from error
        except Exception as error:
            raise PortError(f"update shadow {thing_name}/{shadow_name}: {_describe(error)}") from error
        return json.loads(response.payload)
