"""On-demand Lambda `shadow_writer`: each reading on the local readings topic -> named shadow `weather`.

Invoked by its PUB_SUB event source. A reading is validated (finite numbers within the BME680's
ranges, an ISO-8601 UTC timestamp, newer than the one in the shadow); anything else is logged and
dropped, so garbage never overwrites a valid state. Optionally the story's CPU heat compensation
(`2*T_sensor - mean CPU temperature`) is applied, and the shadow says so.

The BME680 measures the pressure where it stands; the rain models take sea-level pressure. The
writer reads the station's altitude from the station file (STATION_FILE, written by install.sh)
at each reading and writes both: `pressure` as measured and `sea_level_pressure`, reduced with the
(compensated) temperature. No station file means the documented default of 0 m; a station file that
cannot be read or holds no valid altitude gives no sea-level pressure at all (the rain shadow then
says `invalid_input`, naming the file), never one computed from a wrong altitude.
"""
from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import files, runtime
from .config import ShadowWriterConfig, load_shadow_writer_config
from .contracts import (ALTITUDE_DETAIL, ALTITUDE_M, ALTITUDE_SOURCE, DEFAULT_ALTITUDE_M, DEFAULT_SOURCE,
                        INVALID_SOURCE, SEA_LEVEL_PRESSURE, SENSOR_RANGES, STATION_FILE_SOURCE, WEATHER_SHADOW,
                        InvalidReading, Reading, finite_number, in_future, parse_reading, parse_timestamp,
                        reported_state, shown)
from .functions import SHADOW_WRITER
from .port import GreengrassPort, PortError, ShadowNotFound
from .sea_level import ALTITUDE_RANGE_M, sea_level_pressure

log = logging.getLogger(__name__)
# CPU temperatures averaged for the compensation (one per reading): smooths CPU load spikes.
CPU_MEAN_WINDOW = 5
# The station file holds one small JSON object; anything longer is not one.
STATION_FILE_MAX_BYTES = 4096
# A thermal zone holds one integer (millidegrees Celsius) and a newline.
CPU_TEMP_MAX_BYTES = 32


@dataclass(frozen=True)
class StationAltitude:
    altitude_m: float | None  # None: the station file is unusable
    source: str  # STATION_FILE_SOURCE | DEFAULT_SOURCE | INVALID_SOURCE
    detail: str  # which file, and what is wrong with it

    def as_reported(self) -> dict[str, Any]:
        return {ALTITUDE_M: self.altitude_m, ALTITUDE_SOURCE: self.source, ALTITUDE_DETAIL: self.detail}


def read_station_altitude(path: Path) -> StationAltitude:
    """The station's altitude from the station file {"altitude_m": <metres>}: the default 0 m when
    there is no such file, None (source "invalid") when it cannot be read or holds anything else."""
    low, high = ALTITUDE_RANGE_M
    try:
        document = files.read_json(path, STATION_FILE_MAX_BYTES)
    except files.FileMissing:
        return StationAltitude(DEFAULT_ALTITUDE_M, DEFAULT_SOURCE, f"no station file {path}")
    except files.UnusableFile as error:
        return StationAltitude(None, INVALID_SOURCE, str(error))
    if not (isinstance(document, dict) and set(document) == {ALTITUDE_M}):
        return StationAltitude(None, INVALID_SOURCE, f'{path} is not {{"altitude_m": <metres>}}')
    altitude = finite_number(document[ALTITUDE_M])
    if altitude is None or not low <= altitude <= high:
        return StationAltitude(None, INVALID_SOURCE, f"{path}: altitude_m {shown(document[ALTITUDE_M])} is not "
                                                     f"a number from {low:g} to {high:g}")
    return StationAltitude(altitude, STATION_FILE_SOURCE, str(path))


class CpuThermometer:
    """Mean of the last few CPU temperatures read from the kernel's thermal zone (millidegrees C)."""

    def __init__(self, path: Path, window: int = CPU_MEAN_WINDOW) -> None:
        self.path = path
        self._recent: deque[float] = deque(maxlen=window)

    def mean_celsius(self) -> float:
        """Raises UnusableFile/ValueError when the thermal zone cannot be read or holds no finite number."""
        text = files.read_text(self.path, CPU_TEMP_MAX_BYTES).strip()
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
        self._station: StationAltitude | None = None  # the last one logged

    def handle(self, event: Any) -> dict[str, Any]:
        """Returns {"accepted": bool, "reason"?: str}; never raises for bad input."""
        try:
            reading = parse_reading(decode_event(event), self._clock.now())
            reported = self._compensate(reading)
            reported.update(self._reduce_to_sea_level(reading.pressure, reported["temperature"]))
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
        except (files.UnusableFile, ValueError) as error:
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

    def _reduce_to_sea_level(self, pressure: float, temperature: float) -> dict[str, Any]:
        """SEA_LEVEL_PRESSURE and where the altitude came from; the pressure is None (removed from
        the shadow) when the station file is unusable."""
        station = read_station_altitude(self.config.station_file)
        if station != self._station:
            log_at = logging.ERROR if station.altitude_m is None else logging.INFO
            log.log(log_at, "station altitude: %s m (%s: %s)", station.altitude_m, station.source, station.detail)
            self._station = station
        reduced = None
        if station.altitude_m is not None:
            reduced = round(sea_level_pressure(pressure, station.altitude_m, temperature), 2)
        return {SEA_LEVEL_PRESSURE: reduced, **station.as_reported()}

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
