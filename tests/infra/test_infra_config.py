"""RainEdgeConfig: defaults, parsing of CLI strings, and one test per validation rule."""
from __future__ import annotations

import json
from dataclasses import FrozenInstanceError

import pytest

from infra.config import ConfigError, RainEdgeConfig


def test_cdk_json_context_holds_exactly_the_defaults(project_root):
    context = json.loads((project_root / "cdk.json").read_text())["context"]
    ours = {key: value for key, value in context.items() if key in RainEdgeConfig.context_keys()}
    assert set(ours) == set(RainEdgeConfig.context_keys())
    assert RainEdgeConfig.from_context(context) == RainEdgeConfig()


def test_config_is_frozen():
    with pytest.raises(FrozenInstanceError):
        RainEdgeConfig().name_prefix = "other"  # type: ignore[misc]


def test_command_line_strings_are_parsed():
    # `cdk synth -c key=value` passes every value as a string.
    config = RainEdgeConfig.from_context(
        {
            "devices": "pi-a, pi-b",
            "sampleIntervalSeconds": "30",
            "cpuTempCompensation": "on",
            "i2cAddress": "0x77",
        }
    )
    assert config.devices == ("pi-a", "pi-b")
    assert config.sample_interval_seconds == 30
    assert config.cpu_temp_compensation is True
    assert config.i2c_address == 0x77
    assert RainEdgeConfig.from_context({"devices": '["pi-c"]'}).devices == ("pi-c",)


def test_alarm_email_is_optional_and_a_plain_address_is_taken():
    assert RainEdgeConfig().alarm_email == ""
    assert RainEdgeConfig.from_context({"alarmEmail": "ops.team+rain@mail.example.org"}).alarm_email == \
        "ops.team+rain@mail.example.org"


def test_silence_is_counted_in_cloud_update_intervals():
    # Periodic sync updates the cloud shadow at most once per delay, so a healthy device is quiet that long.
    real_time = RainEdgeConfig.from_context({"sampleIntervalSeconds": "60", "silenceAlarmIntervals": "4"})
    periodic = RainEdgeConfig.from_context({"sampleIntervalSeconds": "60", "silenceAlarmIntervals": "4",
                                            "shadowSyncStrategy": "periodic", "shadowSyncDelaySeconds": "600"})
    assert (real_time.cloud_update_interval_seconds, real_time.silence_seconds) == (60, 240)
    assert (periodic.cloud_update_interval_seconds, periodic.silence_seconds) == (600, 2400)


def test_cdk_feature_flags_and_cli_keys_are_not_ours_and_pass():
    context = {"@aws-cdk/core:enableDiffNoFail": True, "cli-telemetry": False, "aws:cdk:enable-path-metadata": True}
    assert RainEdgeConfig.from_context(context) == RainEdgeConfig()


def test_derived_names_follow_the_contract():
    config = RainEdgeConfig(name_prefix="wx", component_prefix="org.example")
    assert config.thing_group_name == "wx-cores"
    assert config.device_policy_name("pi-7") == "wx-device-pi-7"
    assert config.role_alias_name == "wx-tes-role-alias"
    assert config.deployment_name == "wx-deployment"
    assert config.function_name("shadow-writer") == "wx-shadow-writer"
    assert config.component_name("RainModel") == "org.example.RainModel"
    assert config.metrics_namespace == "RainEdge/wx"
    assert config.monitoring_log_group_name("rule-errors") == "/wx/rule-errors"
    assert config.monitoring_name("device-silent") == "wx-device-silent"
    # IoT rule names take letters, digits and underscores only.
    assert RainEdgeConfig(name_prefix="wx-2").topic_rule_name("weather_metrics") == "wx_2_weather_metrics"


@pytest.mark.parametrize(
    ("context", "names"),
    [
        ({"sampleIntervall": 5}, ["sampleIntervall", "known keys"]),
        ({"namePrefix": "Rain_Edge"}, ["namePrefix", "a-z 0-9 -"]),
        ({"devices": []}, ["devices", "non-empty list"]),
        ({"devices": ["pi one"]}, ["devices", "'pi one'"]),
        ({"devices": ["pi", "pi"]}, ["devices", "must not repeat"]),
        ({"componentPrefix": "com..rain"}, ["componentPrefix", "dotted name"]),
        ({"componentPrefix": "aws.rain"}, ["componentPrefix", "reserved"]),
        ({"sampleIntervalSeconds": 0}, ["sampleIntervalSeconds", "from 1 to 86400"]),
        ({"sampleIntervalSeconds": "often"}, ["sampleIntervalSeconds", "integer"]),
        ({"inferenceIntervalSeconds": True}, ["inferenceIntervalSeconds", "integer"]),
        ({"maxInputAgeSeconds": 10**9}, ["maxInputAgeSeconds", "from 1 to"]),
        ({"cpuTempCompensation": "maybe"}, ["cpuTempCompensation", "true or false"]),
        ({"shadowSyncDirection": "both"}, ["shadowSyncDirection", "betweenDeviceAndCloud", "deviceToCloud"]),
        ({"lambdaRuntime": "python3.9"}, ["lambdaRuntime", "python3.11"]),
        ({"secretsDir": "/etc/keys"}, ["secretsDir", "relative"]),
        ({"modelZip": "../model.zip"}, ["modelZip", "without '..'"]),
        ({"i2cBus": -1}, ["i2cBus", "from 0 to 255"]),
        ({"i2cAddress": "0x40"}, ["i2cAddress", "0x76 or 0x77"]),
        ({"logLevel": "verbose"}, ["logLevel", "DEBUG", "INFO"]),
        ({"greengrassRoot": "greengrass"}, ["greengrassRoot", "absolute"]),
        ({"sampleIntervalSeconds": 600, "maxInputAgeSeconds": 300}, ["maxInputAgeSeconds", "sampleIntervalSeconds"]),
        ({"shadowSyncStrategy": "hourly"}, ["shadowSyncStrategy", "realTime", "periodic"]),
        ({"shadowSyncDelaySeconds": 0}, ["shadowSyncDelaySeconds", "from 1 to 86400"]),
        ({"silenceAlarmIntervals": 1}, ["silenceAlarmIntervals", "from 2 to 1000"]),
        ({"alarmEmail": "ops"}, ["alarmEmail", "e-mail address"]),
        ({"alarmEmail": "Ops <ops@example.com>"}, ["alarmEmail", "e-mail address"]),
        ({"alarmEmail": "ops@example.com, dev@example.com"}, ["alarmEmail", "e-mail address"]),
        ({"alarmEmail": "ops..team@example.com"}, ["alarmEmail", "e-mail address"]),
        ({"alarmEmail": "ops@example"}, ["alarmEmail", "e-mail address"]),
        ({"alarmEmail": "a" * 250 + "@example.com"}, ["alarmEmail", "e-mail address"]),
        ({"alarmEmail": ["ops@example.com"]}, ["alarmEmail", "e-mail address"]),
        # Metrics Insights alarms see the latest 3 hours only.
        ({"sampleIntervalSeconds": 3600, "maxInputAgeSeconds": 3600},
         ["silenceAlarmIntervals x sampleIntervalSeconds", "18000", "3 hours"]),
        ({"shadowSyncStrategy": "periodic", "shadowSyncDelaySeconds": 3000},
         ["silenceAlarmIntervals x max(sampleIntervalSeconds, shadowSyncDelaySeconds)", "15000"]),
        ({"devices": ["p" * 65]}, ["devices", "1-64 characters"]),
        ({"devices": ["rainedge-claim-7"]}, ["devices", "rainedge-claim-"]),
        ({"fleetProvisioning": "sometimes"}, ["fleetProvisioning", "true or false"]),
        ({"serialNumberPattern": "[0-9a-f"}, ["serialNumberPattern", "valid regular expression"]),
        ({"serialNumberPattern": "[0-9]*"}, ["serialNumberPattern", "empty serial number"]),
        ({"serialNumberPattern": "x" * 101}, ["serialNumberPattern", "1-100 characters"]),
    ],
)
def test_invalid_value_names_the_key_and_what_is_allowed(context, names):
    with pytest.raises(ConfigError) as error:
        RainEdgeConfig.from_context(context)
    for name in names:
        assert name in str(error.value)
