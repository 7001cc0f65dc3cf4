"""The IoT policy of one core device, the same for a listed device (infra/identity.py) and a
provisioned one (infra/fleet.py); teardown recognises a provisioned device's policy by this document
(infra/lifecycle/provisioned.py). Plain data, no CDK.
"""
from __future__ import annotations

from typing import Callable

from infra.greengrass import SHADOW_NAMES, SHADOW_SYNC_ACTIONS

# MQTT topics of a core device under $aws/things/<thing>/, as in AWS's "Minimal AWS IoT policy for
# AWS IoT Greengrass V2 core devices" (developer guide, Device authentication and authorization):
# the health reports (telemetry and fleet status), IoT jobs (deployments) and shadows (the
# deployment shadow; ShadowManager's cloud update/delete subscriptions).
# The two health topics (greengrass/ and greengrassv2/) share one pattern to keep the document short.
PUBLISHED_TOPICS = ("greengrass*/health/json", "jobs/*", "shadow/*")
SUBSCRIBED_TOPICS = ("jobs/*", "shadow/*")


def core_policy_document(iot_arn: Callable[[str, str], str], thing: str, role_alias_arn: str) -> dict:
    """The IoT policy of one core device: its own client ids, topics and synchronised shadows.

    One policy per device keeps each device to its own thing and each document far below
    CreatePolicy's 2,048 characters (AWS IoT Core quotas), whatever the fleet size. `iot_arn`
    builds `arn:<partition>:iot:<region>:<account>:<resource>/<name>`.
    """
    def topics(resource: str, suffixes: tuple[str, ...]) -> list[str]:
        return [iot_arn(resource, f"$aws/things/{thing}/{suffix}") for suffix in suffixes]

    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                # One statement for the four MQTT actions: each is authorised against its own resource type
                # (iot:Connect a client, iot:Publish and iot:Receive a topic, iot:Subscribe a topicfilter: AWS
                # IoT Core developer guide, "AWS IoT Core action resources"), so an action never matches
                # another's ARN and sharing the list grants nothing more; it keeps the document within
                # CreatePolicy's 2,048 characters at the longest names with three synchronised shadows.
                "Effect": "Allow",
                "Action": ["iot:Connect", "iot:Publish", "iot:Receive", "iot:Subscribe"],
                # The nucleus opens one more MQTT connection per 50 subscriptions, named <thing>#2,
                # <thing>#3 ... (minimal policy page above). Not client/<thing>*: that would also admit thing <thing>0.
                "Resource": [iot_arn("client", thing), iot_arn("client", f"{thing}#*"),
                             *topics("topic", PUBLISHED_TOPICS), *topics("topicfilter", SUBSCRIBED_TOPICS)],
            },
            {
                # ShadowManager calls Get/Update/DeleteThingShadow over HTTPS with the core's
                # certificate (developer guide, Shadow manager); a named shadow's resource is
                # thing/<thing>/<shadow> (AWS IoT Core developer guide, "AWS IoT Core action
                # resources"). Thing policy variables exist only on MQTT connections ("Thing policy
                # variables") and are not supported for core devices, so the names are literal.
                "Effect": "Allow",
                "Action": list(SHADOW_SYNC_ACTIONS),
                "Resource": [iot_arn("thing", f"{thing}/{shadow}") for shadow in SHADOW_NAMES],
            },
            {
                "Effect": "Allow",
                "Action": "iot:AssumeRoleWithCertificate",
                "Resource": role_alias_arn,
            },
            {
                # These data-plane actions are authorised by the certificate's thing; AWS's
                # own minimal core-device policy grants them on '*'.
                "Effect": "Allow",
                "Action": [
                    "greengrass:GetComponentVersionArtifact",
                    "greengrass:ResolveComponentCandidates",
                    "greengrass:GetDeploymentConfiguration",
                    "greengrass:ListThingGroupsForCoreDevice",
                ],
                "Resource": "*",
            },
        ],
    }
