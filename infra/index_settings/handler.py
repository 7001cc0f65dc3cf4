"""Custom resource of the stack: turn on what AWS IoT fleet indexing must index for this app, and on
removal take back only what it added.

Fleet indexing has one configuration per account and region, and CloudFormation has no resource for
it; UpdateIndexingConfiguration sets it ("Manage thing indexing"). Another application in the account
may rely on it, so this handler only ever adds to it:
- thingIndexingMode at least REGISTRY_AND_SHADOW (named shadows are indexed only with shadows),
  thingConnectivityIndexingMode STATUS, namedShadowIndexingMode ON;
- the app's shadow names added to filter.namedShadowNames ("By default, you can add up to 10 shadow
  names per AWS account": more is refused with one line);
- every other setting (custom fields, which an update "overwrites", geolocation, Device Defender)
  passed back as it was.
What it added is recorded in its physical resource id, which CloudFormation keeps and hands back
on Delete; then the handler removes those shadow names and nothing else. It never lowers a mode:
"Downgrading data sources by updating fleet indexing configuration is not supported", and another
application may be using it.

Called by the CDK custom-resource provider framework: the answer is {"PhysicalResourceId", "Data"}.
"""
from __future__ import annotations

from typing import Any

SHADOW_NAMES_PROPERTY = "NamedShadowNames"
# AWS IoT API reference, ThingIndexingConfiguration.thingIndexingMode: OFF | REGISTRY | REGISTRY_AND_SHADOW.
MODE_ORDER = ("OFF", "REGISTRY", "REGISTRY_AND_SHADOW")
MAX_NAMED_SHADOWS = 10
_RECORD = "rainedge-fleet-indexing:added="
# Set by the service; not part of what UpdateIndexingConfiguration takes back.
_SERVICE_FIELDS = ("managedFields",)


class IndexingRefused(ValueError):
    """The account's indexing cannot take the app's shadows (one line for the stack event)."""


def settable(current: dict[str, Any]) -> dict[str, Any]:
    """The configuration as UpdateIndexingConfiguration takes it back."""
    return {key: value for key, value in current.items() if key not in _SERVICE_FIELDS}


def merged(current: dict[str, Any], shadow_names: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The configuration with this app's needs added, and the shadow names that were not there."""
    config = settable(current)
    mode = config.get("thingIndexingMode", "OFF")
    if MODE_ORDER.index(mode) < MODE_ORDER.index("REGISTRY_AND_SHADOW"):
        config["thingIndexingMode"] = "REGISTRY_AND_SHADOW"
    config["thingConnectivityIndexingMode"] = "STATUS"
    config["namedShadowIndexingMode"] = "ON"
    index_filter = dict(config.get("filter") or {})
    present = list(index_filter.get("namedShadowNames") or [])
    added = [name for name in shadow_names if name not in present]
    if len(present) + len(added) > MAX_NAMED_SHADOWS:
        raise IndexingRefused(
            f"fleet indexing already indexes {len(present)} named shadows ({', '.join(present)}); adding "
            f"{', '.join(added)} would pass the default limit of {MAX_NAMED_SHADOWS} per account")
    index_filter["namedShadowNames"] = present + added
    config["filter"] = index_filter
    return config, added


def without(current: dict[str, Any], added: list[str]) -> dict[str, Any]:
    """The configuration with the shadow names this app added taken out again; modes stay."""
    config = settable(current)
    index_filter = dict(config.get("filter") or {})
    index_filter["namedShadowNames"] = [name for name in index_filter.get("namedShadowNames") or []
                                        if name not in added]
    config["filter"] = index_filter
    return config


def record(added: list[str]) -> str:
    return _RECORD + ",".join(added)


def recorded(physical_id: str) -> list[str]:
    """The shadow names a physical id says were added; [] for any id this handler did not write."""
    if not isinstance(physical_id, str) or not physical_id.startswith(_RECORD):
        return []
    return [name for name in physical_id[len(_RECORD):].split(",") if name]


def on_event(event: dict[str, Any], iot: Any) -> dict[str, Any]:
    request = event["RequestType"]
    names = list(event["ResourceProperties"][SHADOW_NAMES_PROPERTY])
    current = iot.get_indexing_configuration()["thingIndexingConfiguration"]
    if request == "Delete":
        added = recorded(event.get("PhysicalResourceId", ""))
        if added:
            iot.update_indexing_configuration(thingIndexingConfiguration=without(current, added))
        return {"PhysicalResourceId": event["PhysicalResourceId"]}
    config, added = merged(current, names)
    if config != settable(current):
        iot.update_indexing_configuration(thingIndexingConfiguration=config)
    if request == "Update":
        # The record of what Create added stays: a new physical id would make CloudFormation delete the
        # old one, which would take back names the app still uses. (The names are a contract of the app
        # and do not change between updates.)
        return {"PhysicalResourceId": event["PhysicalResourceId"]}
    return {"PhysicalResourceId": record(added)}


def handler(event, context):
    import boto3
    return on_event(event, boto3.client("iot"))
