"""The one Greengrass V2 deployment: nucleus, ShadowManager, the Lambda manager pieces and
our components, to the thing group of core devices."""
from __future__ import annotations

import json

from aws_cdk import aws_greengrassv2 as gg
from constructs import Construct

from infra import greengrass as ggv
from infra.components import DeployedComponent
from infra.config import RainEdgeConfig


def shadow_manager_configuration(direction: str) -> dict:
    """ShadowManager's sync of the named shadows of each core it reaches (developer guide,
    "Shadow manager", Configuration: synchronize.coreThing lists named shadows one by one)."""
    return {
        "strategy": {"type": "realTime"},
        "synchronize": {
            "coreThing": {"classic": False, "namedShadows": list(ggv.SHADOW_NAMES)},
            "shadowDocuments": [],
            "direction": direction,
        },
    }


# `{iot:thingName}` in component configuration (the IPC access control) is resolved only
# when the nucleus interpolates configuration (nucleus >= 2.6).
NUCLEUS_CONFIGURATION = {"interpolateComponentConfiguration": True}


class CoreDeployment(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: RainEdgeConfig,
        target_arn: str,
        components: list[DeployedComponent],
    ) -> None:
        super().__init__(scope, construct_id)
        merges = {
            ggv.NUCLEUS: NUCLEUS_CONFIGURATION,
            ggv.SHADOW_MANAGER: shadow_manager_configuration(config.shadow_sync_direction),
            **{component.name: component.configuration for component in components if component.configuration},
        }
        run_as = {component.name: component.posix_user for component in components if component.posix_user}
        versions = {**ggv.PUBLIC_COMPONENT_VERSIONS, **{component.name: component.version for component in components}}
        self.resource = gg.CfnDeployment(
            self,
            "Deployment",
            deployment_name=config.deployment_name,
            target_arn=target_arn,
            components={
                name: gg.CfnDeployment.ComponentDeploymentSpecificationProperty(
                    component_version=version,
                    configuration_update=gg.CfnDeployment.ComponentConfigurationUpdateProperty(
                        merge=json.dumps(merges[name], sort_keys=True)
                    )
                    if name in merges
                    else None,
                    run_with=gg.CfnDeployment.ComponentRunWithProperty(posix_user=run_as[name])
                    if name in run_as
                    else None,
                )
                for name, version in versions.items()
            },
            deployment_policies=gg.CfnDeployment.DeploymentPoliciesProperty(
                failure_handling_policy="ROLLBACK",
                component_update_policy=gg.CfnDeployment.DeploymentComponentUpdatePolicyProperty(
                    action="NOTIFY_COMPONENTS", timeout_in_seconds=60
                ),
                configuration_validation_policy=gg.CfnDeployment.DeploymentConfigurationValidationPolicyProperty(
                    timeout_in_seconds=60
                ),
            ),
        )
        for component in components:
            self.resource.node.add_dependency(component.resource)
