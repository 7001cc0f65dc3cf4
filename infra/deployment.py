"""A ring's Greengrass V2 deployment: nucleus, ShadowManager, LogManager, the Lambda manager pieces
and our components, to the ring's thing group of core devices."""
from __future__ import annotations

import json

from aws_cdk import aws_greengrassv2 as gg
from constructs import Construct

from infra import greengrass as ggv
from infra.components import DeployedComponent
from infra.config import RainEdgeConfig


def shadow_manager_configuration(config: RainEdgeConfig) -> dict:
    """ShadowManager's sync of the named shadows of each core it reaches (developer guide,
    "Shadow manager", Configuration: synchronize.coreThing lists named shadows one by one;
    strategy.type realTime, or periodic with `delay` in seconds, "required if you specify the
    periodic sync strategy")."""
    strategy: dict = {"type": config.shadow_sync_strategy}
    if config.shadow_sync_strategy == "periodic":
        strategy["delay"] = config.shadow_sync_delay_seconds
    return {
        "strategy": strategy,
        "synchronize": {
            "coreThing": {"classic": False, "namedShadows": list(ggv.SHADOW_NAMES)},
            "shadowDocuments": [],
            "direction": config.shadow_sync_direction,
        },
    }


# Local log files on the Pi's SD card: at most this much per component and for the nucleus' system
# log. The nucleus deletes the oldest files beyond the limit; files are kept after upload so that a
# device that lost its network can still be read with `sudo tail`.
COMPONENT_LOG_DISK_MB = 10
SYSTEM_LOG_DISK_MB = 25
# LogManager's default (5 minutes): >= 2.3.0 uploads the active file at each interval.
LOG_UPLOAD_INTERVAL_S = 300


def log_manager_configuration(config: RainEdgeConfig, component_names: list[str]) -> dict:
    """Upload the nucleus' system log and our components' logs to CloudWatch Logs (developer guide,
    "Log manager", Configuration: logsUploaderConfiguration.systemLogsConfiguration and
    .componentLogsConfigurationMap, periodicUploadIntervalSec at the top level; the guide's example
    writes the values as strings). minimumLogLevel is left out: it applies only to JSON-format logs."""
    kept = {"diskSpaceLimitUnit": "MB", "deleteLogFileAfterCloudUpload": "false"}
    return {
        "logsUploaderConfiguration": {
            "systemLogsConfiguration": {"uploadToCloudWatch": "true", "diskSpaceLimit": str(SYSTEM_LOG_DISK_MB),
                                        **kept},
            "componentLogsConfigurationMap": {
                # The default directory is /greengrass/v2/logs; greengrassRoot may differ.
                name: {"logFileDirectoryPath": f"{config.greengrass_root}/logs",
                       "diskSpaceLimit": str(COMPONENT_LOG_DISK_MB), **kept}
                for name in component_names
            },
        },
        "periodicUploadIntervalSec": str(LOG_UPLOAD_INTERVAL_S),
    }


# `{iot:thingName}` in component configuration (the IPC access control) is resolved only
# when the nucleus interpolates configuration (nucleus >= 2.6).
NUCLEUS_CONFIGURATION = {"interpolateComponentConfiguration": True}


def rollout(config: RainEdgeConfig) -> gg.CfnDeployment.DeploymentIoTJobConfigurationProperty:
    """How the IoT job behind the deployment reaches the fleet ("AWS IoT Greengrass uses AWS IoT Core jobs to
    deploy to your core devices, so you can configure how the job rolls out", developer guide, Create
    deployments): an exponential rate, a cancel when too many executions fail, a per-device timeout. A
    cancelled job notifies no more devices; those already updated keep what they run (IoT CancelJob)."""
    return gg.CfnDeployment.DeploymentIoTJobConfigurationProperty(
        job_executions_rollout_config=gg.CfnDeployment.IoTJobExecutionsRolloutConfigProperty(
            exponential_rate=gg.CfnDeployment.IoTJobExponentialRolloutRateProperty(
                base_rate_per_minute=config.rollout_base_rate_per_minute,
                increment_factor=config.rollout_increment_factor,
                # IoTJobRateIncreaseCriteria: "Specify either numberOfNotifiedThings or numberOfSucceededThings";
                # CDK types it as any, so the CloudFormation key is written as is.
                rate_increase_criteria={"NumberOfSucceededThings": config.rollout_increase_after_succeeded},
            ),
            maximum_per_minute=config.rollout_maximum_per_minute,
        ),
        abort_config=gg.CfnDeployment.IoTJobAbortConfigProperty(criteria_list=[
            gg.CfnDeployment.IoTJobAbortCriteriaProperty(
                action="CANCEL", failure_type="ALL",
                min_number_of_executed_things=config.abort_min_executed_things,
                threshold_percentage=config.abort_threshold_percentage),
        ]),
        timeout_config=gg.CfnDeployment.IoTJobTimeoutConfigProperty(
            in_progress_timeout_in_minutes=config.deployment_timeout_minutes),
    )


class CoreDeployment(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: RainEdgeConfig,
        name: str,
        target_arn: str,
        components: list[DeployedComponent],
        logged_components: list[str],
    ) -> None:
        super().__init__(scope, construct_id)
        merges = {
            ggv.NUCLEUS: NUCLEUS_CONFIGURATION,
            ggv.SHADOW_MANAGER: shadow_manager_configuration(config),
            ggv.LOG_MANAGER: log_manager_configuration(config, logged_components),
            **{component.name: component.configuration for component in components if component.configuration},
        }
        run_as = {component.name: component.posix_user for component in components if component.posix_user}
        versions = {**ggv.PUBLIC_COMPONENT_VERSIONS, **{component.name: component.version for component in components}}
        self.resource = gg.CfnDeployment(
            self,
            "Deployment",
            deployment_name=name,
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
            iot_job_configuration=rollout(config),
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
