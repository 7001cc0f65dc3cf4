"""The one typed, validated configuration of the rainedge app, built from CDK context.

`RainEdgeConfig.from_context(mapping)` takes the context mapping (``cdk.json`` "context",
or ``app.node.get_all_context()``, or ``-c key=value`` values, which arrive as strings) and
either returns a frozen config or raises `ConfigError` naming the key and what is allowed.
No AWS imports here: the lifecycle tools use it outside a CDK app.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, Mapping

from device_code.contracts import finite_number, shown
from device_code.files import InvalidJson, UnusableFile, parse_json, read_text
from device_code.functions import FUNCTIONS
from device_code.sea_level import ALTITUDE_RANGE_M
from infra.fleet_hook.handler import (MAX_THING_NAME, SERIAL_PARAMETER, SERIAL_PATTERN_RULE, THING_NAME, claim_name,
                                      decide, device_policy_name, reserved_name_problem, serial_pattern_problem)

# Shared by the stack and the lifecycle tools (which find the app's resources by them).
STACK_NAME = "RainEdge"
APP_TAG = "rainedge:app"
# The default user and group of Greengrass components: the installer creates them
# (--component-default-user, see infra/lifecycle/device_setup.py).
DEFAULT_POSIX_USER, DEFAULT_POSIX_GROUP = "ggc_user", "ggc_group"

# Lambda runtimes a Raspberry Pi OS can provide (bookworm ships 3.11, trixie 3.13) and that
# both AWS Lambda and Greengrass's Lambda launcher accept.
LAMBDA_RUNTIMES = ("python3.11", "python3.12", "python3.13")
SYNC_DIRECTIONS = ("betweenDeviceAndCloud", "deviceToCloud", "cloudToDevice")
# The directions in which a cloud-side shadow change (an adaptation, make adapt) reaches the device.
CLOUD_TO_DEVICE_DIRECTIONS = ("betweenDeviceAndCloud", "cloudToDevice")
# ShadowManager's strategy.type (developer guide, "Shadow manager", Configuration): realTime syncs each
# update; periodic syncs every `delay` seconds (ShadowManager >= 2.1.0).
SYNC_STRATEGIES = ("realTime", "periodic")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
BME680_I2C_ADDRESSES = (0x76, 0x77)

# Prefix of IAM/IoT/Lambda resource names: short enough for "<prefix>-tes-role-alias" and
# the Lambda name limit of 64.
_NAME_PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
# Greengrass component names are reverse-DNS-like; "aws.greengrass." is reserved.
_COMPONENT_PREFIX = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]*(\.[a-zA-Z][a-zA-Z0-9_-]*)*$")
# A plain mailbox address (no display name, no quoting, no IP literal): what SNS e-mail subscriptions take.
_EMAIL = re.compile(
    r"^(?!\.)(?!.*\.\.)[A-Za-z0-9._%+-]{1,64}(?<!\.)@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
MAX_EMAIL = 254
# The silence alarm has one-minute periods; "For alarms with a period of less than one hour (3,600
# seconds), the total evaluation period can't be longer than one day (86,400 seconds)" (CloudWatch API
# reference, PutMetricAlarm Period).
MAX_SILENCE_SECONDS = 86_400
# The components are <componentPrefix>.<suffix>: one per device function, the model and the runtime.
MODEL_COMPONENT, RUNTIME_COMPONENT = "RainModel", "DeviceRuntime"
# In the model component's work folder, which the nucleus names by the component, not its version
# (<root>/work/<component name>): the link to the artifact folder of the version whose self-test passed last
# (infra/components.py).
SERVING_LINK = "serving"
COMPONENT_SUFFIXES = (RUNTIME_COMPONENT, MODEL_COMPONENT, *(function.component for function in FUNCTIONS))
# "componentName ... Maximum length of 128" (Greengrass V2 API reference, ComponentVersionListItem;
# CloudFormation AWS::GreengrassV2::Component ComponentName "Maximum: 128").
MAX_COMPONENT_NAME = 128
# Every path that reaches a shell script, a recipe or the file system: folder names of
# A-Z a-z 0-9 . _ - that start with neither '-' (an option to a command) nor are '.' or '..'.
_PATH_PART = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")
# Folders whose files go to AWS (the Lambda code bundle, the model upload, the cloud assembly);
# the secrets folder may neither be inside one of them nor hold one.
DEVICE_PACKAGE = "device_code"
FLEET_HOOK_SOURCE = "infra/fleet_hook"
INDEX_SETTINGS_SOURCE = "infra/index_settings"
ASSET_SOURCES = {
    DEVICE_PACKAGE: "the Lambda code bundle",
    FLEET_HOOK_SOURCE: "the fleet provisioning hook's Lambda code",
    INDEX_SETTINGS_SOURCE: "the fleet-indexing settings handler's Lambda code",
    "build/model": "the training output (make train)",
    "releases/promoted": "the promoted model (make promote, infra/releases.py)",
    "cdk.out": "the cloud assembly",
}
# The station file, relative to the Greengrass root: {"altitude_m": <metres>} of where the Pi is
# installed. install.sh writes it (root-owned, world-readable; the root folder is world-readable,
# aws-greengrass-nucleus Permissions.setRootPermission), the shadow writer reads it.
STATION_FILE = "rainedge/station.json"
# How long the device runtime's Install (venv + pip) may take on a Pi (infra/components.py).
RUNTIME_INSTALL_TIMEOUT_SECONDS = 1800
# The model component's Startup step (the self-test, infra/components.py): LiteRT loads and replays the golden
# rows in seconds on a Pi. Stated although it is the recipe reference's default for Startup ("Default: 120
# seconds"); "If the component enters the ERRORED state three times without a successful run, the component
# becomes BROKEN" (developer guide, component lifecycle): a failing device spends up to three of these.
SELF_TEST_TIMEOUT_SECONDS = 120
SELF_TEST_ATTEMPTS = 3
# The hook gets the canary serial numbers in its environment, comma-separated: "The total size of all environment
# variables doesn't exceed 4 KB" (Lambda quotas); a kilobyte (60 Raspberry Pi serials) leaves room for its other
# settings at their longest (tests/infra/test_infra_fleet.py).
MAX_CANARY_SERIALS_BYTES = 1024
# install.sh creates the Greengrass root as root and the nucleus makes it world-readable
# (Permissions.setRootPermission), so it must be a folder of Greengrass's own, never a system folder
# (/, /etc, /tmp, /root, /usr/..., /proc, /dev/shm, a home folder itself): /greengrass or a folder in
# it, or a folder below one of these (a user's home folder: /home/*).
GREENGRASS_ROOT_PARENTS = ("/opt", "/srv", "/var/lib", "/home/*")
_TRUE_WORDS = ("true", "on", "yes", "1")
_FALSE_WORDS = ("false", "off", "no", "0")
# `-c devices=null` arrives as the text "null": these words mean "no value", not a device.
_NO_VALUE_WORDS = ("null", "none", "nil", "undefined")
# cdk.json holds the context only (CDK keeps its lookups in cdk.context.json): a megabyte is plenty.
MAX_CDK_JSON_BYTES = 1 << 20


class ConfigError(ValueError):
    """A context value is missing, malformed or out of range; the message names the key."""


def json_value(text: str) -> Any:
    """`text` parsed as the app reads every JSON it is given (cdk.json, -c values, stack outputs): strictly,
    and every way it fails is one InvalidJson: device_code.files.parse_json's, NaN or Infinity (no JSON
    numbers), or an object with a key twice (which json.loads would settle silently by keeping the last)."""
    return parse_json(text, object_pairs_hook=_object_of_unique_keys, parse_constant=_no_json_number)


def _object_of_unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise InvalidJson(f"the key {shown(key)} comes twice in one object")
        found[key] = value
    return found


def _no_json_number(constant: str) -> Any:
    raise InvalidJson(f"not JSON ({constant} is no JSON number)")


def read_cdk_context(project_root: Path) -> dict[str, Any]:
    """The "context" of the project's cdk.json: the configuration defaults. Read as a regular file of at
    most MAX_CDK_JSON_BYTES, without blocking (a FIFO in its place is refused, not waited on)."""
    path = project_root / "cdk.json"
    restore = "restore it (git checkout cdk.json)"
    try:
        document = json_value(read_text(path, MAX_CDK_JSON_BYTES))
    except UnusableFile as problem:
        raise ConfigError(f"{problem}: {restore}") from None
    except InvalidJson as problem:
        raise ConfigError(f"{path}: {problem}: {restore}") from None
    context = document.get("context") if isinstance(document, dict) else None
    if not isinstance(context, dict):
        raise ConfigError(f"{path} holds no \"context\" object ({shown(context)}): {restore}")
    return context


@dataclass(frozen=True)
class RainEdgeConfig:
    name_prefix: str = "rainedge"
    devices: tuple[str, ...] = ("rainedge-core-1",)
    component_prefix: str = "com.rainedge"
    sample_interval_seconds: int = 60
    inference_interval_seconds: int = 10
    max_input_age_seconds: int = 300
    cpu_temp_compensation: bool = False
    shadow_sync_direction: str = "betweenDeviceAndCloud"
    shadow_sync_strategy: str = "realTime"
    # Used with shadowSyncStrategy=periodic only: ShadowManager syncs at most once per delay.
    shadow_sync_delay_seconds: int = 300
    # A device is reported silent after this many cloud update intervals without a reading.
    silence_alarm_intervals: int = 5
    # "" = no e-mail subscription to the alarm topic.
    alarm_email: str = ""
    lambda_runtime: str = "python3.11"
    secrets_dir: str = ".secrets"
    model_zip: str = "build/model/rain_model.zip"
    i2c_bus: int = 1
    i2c_address: int = 0x76
    log_level: str = "INFO"
    # Must equal the `rootpath` the device was installed with (device-setup writes it).
    greengrass_root: str = "/greengrass/v2"
    # Fleet provisioning by claim (infra/fleet.py): devices join as <namePrefix>-<serial number>.
    fleet_provisioning: bool = True
    # How a deployment rolls out over the fleet, as the IoT job Greengrass runs it (infra/deployment.py):
    # devices notified per minute at first, multiplied by the factor after each N devices succeeded, at most
    # the maximum; cancelled when more than the threshold share of at least M executions failed (any kind);
    # a device that has not finished in the timeout counts as TIMED_OUT.
    rollout_base_rate_per_minute: int = 5
    rollout_increment_factor: float = 2.0
    rollout_increase_after_succeeded: int = 5
    rollout_maximum_per_minute: int = 50
    abort_threshold_percentage: float = 10.0
    abort_min_executed_things: int = 5
    deployment_timeout_minutes: int = 60
    # The canary ring (infra/releases.py): listed devices by name, provisioned ones by serial number; every
    # other device is in the fleet ring. A candidate model is promoted to the fleet ring only after it ran on
    # the canary ring for the bake window and each canary device passed the gate (infra/lifecycle/gate.py).
    canary_devices: tuple[str, ...] = ()
    canary_serials: tuple[str, ...] = ()
    bake_minutes: int = 360
    promotion_margin: float = 0.05
    rain_share_margin: float = 0.2
    # A Raspberry Pi's serial number (/proc/device-tree/serial-number) is 16 hex digits.
    serial_number_pattern: str = "[0-9a-f]{16}"
    # Where each Pi is installed: thing name -> metres above sea level, for listed and fleet devices
    # alike; install.sh writes it into the device's station file. A device not named here: 0 m.
    station_altitudes: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    # How long the data lake keeps readings and predictions (infra/datalake.py): an S3 lifecycle expiration.
    lake_retention_days: int = 365

    # ---- derived names (the stack's output contract) ------------------------------------
    @property
    def thing_group_name(self) -> str:
        """The fleet ring's thing group."""
        return f"{self.name_prefix}-cores"

    @property
    def canary_group_name(self) -> str:
        """The canary ring's thing group; no device is in both (infra/releases.py says why)."""
        return f"{self.name_prefix}-canary"

    @property
    def thing_group_names(self) -> tuple[str, str]:
        return self.thing_group_name, self.canary_group_name

    def ring_group(self, thing_name: str) -> str:
        """The thing group of a listed device."""
        return self.canary_group_name if thing_name in self.canary_devices else self.thing_group_name

    def device_policy_name(self, thing_name: str) -> str:
        """Each core device has its own IoT policy (infra/identity.py; the hook names a provisioned one alike)."""
        return device_policy_name(self.name_prefix, thing_name)

    @property
    def ledger_table_name(self) -> str:
        """The table recording what fleet provisioning makes (infra/ledger.py)."""
        return f"{self.name_prefix}-ledger"

    @property
    def role_alias_name(self) -> str:
        return f"{self.name_prefix}-tes-role-alias"

    @property
    def token_exchange_role_name(self) -> str:
        return f"{self.name_prefix}-tes-role"

    @property
    def deployment_name(self) -> str:
        return f"{self.name_prefix}-deployment"

    @property
    def canary_deployment_name(self) -> str:
        return f"{self.name_prefix}-canary-deployment"

    @property
    def cloud_update_interval_seconds(self) -> int:
        """How often a healthy device's weather shadow changes in the cloud: every reading with
        real-time sync, at most once per delay with periodic sync."""
        if self.shadow_sync_strategy == "periodic":
            return max(self.sample_interval_seconds, self.shadow_sync_delay_seconds)
        return self.sample_interval_seconds

    @property
    def silence_seconds(self) -> int:
        return self.silence_alarm_intervals * self.cloud_update_interval_seconds

    # ---- monitoring names (infra/monitoring.py; teardown finds them in the stack outputs) -----
    def monitoring_log_group_name(self, purpose: str) -> str:
        """`purpose` is shadow-records or rule-errors."""
        return f"/{self.name_prefix}/{purpose}"

    def topic_rule_name(self, purpose: str) -> str:
        """IoT rule names take letters, digits and '_' only (CreateTopicRule ruleName)."""
        return f"{self.name_prefix.replace('-', '_')}_{purpose}"

    def fleet_metric_name(self, purpose: str) -> str:
        """CreateFleetMetric metricName: 1-128 of [a-zA-Z0-9_\\-\\.]; the prefix and purposes fit it."""
        return f"{self.name_prefix}-{purpose}"

    def monitoring_name(self, purpose: str) -> str:
        """Alarms, the alarm topic, the dashboard and the EventBridge rule: <prefix>-<purpose>."""
        return f"{self.name_prefix}-{purpose}"

    # ---- data lake names (infra/datalake.py; teardown finds them in the stack outputs) --------
    @property
    def lake_database_name(self) -> str:
        """Athena takes lowercase letters, digits and '_' only in database names ("Name databases, tables, and
        columns"): the prefix (a-z 0-9 -, starting with a letter) with '_' for '-'."""
        return f"{self.name_prefix.replace('-', '_')}_lake"

    @property
    def lake_workgroup_name(self) -> str:
        """CreateWorkGroup Name: 1-128 of [a-zA-Z0-9._-]; the prefix fits it."""
        return f"{self.name_prefix}-lake"

    def lake_stream_name(self, table: str) -> str:
        """CreateDeliveryStream DeliveryStreamName: 1-64 of [a-zA-Z0-9_.-]; `table` is an infra/lake.py table."""
        return f"{self.name_prefix}-lake-{table}"

    def lake_query_name(self, query: str) -> str:
        """An Athena named query: <prefix>-<infra/lake.py query name> (CreateNamedQuery Name: 1-128 characters)."""
        return f"{self.name_prefix}-{query}"

    @property
    def provisioning_template_name(self) -> str:
        return f"{self.name_prefix}-fleet"

    @property
    def claim_name(self) -> str:
        """The claim certificate's key folder and CSR name; claim connections use `<claim_name>-<serial>`."""
        return claim_name(self.name_prefix)

    @property
    def claim_policy_name(self) -> str:
        return f"{self.name_prefix}-claim-policy"

    def function_name(self, function: str) -> str:
        """`function` is one of sensor, shadow-writer, inference."""
        return f"{self.name_prefix}-{function}"

    def component_name(self, suffix: str) -> str:
        """`suffix` is one of COMPONENT_SUFFIXES."""
        return f"{self.component_prefix}.{suffix}"

    @property
    def asset_sources(self) -> dict[str, str]:
        """Project-relative folders whose files are uploaded -> what they are."""
        model_folder = str(PurePosixPath(self.model_zip).parent)
        return {**ASSET_SOURCES, model_folder: f"the folder of modelZip ({self.model_zip}), uploaded as an asset"}

    def station_altitude(self, thing_name: str) -> float | None:
        """The configured altitude of a device (metres), or None when stationAltitudes does not name it."""
        return self.station_altitudes.get(thing_name)

    def fleet_thing(self, thing_name: str) -> bool:
        """Whether fleet provisioning would give a device this thing name (infra/fleet_hook)."""
        prefix = f"{self.name_prefix}-"
        serial = {SERIAL_PARAMETER: thing_name.removeprefix(prefix)}
        return (self.fleet_provisioning and thing_name.startswith(prefix)
                and decide(serial, self.serial_number_pattern, self.name_prefix, lambda name: False)[0])

    @property
    def station_file(self) -> str:
        return station_file(self.greengrass_root)

    @property
    def python_executable(self) -> str:
        """The interpreter on the device that runs the Lambda runtime, e.g. python3.11."""
        return self.lambda_runtime

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def context_keys(cls) -> dict[str, str]:
        """camelCase context key -> field name."""
        return {_camel(f.name): f.name for f in fields(cls)}

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> "RainEdgeConfig":
        keys = cls.context_keys()
        _reject_unknown_keys(context, keys)
        values: dict[str, Any] = {}
        for key, field_name in keys.items():
            if key in context and context[key] is not None:
                values[field_name] = _PARSERS[field_name](key, context[key])
        config = cls(**values)
        config._check_relations()
        return config

    def _check_relations(self) -> None:
        for name in self.devices:
            reserved = reserved_name_problem(self.name_prefix, name)
            if reserved is not None:
                raise ConfigError(f"devices must not name {name!r}: it is {reserved}; rename the device")
        unknown = [name for name in self.station_altitudes if name not in self.devices and not self.fleet_thing(name)]
        if unknown:
            fleet = (f" nor a fleet device {self.name_prefix}-<serial matching {self.serial_number_pattern}>"
                     if self.fleet_provisioning else " (fleetProvisioning is off)")
            raise ConfigError(f"stationAltitudes names {unknown[0]!r}, which is neither a listed device "
                              f"({', '.join(self.devices)}){fleet}: fix the thing name")
        if self.rollout_base_rate_per_minute > self.rollout_maximum_per_minute:
            raise ConfigError(f"rolloutBaseRatePerMinute ({self.rollout_base_rate_per_minute}) must be at most "
                              f"rolloutMaximumPerMinute ({self.rollout_maximum_per_minute})")
        first_deployment_s = RUNTIME_INSTALL_TIMEOUT_SECONDS + SELF_TEST_ATTEMPTS * SELF_TEST_TIMEOUT_SECONDS
        if self.deployment_timeout_minutes * 60 <= first_deployment_s:
            raise ConfigError(
                f"deploymentTimeoutMinutes ({self.deployment_timeout_minutes}) must be more than "
                f"{first_deployment_s // 60}: a first deployment may spend {RUNTIME_INSTALL_TIMEOUT_SECONDS // 60} min "
                f"installing the device runtime and {SELF_TEST_ATTEMPTS} x {SELF_TEST_TIMEOUT_SECONDS} s on the "
                "model's self-test, and would time out")
        outside = [name for name in self.canary_devices if name not in self.devices]
        if outside:
            raise ConfigError(f"canaryDevices names {outside[0]!r}, which devices does not list "
                              f"({', '.join(self.devices)}): a canary device is one of the listed devices")
        for serial in self.canary_serials:
            allowed, reason = decide({SERIAL_PARAMETER: serial}, self.serial_number_pattern, self.name_prefix,
                                     lambda name: False)
            if not (self.fleet_provisioning and allowed):
                why = reason if self.fleet_provisioning else "fleetProvisioning is off"
                raise ConfigError(f"canarySerials entry {serial!r} can never join the fleet ({why}): list serial "
                                  f"numbers matching serialNumberPattern {self.serial_number_pattern}")
        if self.max_input_age_seconds < self.sample_interval_seconds:
            raise ConfigError(
                f"maxInputAgeSeconds ({self.max_input_age_seconds}) must be at least "
                f"sampleIntervalSeconds ({self.sample_interval_seconds}), or every reading "
                "would be stale before the next one arrives"
            )
        if self.silence_seconds > MAX_SILENCE_SECONDS:
            interval = ("max(sampleIntervalSeconds, shadowSyncDelaySeconds)" if self.shadow_sync_strategy == "periodic"
                        else "sampleIntervalSeconds")
            raise ConfigError(
                f"silenceAlarmIntervals x {interval} = {self.silence_seconds} s must be at most "
                f"{MAX_SILENCE_SECONDS} s: a CloudWatch alarm with one-minute periods evaluates at most one day"
            )
        longest = max((self.component_name(suffix) for suffix in COMPONENT_SUFFIXES), key=len)
        if len(longest) > MAX_COMPONENT_NAME:
            raise ConfigError(
                f"componentPrefix {self.component_prefix!r} is too long: component {longest} has {len(longest)} "
                f"characters, Greengrass allows {MAX_COMPONENT_NAME}; use at most "
                f"{MAX_COMPONENT_NAME - len(longest) + len(self.component_prefix)} characters"
            )
        for source, what in self.asset_sources.items():
            if overlaps(self.secrets_dir, source):
                raise ConfigError(
                    f"secretsDir {self.secrets_dir!r} overlaps {source!r} ({what}): private keys would be "
                    "uploaded to AWS; keep secretsDir and modelZip apart from each other and from "
                    f"{', '.join(ASSET_SOURCES)} (default secretsDir: .secrets)"
                )


def station_file(greengrass_root: str) -> str:
    """The station file on a device installed with this Greengrass root (see STATION_FILE)."""
    return f"{greengrass_root}/{STATION_FILE}"


def overlaps(first: str, second: str) -> bool:
    """Whether one project-relative folder is, holds or lies inside the other (case-insensitively:
    macOS and Windows file systems are)."""
    a, b = PurePosixPath(first.lower()), PurePosixPath(second.lower())
    return a == b or a in b.parents or b in a.parents


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _folded(key: str) -> str:
    """A key without case, '_' and '-': name_prefix, NamePrefix and namePrefix fold alike."""
    return re.sub(r"[_-]", "", key).lower()


def _reject_unknown_keys(context: Mapping[str, Any], known: Mapping[str, str]) -> None:
    """Catch typos in our own keys, in any spelling (camelCase, snake_case, PascalCase). A key that
    looks like none of ours and is not a plain identifier is CDK's (feature flags "@aws-cdk/...",
    CLI keys "cli-telemetry", "aws:cdk:...") and passes through."""
    by_fold = {_folded(name): name for name in known}
    for key in map(str, context):
        if key in known:
            continue
        close = difflib.get_close_matches(_folded(key), by_fold, n=1, cutoff=0.75)
        if close or re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", key):
            hint = f" (did you mean {by_fold[close[0]]}?)" if close else ""
            raise ConfigError(f"unknown context key {shown(key)}{hint}; known keys: {', '.join(sorted(known))}")


# ---- value parsers: each takes (key, raw) and returns the typed value or raises ----------
def _integer(minimum: int, maximum: int):
    def parse(key: str, raw: Any) -> int:
        if isinstance(raw, bool):
            raise ConfigError(f"{key} must be an integer from {minimum} to {maximum}, got {shown(raw)}")
        try:
            value = int(raw, 0) if isinstance(raw, str) else raw
        except ValueError:
            value = None
        if not isinstance(value, int) or not minimum <= value <= maximum:
            raise ConfigError(f"{key} must be an integer from {minimum} to {maximum}, got {shown(raw)}")
        return value

    return parse


def _decimal(minimum: float, maximum: float, places: int):
    """A number from minimum to maximum with at most `places` digits after the point."""
    def parse(key: str, raw: Any) -> float:
        allowed = f"{key} must be a number from {minimum:g} to {maximum:g} with at most {places} decimal(s)"
        if isinstance(raw, bool):
            raise ConfigError(f"{allowed}, got {shown(raw)}")
        try:
            value = float(raw) if isinstance(raw, (str, int, float)) else None
        except (ValueError, OverflowError):
            value = None
        if value is None or not finite_number(value) or not minimum <= value <= maximum \
                or round(value, places) != value:
            raise ConfigError(f"{allowed}, got {shown(raw)}")
        return value

    return parse


def _boolean(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE_WORDS + _FALSE_WORDS:
        return raw.strip().lower() in _TRUE_WORDS
    raise ConfigError(f"{key} must be true or false, got {shown(raw)}")


def _choice(allowed: tuple[str, ...]):
    def parse(key: str, raw: Any) -> str:
        if raw not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(allowed)}; got {shown(raw)}")
        return raw

    return parse


def _pattern(regex: re.Pattern[str], allowed: str):
    def parse(key: str, raw: Any) -> str:
        if not isinstance(raw, str) or not regex.fullmatch(raw):
            raise ConfigError(f"{key} must be {allowed}; got {shown(raw)}")
        return raw

    return parse


def _component_prefix(key: str, raw: Any) -> str:
    value = _pattern(_COMPONENT_PREFIX, "a dotted name such as com.example.weather")(key, raw)
    if value == "aws" or value.startswith("aws."):
        raise ConfigError(f"{key} must not start with 'aws.' (reserved for AWS components); got {shown(raw)}")
    return value


def _name_list(key: str, raw: Any, *, required: bool) -> list[Any]:
    """A list from cdk.json, or from `-c key=a,b` / `-c key='["a","b"]'`, which arrive as strings."""
    if isinstance(raw, str):
        text = raw.strip()
        try:
            raw = json_value(text) if text.startswith("[") else [part.strip() for part in text.split(",") if text]
        except InvalidJson as error:
            raise ConfigError(f"{key} is not a JSON list ({error}): write -c '{key}=[\"pi-1\",\"pi-2\"]' "
                              f"or -c {key}=pi-1,pi-2") from None
    if not isinstance(raw, (list, tuple)) or (required and not raw):
        kind = "a non-empty list" if required else "a list"
        raise ConfigError(f"{key} must be {kind} of thing names; got {shown(raw)}")
    for name in raw:
        if not isinstance(name, str) or not THING_NAME.fullmatch(name):
            raise ConfigError(
                f"{key} entries must be {'thing names' if required else 'names'} of 1-{MAX_THING_NAME} characters "
                f"from a-z A-Z 0-9 _ -; got {shown(name)}"
            )
    if len(set(raw)) != len(raw):
        raise ConfigError(f"{key} must not repeat a name: {next(name for name in raw if raw.count(name) > 1)!r} comes twice")
    return list(raw)


def _canary_devices(key: str, raw: Any) -> tuple[str, ...]:
    return tuple(_name_list(key, raw, required=False))


def _canary_serials(key: str, raw: Any) -> tuple[str, ...]:
    serials = _name_list(key, raw, required=False)
    size = len(",".join(serials).encode())
    if size > MAX_CANARY_SERIALS_BYTES:
        raise ConfigError(f"{key} takes {size} bytes, at most {MAX_CANARY_SERIALS_BYTES} are allowed (the hook reads "
                          "them from its environment, 4 KB in all): a canary ring of a few devices is enough")
    return tuple(serials)


def _devices(key: str, raw: Any) -> tuple[str, ...]:
    raw = _name_list(key, raw, required=True)
    folders: dict[str, str] = {}
    for name in raw:
        if name.lower() in _NO_VALUE_WORDS:
            raise ConfigError(f"{key} entry {name!r} is a word for no value, not a thing name: list thing names "
                              "(-c devices=pi-1,pi-2), or leave devices out for the default")
        # A device's key folder is its name: two names in different letter case are one folder on macOS.
        if name.lower() in folders:
            raise ConfigError(f"{key} must not repeat a thing name, in any letter case: {folders[name.lower()]!r} "
                              f"and {name!r} would share a key folder on a case-insensitive file system (macOS, Windows)")
        folders[name.lower()] = name
    return tuple(raw)


def _email(key: str, raw: Any) -> str:
    if raw == "":
        return raw
    if not isinstance(raw, str) or len(raw) > MAX_EMAIL or not _EMAIL.fullmatch(raw):
        raise ConfigError(f"{key} must be one plain e-mail address such as ops@example.com (or empty); got {raw!r}")
    return raw


def _path(absolute: bool, example: str, suffix: str = ""):
    kind = "an absolute path" if absolute else "a path relative to the project root"
    allowed = (f"{kind} such as {example}, of names from A-Z a-z 0-9 . _ - that are not '.' or '..' and "
               "do not start with '-'" + (f", ending in {suffix}" if suffix else ""))

    def parse(key: str, raw: Any) -> str:
        text = raw if isinstance(raw, str) else ""
        parts = text.split("/")
        if text.startswith("/"):
            parts = parts[1:]
        valid = (text.startswith("/") == absolute and text.endswith(suffix) and parts[-1] != suffix
                 and all(_PATH_PART.fullmatch(part) and part not in (".", "..") for part in parts))
        if not valid:
            raise ConfigError(f"{key} must be {allowed}; got {shown(raw)}")
        return text

    return parse


def _serial_number_pattern(key: str, raw: Any) -> str:
    problem = serial_pattern_problem(raw)
    if problem is not None:
        raise ConfigError(f"{key} {shown(raw)} {problem}; allowed: {SERIAL_PATTERN_RULE}")
    return raw


def _greengrass_root(key: str, raw: Any) -> str:
    value = _path(absolute=True, example="/greengrass/v2")(key, raw)
    root = PurePosixPath(value)
    own = root.parts[:2] == ("/", "greengrass") or any(
        folder.match(parent) for folder in root.parents for parent in GREENGRASS_ROOT_PARENTS)
    if not own:
        raise ConfigError(f"{key} must be a folder of Greengrass's own, /greengrass/v2 (the default) or another one "
                          f"in /greengrass, or one below {', '.join(GREENGRASS_ROOT_PARENTS)}: never a system folder "
                          f"such as /tmp, /etc, /root or /usr/local, which install.sh would take over as root; "
                          f"got {shown(raw)}")
    return value


def _station_altitudes(key: str, raw: Any) -> Mapping[str, float]:
    low, high = ALTITUDE_RANGE_M
    example = '-c \'stationAltitudes={"rainedge-core-1": 512}\''
    if isinstance(raw, str):  # from -c
        try:
            raw = json_value(raw)
        except InvalidJson as error:
            raise ConfigError(f"{key} is not a JSON object of thing names ({error}); write {example}") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key} must map thing names to metres above sea level, e.g. {example}; got {shown(raw)}")
    altitudes = {}
    for name, metres in raw.items():
        if not isinstance(name, str) or not THING_NAME.fullmatch(name):
            raise ConfigError(f"{key} keys must be thing names of 1-{MAX_THING_NAME} characters from a-z A-Z 0-9 _ -; "
                              f"got {shown(name)}")
        value = finite_number(metres)
        if value is None or not low <= value <= high:
            raise ConfigError(f"{key} of {name} must be metres above sea level from {low:g} to {high:g} "
                              f"(device_code.sea_level.ALTITUDE_RANGE_M); got {shown(metres)}")
        # Centimetres are plenty, and install.sh writes at most 2 decimals (+ 0.0 turns -0.0 into 0.0).
        altitudes[name] = round(value, 2) + 0.0
    return MappingProxyType(altitudes)


def _i2c_address(key: str, raw: Any) -> int:
    value = _integer(0, 0x7F)(key, raw)
    if value not in BME680_I2C_ADDRESSES:
        raise ConfigError(f"{key} must be 0x76 or 0x77 (the BME680's addresses); got {shown(raw)}")
    return value


_PARSERS = {
    # Ranges of the GreengrassV2 API reference: IoTJobExponentialRolloutRate (baseRatePerMinute 1-1000;
    # incrementFactor 1-5, where IoT Jobs' ExponentialRolloutRate says at least 1.1 with one decimal),
    # IoTJobRateIncreaseCriteria (numberOfSucceededThings >= 1), IoTJobExecutionsRolloutConfig
    # (maximumPerMinute 1-1000), IoTJobAbortCriteria (thresholdPercentage up to 100, two decimals;
    # minNumberOfExecutedThings >= 1), IoTJobTimeoutConfig (inProgressTimeoutInMinutes 1 to 10080, 7 days).
    "rollout_base_rate_per_minute": _integer(1, 1000),
    "rollout_increment_factor": _decimal(1.1, 5.0, 1),
    "rollout_increase_after_succeeded": _integer(1, 1_000_000),
    "rollout_maximum_per_minute": _integer(1, 1000),
    "abort_threshold_percentage": _decimal(0.01, 100.0, 2),
    "abort_min_executed_things": _integer(1, 1_000_000),
    "deployment_timeout_minutes": _integer(1, 10_080),
    "name_prefix": _pattern(_NAME_PREFIX, "1-30 characters of a-z 0-9 -, starting with a letter"),
    "devices": _devices,
    "canary_devices": _canary_devices,
    "canary_serials": _canary_serials,
    # A bake of up to a week; the margins are shares.
    "bake_minutes": _integer(0, 10_080),
    "promotion_margin": _decimal(0.0, 1.0, 2),
    "rain_share_margin": _decimal(0.0, 1.0, 2),
    "component_prefix": _component_prefix,
    "sample_interval_seconds": _integer(1, 86_400),
    "inference_interval_seconds": _integer(1, 86_400),
    "max_input_age_seconds": _integer(1, 7 * 86_400),
    "cpu_temp_compensation": _boolean,
    "shadow_sync_direction": _choice(SYNC_DIRECTIONS),
    "shadow_sync_strategy": _choice(SYNC_STRATEGIES),
    "shadow_sync_delay_seconds": _integer(1, 86_400),
    "silence_alarm_intervals": _integer(2, 1_000),
    "alarm_email": _email,
    "lambda_runtime": _choice(LAMBDA_RUNTIMES),
    "secrets_dir": _path(absolute=False, example=".secrets"),
    "model_zip": _path(absolute=False, example="build/model/rain_model.zip", suffix=".zip"),
    "i2c_bus": _integer(0, 255),
    "i2c_address": _i2c_address,
    "log_level": _choice(LOG_LEVELS),
    "greengrass_root": _greengrass_root,
    "fleet_provisioning": _boolean,
    "serial_number_pattern": _serial_number_pattern,
    "station_altitudes": _station_altitudes,
    # S3 lifecycle Expiration Days must be a positive whole number ("Lifecycle configuration elements"); ten
    # years is the app's bound, beyond which a dataset export scans more than any station needs.
    "lake_retention_days": _integer(1, 3650),
}
