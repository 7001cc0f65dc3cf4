"""Greengrass V2 facts the stack depends on, in one place.

AWS-provided component versions are pinned (checked against the AWS IoT Greengrass V2
developer guide, 2026-11): a deployment that names a version keeps devices from silently
picking up a new nucleus (which restarts the device software) when a device joins the group.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

NUCLEUS = "aws.greengrass.Nucleus"
SHADOW_MANAGER = "aws.greengrass.ShadowManager"
LAMBDA_MANAGER = "aws.greengrass.LambdaManager"
LAMBDA_LAUNCHER = "aws.greengrass.LambdaLauncher"
LAMBDA_RUNTIMES = "aws.greengrass.LambdaRuntimes"

PUBLIC_COMPONENT_VERSIONS = {
    NUCLEUS: "2.16.1",
    SHADOW_MANAGER: "2.3.12",
    # LambdaManager 2.3.7 supports nucleus >=2.0.0 <2.17.0; LambdaLauncher 2.0.13 needs
    # LambdaManager <2.4.0.
    LAMBDA_MANAGER: "2.3.7",
    LAMBDA_LAUNCHER: "2.0.13",
    LAMBDA_RUNTIMES: "2.0.9",
}

# IPC service identifiers used in component `accessControl`.
IPC_PUBSUB = "aws.greengrass.ipc.pubsub"
IPC_SHADOW = SHADOW_MANAGER
PUBLISH = "aws.greengrass#PublishToTopic"
SUBSCRIBE = "aws.greengrass#SubscribeToTopic"
GET_SHADOW = "aws.greengrass#GetThingShadow"
UPDATE_SHADOW = "aws.greengrass#UpdateThingShadow"

# Resolved per device by the nucleus (needs interpolateComponentConfiguration, nucleus >= 2.6).
THING = "{iot:thingName}"
SHADOW_NAMES = ("weather", "rain")


def readings_topic(thing: str = THING) -> str:
    return f"rainedge/{thing}/readings"


def shadow_resource(shadow: str, thing: str = THING) -> str:
    return f"$aws/things/{thing}/shadow/name/{shadow}"


def shadow_documents_topic(shadow: str, thing: str = THING) -> str:
    return f"{shadow_resource(shadow, thing)}/update/documents"


def content_version(*parts: Any) -> str:
    """A semantic version that changes whenever `parts` change and only then.

    Greengrass component versions are immutable and CloudFormation replaces a component on
    any recipe change, so the version is derived from the content: major.minor are fixed,
    the patch is the first 28 bits of a SHA-256 of the canonical JSON of `parts`.
    """
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return f"1.0.{int(digest[:7], 16)}"


def access_control(component: str, **grants: list[tuple[str, list[str], list[str]]]) -> dict:
    """Build an `accessControl` block.

    `grants` maps an IPC service (keyword-safe alias: pubsub / shadow) to a list of
    (description, operations, resources); each becomes one named policy.
    """
    services = {"pubsub": IPC_PUBSUB, "shadow": IPC_SHADOW}
    block: dict[str, dict] = {}
    for alias, policies in grants.items():
        service_policies = block.setdefault(services[alias], {})
        for index, (description, operations, resources) in enumerate(policies, start=1):
            service_policies[f"{component}:{alias}:{index}"] = {
                "policyDescription": description,
                "operations": operations,
                "resources": resources,
            }
    return block
