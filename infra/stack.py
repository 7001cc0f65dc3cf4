"""The `RainEdge` stack: everything a Greengrass V2 core device needs to run the weather
station, and the outputs device set-up reads."""
from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Stack, Tags
from constructs import Construct

from device_code.functions import FUNCTIONS
from infra.artifacts import ARTIFACT_PREFIX, ArtifactStore
from infra.components import DeviceComponents
from infra.config import APP_TAG, STACK_NAME, RainEdgeConfig
from infra.datalake import DataLake
from infra.deployment import CoreDeployment
from infra.fleet import FleetProvisioning
from infra.identity import DeviceIdentity
from infra.indexing import FleetIndex
from infra.ledger import DeviceLedger
from infra.monitoring import Monitoring
from infra.nag import MANAGED_LOGS_POLICY, acknowledge, env_placeholders
from infra.releases import ring_models

# Construct ids of the singleton helper functions CDK adds at stack level.
CDK_BUCKET_DEPLOYMENT = "Custom::CDKBucketDeployment"
CDK_AWS_CUSTOM_RESOURCE = "AWS679f53fac002430cb0da5b7982bd2287"
BUCKET_DEPLOYMENT_ACTIONS = {
    "GetObject*": "read the source asset",
    "GetBucket*": "locate the buckets",
    "List*": "list source and destination prefixes",
    "DeleteObject*": "remove the model objects when the stack is deleted",
    "Abort*": "abort its own failed multipart uploads",
}


class RainEdgeStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str = STACK_NAME,
        *,
        config: RainEdgeConfig,
        project_root: Path,
        secrets_dir: Path,
        releases_dir: Path,
        **kwargs,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="rainedge: ML at the edge on AWS IoT Greengrass V2 (BME680 weather station)",
            analytics_reporting=False,
            **kwargs,
        )
        Tags.of(self).add(APP_TAG, config.name_prefix)
        rings = ring_models(releases_dir, project_root / config.model_zip)
        artifacts = ArtifactStore(self, "Artifacts", model_zips=[rings.fleet, rings.canary])
        promoted, candidate = artifacts.models[rings.fleet], artifacts.models[rings.canary]
        self.identity = identity = DeviceIdentity(
            self,
            "Identity",
            config=config,
            secrets_dir=secrets_dir,
            artifact_bucket=artifacts.bucket,
            artifact_prefix=ARTIFACT_PREFIX,
        )
        components = DeviceComponents(self, "Components", config=config, project_root=project_root,
                                      models=artifacts.releases)
        logged_components = components.logged_names
        # One deployment per ring, each to its own thing group (infra/releases.py).
        deployment = CoreDeployment(
            self, "Deployment", config=config, name=config.deployment_name, target_arn=identity.thing_group_arn,
            components=components.ring(promoted), logged_components=logged_components,
        )
        canary_deployment = CoreDeployment(
            self, "CanaryDeployment", config=config, name=config.canary_deployment_name,
            target_arn=identity.canary_group.attr_arn, components=components.ring(candidate),
            logged_components=logged_components,
        )
        fleet_index = FleetIndex(self, "Indexing", config=config,
                                 released_model_versions=tuple(dict.fromkeys((promoted.version, candidate.version))))
        monitoring = Monitoring(self, "Monitoring", config=config, logged_components=logged_components,
                                deployment_ids=[deployment.resource.attr_deployment_id,
                                                canary_deployment.resource.attr_deployment_id],
                                fleet_queries=fleet_index.queries)
        data_lake = DataLake(self, "Lake", config=config, rule_error_action=monitoring.rule_error_action)
        ledger = DeviceLedger(self, "Ledger", config=config) if config.fleet_provisioning else None
        fleet = FleetProvisioning(self, "Fleet", config=config, secrets_dir=secrets_dir,
                                  thing_group_name=config.thing_group_name, role_alias_arn=identity.role_alias_arn,
                                  ledger=ledger) if ledger else None
        releases = {
            "CanaryGroupName": config.canary_group_name,
            "CanaryDeploymentId": canary_deployment.resource.attr_deployment_id,
            "PromotedModelVersion": promoted.version,
            "CandidateModelVersion": candidate.version,
        }
        self._outputs(config, identity, artifacts, components, deployment, monitoring, fleet, fleet_index, ledger,
                      releases, data_lake)
        self._acknowledge_cdk_helpers(artifacts)

    def _outputs(self, config, identity: DeviceIdentity, artifacts, components, deployment, monitoring,
                 fleet: FleetProvisioning | None, fleet_index: FleetIndex, ledger: DeviceLedger | None,
                 releases: dict[str, str], data_lake: DataLake) -> None:
        outputs = {
            **releases,
            "ThingNames": ",".join(config.devices),
            "ThingGroupName": config.thing_group_name,
            "RoleAliasName": config.role_alias_name,
            "TokenExchangeRoleName": config.token_exchange_role_name,
            "ArtifactBucketName": artifacts.bucket.bucket_name,
            "Region": self.region,
            "DeploymentId": deployment.resource.attr_deployment_id,
            "ComponentNames": ",".join(component.name for component in components.all),
            # The exact versions teardown may delete; any other version of these names is not the app's.
            "ComponentVersionArns": ",".join(component.resource.attr_arn for component in components.all),
            "FunctionNames": ",".join(config.function_name(function.name) for function in FUNCTIONS),
            "NamePrefix": config.name_prefix,
            "ComponentPrefix": config.component_prefix,
            "Devices": self.to_json_string(
                [
                    {
                        "thingName": device.thing_name,
                        "certificateId": device.certificate.attr_id,
                        "policyName": device.policy_name,
                    }
                    for device in identity.devices
                ]
            ),
            **monitoring.outputs,
            **fleet_index.outputs,
            **data_lake.outputs,
            **(fleet.outputs if fleet else {}),
            **(ledger.outputs if ledger else {}),
        }
        for key, value in outputs.items():
            CfnOutput(self, key, value=value)

    def _acknowledge_cdk_helpers(self, artifacts: ArtifactStore) -> None:
        """Findings on the Lambda-backed helpers CDK itself generates (model upload and
        thing-group membership), acknowledged on those helpers only: code and policies are CDK's."""
        managed_logs = (
            MANAGED_LOGS_POLICY,
            "CDK's helper function writes its own logs through the AWS managed "
            "AWSLambdaBasicExecutionRole (CloudWatch Logs only).",
        )
        runtime = ("AwsSolutions-L1", "CDK pins the runtime of its own helper; it moves with aws-cdk-lib.")
        env = env_placeholders(self)
        artifact_bucket = self.get_logical_id(artifacts.bucket.node.default_child)
        helpers = {
            CDK_BUCKET_DEPLOYMENT: [
                managed_logs,
                runtime,
                *[
                    (f"AwsSolutions-IAM5[Action::s3:{action}]", f"BucketDeployment's fixed action list ({why}).")
                    for action, why in BUCKET_DEPLOYMENT_ACTIONS.items()
                ],
                (
                    f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-{env['account']}-{env['region']}/*]",
                    "BucketDeployment reads the model zip from the CDK bootstrap asset bucket, whose keys are content hashes.",
                ),
                (
                    f"AwsSolutions-IAM5[Resource::<{artifact_bucket}.Arn>/*]",
                    "BucketDeployment writes the model zip into the stack's own artifact bucket.",
                ),
            ],
            CDK_AWS_CUSTOM_RESOURCE: [managed_logs, runtime],
        }
        for child in self.node.children:
            for prefix, findings in helpers.items():
                if child.node.id.startswith(prefix):
                    for finding, reason in findings:
                        acknowledge(child, finding, reason)
