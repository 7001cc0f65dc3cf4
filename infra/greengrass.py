"""Greengrass V2 facts the stack depends on, in one place.

AWS-provided component versions are pinned: a deployment that names a version keeps devices from
silently picking up a new nucleus (which restarts the device software) when a device joins the
group. Each pinned component's documented requirements are in DOCUMENTED_REQUIREMENTS, with the
page they come from; tests/infra checks the pins against them on every synth.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from device_code.contracts import SHADOW_NAMES  # noqa: F401  (the synchronised shadows, re-exported)
from device_code.functions import SHADOWS, Grant

NUCLEUS = "aws.greengrass.Nucleus"
# The shadow manager component is also the IPC service of local shadows.
SHADOW_MANAGER = SHADOWS
LAMBDA_MANAGER = "aws.greengrass.LambdaManager"
LAMBDA_LAUNCHER = "aws.greengrass.LambdaLauncher"
LAMBDA_RUNTIMES = "aws.greengrass.LambdaRuntimes"
LOG_MANAGER = "aws.greengrass.LogManager"

PUBLIC_COMPONENT_VERSIONS = {
    NUCLEUS: "2.16.1",
    SHADOW_MANAGER: "2.3.12",
    LAMBDA_MANAGER: "2.3.7",
    LAMBDA_LAUNCHER: "2.0.13",
    LAMBDA_RUNTIMES: "2.0.9",
    # Latest release tag of aws-greengrass/aws-greengrass-log-manager (v2.3.11, 2025-10-27).
    LOG_MANAGER: "2.3.11",
}


@dataclass(frozen=True)
class Requirement:
    """`component` (pinned above) needs `dependency` within `version_range` (npm-style, as
    Greengrass writes them), according to `source`."""

    component: str
    dependency: str
    version_range: str
    source: str


DOCUMENTED_REQUIREMENTS = (
    # The LambdaManager's nucleus range has an upper bound per nucleus minor: 2.3.7 is the one for 2.16.x.
    Requirement(LAMBDA_MANAGER, NUCLEUS, ">=2.0.0 <2.17.0",
                "developer guide, Lambda manager, Changelog/Dependencies of 2.3.7"),
    Requirement(LAMBDA_LAUNCHER, LAMBDA_MANAGER, ">=2.0.0 <2.4.0",
                "developer guide, Lambda launcher, Dependencies of 2.0.11 - 2.0.13"),
    # The pages reached list no range for 2.3.12 itself; this is the one of 2.3.x published there.
    Requirement(SHADOW_MANAGER, NUCLEUS, ">=2.5.0 <3.0.0",
                "developer guide, Shadow manager, Dependencies of 2.3.0 - 2.3.1 (2.3.12: not published)"),
    # As for ShadowManager, the pages reached publish no range for the newest versions.
    Requirement(LOG_MANAGER, NUCLEUS, ">=2.1.0 <3.0.0",
                "developer guide, Log manager, Dependencies of 2.2.8 - 2.3.1 (2.3.11: not published)"),
)
# (Lambda runtimes has no dependencies: developer guide, Lambda runtimes, Dependencies.)

# Developer guide, "Log manager": "version 2.2.8 (and earlier) processes and uploads logs from only
# rotated log files"; "version 2.3.0 (and later) ... directly uploads that active log file, without
# waiting for it to be rotated" (except when logs are written to a different file system). And:
# "We recommend upgrading to Log Manager v2.3.5 or later."
LOG_MANAGER_UPLOADS_ACTIVE_FILE = "2.3.0"
LOG_MANAGER_RECOMMENDED = "2.3.5"


# Where LogManager puts logs: /aws/greengrass/<componentType>/<region>/<componentName> (developer
# guide, "Log manager"). User components (Lambda ones included) have a group each; the nucleus and
# plugins such as ShadowManager and LambdaManager log into one System group, shared with every other
# Greengrass app of the account and region, which the stack never owns and teardown never deletes.
def component_log_group(region: str, component: str) -> str:
    return f"/aws/greengrass/UserComponent/{region}/{component}"


def system_log_group(region: str) -> str:
    return f"/aws/greengrass/GreengrassSystemComponent/{region}/System"

# `{iot:thingName}` in component configuration is resolved only with this nucleus option, which
# exists from nucleus 2.6.0 and defaults to false (developer guide, Greengrass nucleus,
# Configuration: interpolateComponentConfiguration).
INTERPOLATION_MIN_NUCLEUS = "2.6.0"

# What ShadowManager calls in the cloud to sync a shadow, over HTTPS with the core's certificate
# (developer guide, "Shadow manager": the core's AWS IoT policy must allow these to sync shadows).
SHADOW_SYNC_ACTIONS = ("iot:GetThingShadow", "iot:UpdateThingShadow", "iot:DeleteThingShadow")

# Components that use local shadows depend on ShadowManager ("Interact with local shadows": include
# the shadow manager component as a dependency). AWS's tutorial recipe asks for ^2.2.0 and no type,
# i.e. the default HARD (component recipe reference, DependencyType: "Defaults to HARD").
SHADOW_MANAGER_DEPENDENCY = {"VersionRequirement": "^2.2.0", "DependencyType": "HARD"}


def content_version(*parts: Any) -> str:
    """A semantic version that changes whenever `parts` change and only then.

    Greengrass component versions are immutable and CloudFormation replaces a component on
    any recipe change, so the version is derived from the content: major.minor are fixed,
    the patch is the first 28 bits of a SHA-256 of the canonical JSON of `parts`.
    """
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return f"1.0.{int(digest[:7], 16)}"


def access_control(component: str, grants: tuple[Grant, ...]) -> dict:
    """The `accessControl` block of a component: one named policy per grant, by IPC service."""
    block: dict[str, dict] = {}
    for index, grant in enumerate(grants, start=1):
        block.setdefault(grant.service, {})[f"{component}:{index}"] = {
            "policyDescription": grant.description,
            "operations": list(grant.operations),
            "resources": list(grant.resources),
        }
    return block
