"""AWS IoT fleet indexing for the app, and fleet metrics over it: a constant number of CloudWatch
metrics, whatever the number of devices (the queries are infra/fleet_index.py's).

The account's indexing configuration is set by a custom resource whose handler only adds to it and, on
removal, takes back only what it added (infra/index_settings/handler.py says why and how).
"""
from __future__ import annotations

from pathlib import Path

from aws_cdk import CustomResource, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda as lambda_
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra import fleet_index as fx
from infra.artifacts import helper_log_group
from infra.config import INDEX_SETTINGS_SOURCE, RainEdgeConfig
from infra.index_settings.handler import SHADOW_NAMES_PROPERTY
from infra.nag import MANAGED_LOGS_POLICY, acknowledge

SETTINGS_SOURCE = Path(__file__).resolve().parent.parent / INDEX_SETTINGS_SOURCE
RESOURCE_TYPE = "Custom::FleetIndexing"


class FleetIndex(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: RainEdgeConfig,
                 released_model_versions: tuple[str, ...]) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        settings = self._settings()
        self.queries = fx.fleet_queries(released_model_versions)
        for query in self.queries:
            metric = iot.CfnFleetMetric(
                self, f"FleetMetric{query.purpose.title().replace('-', '')}",
                metric_name=config.fleet_metric_name(query.purpose),
                index_name=fx.INDEX_NAME,
                query_string=query.query(config.thing_group_names),
                aggregation_field=fx.COUNT_FIELD,
                aggregation_type=iot.CfnFleetMetric.AggregationTypeProperty(name="Statistics", values=["count"]),
                period=fx.PERIOD_S,
                description=query.description,
            )
            metric.node.add_dependency(settings)  # the index must index what the query asks

    def _settings(self) -> CustomResource:
        function = lambda_.Function(
            self, "SettingsHandler",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(SETTINGS_SOURCE), exclude=["__pycache__", "*.pyc"]),
            timeout=Duration.seconds(30),
            log_group=helper_log_group(self, "SettingsHandlerLogs"),
            description="rainedge: add the app's shadows to AWS IoT fleet indexing; take back only those",
        )
        # Neither action has a resource type (IAM service authorization reference, AWS IoT).
        function.add_to_role_policy(iam.PolicyStatement(
            actions=["iot:GetIndexingConfiguration", "iot:UpdateIndexingConfiguration"], resources=["*"]))
        provider = cr.Provider(self, "SettingsProvider", on_event_handler=function,
                               log_group=helper_log_group(self, "SettingsProviderLogs"))
        acknowledge(self, "AwsSolutions-IAM5[Resource::*]",
                    "GetIndexingConfiguration and UpdateIndexingConfiguration act on the account's one "
                    "indexing configuration and have no resource type to scope them to.")
        acknowledge(self, MANAGED_LOGS_POLICY,
                    "The settings handler and CDK's provider framework write their logs through the AWS "
                    "managed AWSLambdaBasicExecutionRole (CloudWatch Logs only) into log groups the stack owns.")
        handler_id = Stack.of(self).get_logical_id(function.node.default_child)
        acknowledge(provider, f"AwsSolutions-IAM5[Resource::<{handler_id}.Arn>:*]",
                    "CDK's provider framework invokes the versions of the one settings handler.")
        acknowledge(provider, "AwsSolutions-L1",
                    "CDK's provider framework chooses its own Node.js runtime.")
        return CustomResource(self, "Settings", service_token=provider.service_token, resource_type=RESOURCE_TYPE,
                              properties={SHADOW_NAMES_PROPERTY: list(fx.INDEXED_SHADOWS)})

    @property
    def outputs(self) -> dict[str, str]:
        return {"FleetMetricNames": ",".join(self.config.fleet_metric_name(q.purpose) for q in self.queries)}
