"""The synthesized stack delivers a station's adaptation without a deployment: ShadowManager syncs the
`adaptation` shadow both ways, the core's IoT policy lets it, and over IPC only the inference component
may reach that shadow, with exactly the two operations it needs."""
from __future__ import annotations

import pytest

from device_code.contracts import ADAPTATION_SHADOW
from infra.greengrass import SHADOW_MANAGER, SHADOW_SYNC_ACTIONS
from infra.iot_policy import allows_any
from infra.synthesized import Pseudo, SynthesizedStack

pytestmark = pytest.mark.slow

# Developer guide, "Interact with local shadows", Authorization: service aws.greengrass.ShadowManager;
# a named shadow's resource is $aws/things/thingName/shadow/name/shadowName ("*" would be every shadow).
IPC_SERVICE = "aws.greengrass.ShadowManager"
RESOURCE = f"$aws/things/{{iot:thingName}}/shadow/name/{ADAPTATION_SHADOW}"
READ_AND_REPORT = {"aws.greengrass#GetThingShadow", "aws.greengrass#UpdateThingShadow"}


def shadow_policies(stack: SynthesizedStack) -> dict[str, list[dict]]:
    """Component -> its ShadowManager IPC policies, as the deployment configures them."""
    return {name: list(version.merge.get("accessControl", {}).get(IPC_SERVICE, {}).values())
            for name, version in stack.deployment().items()}


def test_only_the_inference_component_reaches_the_adaptation_shadow_with_get_and_update(template):
    stack = SynthesizedStack(template)
    reaching = {name: [policy for policy in policies if RESOURCE in policy["resources"] or "*" in policy["resources"]]
                for name, policies in shadow_policies(stack).items()}
    reaching = {name: policies for name, policies in reaching.items() if policies}
    assert list(reaching) == ["com.rainedge.Inference"]
    [policy] = reaching["com.rainedge.Inference"]
    assert set(policy["operations"]) == READ_AND_REPORT and policy["resources"] == [RESOURCE]


def test_shadow_manager_brings_a_cloud_side_desired_state_down(template):
    """"syncs all state changes for specified shadows, regardless of whether the changes occur in local shadow
    documents or in cloud shadow documents"; direction deviceToCloud would never bring it down (developer
    guide, "Sync local device shadows with AWS IoT Core", and shadow manager's `direction`)."""
    synchronize = SynthesizedStack(template).deployment()[SHADOW_MANAGER].merge["synchronize"]
    assert ADAPTATION_SHADOW in synchronize["coreThing"]["namedShadows"]
    assert synchronize["direction"] in ("betweenDeviceAndCloud", "cloudToDevice")


def test_the_core_policy_lets_shadow_manager_sync_the_adaptation_shadow_of_its_own_thing_only(template):
    stack = SynthesizedStack(template)
    pseudo = Pseudo()
    [thing] = stack.thing_names()
    policies = stack.policies_of_thing(thing, pseudo).values()
    arn = f"arn:{pseudo.partition}:iot:{pseudo.region}:{pseudo.account}:thing"
    for action in SHADOW_SYNC_ACTIONS:
        assert allows_any(policies, action, f"{arn}/{thing}/{ADAPTATION_SHADOW}"), action
        assert not allows_any(policies, action, f"{arn}/other-core/{ADAPTATION_SHADOW}"), action
