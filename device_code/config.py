"""Configuration of the edge functions, read from environment variables and validated at start.

The Lambda component parameters set these variables (Greengrass itself sets AWS_IOT_THING_NAME).
Every error names the variable, the value it got and what is allowed.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
I2C_ADDRESSES = (0x76, 0x77)
COMPENSATION_MODES = ("off", "on")
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


def _thing_name(env: Mapping[str, str]) -> str:
    value = env.get("AWS_IOT_THING_NAME", "")
    if not _THING_NAME.match(value):
        raise ConfigError(
            f"AWS_IOT_THING_NAME={value!r} is not a valid thing name: "
            "allowed are 1-128 characters from A-Z a-z 0-9 : _ - (Greengrass sets it for you)"
        )
    return value


def _log_level(env: Mapping[str, str]) -> str:
    value = env.get("LOG_LEVEL", "INFO").upper()
    if value not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL={env['LOG_LEVEL']!r} is not allowed: use one of {', '.join(LOG_LEVELS)}")
    return value


def _positive_seconds(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{key}={raw!r} is not allowed: use a number of seconds greater than 0")
    return value


def _choice(env: Mapping[str, str], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = env.get(key, default)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed: use one of {', '.join(allowed)}")
    return value


def load_sensor_config(env: Mapping[str, str]) -> SensorConfig:
    raw_bus = env.get("I2C_BUS", "1")
    if not raw_bus.isdigit():
        raise ConfigError(f"I2C_BUS={raw_bus!r} is not allowed: use the bus number, e.g. 1 for /dev/i2c-1")
    raw_address = env.get("I2C_ADDRESS", "0x76")
    try:
        address = int(raw_address, 0)
    except ValueError:
        address = -1
    if address not in I2C_ADDRESSES:
        raise ConfigError(f"I2C_ADDRESS={raw_address!r} is not allowed: use 0x76 or 0x77 (the BME680's two addresses)")
    return SensorConfig(
        thing_name=_thing_name(env),
        log_level=_log_level(env),
        sample_interval_s=_positive_seconds(env, "SAMPLE_INTERVAL_S", 60.0),
        i2c_bus=int(raw_bus),
        i2c_address=address,
    )


def load_shadow_writer_config(env: Mapping[str, str]) -> ShadowWriterConfig:
    return ShadowWriterConfig(
        thing_name=_thing_name(env),
        log_level=_log_level(env),
        cpu_temp_compensation=_choice(env, "CPU_TEMP_COMPENSATION", COMPENSATION_MODES, "off") == "on",
        cpu_temp_path=Path(env.get("CPU_TEMP_PATH", "/sys/class/thermal/thermal_zone0/temp")),
    )


def load_inference_config(env: Mapping[str, str]) -> InferenceConfig:
    raw_dir = env.get("MODEL_DIR", "")
    if not raw_dir:
        raise ConfigError(
            "MODEL_DIR is required: the folder holding model.tflite, saved_model/ and metadata.json "
            "(the unpacked model artifact)"
        )
    return InferenceConfig(
        thing_name=_thing_name(env),
        log_level=_log_level(env),
        model_dir=Path(raw_dir),
        inference_interval_s=_positive_seconds(env, "INFERENCE_INTERVAL_S", 10.0),
        max_input_age_s=_positive_seconds(env, "MAX_INPUT_AGE_S", 300.0),
    )
