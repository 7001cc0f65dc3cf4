"""The one small port through which the edge functions reach Greengrass.

Production: `device_code.ipc.IpcPort` (Greengrass IPC). Simulator: `device_code.simulator.greengrass`.
Messages are JSON-compatible dicts; shadow documents follow the AWS IoT shadow document format.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

Message = dict[str, Any]
MessageCallback = Callable[[str, Message], None]


class PortError(RuntimeError):
    """Greengrass could not be reached or refused the operation."""


class ShadowNotFound(PortError):
    """The named shadow does not exist (yet)."""


class ShadowUpdateRejected(PortError):
    """The shadow service rejected an update (malformed document, version conflict, too large)."""


class GreengrassPort(Protocol):
    def publish(self, topic: str, message: Message) -> None: ...

    def subscribe(self, topic_filter: str, callback: MessageCallback) -> None: ...

    def get_shadow(self, thing_name: str, shadow_name: str) -> Message:
        """The whole shadow document; raises ShadowNotFound."""

    def update_shadow(self, thing_name: str, shadow_name: str, document: Message) -> Message:
        """Apply an update request ({"state": {"reported": ...}}); raises ShadowUpdateRejected."""
