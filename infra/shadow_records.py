"""What the cloud keeps of each shadow update: one small JSON record per update, in a log group, for
CloudWatch Logs Insights. No custom metrics: the fleet's numbers come from fleet indexing
(infra/fleet_index.py), whose metrics do not grow with the fleet, and per-device detail from Logs
Insights queries over these records (infra/monitoring.py), priced per GB scanned.

Every accepted update of a device's `weather` or `rain` shadow makes AWS IoT publish the shadow's
`update/documents` message ({"previous", "current", "timestamp"}; "Device Shadow service data flow").
Three AWS IoT rules select those messages and write one record each into a log group through the
CloudWatch Logs rule action: the reading, the prediction, or the status that says why there is none.

Plain data, no CDK: the stack (infra/monitoring.py), the cost estimate, the tests and the simulator's
offline dashboard (device_code/simulator/dashboard.py) all use these definitions.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from device_code.contracts import FEATURES, RAIN_SHADOW, WEATHER_SHADOW, shadow_topic
from device_code.drift import DRIFTING, OK, UNKNOWN, WARMING_UP
from device_code.inference import INVALID_INPUT, MODEL_UNAVAILABLE, NO_INPUT, PREDICTION_FAILED, STALE_INPUT

# Literals, isUndefined() and cast(... AS Decimal) need SQL version 2016-03-23 ("Literals"; "Functions").
SQL_VERSION = "2016-03-23"
THING = "ThingName"
STATUS = "Status"
RAINING = "Raining"
# The log group the records go to: config.monitoring_log_group_name(RECORDS_PURPOSE).
RECORDS_PURPOSE = "shadow-records"
# topic(n) counts segments from 1 ("Functions", topic): $aws/things/<thing>/shadow/name/<shadow>/...
THING_SQL = "topic(3)"
REPORTED = "current.state.reported"

NO_PREDICTION_STATUSES = (STALE_INPUT, INVALID_INPUT, NO_INPUT, MODEL_UNAVAILABLE, PREDICTION_FAILED)
FAULT_STATUSES = (MODEL_UNAVAILABLE, PREDICTION_FAILED)
# Any other status string is recorded as this one: a device cannot write arbitrary text into the records.
OTHER_STATUS = "other"


def reported_number(field: str) -> str:
    """The reported field as a number, or Undefined ("cast", Cast to decimal: Boolean true = 1.0,
    false = 0.0; numeric strings parsed; objects, arrays and null Undefined)."""
    return f"cast({REPORTED}.{field} AS Decimal)"


def present(expression: str) -> str:
    return f"NOT isUndefined({expression})"


def _quoted(text: str) -> str:
    if "'" in text:
        raise ValueError(f"{text!r} cannot be an IoT SQL string literal here")
    return f"'{text}'"


def _case(subject: str, mapping: dict[str, str], otherwise: str) -> str:
    branches = " ".join(f"WHEN {_quoted(key)} THEN {value}" for key, value in mapping.items())
    return f"CASE {subject} {branches} ELSE {otherwise} END"


def _object(members: dict[str, str]) -> str:
    """An IoT SQL object literal ("Literals"); `members` maps keys to SQL expressions."""
    return "{" + ", ".join(f"{_quoted(key)}: {value}" for key, value in members.items()) + "}"


@dataclass(frozen=True)
class ShadowRule:
    """One IoT rule: the `update/documents` messages of one named shadow -> one record."""

    purpose: str  # the rule is <prefix with _>_<purpose>
    shadow: str
    condition: str
    # Record members other than the thing name: name -> IoT SQL expression.
    fields: tuple[tuple[str, str], ...]
    thing_key: str = THING

    @property
    def topic_filter(self) -> str:
        # The rule's FROM takes MQTT wildcards ("FROM clause"): every thing's shadow of this name.
        return shadow_topic("+", self.shadow, "update/documents")

    def sql(self) -> str:
        record = _object({self.thing_key: THING_SQL, **dict(self.fields)})
        return f"SELECT VALUE {record} FROM {_quoted(self.topic_filter)} WHERE {self.condition}"


# The drift verdict as the device wrote it, or "unknown" (an older model, or a malformed one): one of
# a bounded set, so a device cannot write arbitrary text into the records.
DRIFT = "Drift"
DRIFT_SQL = _case(f"{REPORTED}.drift.verdict", {v: _quoted(v) for v in (OK, DRIFTING, WARMING_UP)}, _quoted(UNKNOWN))
WEATHER_READINGS = ShadowRule(
    purpose="weather_readings",
    shadow=WEATHER_SHADOW,
    condition=" AND ".join(present(reported_number(field)) for field in FEATURES),
    fields=tuple((field.capitalize(), reported_number(field)) for field in FEATURES),
)
RAIN_PREDICTIONS = ShadowRule(
    purpose="rain_predictions",
    shadow=RAIN_SHADOW,
    condition=" AND ".join(present(reported_number(field)) for field in ("probability", "threshold", "raining")),
    fields=(("Probability", reported_number("probability")), ("Threshold", reported_number("threshold")),
            (RAINING, reported_number("raining")), (DRIFT, DRIFT_SQL)),
)
RAIN_STATUSES = ShadowRule(
    purpose="rain_statuses",
    shadow=RAIN_SHADOW,
    condition=present(f"{REPORTED}.status"),
    fields=((STATUS, _case(f"{REPORTED}.status", {s: _quoted(s) for s in NO_PREDICTION_STATUSES},
                           _quoted(OTHER_STATUS))),
            ("ModelFault", _case(f"{REPORTED}.status", {s: "1" for s in FAULT_STATUSES}, "0")),
            (DRIFT, DRIFT_SQL)),
)
SHADOW_RULES = (WEATHER_READINGS, RAIN_PREDICTIONS, RAIN_STATUSES)


def record_bytes(record: Any) -> int:
    """The size CloudWatch Logs ingests for one record (the JSON text)."""
    return len(json.dumps(record, separators=(",", ":")).encode())
