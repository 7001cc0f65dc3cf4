"""A local shadow service like Greengrass ShadowManager's: named shadows, versions, merge updates.

Updates follow the AWS IoT shadow document rules that matter here: `state.reported` and
`state.desired` are merged into the document (null deletes a key), each accepted update bumps the
version, an optional `version` in the request must match (else 409), oversized documents are
refused (413), and the service publishes `update/accepted`, `update/documents` and
`update/delta` (when desired differs from reported) or `update/rejected` on the local bus.
"""
from __future__ import annotations

import copy
import json
import threading
import time
from typing import Any

from device_code.contracts import shadow_topic
from device_code.port import Message, ShadowNotFound, ShadowUpdateRejected

from .pubsub import LocalPubSub

DEFAULT_SIZE_LIMIT_BYTES = 8192  # ShadowManager's default shadowDocumentSizeLimitBytes
STATE_SECTIONS = ("desired", "reported")


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class LocalShadowService:
    def __init__(self, bus: LocalPubSub, size_limit_bytes: int = DEFAULT_SIZE_LIMIT_BYTES) -> None:
        self._bus, self.size_limit_bytes = bus, size_limit_bytes
        self._documents: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, thing_name: str, shadow_name: str) -> Message:
        with self._lock:
            document = self._documents.get((thing_name, shadow_name))
            if document is None:
                raise ShadowNotFound(f"no shadow {shadow_name!r} for thing {thing_name!r}")
            return copy.deepcopy(document)

    def update(self, thing_name: str, shadow_name: str, request: Any) -> Message:
        topic = lambda suffix: shadow_topic(thing_name, shadow_name, suffix)  # noqa: E731
        try:
            with self._lock:
                accepted, documents, delta = self._apply(thing_name, shadow_name, request)
        except ShadowUpdateRejected as error:
            code, message = error.args
            self._bus.publish(topic("update/rejected"), {"code": code, "message": message})
            raise ShadowUpdateRejected(f"{code} {message}") from None
        self._bus.publish(topic("update/accepted"), accepted)
        self._bus.publish(topic("update/documents"), documents)
        if delta:
            self._bus.publish(topic("update/delta"), delta)
        return accepted

    def _apply(self, thing_name: str, shadow_name: str, request: Any):
        state = request.get("state") if isinstance(request, dict) else None
        if not isinstance(state, dict) or not state or set(state) - set(STATE_SECTIONS):
            raise ShadowUpdateRejected(400, "state must be an object with desired and/or reported")
        for section, value in state.items():
            if value is not None and not isinstance(value, dict):
                raise ShadowUpdateRejected(400, f"state.{section} must be an object or null")
        if len(json.dumps(request)) > self.size_limit_bytes:
            raise ShadowUpdateRejected(413, f"document larger than {self.size_limit_bytes} bytes")
        key = (thing_name, shadow_name)
        previous = self._documents.get(key)
        if "version" in request and (previous is None or request["version"] != previous["version"]):
            raise ShadowUpdateRejected(409, "version conflict")
        now = int(time.time())
        current = copy.deepcopy(previous) if previous else {"state": {}, "metadata": {}, "version": 0}
        for section, patch in state.items():
            if patch is None:
                current["state"].pop(section, None)
                current["metadata"].pop(section, None)
                continue
            merge(current["state"].setdefault(section, {}), patch)
            merge(current["metadata"].setdefault(section, {}),
                  {name: (None if value is None else {"timestamp": now}) for name, value in patch.items()})
        current["version"] += 1
        current["timestamp"] = now
        self._documents[key] = current
        accepted = {"state": copy.deepcopy(state), "version": current["version"], "timestamp": now}
        documents = {"previous": copy.deepcopy(previous), "current": copy.deepcopy(current), "timestamp": now}
        desired, reported = current["state"].get("desired", {}), current["state"].get("reported", {})
        differing = {k: v for k, v in desired.items() if reported.get(k) != v}
        delta = {"state": differing, "version": current["version"], "timestamp": now} if differing else None
        return accepted, documents, delta
