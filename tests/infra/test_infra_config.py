"""RainEdgeConfig: defaults, parsing of CLI strings, and one test per validation rule."""
from __future__ import annotations

import json
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.config import COMPONENT_SUFFIXES, MAX_COMPONENT_NAME, ConfigError, RainEdgeConfig


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
    assert config.fleet_metric_name("silent") == "wx-silent"
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
        ({"modelZip": "../model.zip"}, ["modelZip", "not '.' or '..'"]),
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
        # PutMetricAlarm: with periods under an hour, at most one day of evaluation.
        ({"sampleIntervalSeconds": 3600, "maxInputAgeSeconds": 3600, "silenceAlarmIntervals": 25},
         ["silenceAlarmIntervals x sampleIntervalSeconds", "90000", "one day"]),
        ({"shadowSyncStrategy": "periodic", "shadowSyncDelaySeconds": 30000},
         ["silenceAlarmIntervals x max(sampleIntervalSeconds, shadowSyncDelaySeconds)", "150000"]),
        ({"devices": ["p" * 65]}, ["devices", "1-64 characters"]),
        ({"devices": ["rainedge-claim-7"]}, ["devices", "rainedge-claim-"]),
        ({"fleetProvisioning": "sometimes"}, ["fleetProvisioning", "true or false"]),
        ({"serialNumberPattern": "[0-9a-f"}, ["serialNumberPattern", "none of the atoms"]),
        ({"serialNumberPattern": "[0-9]*"}, ["serialNumberPattern", "empty serial number"]),
        ({"serialNumberPattern": "x" * 101}, ["serialNumberPattern", "1-100 characters"]),
    ],
)
def test_invalid_value_names_the_key_and_what_is_allowed(context, names):
    with pytest.raises(ConfigError) as error:
        RainEdgeConfig.from_context(context)
    for name in names:
        assert name in str(error.value)


# ---- configuration cannot inject commands or leak keys (issue 9, section 2) ----------------------
@pytest.mark.parametrize("root", [
    "/opt/gg;touch${IFS}/tmp/x", "/opt/gg$(id)", "/opt/`id`", "/opt/gg dir", "/opt/gg\n/x", "/opt/gg'", '/opt/"gg"',
    "/opt/gg/../../etc", "/opt/./gg", "/opt/-rf", "/opt/gg/", "//gg", "/", "/opt/gg*", "/opt/~gg", "/opt/gg|x",
])
def test_a_greengrass_root_that_is_not_a_plain_path_is_refused(root):
    # It reaches install.sh (run as root), config.yaml and every component's environment.
    with pytest.raises(ConfigError, match=r"^greengrassRoot must be an absolute path such as /greengrass/v2"):
        RainEdgeConfig.from_context({"greengrassRoot": root})


@pytest.mark.parametrize("key, value", [
    ("secretsDir", "keys;rm -rf ~"), ("secretsDir", "-keys"), ("secretsDir", "./.secrets"), ("secretsDir", ".secrets/"),
    ("secretsDir", ""), ("modelZip", "build/model/rain model.zip"), ("modelZip", "build/model/rain_model"),
    ("modelZip", "build/model/.zip"), ("modelZip", "$(id).zip"),
])
def test_project_paths_are_plain_relative_paths(key, value):
    with pytest.raises(ConfigError, match=rf"^{key} must be a path relative to the project root"):
        RainEdgeConfig.from_context({key: value})


@pytest.mark.parametrize("context, overlap", [
    ({"secretsDir": "device_code/keys"}, "'device_code' (the Lambda code bundle)"),
    ({"secretsDir": "Device_Code/keys"}, "'device_code'"),  # one folder on macOS' file system
    ({"secretsDir": "build/model"}, "'build/model'"),
    ({"secretsDir": "build"}, "'build/model'"),  # a folder holding an asset source
    ({"secretsDir": "cdk.out/keys"}, "'cdk.out' (the cloud assembly)"),
    ({"secretsDir": "infra/fleet_hook/keys"}, "'infra/fleet_hook' (the fleet provisioning hook's Lambda code)"),
    ({"secretsDir": "keys", "modelZip": "keys/pi-1/model.zip"}, "the folder of modelZip"),
    ({"secretsDir": "models/keys", "modelZip": "models/rain.zip"}, "the folder of modelZip"),
    ({"modelZip": ".secrets/rainedge-core-1/private.zip"}, "the folder of modelZip"),
    ({"modelZip": "rain_model.zip"}, "'.'"),  # the project root as an asset source holds .secrets
])
def test_private_keys_cannot_be_placed_where_assets_are_uploaded_from(context, overlap):
    with pytest.raises(ConfigError) as error:
        RainEdgeConfig.from_context(context)
    assert str(error.value).startswith("secretsDir") and overlap in str(error.value)
    assert "uploaded to AWS" in str(error.value)


def test_the_longest_component_name_fits_greengrass_limit():
    # "componentName ... Maximum length of 128" (Greengrass V2 API reference, ComponentVersionListItem).
    longest_suffix = max(len(suffix) for suffix in COMPONENT_SUFFIXES)
    fits = "c" * (128 - 1 - longest_suffix)
    config = RainEdgeConfig.from_context({"componentPrefix": fits})
    assert max(len(config.component_name(suffix)) for suffix in COMPONENT_SUFFIXES) == 128
    with pytest.raises(ConfigError, match=rf"^componentPrefix .* too long: .* 129 characters, Greengrass allows 128; "
                                          rf"use at most {len(fits)} characters"):
        RainEdgeConfig.from_context({"componentPrefix": fits + "c"})


@pytest.mark.parametrize("key, meant", [
    ("name_prefix", "namePrefix"), ("NamePrefix", "namePrefix"), ("GREENGRASS_ROOT", "greengrassRoot"),
    ("greengrass-root", "greengrassRoot"), ("secrets_dir", "secretsDir"), ("sample_intervall_seconds",
                                                                           "sampleIntervalSeconds"),
    ("Devices", "devices"), ("device", "devices"), ("sampleIntervall", "sampleIntervalSeconds"),
])
def test_misspelt_keys_in_any_spelling_are_refused_with_the_key_meant(key, meant):
    with pytest.raises(ConfigError, match=rf"^unknown context key '{key}' \(did you mean {meant}\?\)"):
        RainEdgeConfig.from_context({key: "x"})


@pytest.mark.parametrize("raw", ['["pi-1"', '["pi-1",]', "[" * 100_000, '[pi-1]'])
def test_malformed_devices_json_is_one_config_error(raw):
    with pytest.raises(ConfigError) as error:
        RainEdgeConfig.from_context({"devices": raw})
    message = str(error.value)
    assert message.startswith("devices is not a JSON list") and "devices=pi-1,pi-2" in message
    assert "\n" not in message and len(message) < 300


def test_thing_names_longer_than_a_certificate_common_name_are_refused():
    RainEdgeConfig.from_context({"devices": ["p" * 64]})
    with pytest.raises(ConfigError, match="1-64 characters"):
        RainEdgeConfig.from_context({"devices": ["p" * 65]})


# ---- property: any context gives a valid config or one ConfigError -----------------------------------
KEYS = sorted(RainEdgeConfig.context_keys())
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
# Valid values of every key, so that combinations (and their relations) are explored too.
plausible = {"devices": st.lists(st.from_regex(r"[a-z0-9-]{1,70}", fullmatch=True), min_size=1, max_size=3),
             "componentPrefix": st.from_regex(r"[a-z]{1,70}(\.[a-z]{1,70}){0,2}", fullmatch=True),
             "secretsDir": st.sampled_from([".secrets", "device_code/k", "build", "keys", "a/b"]),
             "modelZip": st.sampled_from(["build/model/rain_model.zip", "keys/m.zip", "m/x.zip", "x.zip"]),
             "sampleIntervalSeconds": st.integers(0, 100_000), "maxInputAgeSeconds": st.integers(0, 100_000)}


def as_context(config: RainEdgeConfig) -> dict:
    return {key: getattr(config, name) for key, name in RainEdgeConfig.context_keys().items()}


@settings(max_examples=300)
@given(context=st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=12), json_values)
       | st.fixed_dictionaries({}, optional=plausible))
def test_any_context_gives_a_valid_config_or_one_config_error(context):
    try:
        config = RainEdgeConfig.from_context(context)
    except ConfigError as error:
        assert "\n" not in str(error) and len(str(error)) < 1000
        return
    assert RainEdgeConfig.from_context(as_context(config)) == config  # what was accepted is valid as it is
    assert all(len(config.component_name(suffix)) <= MAX_COMPONENT_NAME for suffix in COMPONENT_SUFFIXES)


# ---- stationAltitudes: where each Pi is installed ----------------------------------------------------
def test_station_altitudes_name_listed_and_fleet_devices_in_metres():
    config = RainEdgeConfig.from_context(
        {"stationAltitudes": '{"rainedge-core-1": 512.345, "rainedge-00000000000000ab": -0.001}'})
    assert dict(config.station_altitudes) == {"rainedge-core-1": 512.35, "rainedge-00000000000000ab": 0.0}
    assert config.station_altitude("rainedge-core-1") == 512.35 and config.station_altitude("pi-9") is None
    assert RainEdgeConfig().station_altitudes == {}  # the default: every device at 0 m
    with pytest.raises(TypeError):
        config.station_altitudes["rainedge-core-1"] = 0.0  # type: ignore[index]


@pytest.mark.parametrize("context, message", [
    ({"stationAltitudes": {"rainedge-core-1": 9000.5}}, "stationAltitudes of rainedge-core-1 must be metres above sea "
                                                        "level from -500 to 9000"),
    ({"stationAltitudes": {"rainedge-core-1": -501}}, "from -500 to 9000"),
    ({"stationAltitudes": {"rainedge-core-1": True}}, "got True"),
    ({"stationAltitudes": {"rainedge-core-1": "512"}}, "got '512'"),
    ({"stationAltitudes": {"rainedge-core-1": 10**400}}, "from -500 to 9000"),
    ({"stationAltitudes": {"pi one": 5}}, "stationAltitudes keys must be thing names"),
    ({"stationAltitudes": [["rainedge-core-1", 5]]}, "must map thing names to metres"),
    ({"stationAltitudes": "rainedge-core-1=5"}, "is not a JSON object"),
    ({"stationAltitudes": {"rainedge-core-2": 5}}, "stationAltitudes names 'rainedge-core-2', which is neither a "
                                                   "listed device (rainedge-core-1) nor a fleet device "
                                                   "rainedge-<serial matching [0-9a-f]{16}>"),
    ({"stationAltitudes": {"rainedge-00000000000000ab": 5}, "fleetProvisioning": False}, "fleetProvisioning is off"),
    ({"stationAltitudes": {"rainedge-00000000000000AB": 5}}, "neither a listed device"),
])
def test_station_altitudes_are_validated(context, message):
    with pytest.raises(ConfigError) as error:
        RainEdgeConfig.from_context(context)
    assert message in str(error.value) and "\n" not in str(error.value)
