"""A ShadowManager-like synchroniser between local named shadows and the cloud shadow service (boto3 iot-data).

Device to cloud, strategy realTime: every accepted local update marks the shadow dirty and
a worker pushes its whole reported state. When the cloud cannot be reached the shadow stays dirty
and the push is retried with backoff; since the whole state is pushed, the cloud catches up with
the latest local state (intermediate versions are not replayed, like ShadowManager). A shadow the
core's IoT policy does not let it write is refused by the cloud (403) and stays unsynced;
`refused` says which and why.

Cloud to device (`pull`): the cloud document's desired state brought into the local shadow, as ShadowManager does
when the cloud's update arrives ("it syncs all state changes for specified shadows, regardless of whether the
changes occur in local shadow documents or in cloud shadow documents", developer guide, "Sync local device
shadows with AWS IoT Core"). moto publishes no MQTT, so the caller says when: right after a cloud-side write.
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable

from device_code.contracts import InvalidReading, reported_state, shadow_topic, update_to_hold
from device_code.port import ShadowNotFound
from device_code.runtime import Backoff

from .greengrass import LocalGreengrass

log = logging.getLogger(__name__)


class CloudShadowSync:
    def __init__(self, greengrass: LocalGreengrass, thing_name: str, shadow_names: tuple[str, ...],
                 iot_data: Any, refusal: Callable[[str], str | None] = lambda name: None,
                 retry_initial_s: float = 0.05, retry_cap_s: float = 1.0) -> None:
        self._greengrass, self.thing_name, self.shadow_names = greengrass, thing_name, shadow_names
        self._iot_data, self._refusal = iot_data, refusal
        self.refused: dict[str, str] = {}
        self._backoff = Backoff(retry_initial_s, retry_cap_s)
        self._dirty: set[str] = set()
        self._in_flight = False
        self._pushed: dict[str, dict[str, Any]] = {name: {} for name in shadow_names}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shadow-sync", daemon=True)
        self.pushes = 0
        self.failed_pushes = 0

    def start(self) -> None:
        for name in self.shadow_names:
            self._greengrass.subscribe(shadow_topic(self.thing_name, name, "update/documents"),
                                       lambda topic, message, name=name: self._mark_dirty(name))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread.ident is not None:  # a run that failed to start never started it
            self._thread.join(5)

    def wait_until_synced(self, timeout_s: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: not self._dirty and not self._in_flight, timeout_s)

    def _mark_dirty(self, name: str) -> None:
        with self._changed:
            self._dirty.add(name)
            self._changed.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._changed:
                self._changed.wait_for(lambda: self._dirty or self._stop.is_set())
                if self._stop.is_set():
                    return
                name = self._dirty.pop()
                self._in_flight = True
            succeeded = self.push(name)
            with self._changed:
                self._in_flight = False
                if not succeeded:
                    self._dirty.add(name)
                self._changed.notify_all()
            if not succeeded:
                self._stop.wait(self._backoff.next_delay())

    def pull(self, name: str) -> bool:
        """Make the local shadow's desired state the cloud's; False when the cloud refuses (the IoT policy)."""
        refusal = self._refusal(name)
        if refusal is not None:
            self.refused[name] = refusal
            return False
        try:
            response = self._iot_data.get_thing_shadow(thingName=self.thing_name, shadowName=name)
            cloud = json.loads(response["payload"].read())["state"].get("desired", {})
        except self._iot_data.exceptions.ResourceNotFoundException:
            cloud = {}
        try:
            local = self._greengrass.get_shadow(self.thing_name, name)["state"].get("desired", {})
        except ShadowNotFound:
            local = {}
        update = update_to_hold(local, cloud)
        if update:
            self._greengrass.update_shadow(self.thing_name, name, {"state": {"desired": update}})
        return True

    def push(self, name: str) -> bool:
        """Push the local reported state to the cloud now; False when the cloud cannot be reached."""
        refusal = self._refusal(name)
        if refusal is not None:
            if name not in self.refused:
                log.error("cloud refused shadow %s (403): %s", name, refusal)
            self.refused[name] = refusal
            return True  # nothing to retry: the policy will not change during the run
        try:
            reported = dict(reported_state(self._greengrass.get_shadow(self.thing_name, name)))
        except (ShadowNotFound, InvalidReading):  # no shadow, or only a desired state: nothing of the device's yet
            return True
        # The cloud merges too: keys deleted locally must be deleted there explicitly.
        patch = {**dict.fromkeys(set(self._pushed[name]) - set(reported)), **reported}
        try:
            self._iot_data.update_thing_shadow(thingName=self.thing_name, shadowName=name,
                                               payload=json.dumps({"state": {"reported": patch}}).encode())
        except Exception as error:  # botocore raises many kinds for an unreachable endpoint
            self.failed_pushes += 1
            if self._backoff.failures == 0:
                log.warning("cloud shadow %s unreachable, will retry: %s", name, error)
            return False
        if self._backoff.failures:
            log.info("cloud shadow %s reachable again after %d failed pushes", name, self._backoff.failures)
        self._backoff.reset()
        self._pushed[name] = reported
        self.pushes += 1
        return True
