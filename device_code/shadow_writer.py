"""On-demand Lambda `shadow_writer`: each reading on the local readings topic -> named shadow `weather`.

Invoked by its PUB_SUB event source. A reading is validated (finite numbers within the BME680's
ranges, an ISO-8601 UTC timestamp, newer than the one in the shadow); anything else is logged and
dropped, so garbage never overwrites a valid state. Optionally the story's CPU heat compensation
(`2*T_sensor - mean CPU temperature`) is applied, and the shadow says so.
"""
from __future__ import annotations

import json
import logging
from collections import deque
from pathlib import Path
from typing import Any, Callable

from . import runtime
from .config import ShadowWriterConfig, load_shadow_writer_config
from .contracts import (SENSOR_RANGES, WEATHER_SHADOW, InvalidReading, Reading, finite_number, in_future,
                        parse_reading, parse_timestamp, reported_state, shown)
from .functions import SHADOW_WRITER
from .port import GreengrassPort, PortError, ShadowNotFound

log = logging.getLogger(__name__)
# CPU temperatures averaged for the compensation (one per reading): smooths CPU load spikes.
CPU_MEAN_WINDOW = 5


class CpuThermometer:
    """Mean of the last few CPU temperatures read from the kernel's thermal zone (millidegrees C)."""

    def __init__(self, path: Path, window: int = CPU_MEAN_WINDOW) -> None:
        self.path = path
        self._recent: deque[float] = deque(maxlen=window)

    def mean_celsius(self) -> float:
        """Raises OSError/ValueError when the thermal zone cannot be read or holds no finite number."""
        text = self.path.read_text().strip()
        millidegrees = finite_number(int(text))
        if millidegrees is None:
            raise ValueError(f"{self.path} holds {shown(text)}, not millidegrees Celsius")
        self._recent.append(millidegrees / 1000.0)
        return sum(self._recent) / len(self._recent)


def decode_event(event: Any) -> Any:
    """Greengrass passes JSON payloads as dicts, binary ones as bytes: accept both."""
    if isinstance(event, (bytes, bytearray)):
        event = event.decode("utf-8")
    if isinstance(event, str):
        try:
            return json.loads(event)
        except RecursionError:  # e.g. b"[" * 100000
            raise InvalidReading("the JSON is nested too deeply to be a reading") from None
    return event


class ShadowWriter:
    def __init__(self, config: ShadowWriterConfig, port: GreengrassPort, clock: runtime.Clock,
                 cpu_mean_celsius: Callable[[], float]) -> None:
        self.config, self._port, self._clock, self._cpu_mean_celsius = config, port, clock, cpu_mean_celsius

    def handle(self, event: Any) -> dict[str, Any]:
        """Returns {"accepted": bool, "reason"?: str}; never raises for bad input."""
        try:
            reading = parse_reading(decode_event(event), self._clock.now())
            reported = self._compensate(reading)
            self._refuse_if_not_newer(reading)
        except ValueError as error:  # InvalidReading, JSONDecodeError and UnicodeDecodeError among them
            log.warning("rejected reading %s: %s", shown(event), error)
            return {"accepted": False, "reason": str(error)}
        try:
            self._port.update_shadow(self.config.thing_name, WEATHER_SHADOW, {"state": {"reported": reported}})
        except PortError as error:
            log.error("weather shadow update failed for reading at %s: %s", reported["sampled_at"], error)
            return {"accepted": False, "reason": f"shadow update failed: {error}"}
        return {"accepted": True}

    def _compensate(self, reading: Reading) -> dict[str, Any]:
        reported: dict[str, Any] = reading.as_message()
        # Every key is written each time: null removes what an earlier mode left (shadow merge).
        reported.update(raw_temperature=None, cpu_temperature=None, temperature_compensation="off")
        if not self.config.cpu_temp_compensation:
            return reported
        try:
            cpu = self._cpu_mean_celsius()
        except (OSError, ValueError) as error:
            log.warning("CPU temperature unreadable at %s (%s): writing the uncompensated reading",
                        self.config.cpu_temp_path, error)
            reported["temperature_compensation"] = "unavailable"
            return reported
        compensated = round(2 * reading.temperature - cpu, 2)
        low, high = SENSOR_RANGES["temperature"]
        if not low <= compensated <= high:
            raise InvalidReading(
                f"compensated temperature {compensated} (sensor {reading.temperature}, CPU mean {cpu:.1f}) "
                f"is outside [{low}, {high}]"
            )
        reported.update(temperature=compensated, raw_temperature=reading.temperature,
                        cpu_temperature=round(cpu, 2), temperature_compensation="2*sensor-cpu_mean")
        return reported

    def _refuse_if_not_newer(self, reading: Reading) -> None:
        try:
            current = self._port.get_shadow(self.config.thing_name, WEATHER_SHADOW)
        except ShadowNotFound:
            return
        except PortError as error:
            log.warning("could not read the weather shadow to order readings: %s", error)
            return
        try:
            previous = reported_state(current).get("sampled_at")
            previous_at = parse_timestamp(previous)
        except InvalidReading:
            return  # no valid state to protect
        if in_future(previous_at, self._clock.now()):
            log.warning("the weather shadow's sampled_at %s is in the future: replacing it", previous)
            return
        if reading.sampled_at <= previous_at:
            raise InvalidReading(
                f"sampled_at={reading.as_message()['sampled_at']} is not newer than the shadow's {previous}"
            )


def build(context: runtime.FunctionContext) -> ShadowWriter:
    config = load_shadow_writer_config(context.environ)
    runtime.configure_logging(config.log_level)
    thermometer = CpuThermometer(config.cpu_temp_path)
    log.info("shadow_writer: CPU temperature compensation %s", "on" if config.cpu_temp_compensation else "off")
    return ShadowWriter(config, context.port, context.clock, thermometer.mean_celsius)


host = runtime.FunctionHost(SHADOW_WRITER, build)


def handler(event, context):
    return host.get().handle(event)
