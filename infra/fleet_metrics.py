"""What the cloud makes of each shadow update: per-device CloudWatch metrics, without polling or compute.

Every accepted update of a device's `weather` or `rain` shadow makes AWS IoT publish the shadow's
`update/documents` message ({"previous", "current", "timestamp"}; "Device Shadow service data flow").
Three AWS IoT rules select those messages and write one record each into a log group through the
CloudWatch Logs rule action. The record is in CloudWatch's embedded metric format (EMF), so CloudWatch
Logs extracts the metrics from it, with the device's thing name as a dimension.

Why not the CloudWatch-metric rule action: it takes metricName, metricNamespace, metricUnit,
metricValue and metricTimestamp but no dimensions ("CloudWatch metrics" rule action), so per-device
metrics would need one metric name per device. Why EMF and not metric filters with dimensions: CloudWatch
Logs may disable a metric filter that generates 1,000 different dimension name/value pairs within an
hour (PutMetricFilter), which a fleet reaches; EMF has no such rule. CloudWatch extracts EMF from events
sent with PutLogEvents, and the `x-amzn-logs-format: json/emf` header "is not required" ("Using the
PutLogEvents API to send manually-created embedded metric format logs"); AWS's own sample routes EMF
records through the IoT CloudWatch Logs action (aws-iot-builder-tools/emf-metrics-with-iot-rules).

Plain data, no CDK: the stack (infra/monitoring.py), the tests and the simulator's offline dashboard
(device_code/simulator/dashboard.py) all use these definitions.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from device_code.contracts import FEATURES, RAIN_SHADOW, WEATHER_SHADOW, shadow_topic
from device_code.inference import INVALID_INPUT, MODEL_UNAVAILABLE, NO_INPUT, PREDICTION_FAILED, STALE_INPUT

# Literals, isUndefined() and cast(... AS Decimal) need SQL version 2016-03-23 ("Literals"; "Functions").
SQL_VERSION = "2016-03-23"
THING = "ThingName"
STATUS = "Status"
# topic(n) counts segments from 1 ("Functions", topic): $aws/things/<thing>/shadow/name/<shadow>/...
THING_SQL = "topic(3)"
REPORTED = "current.state.reported"

NO_PREDICTION_STATUSES = (STALE_INPUT, INVALID_INPUT, NO_INPUT, MODEL_UNAVAILABLE, PREDICTION_FAILED)
FAULT_STATUSES = (MODEL_UNAVAILABLE, PREDICTION_FAILED)
# Any other status string is counted under this one: a device cannot create unbounded dimension values.
OTHER_STATUS = "other"


def _number(field: str) -> str:
    """The reported field as a number, or Undefined ("cast", Cast to decimal: Boolean true = 1.0,
    false = 0.0; numeric strings parsed; objects, arrays and null Undefined)."""
    return f"cast({REPORTED}.{field} AS Decimal)"


def _present(expression: str) -> str:
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


def _directive(namespace: str, dimensions: tuple[str, ...], metrics: list["Metric"]) -> str:
    """An EMF MetricDirective: Namespace, one DimensionSet, MetricDefinitions (Name, Unit)."""
    dimension_set = "[[" + ", ".join(_quoted(name) for name in dimensions) + "]]"
    definitions = "[" + ", ".join(_object({"Name": _quoted(m.name), "Unit": _quoted(m.unit)}) for m in metrics) + "]"
    return _object({"Namespace": _quoted(namespace), "Dimensions": dimension_set, "Metrics": definitions})


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # a CloudWatch StandardUnit
    value_sql: str
    dimensions: tuple[str, ...] = (THING,)


@dataclass(frozen=True)
class ShadowRule:
    """One IoT rule: the `update/documents` messages of one named shadow -> one EMF record."""

    purpose: str  # the rule is <prefix with _>_<purpose>
    shadow: str
    condition: str
    metrics: tuple[Metric, ...]
    # Dimension values other than the thing name, as IoT SQL expressions.
    dimension_values: tuple[tuple[str, str], ...] = ()

    @property
    def topic_filter(self) -> str:
        # The rule's FROM takes MQTT wildcards ("FROM clause"): every thing's shadow of this name.
        return shadow_topic("+", self.shadow, "update/documents")

    def sql(self, namespace: str) -> str:
        dimension_sets: dict[tuple[str, ...], list[Metric]] = {}
        for metric in self.metrics:
            dimension_sets.setdefault(metric.dimensions, []).append(metric)
        directives = ", ".join(_directive(namespace, dimensions, metrics)
                               for dimensions, metrics in dimension_sets.items())
        record = _object({
            "_aws": _object({"Timestamp": "timestamp()", "CloudWatchMetrics": f"[{directives}]"}),
            THING: THING_SQL,
            **dict(self.dimension_values),
            **{metric.name: metric.value_sql for metric in self.metrics},
        })
        return f"SELECT VALUE {record} FROM {_quoted(self.topic_filter)} WHERE {self.condition}"


WEATHER_METRICS = ShadowRule(
    purpose="weather_metrics",
    shadow=WEATHER_SHADOW,
    condition=" AND ".join(_present(_number(field)) for field in FEATURES),
    metrics=tuple(Metric(field.capitalize(), "Percent" if field == "humidity" else "None", _number(field))
                  for field in FEATURES),
)
PREDICTION_METRICS = ShadowRule(
    purpose="rain_predictions",
    shadow=RAIN_SHADOW,
    condition=" AND ".join(_present(_number(field)) for field in ("probability", "threshold", "raining")),
    metrics=(
        Metric("Probability", "None", _number("probability")),
        Metric("Threshold", "None", _number("threshold")),
        Metric("Raining", "None", _number("raining")),
        Metric("ModelFault", "None", "0"),
    ),
)
STATUS_METRICS = ShadowRule(
    purpose="rain_statuses",
    shadow=RAIN_SHADOW,
    condition=_present(f"{REPORTED}.status"),
    dimension_values=((STATUS, _case(f"{REPORTED}.status", {s: _quoted(s) for s in NO_PREDICTION_STATUSES},
                                     _quoted(OTHER_STATUS))),),
    metrics=(
        Metric("NoPrediction", "Count", "1", (THING, STATUS)),
        Metric("ModelFault", "None", _case(f"{REPORTED}.status", {s: "1" for s in FAULT_STATUSES}, "0")),
    ),
)
SHADOW_RULES = (WEATHER_METRICS, PREDICTION_METRICS, STATUS_METRICS)


# ---- Metrics Insights queries (alarms and dashboard) --------------------------------------------
def per_device(statistic: str, metric: str, namespace: str, *, by_status: bool = False) -> str:
    """One time series per device (and status): the GROUP BY that lets one alarm or one graph cover
    the whole fleet ("Create a CloudWatch alarm based on a Metrics Insights query": each returned
    time series becomes a contributor; multi-time-series alarms need GROUP BY and ORDER BY)."""
    dimensions = f"{THING}, {STATUS}" if by_status else THING
    return f'SELECT {statistic}({metric}) FROM SCHEMA("{namespace}", {dimensions}) GROUP BY {dimensions}'


# Each weather record carries one value of each reading: counting the temperatures counts readings.
READING_COUNTER = FEATURES[0].capitalize()


def silence_query(namespace: str) -> str:
    # At most 500 series per query ("Metrics Insights quotas"): ascending order keeps the quietest.
    return f"{per_device('COUNT', READING_COUNTER, namespace)} ORDER BY COUNT() ASC"


def fault_query(namespace: str) -> str:
    return f"{per_device('MAX', 'ModelFault', namespace)} ORDER BY MAX() DESC"


# ---- embedded metric format: what CloudWatch extracts from a record -----------------------------
class EmfError(ValueError):
    """The record breaks the embedded metric format specification: CloudWatch extracts nothing."""


@dataclass(frozen=True)
class MetricPoint:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    timestamp_ms: int
    value: float
    unit: str


def emf_metrics(record: Any) -> list[MetricPoint]:
    """The metric values in one EMF log event ("Specification: Embedded metric format"): the root
    holds `_aws` {Timestamp (ms), CloudWatchMetrics [MetricDirective]}; each directive names a
    Namespace, DimensionSets (arrays of root members holding strings) and Metrics whose Name is a
    root member holding a number. The root must hold every member a directive references."""
    metadata = record.get("_aws") if isinstance(record, dict) else None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("CloudWatchMetrics"), list):
        raise EmfError("no _aws.CloudWatchMetrics array")
    timestamp = metadata.get("Timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise EmfError(f"_aws.Timestamp must be milliseconds since the epoch, got {timestamp!r}")
    points = []
    for directive in metadata["CloudWatchMetrics"]:
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not namespace:
            raise EmfError(f"directive without a Namespace: {directive!r}")
        for dimension_set in directive.get("Dimensions", []):
            values = tuple((name, record.get(name)) for name in dimension_set)
            if any(not isinstance(value, str) for _, value in values):
                raise EmfError(f"dimension members must hold strings: {values!r}")
            for definition in directive.get("Metrics", []):
                value = record.get(definition["Name"])
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise EmfError(f"metric {definition['Name']} must hold a number, got {value!r}")
                points.append(MetricPoint(namespace, definition["Name"], values, timestamp, float(value),
                                          definition.get("Unit", "None")))
    return points


def record_bytes(record: Any) -> int:
    """The size CloudWatch Logs ingests for one record (the JSON text)."""
    return len(json.dumps(record, separators=(",", ":")).encode())
