"""Configuration of the edge functions, read from environment variables and validated at start.

The variable names are declared here once: the Lambda components set them (infra/components.py
takes the names from device_code/functions.py, which takes them from here) and Greengrass itself
sets AWS_IOT_THING_NAME. A variable the stack always sets is required: a missing one is a clear
start-up error, never a silent default that could differ from cdk.json. Every error names the
variable, the value it got and what is allowed.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

# Set by the nucleus in every component's environment, Lambda components included.
THING_NAME = "AWS_IOT_THING_NAME"
# Set by the stack (see device_code/functions.py for which function gets which).
LOG_LEVEL = "LOG_LEVEL"
SAMPLE_INTERVAL_S = "SAMPLE_INTERVAL_S"
I2C_BUS = "I2C_BUS"
I2C_ADDRESS = "I2C_ADDRESS"
CPU_TEMP_COMPENSATION = "CPU_TEMP_COMPENSATION"
CPU_TEMP_PATH = "CPU_TEMP_PATH"
MODEL_DIR = "MODEL_DIR"
INFERENCE_INTERVAL_S = "INFERENCE_INTERVAL_S"
MAX_INPUT_AGE_S = "MAX_INPUT_AGE_S"

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
I2C_ADDRESSES = (0x76, 0x77)
COMPENSATION_MODES = ("off", "on")
# Upper bound of an interval a loop waits for: more than the stack ever sets, far less than a wait
# that overflows the platform's timer (threading.Event.wait(1e308) raises OverflowError).
MAX_INTERVAL_S = 7 * 86_400
# AWS IoT thing names: 1-128 of these characters (MQTT wildcards are not among them).
_THING_NAME = re.compile(r"^[A-Za-z0-9:_-]{1,128}$")


class ConfigError(ValueError):
    """A configuration variable is missing or has a value outside what is allowed."""


@dataclass(frozen=True)
class SensorConfig:
    thing_name: str
    log_level: str
    sample_interval_s: float
    i2c_bus: int
    i2c_address: int


@dataclass(frozen=True)
class ShadowWriterConfig:
    thing_name: str
    log_level: str
    cpu_temp_compensation: bool
    cpu_temp_path: Path


@dataclass(frozen=True)
class InferenceConfig:
    thing_name: str
    log_level: str
    model_dir: Path
    inference_interval_s: float
    max_input_age_s: float


def _required(env: Mapping[str, str], key: str, meaning: str) -> str:
    value = env.get(key)
    if value is None or value == "":
        raise ConfigError(f"{key} is required ({meaning}); the Greengrass component sets it: redeploy the stack")
    return value


def _thing_name(env: Mapping[str, str]) -> str:
    value = env.get(THING_NAME, "")
    if not _THING_NAME.match(value):
        raise ConfigError(
            f"{THING_NAME}={value!r} is not a valid thing name: "
            "allowed are 1-128 characters from A-Z a-z 0-9 : _ - (Greengrass sets it for you)"
        )
    return value


def _log_level(env: Mapping[str, str]) -> str:
    raw = _required(env, LOG_LEVEL, f"one of {', '.join(LOG_LEVELS)}")
    if raw.upper() not in LOG_LEVELS:
        raise ConfigError(f"{LOG_LEVEL}={raw!r} is not allowed: use one of {', '.join(LOG_LEVELS)}")
    return raw.upper()


def _positive_seconds(env: Mapping[str, str], key: str, maximum: float = math.inf) -> float:
    allowed = "a number of seconds greater than 0" + (f" and at most {maximum:.0f}" if maximum < math.inf else "")
    raw = _required(env, key, allowed)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf or value > maximum:
        raise ConfigError(f"{key}={raw!r} is not allowed: use {allowed}")
    return value


def _choice(env: Mapping[str, str], key: str, allowed: tuple[str, ...]) -> str:
    value = _required(env, key, f"one of {', '.join(allowed)}")
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed: use one of {', '.join(allowed)}")
    return value


def load_sensor_config(env: Mapping[str, str]) -> SensorConfig:
    raw_bus = _required(env, I2C_BUS, "the I2C bus number, e.g. 1 for /dev/i2c-1")
    if not re.fullmatch(r"[0-9]{1,3}", raw_bus):
        raise ConfigError(f"{I2C_BUS}={raw_bus!r} is not allowed: use the bus number, e.g. 1 for /dev/i2c-1")
    raw_address = _required(env, I2C_ADDRESS, "0x76 or 0x77")
    try:
        address = int(raw_address, 0)
    except ValueError:
        address = -1
    if address not in I2C_ADDRESSES:
        raise ConfigError(f"{I2C_ADDRESS}={raw_address!r} is not allowed: use 0x76 or 0x77 (the BME680's two addresses)")
    return SensorConfig(
        thing_name=_thing_name(env),
        log_level=_log_level(env),
        sample_interval_s=_positive_seconds(env, SAMPLE_INTERVAL_S, MAX_INTERVAL_S),
        i2c_bus=int(raw_bus),
        i2c_address=address,
    )


def load_shadow_writer_config(env: Mapping[str, str]) -> ShadowWriterConfig:
    return ShadowWriterConfig(
        thing_name=_thing_name(env),
        log_level=_log_level(env),
        cpu_temp_compensation=_choice(env, CPU_TEMP_COMPENSATION, COMPENSATION_MODES) == "on",
        cpu_temp_path=Path(_required(env, CPU_TEMP_PATH, "the thermal zone file, e.g. "
                                                         "/sys/class/thermal/thermal_zone0/temp")),
    )


def load_inference_config(env: Mapping[str, str]) -> InferenceConfig:
    raw_dir = _required(env, MODEL_DIR, "the folder holding model.tflite, saved_model/ and metadata.json "
                                        "(the unpacked model artifact)")
    return InferenceConfig(
        thing_name=_thing_name(env),
        log_level=_log_level(env),
        model_dir=Path(raw_dir),
        inference_interval_s=_positive_seconds(env, INFERENCE_INTERVAL_S, MAX_INTERVAL_S),
        max_input_age_s=_positive_seconds(env, MAX_INPUT_AGE_S),
    )
