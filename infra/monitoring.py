"""Seeing the fleet from the cloud: device log groups, per-device metrics from the shadow topics,
alarms whose number does not grow with the fleet, one SNS topic and a dashboard.

Per-device metrics come from AWS IoT rules on the cloud shadow topics (infra/fleet_metrics.py says how
and why). The alarms are CloudWatch alarms on Metrics Insights queries that GROUP BY the thing name:
"each returned time series becomes a contributor to the alarm" and "any resource that matches your
query definition ... joins the alarm monitoring scope when its corresponding metric becomes available"
("Create a CloudWatch alarm based on a Metrics Insights query"). A failed deployment comes from the
EventBridge event Greengrass emits ("Get deployment and component health status notifications").
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

from infra import fleet_metrics as fm
from infra.greengrass import component_log_group
from infra.config import RainEdgeConfig
from infra.nag import acknowledge

# Metrics Insights alarms evaluate one-minute data (high-resolution data is aggregated to one
# minute: "Metrics Insights quotas").
ALARM_PERIOD = Duration.minutes(1)
DEPLOYMENT_ALARM_PERIOD = Duration.minutes(5)
# The records behind the metrics are for debugging a rule; the metrics themselves stay 15 months.
SHADOW_METRICS_RETENTION = logs.RetentionDays.TWO_WEEKS
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


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: RainEdgeConfig,
        logged_components: list[str],
        deployment_id: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        # LogManager creates these groups itself (CreateLogGroup in its uploader); the stack does not own
        # them, so a device still uploading after `cdk destroy` cannot make the next deploy fail on a
        # group that already exists. Teardown deletes them by name.
        self.device_log_group_names = [component_log_group(Stack.of(self).region, name) for name in logged_components]
        self.shadow_metrics = self._log_group(
            "ShadowMetrics", config.monitoring_log_group_name("shadow-metrics"), SHADOW_METRICS_RETENTION)
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
        self.deployment_events = self._deployment_failures(deployment_id)
        self.alarms = self._alarms()
        self.dashboard = self._dashboard()

    def _log_group(self, construct_id: str, name: str, retention: logs.RetentionDays) -> logs.LogGroup:
        return logs.LogGroup(self, construct_id, log_group_name=name, retention=retention,
                             removal_policy=RemovalPolicy.DESTROY)

    # ---- IoT rules -> EMF records -> metrics --------------------------------------------------
    def _topic_rules(self) -> list[iot.CfnTopicRule]:
        # The CloudWatch Logs rule action needs a role allowing logs:CreateLogStream,
        # logs:DescribeLogStreams and logs:PutLogEvents ("CloudWatch Logs" rule action).
        role = iam.Role(self, "RuleRole", assumed_by=iam.ServicePrincipal("iot.amazonaws.com"),
                        description="AWS IoT rules of the fleet metrics write into the stack's two log groups")
        role.add_to_policy(iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            resources=[group.log_group_arn for group in (self.shadow_metrics, self.rule_errors)],
        ))
        error_action = iot.CfnTopicRule.ActionProperty(cloudwatch_logs=iot.CfnTopicRule.CloudwatchLogsActionProperty(
            log_group_name=self.rule_errors.log_group_name, role_arn=role.role_arn))
        rules = []
        for rule in fm.SHADOW_RULES:
            topic_rule = iot.CfnTopicRule(
                self, f"Rule{rule.purpose.title().replace('_', '')}",
                rule_name=self.config.topic_rule_name(rule.purpose),
                topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
                    sql=rule.sql(self.config.metrics_namespace),
                    aws_iot_sql_version=fm.SQL_VERSION,
                    description=f"Per-device CloudWatch metrics from each update of the {rule.shadow} shadow",
                    rule_disabled=False,
                    actions=[iot.CfnTopicRule.ActionProperty(
                        cloudwatch_logs=iot.CfnTopicRule.CloudwatchLogsActionProperty(
                            log_group_name=self.shadow_metrics.log_group_name, role_arn=role.role_arn))],
                    # "If a problem occurs when triggering an action, the rules engine triggers an
                    # error action" ("Error handling (error action)").
                    error_action=error_action,
                ),
            )
            topic_rule.node.add_dependency(role)
            rules.append(topic_rule)
        return rules

    # ---- alarms ----------------------------------------------------------------------------
    def _deployment_failures(self, deployment_id: str) -> events.Rule:
        rule = events.Rule(
            self, "DeploymentFailed",
            rule_name=self.config.monitoring_name("deployment-failed"),
            description=f"A core device reports this stack's Greengrass deployment as {'/'.join(NOT_APPLIED_STATUSES)}",
            event_pattern=events.EventPattern(
                source=[GREENGRASS_SOURCE],
                detail_type=[DEPLOYMENT_STATUS_EVENT],
                detail={"coreDeviceExecutionStatus": list(NOT_APPLIED_STATUSES), DEPLOYMENT_ID_FIELD: [deployment_id]},
            ),
        )
        detail = events.EventField.from_path
        rule.add_target(targets.SnsTopic(self.topic, message=events.RuleTargetInput.from_text(
            f"Greengrass deployment {detail('$.detail.' + DEPLOYMENT_ID_FIELD)} "
            f"{detail('$.detail.coreDeviceExecutionStatus')} on {detail('$.resources[0]')}: "
            f"{detail('$.detail.statusDetails.errorTypes')} {detail('$.detail.statusDetails.errorStack')} "
            f"{detail('$.detail.reason')}")))
        return rule

    def _alarms(self) -> dict[str, cloudwatch.Alarm]:
        namespace, config = self.config.metrics_namespace, self.config
        silent_periods = math.ceil(config.silence_seconds / ALARM_PERIOD.to_seconds())
        alarms = {
            "device-silent": cloudwatch.Alarm(
                self, "DeviceSilent",
                alarm_name=config.monitoring_name("device-silent"),
                alarm_description=f"A device sent no weather reading to the cloud for {config.silence_seconds} s "
                                  f"({config.silence_alarm_intervals} x {config.cloud_update_interval_seconds} s). "
                                  "Contributors name the devices.",
                metric=cloudwatch.MathExpression(expression=fm.silence_query(namespace), period=ALARM_PERIOD,
                                                 label="readings"),
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD, threshold=1,
                evaluation_periods=silent_periods, datapoints_to_alarm=silent_periods,
                # No reading in a minute is no data point: missing data counts as breaching.
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            ),
            "model-fault": cloudwatch.Alarm(
                self, "ModelFault",
                alarm_name=config.monitoring_name("model-fault"),
                alarm_description="A device's rain shadow reports "
                                  f"{' or '.join(fm.FAULT_STATUSES)}; it clears with its next prediction.",
                metric=cloudwatch.MathExpression(expression=fm.fault_query(namespace), period=ALARM_PERIOD,
                                                 label="model fault"),
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD, threshold=1,
                evaluation_periods=1,
                # A fault is written once and holds until the next rain update: keep the state meanwhile.
                treat_missing_data=cloudwatch.TreatMissingData.IGNORE,
            ),
            "deployment-failed": cloudwatch.Alarm(
                self, "DeploymentFailedAlarm",
                alarm_name=config.monitoring_name("deployment-failed"),
                alarm_description=f"A core device reported the Greengrass deployment {'/'.join(NOT_APPLIED_STATUSES)} "
                                  "(EventBridge rule "
                                  f"{config.monitoring_name('deployment-failed')}; the e-mail from the rule has "
                                  "the error types).",
                # EventBridge's per-rule metric (AWS/Events TriggeredRules, dimension RuleName:
                # "Monitoring Amazon EventBridge").
                metric=cloudwatch.Metric(namespace="AWS/Events", metric_name="TriggeredRules",
                                         dimensions_map={"RuleName": self.deployment_events.rule_name},
                                         statistic="Sum", period=DEPLOYMENT_ALARM_PERIOD),
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD, threshold=1,
                evaluation_periods=1, treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        }
        action = cloudwatch_actions.SnsAction(self.topic)
        for alarm in alarms.values():
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
        self._let_alarms_publish(list(alarms.values()))
        return alarms

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
        namespace, config = self.config.metrics_namespace, self.config

        def per_device(title: str, *series: tuple[str, str], by_status: bool = False,
                       axis: cloudwatch.YAxisProps | None = None, **options) -> cloudwatch.GraphWidget:
            """A graph of (statistic, metric) queries, one line per device. A dashboard widget can hold
            a Metrics Insights query ("Metrics Insights quotas")."""
            queries = [cloudwatch.MathExpression(expression=fm.per_device(statistic, metric, namespace,
                                                                          by_status=by_status),
                                                 label="", period=ALARM_PERIOD) for statistic, metric in series]
            return cloudwatch.GraphWidget(title=title, left=queries, width=8, height=6,
                                          left_y_axis=axis or cloudwatch.YAxisProps(show_units=False), **options)

        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=config.monitoring_name("fleet"),
                                         default_interval=Duration.hours(3))
        dashboard.add_widgets(cloudwatch.TextWidget(width=24, height=2, markdown=(
            f"# rainedge fleet `{config.name_prefix}`\n"
            f"One line per device (dimension `{fm.THING}`), from each update of its `weather` and `rain` shadows "
            f"(namespace `{namespace}`). Silent = no reading for {config.silence_seconds} s; model fault = "
            f"{', '.join(fm.FAULT_STATUSES)}. Device logs: `{component_log_group('<region>', '<component>')}`.")))
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=8, height=6),
            per_device("Readings per minute (silence)", ("COUNT", fm.READING_COUNTER)),
            cloudwatch.GraphWidget(title="Greengrass deployment failures", width=8, height=6,
                                   left=[self.alarms["deployment-failed"].metric]),
        )
        unit_axis = lambda label: cloudwatch.YAxisProps(label=label, show_units=False)  # noqa: E731
        dashboard.add_widgets(
            per_device("Temperature", ("AVG", "Temperature"), axis=unit_axis("°C")),
            per_device("Relative humidity", ("AVG", "Humidity"), axis=unit_axis("%")),
            per_device("Pressure", ("AVG", "Pressure"), axis=unit_axis("hPa")),
        )
        probability_axis = cloudwatch.YAxisProps(min=0, max=1, show_units=False)
        dashboard.add_widgets(
            per_device("P(rain) and decision threshold", ("MAX", "Probability"), ("MAX", "Threshold"),
                       axis=probability_axis),
            per_device("Raining (1) or dry (0)", ("MAX", "Raining"), axis=probability_axis),
            per_device("No prediction, by status", ("SUM", "NoPrediction"), by_status=True,
                       stacked=True),
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
            "TopicRuleNames": ",".join(self.config.topic_rule_name(rule.purpose) for rule in fm.SHADOW_RULES),
            "EventRuleName": self.deployment_events.rule_name,
            "MonitoringLogGroupNames": ",".join(
                group.log_group_name for group in (self.shadow_metrics, self.rule_errors)),
            "DeviceLogGroupNames": ",".join(self.device_log_group_names),
            "MetricsNamespace": self.config.metrics_namespace,
        }
