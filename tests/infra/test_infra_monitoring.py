"""Synth assertions for "see the fleet": LogManager in the deployment, the IoT rules, the fleet index and
its fleet metrics, alarms, the alarm topic, the dashboard and the outputs teardown reads; and that none of
it grows with the fleet."""
from __future__ import annotations

import json
import math
from collections import Counter

import pytest
from infra_support import flatten, joined, resources_of

from infra import fleet_index as fx
from infra import shadow_records as fm
from infra.config import RainEdgeConfig
from infra.greengrass import LOG_MANAGER, SHADOW_MANAGER
from infra.synthesized import SynthesizedStack

pytestmark = pytest.mark.slow

CONFIG = RainEdgeConfig()
ALARMS = ("device-silent", "model-fault", "drifting", "deployment-failed", "lake-readings-late", "lake-predictions-late")
MONITORING_OUTPUTS = {"DashboardName", "AlarmTopicArn", "AlarmNames", "TopicRuleNames", "EventRuleName",
                      "MonitoringLogGroupNames", "DeviceLogGroupNames", "FleetMetricNames"}
LOGGED = ["com.rainedge.DeviceRuntime", "com.rainedge.Sensor", "com.rainedge.ShadowWriter", "com.rainedge.Inference"]


@pytest.fixture(scope="module")
def fleet(synth_variant_module):
    """Ten devices, periodic sync, an alarm address and another Greengrass root, in one synth."""
    return synth_variant_module(devices=json.dumps([f"pi-{n}" for n in range(10)]), shadowSyncStrategy="periodic",
                                shadowSyncDelaySeconds=600, alarmEmail="ops@example.com",
                                greengrassRoot="/opt/greengrass")


@pytest.fixture(scope="module")
def ten_devices(synth_variant_module):
    return synth_variant_module(devices=json.dumps([f"pi-{n}" for n in range(10)]))


@pytest.fixture(scope="module")
def synth_variant_module(trained_model_dir, tmp_path_factory, secrets_dir):
    from infra_support import synthesize
    return lambda **overrides: synthesize(tmp_path_factory.mktemp("cdk.out"), secrets_dir, **overrides)


def logical_id(template, resource_type, **properties) -> str:
    (found,) = [key for key, value in resources_of(template, resource_type).items()
                if properties.items() <= value["Properties"].items()]
    return found


def monitoring_resources(template) -> dict:
    return {key: value for key, value in template["Resources"].items() if key.startswith(("Monitoring", "Indexing"))}


# ---- device logs ----------------------------------------------------------------------------
def test_log_manager_uploads_the_system_log_and_each_component_that_runs_code(template, fleet):
    for chosen, root in ((template, "/greengrass/v2"), (fleet, "/opt/greengrass")):
        merge = SynthesizedStack(chosen).deployment()[LOG_MANAGER].merge
        uploader = merge["logsUploaderConfiguration"]
        assert uploader["systemLogsConfiguration"]["uploadToCloudWatch"] == "true"
        components = uploader["componentLogsConfigurationMap"]
        assert sorted(components) == sorted(LOGGED)
        for settings in components.values():
            assert settings["logFileDirectoryPath"] == f"{root}/logs"
            assert settings["diskSpaceLimitUnit"] == "MB" and int(settings["diskSpaceLimit"]) <= 25
        assert int(merge["periodicUploadIntervalSec"]) == 300  # a top-level key, not inside the uploader


def test_device_log_groups_are_named_for_teardown_but_left_to_log_manager(template):
    # LogManager creates /aws/greengrass/UserComponent/<region>/<component> itself; the shared System group
    # belongs to every Greengrass app of the account.
    names = [joined(v["Properties"].get("LogGroupName", "")) for v in resources_of(template, "AWS::Logs::LogGroup").values()]
    assert not [name for name in names if name.startswith("/aws/greengrass/")]
    assert "GreengrassSystemComponent" not in flatten(template)
    output = template["Outputs"]["DeviceLogGroupNames"]["Value"]
    assert joined(output).split(",") == [f"/aws/greengrass/UserComponent/<token>/{name}" for name in LOGGED]


# ---- shadow sync strategy ---------------------------------------------------------------------
def test_shadow_manager_strategy_follows_the_context(template, fleet):
    assert SynthesizedStack(template).deployment()[SHADOW_MANAGER].merge["strategy"] == {"type": "realTime"}
    assert SynthesizedStack(fleet).deployment()[SHADOW_MANAGER].merge["strategy"] == {"type": "periodic",
                                                                                      "delay": 600}


# ---- rules ------------------------------------------------------------------------------------
def test_each_rule_writes_its_records_into_the_records_group_and_failures_into_the_errors_group(template):
    metrics_group = logical_id(template, "AWS::Logs::LogGroup", LogGroupName="/rainedge/shadow-records")
    errors_group = logical_id(template, "AWS::Logs::LogGroup", LogGroupName="/rainedge/rule-errors")
    rules = SynthesizedStack(template).topic_rules()
    assert list(rules) == [CONFIG.topic_rule_name(rule.purpose) for rule in fm.SHADOW_RULES]
    for payload, rule in zip(rules.values(), fm.SHADOW_RULES):
        assert payload["Sql"] == rule.sql()
        assert (payload["AwsIotSqlVersion"], payload["RuleDisabled"]) == (fm.SQL_VERSION, False)
        (action,) = payload["Actions"]
        assert action["CloudwatchLogs"]["LogGroupName"] == {"Ref": metrics_group}
        assert payload["ErrorAction"]["CloudwatchLogs"]["LogGroupName"] == {"Ref": errors_group}
    role = next(iter(rules.values()))["Actions"][0]["CloudwatchLogs"]["RoleArn"]["Fn::GetAtt"][0]
    trust = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [statement["Principal"] for statement in trust] == [{"Service": "iot.amazonaws.com"}]
    (policy,) = [v["Properties"] for v in resources_of(template, "AWS::IAM::Policy").values()
                 if v["Properties"]["Roles"] == [{"Ref": role}]]
    (statement,) = policy["PolicyDocument"]["Statement"]
    # The CloudWatch Logs rule action's requirements, and nothing else.
    assert sorted(statement["Action"]) == ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    assert statement["Resource"] == [{"Fn::GetAtt": [group, "Arn"]} for group in (metrics_group, errors_group)]
    for payload in rules.values():
        assert payload["Actions"][0]["CloudwatchLogs"]["RoleArn"] == {"Fn::GetAtt": [role, "Arn"]}


# ---- alarms and the topic -----------------------------------------------------------------------
def alarms_of(template) -> dict[str, dict]:
    return {p["AlarmName"]: p for p in (v["Properties"] for v in resources_of(template, "AWS::CloudWatch::Alarm").values())}


def fleet_metrics_of(template) -> dict[str, dict]:
    return {p["MetricName"]: p for p in (v["Properties"] for v in resources_of(template, "AWS::IoT::FleetMetric").values())}


@pytest.mark.parametrize("which", ["default", "periodic fleet"])
def test_the_silence_alarm_waits_the_configured_number_of_cloud_update_intervals(template, fleet, which):
    chosen, config = (template, CONFIG) if which == "default" else (
        fleet, RainEdgeConfig(shadow_sync_strategy="periodic", shadow_sync_delay_seconds=600))
    alarm = alarms_of(chosen)["rainedge-device-silent"]
    # The fleet metric as CloudWatch holds it: namespace AWS/IoTFleetMetrics, named like the fleet metric,
    # dimension AggregationType=count.
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/IoTFleetMetrics", "rainedge-silent")
    assert alarm["Dimensions"] == [{"Name": "AggregationType", "Value": "count"}]
    assert "rainedge-silent" in fleet_metrics_of(chosen)
    assert alarm["EvaluationPeriods"] * alarm["Period"] == math.ceil(config.silence_seconds / 60) * 60
    assert alarm["DatapointsToAlarm"] == alarm["EvaluationPeriods"]
    # A fleet metric sends 0 when nothing matches: no data means the metric broke, which must alarm.
    assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["TreatMissingData"]) == \
        ("GreaterThanOrEqualToThreshold", 1, "breaching")
    # The notification says how to list the devices behind it.
    query = fleet_metrics_of(chosen)["rainedge-silent"]["QueryString"]
    assert f"aws iot search-index --query-string '{query}'" in alarm["AlarmDescription"]


def test_the_fault_and_drift_alarms_count_devices_and_the_deployment_alarm_counts_failure_events(template):
    alarms = alarms_of(template)
    assert list(alarms) == [CONFIG.monitoring_name(name) for name in ALARMS]
    fault, drift = alarms["rainedge-model-fault"], alarms["rainedge-drifting"]
    assert (fault["MetricName"], fault["EvaluationPeriods"], fault["TreatMissingData"]) == \
        ("rainedge-model-fault", 1, "notBreaching")
    assert (drift["MetricName"], drift["TreatMissingData"]) == ("rainedge-drifting", "notBreaching")
    deployment = alarms["rainedge-deployment-failed"]
    assert (deployment["Namespace"], deployment["MetricName"]) == ("AWS/Events", "TriggeredRules")
    rule_id = logical_id(template, "AWS::Events::Rule", Name="rainedge-deployment-failed")
    assert deployment["Dimensions"] == [{"Name": "RuleName", "Value": {"Ref": rule_id}}]
    topic = logical_id(template, "AWS::SNS::Topic", TopicName="rainedge-alarms")
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": topic}]


# The deployment status event exactly as the current "Get deployment and component health status
# notifications" page of the Greengrass V2 developer guide shows it (its id field is `deploymentId`).
DOCUMENTED_EVENT = {
    "version": "0", "id": "cd4d811e-ab12-322b-8255-EXAMPLEb1bc8",
    "detail-type": "Greengrass V2 Effective Deployment Status Change", "source": "aws.greengrass",
    "account": "123456789012", "region": "us-west-2", "time": "2018-03-22T00:38:11Z",
    "resources": ["arn:aws:greengrass:us-east-1:123456789012:coreDevices:MyGreengrassCore"],
    "detail": {"deploymentId": "4f38f1a7-3dd0-42a1-af48-EXAMPLE09681", "coreDeviceExecutionStatus": "FAILED",
               "statusDetails": {"errorStack": ["DEPLOYMENT_FAILURE", "ARTIFACT_DOWNLOAD_ERROR", "S3_ERROR"],
                                 "errorTypes": ["DEPENDENCY_ERROR", "PERMISSION_ERROR"]},
               "reason": "Error occurred while processing deployment"},
}


CANARY_DEPLOYMENT_ID = "5a27e3a1-0cd4-4ad5-9d6b-EXAMPLE1c0a2"


def deployment_rule_matches(template, event: dict) -> bool:
    """Whether EventBridge (moto's) delivers `event` to a target of the synthesized rule, with the
    deployment ids the stack would receive standing for their GetAtts (the fleet ring's is the documented one)."""
    import boto3
    from moto import mock_aws
    (rule,) = [v["Properties"] for v in resources_of(template, "AWS::Events::Rule").values()]
    pattern = json.dumps(rule["EventPattern"])
    for name, deployment_id in (("rainedge-deployment", DOCUMENTED_EVENT["detail"]["deploymentId"]),
                                ("rainedge-canary-deployment", CANARY_DEPLOYMENT_ID)):
        pattern = pattern.replace(json.dumps({"Fn::GetAtt": [logical_id(
            template, "AWS::GreengrassV2::Deployment", DeploymentName=name), "DeploymentId"]}), json.dumps(deployment_id))
    with mock_aws():
        eventbridge, sqs = boto3.client("events", "us-east-1"), boto3.client("sqs", "us-east-1")
        queue = sqs.create_queue(QueueName="target")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        eventbridge.put_rule(Name="rule", EventPattern=pattern)
        eventbridge.put_targets(Rule="rule", Targets=[{"Id": "queue", "Arn": queue_arn}])
        eventbridge.put_events(Entries=[{"Source": event["source"], "DetailType": event["detail-type"],
                                         "Resources": event["resources"], "Detail": json.dumps(event["detail"])}])
        return bool(sqs.receive_message(QueueUrl=queue).get("Messages"))


@pytest.mark.parametrize("status", ["FAILED", "REJECTED", "CANCELED"])
def test_the_documented_event_of_a_deployment_that_did_not_apply_fires_the_rule(template, status):
    event = {**DOCUMENTED_EVENT, "detail": {**DOCUMENTED_EVENT["detail"], "coreDeviceExecutionStatus": status}}
    assert deployment_rule_matches(template, event)


def test_a_failure_of_the_canary_rings_deployment_fires_the_rule_too(template):
    event = {**DOCUMENTED_EVENT, "detail": {**DOCUMENTED_EVENT["detail"], "deploymentId": CANARY_DEPLOYMENT_ID}}
    assert deployment_rule_matches(template, event)


@pytest.mark.parametrize("change", [{"coreDeviceExecutionStatus": "SUCCEEDED"},
                                    {"coreDeviceExecutionStatus": "COMPLETED"},
                                    {"deploymentId": "another-stacks-deployment"}])
def test_a_deployment_that_applied_or_is_not_ours_does_not(template, change):
    event = {**DOCUMENTED_EVENT, "detail": {**DOCUMENTED_EVENT["detail"], **change}}
    assert not deployment_rule_matches(template, event)


def test_the_notification_reads_the_documented_fields(template):
    (rule,) = [v["Properties"] for v in resources_of(template, "AWS::Events::Rule").values()]
    (target,) = rule["Targets"]
    paths = set(target["InputTransformer"]["InputPathsMap"].values())
    assert {"$.detail.deploymentId", "$.detail.coreDeviceExecutionStatus", "$.detail.statusDetails.errorTypes",
            "$.detail.statusDetails.errorStack"} <= paths
    for path in paths:  # every path the message reads exists in the documented event
        node = DOCUMENTED_EVENT
        for key in path.removeprefix("$.").replace("[0]", "").split("."):
            node = node[key]


def resolved_topic_policy(template) -> dict:
    """The alarm topic's policy with the topic's Ref and each alarm's Arn as CloudFormation returns them
    ("AWS::SNS::Topic" Ref: the ARN; "AWS::CloudWatch::Alarm" Fn::GetAtt Arn)."""
    from infra.synthesized import Pseudo, resolve
    pseudo = Pseudo()
    (policy,) = [v["Properties"] for v in resources_of(template, "AWS::SNS::TopicPolicy").values()]
    topic_id = logical_id(template, "AWS::SNS::Topic", TopicName="rainedge-alarms")
    text = json.dumps(policy["PolicyDocument"]).replace(
        json.dumps({"Ref": topic_id}), json.dumps(f"arn:aws:sns:{pseudo.region}:{pseudo.account}:rainedge-alarms"))
    for key, alarm in resources_of(template, "AWS::CloudWatch::Alarm").items():
        text = text.replace(json.dumps({"Fn::GetAtt": [key, "Arn"]}), json.dumps(
            f"arn:aws:cloudwatch:{pseudo.region}:{pseudo.account}:alarm:{alarm['Properties']['AlarmName']}"))
    return resolve(json.loads(text), pseudo)


TOPIC = "arn:aws:sns:us-east-1:123456789012:rainedge-alarms"


@pytest.mark.parametrize("alarm", ALARMS)
def test_cloudwatch_may_publish_each_alarm_of_the_stack_and_eventbridge_its_rule(template, alarm):
    from infra_support import service_may
    policy = resolved_topic_policy(template)
    alarm_arn = f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{CONFIG.monitoring_name(alarm)}"
    secure = {"aws:SecureTransport": "true", "aws:SourceAccount": "123456789012"}
    assert service_may(policy, service="cloudwatch.amazonaws.com", action="sns:Publish", resource=TOPIC,
                       context={**secure, "aws:SourceArn": alarm_arn})
    assert service_may(policy, service="events.amazonaws.com", action="sns:Publish", resource=TOPIC,
                       context={**secure, "aws:SourceArn": "arn:aws:events:us-east-1:123456789012:rule/"
                                                           "rainedge-deployment-failed"})


@pytest.mark.parametrize("context", [
    {"aws:SourceArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:someone-elses-alarm"},
    {"aws:SourceArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:rainedge-device-silent",
     "aws:SourceAccount": "999999999999"},
    {"aws:SourceArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:rainedge-device-silent",
     "aws:SecureTransport": "false"},
], ids=["another-alarm", "another-account", "no-tls"])
def test_cloudwatch_may_not_publish_for_anything_else(template, context):
    from infra_support import service_may
    context = {"aws:SecureTransport": "true", "aws:SourceAccount": "123456789012", **context}
    assert not service_may(resolved_topic_policy(template), service="cloudwatch.amazonaws.com",
                           action="sns:Publish", resource=TOPIC, context=context)


def test_the_alarm_topic_takes_tls_only_and_an_e_mail_only_when_configured(template, fleet):
    assert resources_of(template, "AWS::SNS::Subscription") == {}
    (subscription,) = [v["Properties"] for v in resources_of(fleet, "AWS::SNS::Subscription").values()]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "ops@example.com")
    (policy,) = [v["Properties"] for v in resources_of(template, "AWS::SNS::TopicPolicy").values()]
    assert '"aws:SecureTransport": "false"' in flatten(policy)


# ---- dashboard and outputs -----------------------------------------------------------------------
def dashboard_body(template) -> dict:
    (dashboard,) = [v["Properties"] for v in resources_of(template, "AWS::CloudWatch::Dashboard").values()]
    return json.loads(joined(dashboard["DashboardBody"]))


def test_the_dashboard_shows_the_fleet_counts_the_alarms_and_per_device_records(template):
    body = dashboard_body(template)
    graphs = [w for w in body["widgets"] if w["type"] == "metric"]
    counted = {metric[1] for widget in graphs for metric in widget["properties"]["metrics"]
               if metric[0] == "AWS/IoTFleetMetrics"}
    assert counted == set(fleet_metrics_of(template))
    (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert len(alarm_widget["properties"]["alarms"]) == len(ALARMS)
    logs = [w["properties"] for w in body["widgets"] if w["type"] == "log"]
    # Four Logs Insights widgets over the records, each per device (grouped by the thing name), and the
    # rule errors.
    records = [w for w in logs if f"by {fm.THING}" in w["query"] or f", {fm.THING}" in w["query"]]
    assert len(records) == 4 and len(logs) == 5
    assert '"TriggeredRules"' in flatten(body)


def test_outputs_name_everything_teardown_needs(template):
    outputs = {key: value["Value"] for key, value in template["Outputs"].items()}
    assert MONITORING_OUTPUTS <= set(outputs)
    assert outputs["DashboardName"] == {"Ref": logical_id(template, "AWS::CloudWatch::Dashboard",
                                                          DashboardName="rainedge-fleet")}
    assert joined(outputs["AlarmNames"]).split(",") == ["<token>"] * len(ALARMS)
    assert outputs["TopicRuleNames"] == ",".join(CONFIG.topic_rule_name(r.purpose) for r in fm.SHADOW_RULES)
    assert joined(outputs["MonitoringLogGroupNames"]).split(",") == ["<token>", "<token>"]
    assert joined(outputs["FleetMetricNames"]).split(",") == list(fleet_metrics_of(template))


def test_monitoring_does_not_grow_with_the_fleet(template, ten_devices, fleet):
    # One device or ten: the same resources, byte for byte (no device name anywhere in them).
    assert monitoring_resources(template) == monitoring_resources(ten_devices)
    assert "pi-3" not in flatten(monitoring_resources(ten_devices))
    types = lambda chosen: Counter(value["Type"] for value in monitoring_resources(chosen).values())  # noqa: E731
    assert types(fleet) - types(template) == Counter({"AWS::SNS::Subscription": 1})
    # No custom metric at all: the records carry no embedded metric format, alarms watch fleet metrics.
    assert "CloudWatchMetrics" not in flatten(template) and "SCHEMA(" not in flatten(template)


def test_fifty_devices_cost_no_more_monitoring_than_one(template, synth_variant_module):
    from infra_support import things
    fifty = synth_variant_module(devices=json.dumps(things(50)))
    assert monitoring_resources(fifty) == monitoring_resources(template)
    assert len(fleet_metrics_of(fifty)) == len(fx.fleet_queries(("rain-0000000000000000",)))


def test_everything_taggable_carries_the_app_tag(template):
    for resource_type in ("AWS::IoT::TopicRule", "AWS::CloudWatch::Alarm", "AWS::SNS::Topic", "AWS::Events::Rule",
                          "AWS::Logs::LogGroup"):
        for properties in (v["Properties"] for v in resources_of(template, resource_type).values()):
            assert {"Key": "rainedge:app", "Value": "rainedge"} in properties["Tags"], resource_type
