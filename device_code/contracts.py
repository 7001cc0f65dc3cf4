"""Topics, shadow names and the validation of readings (the data contracts of DESIGN.md)."""
from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

WEATHER_SHADOW = "weather"
RAIN_SHADOW = "rain"
# The named shadows ShadowManager synchronises; each must be listed by name (no wildcard).
SHADOW_NAMES = (WEATHER_SHADOW, RAIN_SHADOW)
# Local pub/sub topic of the readings; it never leaves the core. One literal topic: a Lambda
# PUB_SUB event source takes no MQTT wildcards and no {iot:thingName} (Greengrass V2 API
# reference, LambdaEventSource), and on one core only its own sensor publishes here.
READINGS_TOPIC = "rainedge/readings"
FEATURES = ("temperature", "humidity", "pressure")
# The BME680's operating ranges (°C, %RH, hPa): a value outside them is a fault, not weather.
SENSOR_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (-40.0, 85.0),
    "humidity": (0.0, 100.0),
    "pressure": (300.0, 1100.0),
}
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


def reported_state(document: Any) -> Mapping[str, Any]:
    """`state.reported` of a shadow document; InvalidReading when the document has another shape."""
    state = document.get("state") if isinstance(document, Mapping) else None
    reported = state.get("reported") if isinstance(state, Mapping) else None
    if not isinstance(reported, Mapping):
        raise InvalidReading("malformed shadow document: no state.reported object")
    return reported
