"""Topics, shadow names and the validation of readings (the data contracts of DESIGN.md)."""
from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Mapping

from .sea_level import ALTITUDE_RANGE_M, sea_level_pressure

WEATHER_SHADOW = "weather"
RAIN_SHADOW = "rain"
# The station's own adaptation of the rain model (device_code.adaptation_shadow): the cloud writes
# its desired state, the device reports what it holds in force.
ADAPTATION_SHADOW = "adaptation"
# The named shadows ShadowManager synchronises; each must be listed by name (no wildcard).
SHADOW_NAMES = (WEATHER_SHADOW, RAIN_SHADOW, ADAPTATION_SHADOW)
# Local pub/sub topic of the readings; it never leaves the core. One literal topic: a Lambda
# PUB_SUB event source takes no MQTT wildcards and no {iot:thingName} (Greengrass V2 API
# reference, LambdaEventSource), and on one core only its own sensor publishes here.
READINGS_TOPIC = "rainedge/readings"
FEATURES = ("temperature", "humidity", "pressure")
# The units of the readings (and of the model artifact's inputs, metadata.json "units").
UNITS = {"temperature": "degC", "humidity": "%RH", "pressure": "hPa"}
# The BME680's operating ranges (°C, %RH, hPa): a value outside them is a fault, not weather.
SENSOR_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (-40.0, 85.0),
    "humidity": (0.0, 100.0),
    "pressure": (300.0, 1100.0),
}
# The weather shadow holds the pressure as measured (`pressure`, station pressure) and, reduced to
# sea level with the station's altitude, SEA_LEVEL_PRESSURE: the pressure the rain models take. It is
# null (absent) when the station altitude is unusable; ALTITUDE_SOURCE and ALTITUDE_DETAIL say why.
SEA_LEVEL_PRESSURE, ALTITUDE_M = "sea_level_pressure", "altitude_m"
ALTITUDE_SOURCE, ALTITUDE_DETAIL = "altitude_source", "altitude_detail"
# Where the station altitude came from: the station file, the documented default (no station file:
# 0 m), or nowhere (a station file that is unreadable or malformed: no sea-level pressure at all).
STATION_FILE_SOURCE, DEFAULT_SOURCE, INVALID_SOURCE = "station_file", "default", "invalid"
DEFAULT_ALTITUDE_M = 0.0


def _sea_level_pressure_range() -> tuple[float, float]:
    """Every sea-level pressure a valid reading gives at a valid altitude: the reduction is monotonic in
    each of pressure, altitude and temperature, so the corners bound it. It reaches beyond 1100 hPa: a
    high-pressure day a little above sea level reduces to more than the sensor's maximum."""
    corners = [sea_level_pressure(pressure, altitude, temperature) for pressure in SENSOR_RANGES["pressure"]
               for altitude in ALTITUDE_RANGE_M for temperature in SENSOR_RANGES["temperature"]]
    return min(corners), max(corners)


SEA_LEVEL_PRESSURE_RANGE = _sea_level_pressure_range()
# What the rain models take, and the device's reading history keeps: sea-level pressure.
MODEL_INPUT_RANGES = {**SENSOR_RANGES, "pressure": SEA_LEVEL_PRESSURE_RANGE}
# Clocks of a Pi without RTC drift until NTP syncs: tolerate a little future, refuse more.
MAX_CLOCK_SKEW_S = 120.0
# How a rejected value is quoted in a message: its repr, cut short and never deeper than a few
# levels, so a message stays one short line (and a `detail` stays far below the 8 KiB shadow limit).
_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxstring = _SHORT_REPR.maxother = 80


def shown(value: Any) -> str:
    return _SHORT_REPR.repr(value)


def named_shadow(thing_name: str, shadow_name: str) -> str:
    """The local name of a named shadow: its IPC access-control resource and its topics' prefix."""
    return f"$aws/things/{thing_name}/shadow/name/{shadow_name}"


def shadow_topic(thing_name: str, shadow_name: str, suffix: str) -> str:
    """E.g. shadow_topic(t, "weather", "update/documents")."""
    return f"{named_shadow(thing_name, shadow_name)}/{suffix}"


class InvalidReading(ValueError):
    """A reading (or the reported state of the weather shadow) fails validation."""


@dataclass(frozen=True)
class Reading:
    temperature: float
    humidity: float
    pressure: float
    sampled_at: datetime

    def as_message(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "humidity": self.humidity,
            "pressure": self.pressure,
            "sampled_at": format_timestamp(self.sampled_at),
        }


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_timestamp(value: Any, field: str = "sampled_at") -> datetime:
    if not isinstance(value, str):
        raise InvalidReading(f"{field} must be an ISO-8601 UTC string, got {shown(value)}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidReading(f"{field}={shown(value)} is not an ISO-8601 timestamp") from None
    if moment.tzinfo is None:
        raise InvalidReading(f"{field}={shown(value)} has no time zone: use UTC, e.g. 2013-10-01T05:00:00Z")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:30:00+01:00 is before year 1 in UTC
        raise InvalidReading(f"{field}={shown(value)} is outside the years 1-9999 in UTC") from None


def in_future(moment: datetime, now: datetime) -> bool:
    """Later than `now` by more than the tolerated clock skew. Such a time is no valid reading, and a
    stored one (a cloud-side edit synced down, a clock that jumped back) is no reference for "newer"."""
    return (moment - now).total_seconds() > MAX_CLOCK_SKEW_S


def finite_number(value: Any) -> float | None:
    """`value` as a float when it is a finite JSON number (bool is an int in Python, but `true` is no
    temperature; 10**400 is an int no float holds); else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def parse_reading(
    payload: Any,
    now: datetime,
    ranges: Mapping[str, tuple[float, float]] = SENSOR_RANGES,
) -> Reading:
    """Validate one reading: all three numbers finite and within `ranges`, timestamp not in the future."""
    if not isinstance(payload, Mapping):
        raise InvalidReading(f"a reading must be a JSON object, got {type(payload).__name__}")
    values = {}
    for field in FEATURES:
        if field not in payload:
            raise InvalidReading(f"{field} is missing (required: {', '.join(FEATURES)}, sampled_at)")
        value = finite_number(payload[field])
        if value is None:
            raise InvalidReading(f"{field}={shown(payload[field])} is not a finite number")
        low, high = ranges[field]
        if not low <= value <= high:
            raise InvalidReading(f"{field}={shown(payload[field])} is outside the valid range [{low}, {high}]")
        values[field] = value
    sampled_at = parse_timestamp(payload.get("sampled_at"))
    if in_future(sampled_at, now):
        raise InvalidReading(
            f"sampled_at={shown(payload['sampled_at'])} is in the future (now {format_timestamp(now)})"
        )
    return Reading(sampled_at=sampled_at, **values)


def parse_model_reading(
    state: Mapping[str, Any],
    now: datetime,
    ranges: Mapping[str, tuple[float, float]] = SENSOR_RANGES,
) -> Reading:
    """What the rain models take from the weather shadow's reported state: the reading validated by
    `parse_reading` (the station pressure within the sensor's range), with its pressure replaced by the
    shadow writer's SEA_LEVEL_PRESSURE (checked against SEA_LEVEL_PRESSURE_RANGE, not the sensor's)."""
    reading = parse_reading(state, now, ranges)
    raw = state.get(SEA_LEVEL_PRESSURE)
    if raw is None:
        if state.get(ALTITUDE_SOURCE) == INVALID_SOURCE:
            detail = state.get(ALTITUDE_DETAIL)
            raise InvalidReading(f"{SEA_LEVEL_PRESSURE} is missing: the station altitude is unusable: "
                                 + (detail[:120] if isinstance(detail, str) else shown(detail)))
        raise InvalidReading(f"{SEA_LEVEL_PRESSURE} is missing (the shadow writer reduces each reading to sea level)")
    value = finite_number(raw)
    low, high = SEA_LEVEL_PRESSURE_RANGE
    if value is None or not low <= value <= high:
        raise InvalidReading(f"{SEA_LEVEL_PRESSURE}={shown(raw)} is not a number within [{low:.1f}, {high:.1f}]")
    return replace(reading, pressure=value)


def reported_state(document: Any) -> Mapping[str, Any]:
    """`state.reported` of a shadow document; InvalidReading when the document has another shape."""
    state = document.get("state") if isinstance(document, Mapping) else None
    reported = state.get("reported") if isinstance(state, Mapping) else None
    if not isinstance(reported, Mapping):
        raise InvalidReading("malformed shadow document: no state.reported object")
    return reported


def without_nulls(state: Mapping[str, Any]) -> dict[str, Any]:
    """A shadow state as its readers see it: a null is no value (the shadow service deletes a key an
    update sets to null, and may keep one that came inside a new object)."""
    return {key: without_nulls(value) if isinstance(value, Mapping) else value
            for key, value in state.items() if value is not None}


def update_to_hold(held: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The `reported` update after which a shadow that holds `held` holds `wanted` and nothing else:
    the shadow service merges an update into what it holds, object by object, and a null deletes its
    key (AWS IoT Developer Guide, "Device Shadow service documents")."""
    update: dict[str, Any] = dict.fromkeys(held.keys() - wanted.keys())
    for key, value in wanted.items():
        inner = held.get(key)
        both_objects = isinstance(value, Mapping) and isinstance(inner, Mapping)
        update[key] = update_to_hold(inner, value) if both_objects else value
    return update
