"""What AWS IoT fleet indexing indexes for the app, and the queries the fleet metrics, the alarms and
`make status` run over it. Plain data, no CDK: the stack (infra/indexing.py, infra/monitoring.py),
status, the cost estimate, the tests and the simulator's offline dashboard read these definitions.

The index holds, per thing, its registry entry (thing groups), its connectivity ("connected" is false
for a thing that never connected: SearchIndex API reference) and the named shadow `rain`. The
`weather` shadow is not indexed: each of its updates would be one more index update a minute per
device (priced in infra/cost.py), and the rain shadow already carries what the fleet view needs of it
(`input_sampled_at`, the time of the reading it answered) next to the prediction, its status and the
drift verdict.

A fleet metric counts the things that match its query (aggregation Statistics/count over the managed
field `registry.version`, which every thing has: "If you don't specify an aggregation field,
registry.version is used", "Querying for aggregate data") and sends the count to CloudWatch every
period, 0 when nothing matches ("Troubleshooting fleet metrics"). Queries use `field:value`, AND, OR
and parentheses ("Query syntax"), named shadow fields as shadow.name.<shadow>.reported.<field>
("Example thing queries"), and stay within 7 terms, the lowest limit the guide has given.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from device_code.contracts import RAIN_SHADOW
from device_code.drift import DRIFTING
from device_code.inference import NO_INPUT, STALE_INPUT
from infra.shadow_records import FAULT_STATUSES

INDEX_NAME = "AWS_Things"
INDEXED_SHADOWS = (RAIN_SHADOW,)
COUNT_FIELD = "registry.version"
# Where fleet metrics land in CloudWatch: the metric is named like the fleet metric, with the
# dimension AggregationType=count. The console path of "Getting started with fleet metrics"
# (IoTFleetMetrics > Aggregation type) shows it; the developer guide states no namespace string.
NAMESPACE = "AWS/IoTFleetMetrics"
AGGREGATION_DIMENSION = ("AggregationType", "count")
# CreateFleetMetric: "Range [60(1 min), 86400(1 day)] and must be multiple of 60."
PERIOD_S = 60
MAX_QUERY_TERMS = 7
SILENT_STATUSES = (STALE_INPUT, NO_INPUT)
# What may stand as a value in a query: no space, no operator, no quote, no wildcard.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def rain_field(path: str) -> str:
    return f"shadow.name.{RAIN_SHADOW}.reported.{path}"


def term(field: str, value: str) -> str:
    if not _PLAIN_VALUE.fullmatch(value):
        raise ValueError(f"{value!r} cannot be a fleet-indexing query value")
    return f"{field}:{value}"


def any_of(*terms: str) -> str:
    return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"


def in_groups(groups: tuple[str, ...]) -> str:
    """Any of the app's thing groups: the fleet ring and the canary ring (infra/releases.py)."""
    return any_of(*(term("thingGroupNames", group) for group in groups))


@dataclass(frozen=True)
class FleetQuery:
    purpose: str  # the fleet metric is <prefix>-<purpose>
    description: str
    condition: str | None  # None: every device of the app

    def query(self, groups: tuple[str, ...]) -> str:
        text = in_groups(groups) if self.condition is None else f"{in_groups(groups)} AND {self.condition}"
        if text.count(":") > MAX_QUERY_TERMS:
            raise ValueError(f"query {text!r} has more than {MAX_QUERY_TERMS} terms")
        return text


DISCONNECTED = term("connectivity.connected", "false")
SILENT = FleetQuery("silent", "devices disconnected from AWS IoT, or whose rain shadow says the input is stale or "
                              "missing", any_of(DISCONNECTED, *(term(rain_field("status"), s) for s in SILENT_STATUSES)))
MODEL_FAULT = FleetQuery("model-fault", "devices whose rain shadow reports " + " or ".join(FAULT_STATUSES),
                         any_of(*(term(rain_field("status"), s) for s in FAULT_STATUSES)))
DRIFTING_DEVICES = FleetQuery("drifting", "devices whose inputs drift from the training baseline",
                              term(rain_field("drift.verdict"), DRIFTING))


def fleet_queries(released_model_versions: tuple[str, ...]) -> tuple[FleetQuery, ...]:
    """Every fleet metric, in dashboard order. `released_model_versions`: the promoted and the candidate model."""
    return (
        FleetQuery("devices", "devices of the app (members of its thing group)", None),
        FleetQuery("disconnected", "devices not connected to AWS IoT", DISCONNECTED),
        SILENT,
        MODEL_FAULT,
        DRIFTING_DEVICES,
        FleetQuery("raining", "devices predicting rain", term(rain_field("raining"), "true")),
        FleetQuery("on-released-model", f"devices answering with a released model ({', '.join(released_model_versions)})",
                   any_of(*(term(rain_field("model_version"), version) for version in released_model_versions))),
    )


def status_query(groups: tuple[str, ...]) -> str:
    """What `make status` lists: every device of the app."""
    return in_groups(groups)
