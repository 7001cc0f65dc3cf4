from pathlib import Path

import pytest

from device_code.config import (ConfigError, load_inference_config, load_sensor_config,
                                load_shadow_writer_config)
from device_code.functions import FUNCTIONS, INFERENCE, SENSOR, SHADOW_WRITER
from device_code.simulator.core import standalone_environment

BASE = standalone_environment("rainedge-core-1", "/models/rain")
LOADERS = {SENSOR: load_sensor_config, SHADOW_WRITER: load_shadow_writer_config, INFERENCE: load_inference_config}


def test_values_are_parsed():
    sensor = load_sensor_config({**BASE, "SAMPLE_INTERVAL_S": "2.5", "I2C_BUS": "3", "I2C_ADDRESS": "0x77",
                                 "LOG_LEVEL": "debug"})
    assert (sensor.sample_interval_s, sensor.i2c_bus, sensor.i2c_address, sensor.log_level) == (2.5, 3, 0x77, "DEBUG")
    writer = load_shadow_writer_config({**BASE, "CPU_TEMP_COMPENSATION": "on", "CPU_TEMP_PATH": "/sys/x/temp",
                                        "STATION_FILE": "/gg/rainedge/station.json"})
    assert (writer.cpu_temp_compensation, writer.cpu_temp_path, writer.station_file) == (
        True, Path("/sys/x/temp"), Path("/gg/rainedge/station.json"))
    inference = load_inference_config({**BASE, "INFERENCE_INTERVAL_S": "5", "MAX_INPUT_AGE_S": "600",
                                       "HISTORY_FILE": "/gg/work/Inference/reading_history.json"})
    assert (inference.model_dir, inference.history_file, inference.inference_interval_s,
            inference.max_input_age_s) == (Path("/models/rain"), Path("/gg/work/Inference/reading_history.json"),
                                           5.0, 600.0)


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda function: function.name)
def test_every_variable_the_stack_sets_is_required_on_the_device(function):
    assert set(function.environment) <= set(BASE)
    LOADERS[function](BASE)
    for name in function.environment:
        environment = {key: value for key, value in BASE.items() if key != name}
        with pytest.raises(ConfigError, match=f"^{name} is required .*redeploy"):
            LOADERS[function](environment)


@pytest.mark.parametrize("loader, env, names", [
    (load_sensor_config, {**BASE, "AWS_IOT_THING_NAME": ""}, ["AWS_IOT_THING_NAME", "A-Z"]),
    (load_sensor_config, {**BASE, "AWS_IOT_THING_NAME": "a/+/b"}, ["AWS_IOT_THING_NAME", "'a/+/b'"]),
    (load_sensor_config, {**BASE, "SAMPLE_INTERVAL_S": "0"}, ["SAMPLE_INTERVAL_S", "greater than 0"]),
    (load_sensor_config, {**BASE, "SAMPLE_INTERVAL_S": "nan"}, ["SAMPLE_INTERVAL_S", "'nan'"]),
    (load_sensor_config, {**BASE, "SAMPLE_INTERVAL_S": "soon"}, ["SAMPLE_INTERVAL_S", "'soon'"]),
    (load_sensor_config, {**BASE, "I2C_ADDRESS": "0x40"}, ["I2C_ADDRESS", "0x76 or 0x77"]),
    (load_sensor_config, {**BASE, "I2C_ADDRESS": "primary"}, ["I2C_ADDRESS", "0x76 or 0x77"]),
    (load_sensor_config, {**BASE, "I2C_BUS": "-1"}, ["I2C_BUS", "bus number"]),
    (load_sensor_config, {**BASE, "LOG_LEVEL": "LOUD"}, ["LOG_LEVEL", "DEBUG, INFO, WARNING, ERROR"]),
    (load_shadow_writer_config, {**BASE, "CPU_TEMP_COMPENSATION": "yes"}, ["CPU_TEMP_COMPENSATION", "off, on"]),
    (load_inference_config, {**BASE, "MAX_INPUT_AGE_S": "-5"}, ["MAX_INPUT_AGE_S"]),
    (load_inference_config, {**BASE, "INFERENCE_INTERVAL_S": "inf"}, ["INFERENCE_INTERVAL_S"]),
    (load_shadow_writer_config, {**BASE, "STATION_FILE": "station.json"}, ["STATION_FILE", "an absolute path"]),
    (load_inference_config, {**BASE, "HISTORY_FILE": "work/history.json"}, ["HISTORY_FILE", "an absolute path"]),
])
def test_bad_values_are_refused_naming_key_and_allowed_values(loader, env, names):
    with pytest.raises(ConfigError) as error:
        loader(env)
    for name in names:
        assert name in str(error.value)
