"""Seeing the fleet from the cloud at fleet cost: device log groups, a record of every shadow update for
CloudWatch Logs Insights, alarms on fleet metrics, one SNS topic and a dashboard. Nothing here grows
with the number of devices.

The numbers come from AWS IoT fleet indexing (infra/indexing.py, infra/fleet_index.py): each alarm
watches one fleet metric, the count of the app's devices in a state (silent, model fault, drifting),
which exists whether or not any device reports: a dead device is counted, not just missing. Each alarm
says which query lists the devices behind it. Per-device detail comes from Logs Insights queries over the
records the IoT rules write (infra/shadow_records.py). A failed deployment comes from the EventBridge
event Greengrass emits ("Get deployment and component health status notifications").
"""
from __future__ import annotations

import math

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra import fleet_index as fx
from infra import shadow_records as sr
from infra.config import RainEdgeConfig
from infra.greengrass import component_log_group
from infra.lake_delivery import HEALTHY_DELAY_SECONDS, fed_tables
from infra.nag import acknowledge

# A fleet metric is emitted every fleet_index.PERIOD_S; its alarms evaluate at the same period.
ALARM_PERIOD = Duration.seconds(fx.PERIOD_S)
DEPLOYMENT_ALARM_PERIOD = Duration.minutes(5)
# Drift is slow (device_code.drift measures it over days): a quarter of an hour of it before notifying.
DRIFT_ALARM_PERIODS = 15
# The records are what the dashboard's per-device panels query; two weeks covers its longest view.
SHADOW_RECORDS_RETENTION = logs.RetentionDays.TWO_WEEKS
RULE_ERRORS_RETENTION = logs.RetentionDays.ONE_MONTH
# "Greengrass V2 Effective Deployment Status Change" events, as the current "Get deployment and component
# health status notifications" page shows them: the id in `detail.deploymentId` (an archived older
# version of the page spelled it `deployment-id`), and the terminal states FAILED, SUCCEEDED,
# COMPLETED, REJECTED and CANCELED, of which three mean the deployment did not apply.
GREENGRASS_SOURCE = "aws.greengrass"
DEPLOYMENT_STATUS_EVENT = "Greengrass V2 Effective Deployment Status Change"
DEPLOYMENT_ID_FIELD = "deploymentId"
CLOUDWATCH_PRINCIPAL = "cloudwatch.amazonaws.com"
NOT_APPLIED_STATUSES = ("FAILED", "REJECTED", "CANCELED")
# "Add CloudWatch alarms for when the following metrics exceed the buffering limit: DeliveryToS3.DataFreshness"
# (Amazon Data Firehose, "Implement best practices with CloudWatch Alarms"): the age of the oldest record not yet
# in S3, per stream (dimension DeliveryStreamName). Three five-minute periods: one late object is no outage.
LAKE_FRESHNESS_METRIC = ("AWS/Firehose", "DeliveryToS3.DataFreshness")
LAKE_ALARM_PERIOD, LAKE_ALARM_PERIODS = Duration.minutes(5), 3


def shadow_topic_rule(scope: Construct, rule: sr.ShadowRule, *, config: RainEdgeConfig, role: iam.Role,
                      action: iot.CfnTopicRule.ActionProperty, error_action: iot.CfnTopicRule.ActionProperty,
                      description: str) -> iot.CfnTopicRule:
    """The IoT rule of one ShadowRule, named config.topic_rule_name(rule.purpose), doing `action` with `role`."""
    topic_rule = iot.CfnTopicRule(
        scope, f"Rule{rule.purpose.title().replace('_', '')}",
        rule_name=config.topic_rule_name(rule.purpose),
        topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
            sql=rule.sql(),
            aws_iot_sql_version=sr.SQL_VERSION,
            description=description,
            rule_disabled=False,
            actions=[action],
            # "If a problem occurs when triggering an action, the rules engine triggers an
            # error action" ("Error handling (error action)").
            error_action=error_action,
        ),
    )
    topic_rule.node.add_dependency(role)
    return topic_rule


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: RainEdgeConfig,
        logged_components: list[str],
        deployment_ids: list[str],
        fleet_queries: tuple[fx.FleetQuery, ...],
    ) -> None:
        """`fleet_queries`: the fleet metrics infra/indexing.py makes, each named config.fleet_metric_name(purpose)."""
        super().__init__(scope, construct_id)
        self.config = config
        self.fleet_queries = {query.purpose: query for query in fleet_queries}
        # LogManager creates these groups itself (CreateLogGroup in its uploader); the stack does not own
        # them, so a device still uploading after `cdk destroy` cannot make the next deploy fail on a
        # group that already exists. Teardown deletes them by name.
        self.device_log_group_names = [component_log_group(Stack.of(self).region, name) for name in logged_components]
        self.shadow_records = self._log_group(
            "ShadowRecords", config.monitoring_log_group_name(sr.RECORDS_PURPOSE), SHADOW_RECORDS_RETENTION)
        self.rule_errors = self._log_group(
            "RuleErrors", config.monitoring_log_group_name("rule-errors"), RULE_ERRORS_RETENTION)
        self.rules = self._topic_rules()
        self.topic = sns.Topic(self, "AlarmTopic", topic_name=config.monitoring_name("alarms"), enforce_ssl=True)
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        acknowledge(self.topic, "AwsSolutions-SNS2",
                    "Alarm notifications carry thing names and states, no secrets; CloudWatch alarms and "
                    "EventBridge cannot publish to a topic encrypted with the AWS managed key, and a customer "
                    "managed key would add a monthly charge to every deployment.")
        self.deployment_events = self._deployment_failures(deployment_ids)
        self.alarms = self._alarms()
        self.dashboard = self._dashboard()

    def _log_group(self, construct_id: str, name: str, retention: logs.RetentionDays) -> logs.LogGroup:
        return logs.LogGroup(self, construct_id, log_group_name=name, retention=retention,
                             removal_policy=RemovalPolicy.DESTROY)

    # ---- IoT rules -> records -------------------------------------------------------------------
    def _topic_rules(self) -> list[iot.CfnTopicRule]:
        # The CloudWatch Logs rule action needs a role allowing logs:CreateLogStream,
        # logs:DescribeLogStreams and logs:PutLogEvents ("CloudWatch Logs" rule action).
        role = iam.Role(self, "RuleRole", assumed_by=iam.ServicePrincipal("iot.amazonaws.com"),
                        description="AWS IoT rules of the shadow records write into the stack's two log groups")
        role.add_to_policy(iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            resources=[group.log_group_arn for group in (self.shadow_records, self.rule_errors)],
        ))
        error_action = iot.CfnTopicRule.ActionProperty(cloudwatch_logs=iot.CfnTopicRule.CloudwatchLogsActionProperty(
            log_group_name=self.rule_errors.log_group_name, role_arn=role.role_arn))
        # The data lake's rules (infra/datalake.py) report their failures here too.
        self.rule_error_action = error_action
        records = iot.CfnTopicRule.ActionProperty(cloudwatch_logs=iot.CfnTopicRule.CloudwatchLogsActionProperty(
            log_group_name=self.shadow_records.log_group_name, role_arn=role.role_arn))
        return [shadow_topic_rule(self, rule, config=self.config, role=role, action=records, error_action=error_action,
                                  description=f"One Logs Insights record per update of the {rule.shadow} shadow")
                for rule in sr.SHADOW_RULES]

    # ---- alarms ----------------------------------------------------------------------------
    def _deployment_failures(self, deployment_ids: list[str]) -> events.Rule:
        """Either ring's deployment: a list in an event pattern matches any of its values ("Amazon EventBridge
        event patterns")."""
        rule = events.Rule(
            self, "DeploymentFailed",
            rule_name=self.config.monitoring_name("deployment-failed"),
            description=f"A core device reports a Greengrass deployment of this stack as {'/'.join(NOT_APPLIED_STATUSES)}",
            event_pattern=events.EventPattern(
                source=[GREENGRASS_SOURCE],
                detail_type=[DEPLOYMENT_STATUS_EVENT],
                detail={"coreDeviceExecutionStatus": list(NOT_APPLIED_STATUSES), DEPLOYMENT_ID_FIELD: deployment_ids},
            ),
        )
        detail = events.EventField.from_path
        rule.add_target(targets.SnsTopic(self.topic, message=events.RuleTargetInput.from_text(
            f"Greengrass deployment {detail('$.detail.' + DEPLOYMENT_ID_FIELD)} "
            f"{detail('$.detail.coreDeviceExecutionStatus')} on {detail('$.resources[0]')}: "
            f"{detail('$.detail.statusDetails.errorTypes')} {detail('$.detail.statusDetails.errorStack')} "
            f"{detail('$.detail.reason')}")))
        return rule

    def _fleet_metric(self, purpose: str, label: str | None = None) -> cloudwatch.Metric:
        name, value = fx.AGGREGATION_DIMENSION
        return cloudwatch.Metric(namespace=fx.NAMESPACE, metric_name=self.config.fleet_metric_name(purpose),
                                 dimensions_map={name: value}, statistic="Maximum", period=ALARM_PERIOD,
                                 label=label)

    def _fleet_alarm(self, construct_id: str, alarm: str, purpose: str, what: str, *, periods: int,
                     missing: cloudwatch.TreatMissingData) -> cloudwatch.Alarm:
        """At least one device counted by the fleet metric for `periods` periods in a row. The description
        names the query that lists them (`aws iot search-index --query-string ...`, or `make status`)."""
        return cloudwatch.Alarm(
            self, construct_id,
            alarm_name=self.config.monitoring_name(alarm),
            alarm_description=f"{what}. Which devices: make status, or aws iot search-index --query-string "
                              f"'{self.fleet_queries[purpose].query(self.config.thing_group_names)}'",
            metric=self._fleet_metric(purpose),
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD, threshold=1,
            evaluation_periods=periods, datapoints_to_alarm=periods, treat_missing_data=missing,
        )

    def _alarms(self) -> dict[str, cloudwatch.Alarm]:
        config = self.config
        silent_periods = math.ceil(config.silence_seconds / ALARM_PERIOD.to_seconds())
        alarms = {
            # A fleet metric sends 0 when nothing matches ("Troubleshooting fleet metrics"): no data at all
            # means the metric itself stopped, which must not pass for a quiet fleet.
            "device-silent": self._fleet_alarm(
                "DeviceSilent", "device-silent", "silent",
                f"A device is disconnected, or its input is stale or missing, for {config.silence_seconds} s",
                periods=silent_periods, missing=cloudwatch.TreatMissingData.BREACHING),
            "model-fault": self._fleet_alarm(
                "ModelFault", "model-fault", "model-fault",
                f"A device's rain shadow reports {' or '.join(sr.FAULT_STATUSES)}; it clears with its next prediction",
                periods=1, missing=cloudwatch.TreatMissingData.NOT_BREACHING),
            "drifting": self._fleet_alarm(
                "Drifting", "drifting", "drifting",
                "A device's inputs drift from what the model was trained on (rain shadow drift.verdict)",
                periods=DRIFT_ALARM_PERIODS, missing=cloudwatch.TreatMissingData.NOT_BREACHING),
            "deployment-failed": cloudwatch.Alarm(
                self, "DeploymentFailedAlarm",
                alarm_name=config.monitoring_name("deployment-failed"),
                alarm_description=f"A core device reported the Greengrass deployment {'/'.join(NOT_APPLIED_STATUSES)} "
                                  "(EventBridge rule "
                                  f"{config.monitoring_name('deployment-failed')}; the e-mail from the rule names "
                                  "the device and has the error types).",
                # EventBridge's per-rule metric (AWS/Events TriggeredRules, dimension RuleName:
                # "Monitoring Amazon EventBridge").
                metric=cloudwatch.Metric(namespace="AWS/Events", metric_name="TriggeredRules",
                                         dimensions_map={"RuleName": self.deployment_events.rule_name},
                                         statistic="Sum", period=DEPLOYMENT_ALARM_PERIOD),
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD, threshold=1,
                evaluation_periods=1, treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            **{f"lake-{table.name}-late": self._lake_alarm(table.name) for table in fed_tables()},
        }
        action = cloudwatch_actions.SnsAction(self.topic)
        for alarm in alarms.values():
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
        self._let_alarms_publish(list(alarms.values()))
        return alarms

    def _lake_alarm(self, table: str) -> cloudwatch.Alarm:
        """The table's stream holds a record longer than a healthy stream does (S3 refusing, the role broken):
        what the lake shows lags. No data means no records, which the device-silent alarm covers."""
        stream = self.config.lake_stream_name(table)
        namespace, metric = LAKE_FRESHNESS_METRIC
        return cloudwatch.Alarm(
            self, f"Lake{table.title()}Late",
            alarm_name=self.config.monitoring_name(f"lake-{table}-late"),
            alarm_description=f"Firehose stream {stream} has held a {table} record for more than "
                              f"{HEALTHY_DELAY_SECONDS} s: the data lake lags (its errors: log group "
                              f"{self.config.monitoring_log_group_name('lake-delivery')})",
            metric=cloudwatch.Metric(namespace=namespace, metric_name=metric,
                                     dimensions_map={"DeliveryStreamName": stream}, statistic="Maximum",
                                     period=LAKE_ALARM_PERIOD),
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            threshold=HEALTHY_DELAY_SECONDS, evaluation_periods=LAKE_ALARM_PERIODS,
            datapoints_to_alarm=LAKE_ALARM_PERIODS, treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)

    def _let_alarms_publish(self, alarms: list[cloudwatch.Alarm]) -> None:
        """CloudWatch alarms publish as the service principal `cloudwatch.amazonaws.com`, and a topic with a
        resource policy (the EventBridge target writes one) refuses every principal it does not name (SNS
        developer guide, "Example cases for Amazon SNS access control": CloudWatch alarms publishing to a
        topic). Only this stack's alarms, in this account, against the confused deputy ("aws:SourceArn and
        aws:SourceAccount" on the same page)."""
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            sid="AlarmsOfThisStackPublish",
            principals=[iam.ServicePrincipal(CLOUDWATCH_PRINCIPAL)],
            actions=["sns:Publish"],
            resources=[self.topic.topic_arn],
            conditions={"ArnEquals": {"aws:SourceArn": [alarm.alarm_arn for alarm in alarms]},
                        "StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
        ))

    # ---- dashboard --------------------------------------------------------------------------
    def _dashboard(self) -> cloudwatch.Dashboard:
        config, records = self.config, [self.shadow_records.log_group_name]

        def records_query(title: str, lines: list[str], *, width: int = 12,
                          view: cloudwatch.LogQueryVisualizationType = cloudwatch.LogQueryVisualizationType.TABLE
                          ) -> cloudwatch.LogQueryWidget:
            """Logs Insights over the shadow records: per-device detail, priced per GB scanned."""
            return cloudwatch.LogQueryWidget(title=title, width=width, height=6, log_group_names=records,
                                             query_lines=lines, view=view)

        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=config.monitoring_name("fleet"),
                                         default_interval=Duration.hours(3))
        dashboard.add_widgets(cloudwatch.TextWidget(width=24, height=2, markdown=(
            f"# rainedge fleet `{config.name_prefix}`\n"
            f"Counts from AWS IoT fleet indexing (namespace `{fx.NAMESPACE}`); per-device detail from Logs Insights "
            f"over `{self.shadow_records.log_group_name}`. Silent = disconnected, or input stale or missing, for "
            f"{config.silence_seconds} s. Device logs: `{component_log_group('<region>', '<component>')}`.")))
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=6, height=6),
            cloudwatch.GraphWidget(title="Devices by state (fleet metrics)", width=12, height=6,
                                   left=[self._fleet_metric(purpose, purpose) for purpose in self.fleet_queries],
                                   left_y_axis=cloudwatch.YAxisProps(min=0, show_units=False)),
            cloudwatch.GraphWidget(title="Greengrass deployment failures", width=6, height=6,
                                   left=[self.alarms["deployment-failed"].metric]),
        )
        dashboard.add_widgets(
            records_query("Latest reading and prediction per device", [
                "fields @timestamp, ThingName, Temperature, Humidity, Pressure, Probability, Raining, Status, Drift",
                f"stats latest(Temperature) as temperature, latest(Humidity) as humidity, "
                f"latest(Pressure) as pressure, latest(Probability) as p_rain, latest(Status) as status, "
                f"latest(Drift) as drift, max(@timestamp) as last_update by {sr.THING}",
                "sort last_update asc", "limit 100"]),
            records_query("Devices without a prediction, by status", [
                f"filter ispresent({sr.STATUS})",
                f"stats count(*) as updates, max(@timestamp) as last by {sr.THING}, {sr.STATUS}",
                "sort updates desc", "limit 100"]),
        )
        dashboard.add_widgets(
            records_query("Temperature per device (°C)", [
                "filter ispresent(Temperature)",
                f"stats avg(Temperature) by bin(5m), {sr.THING}"],
                width=12, view=cloudwatch.LogQueryVisualizationType.LINE),
            records_query("P(rain) per device", [
                "filter ispresent(Probability)",
                f"stats max(Probability) by bin(5m), {sr.THING}"],
                width=12, view=cloudwatch.LogQueryVisualizationType.LINE),
        )
        dashboard.add_widgets(cloudwatch.LogQueryWidget(
            title="IoT rule errors (latest)", width=24, height=4, log_group_names=[self.rule_errors.log_group_name],
            query_lines=["fields @timestamp, ruleName, topic, failures.0.errorMessage", "sort @timestamp desc",
                         "limit 20"]))
        return dashboard

    @property
    def outputs(self) -> dict[str, str]:
        """Stack outputs: every name teardown and `make status` need."""
        return {
            "DashboardName": self.dashboard.dashboard_name,
            "AlarmTopicArn": self.topic.topic_arn,
            "AlarmNames": ",".join(alarm.alarm_name for alarm in self.alarms.values()),
            "TopicRuleNames": ",".join(self.config.topic_rule_name(rule.purpose) for rule in sr.SHADOW_RULES),
            "EventRuleName": self.deployment_events.rule_name,
            "MonitoringLogGroupNames": ",".join(
                group.log_group_name for group in (self.shadow_records, self.rule_errors)),
            "DeviceLogGroupNames": ",".join(self.device_log_group_names),
        }
