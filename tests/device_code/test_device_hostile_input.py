"""Long-lived loops cannot be wedged, and no valid state is lost (issue 9, section 3).

Hostile or absurd input reaching the edge functions: a shadow edited in the cloud, a clock that
jumped, numbers and dates no float or datetime holds, a driver failing in an unexpected way. Each
function must go on, and each shadow must hold either its previous valid state or a new valid one.
"""
from __future__ import annotations

import json
import logging
import math
import os
from datetime import timedelta, timezone

import pytest
from device_test_support import (METADATA, NOW, THING, FlakyGreengrass, ManualClock, humid_means_rain, make_service,
                                 make_writer, reading, returns_promptly)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_code import config as env
from device_code import inference
from device_code.bme680_sensor import Bme680Sensor, SensorUnavailable
from device_code.contracts import (RAIN_SHADOW, SEA_LEVEL_PRESSURE, SENSOR_RANGES, WEATHER_SHADOW, InvalidReading,
                                   format_timestamp, parse_model_reading)
from device_code.config import (MAX_INTERVAL_S, ConfigError, load_inference_config, load_sensor_config,
                                load_shadow_writer_config)
from device_code.functions import FUNCTIONS
from device_code.inference import InferenceService
from device_code.model import RainModel, load_model
from device_code.port import ShadowUpdateRejected
from device_code.shadow_writer import CpuThermometer
from device_code.simulator.core import standalone_environment

STATUSES = (inference.STALE_INPUT, inference.INVALID_INPUT, inference.NO_INPUT, inference.MODEL_UNAVAILABLE,
            inference.PREDICTION_FAILED)
# What no float or datetime holds, and where Python's parsers give up.
HUGE = 10**400
BEFORE_YEAR_ONE = "0001-01-01T00:30:00+01:00"
AFTER_YEAR_9999 = "9999-12-31T23:30:00-01:00"
# AWS IoT Device Shadow document size limit (8 KiB), which the local shadow service enforces too.
SHADOW_LIMIT = 8 * 1024


def weather(greengrass):
    return greengrass.get_shadow(THING, WEATHER_SHADOW)["state"]["reported"]


def rain(greengrass):
    return greengrass.get_shadow(THING, RAIN_SHADOW)["state"]["reported"]


def in_an_hour() -> str:
    return format_timestamp(NOW + timedelta(hours=1))


# ---- a stored time in the future is no reference for "newer" --------------------------------------
def test_a_weather_shadow_from_the_future_does_not_block_every_later_reading(greengrass, clock):
    # A cloud-side edit synced down (default sync direction), or readings taken while the clock ran ahead.
    greengrass.update_shadow(THING, WEATHER_SHADOW, {"state": {"reported": reading(sampled_at="2031-01-01T00:00:00Z")}})
    writer = make_writer(greengrass, clock)
    assert writer.handle(reading()) == {"accepted": True}
    clock.advance(60)
    assert writer.handle(reading(sampled_at=format_timestamp(clock.now()))) == {"accepted": True}
    assert weather(greengrass)["sampled_at"] == format_timestamp(clock.now())


def test_a_clock_that_jumped_back_does_not_silence_inference(greengrass):
    ahead = ManualClock(NOW + timedelta(hours=2))
    service = make_service(greengrass, ahead)
    service.heartbeat()  # loads the model
    service.evaluate({"state": {"reported": reading(sampled_at=format_timestamp(ahead.now()), humidity=20.0)}})
    assert rain(greengrass)["probability"] == 0.2
    ahead.current = NOW  # NTP corrects the clock: two hours back
    service.evaluate({"state": {"reported": reading(humidity=70.0)}})
    assert (rain(greengrass)["probability"], rain(greengrass)["input_sampled_at"]) == (0.7, "2013-11-05T11:59:00.000Z")


def test_a_reading_in_the_future_is_still_refused(greengrass, clock):
    result = make_writer(greengrass, clock).handle(reading(sampled_at=in_an_hour()))
    assert result["accepted"] is False and "is in the future" in result["reason"]


# ---- values no float or datetime holds are invalid input, not exceptions ---------------------------
@pytest.mark.parametrize("overrides, reason", [
    ({"temperature": HUGE}, "is not a finite number"),
    ({"pressure": -HUGE}, "is not a finite number"),
    ({"sampled_at": BEFORE_YEAR_ONE}, "outside the years 1-9999"),
    ({"sampled_at": AFTER_YEAR_9999}, "outside the years 1-9999"),
])
def test_numbers_and_dates_out_of_any_range_give_the_rain_shadow_invalid_input(greengrass, clock, overrides, reason):
    greengrass.update_shadow(THING, WEATHER_SHADOW, {"state": {"reported": reading()}})
    service = make_service(greengrass, clock)
    service.heartbeat()
    greengrass.bus.drain()
    assert "probability" in rain(greengrass)
    greengrass.update_shadow(THING, WEATHER_SHADOW, {"state": {"reported": reading(**overrides)}})
    service.heartbeat()
    greengrass.bus.drain()  # the update/documents event reaches the subscription too
    reported = rain(greengrass)
    assert reported["status"] == "invalid_input" and reason in reported["detail"]
    assert "probability" not in reported  # the old prediction does not stay
    assert len(reported["detail"]) < 200


@pytest.mark.parametrize("event, reason", [
    (b"[" * 100_000, "nested too deeply"),
    ("[" * 100_000, "nested too deeply"),
    (json.dumps(reading(temperature=HUGE)).encode(), "is not a finite number"),
    (reading(humidity=-HUGE), "is not a finite number"),
    (reading(sampled_at=BEFORE_YEAR_ONE), "outside the years 1-9999"),
    (reading(sampled_at=AFTER_YEAR_9999), "outside the years 1-9999"),
    (reading(sampled_at="9999-12-31T23:59:59+00:00"), "is in the future"),
])
def test_the_shadow_writer_rejects_what_python_cannot_hold_instead_of_raising(greengrass, clock, caplog,
                                                                                event, reason):
    writer = make_writer(greengrass, clock)
    writer.handle(reading())
    before = greengrass.get_shadow(THING, WEATHER_SHADOW)
    with caplog.at_level(logging.WARNING):
        result = writer.handle(event)
    assert result["accepted"] is False and reason in result["reason"]
    assert greengrass.get_shadow(THING, WEATHER_SHADOW) == before
    assert max(len(record.getMessage()) for record in caplog.records) < 400  # the log line stays short


def test_an_absurd_cpu_temperature_leaves_the_reading_uncompensated(greengrass, clock, tmp_path):
    zone = tmp_path / "temp"
    zone.write_text(str(HUGE))
    writer = make_writer(greengrass, clock, compensation="on", cpu=CpuThermometer(zone).mean_celsius)
    assert writer.handle(reading()) == {"accepted": True}
    assert weather(greengrass)["temperature_compensation"] == "unavailable"


# ---- the files the functions read cannot stop them ------------------------------------------------------
def metadata_holding(trained_model_dir, change):
    """The trained artifact's metadata.json, changed by `change` (a function of the parsed document)."""
    document = json.loads((trained_model_dir / "rain_model" / "metadata.json").read_text())
    change(document)
    return json.dumps(document)


def huge_upper_bound(document):
    document["valid_ranges"]["temperature"][1] = HUGE


def deeply_nested_version(document):
    document["version"] = json.loads("[" * 500 + "]" * 500)


@pytest.mark.parametrize("write, reason", [
    (lambda path, artifact: path.write_text("[" * 100_000), "nested deeper"),
    (lambda path, artifact: path.write_text(metadata_holding(artifact, huge_upper_bound)), "valid_ranges"),
    (lambda path, artifact: path.write_text(metadata_holding(artifact, deeply_nested_version)), "version"),
    (lambda path, artifact: path.write_bytes(b"\xff" * 10), "not UTF-8"),
    (lambda path, artifact: os.mkfifo(path), "not a regular file"),
], ids=["nested", "400-digit range", "nested version", "not UTF-8", "a FIFO"])
def test_a_metadata_file_no_parser_can_hold_says_model_unavailable_not_silence(greengrass, clock, tmp_path,
                                                                             trained_model_dir, write, reason):
    metadata = tmp_path / "metadata.json"
    write(metadata, trained_model_dir)
    greengrass.update_shadow(THING, WEATHER_SHADOW, {"state": {"reported": reading()}})
    service = make_service(greengrass, clock, load=load_model, model_dir=str(tmp_path))
    returns_promptly(service.heartbeat)
    reported = rain(greengrass)
    assert reported["status"] == inference.MODEL_UNAVAILABLE and reason in reported["detail"]
    assert str(metadata) in reported["detail"] and len(reported["detail"]) < 400


@pytest.mark.parametrize("write", [
    lambda path: path.write_text("[" * 100_000),
    lambda path: path.write_text(json.dumps({"format": "rainedge-reading-history/1",
                                             "readings": [[HUGE, 10.0, 80.0, 1010.0]]})),
    os.mkfifo,
], ids=["nested", "400-digit time", "a FIFO"])
def test_a_history_file_no_parser_can_hold_does_not_stop_the_inference_service(greengrass, clock, tmp_path, write):
    history_file = tmp_path / "reading_history.json"
    write(history_file)
    config = load_inference_config(standalone_environment(THING, HISTORY_FILE=str(history_file)))
    service = returns_promptly(lambda: InferenceService(config, greengrass, clock,
                                                        lambda path: RainModel(METADATA, "fake", humid_means_rain)))
    greengrass.update_shadow(THING, WEATHER_SHADOW, {"state": {"reported": reading()}})
    service.heartbeat()
    assert rain(greengrass)["probability"] == 0.93
    assert len(json.loads(history_file.read_text())["readings"]) == 1  # and it keeps its history again


def test_a_fifo_as_the_thermal_zone_never_blocks_the_shadow_writer(greengrass, clock, tmp_path):
    zone = tmp_path / "temp"
    os.mkfifo(zone)
    writer = make_writer(greengrass, clock, compensation="on", cpu=CpuThermometer(zone).mean_celsius)
    assert returns_promptly(lambda: writer.handle(reading())) == {"accepted": True}
    assert weather(greengrass)["temperature_compensation"] == "unavailable"


# ---- a failing driver always releases the bus ---------------------------------------------------------
class CountingBus:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


@pytest.mark.parametrize("failure", [ValueError("bad calibration"), IndexError("list index out of range"),
                                     TypeError("unsupported operand"), ZeroDivisionError("division by zero")])
def test_a_driver_failing_with_any_exception_closes_the_bus_and_is_retried(monkeypatch, failure):
    opened: list[CountingBus] = []

    def open_bus() -> CountingBus:
        opened.append(CountingBus())
        return opened[-1]

    def broken_driver(**kwargs):
        raise failure

    monkeypatch.setattr("device_code.bme680_sensor.bme680.BME680", broken_driver)
    sensor = Bme680Sensor(open_bus, 0x76)
    for _ in range(3):
        with pytest.raises(SensorUnavailable, match=f"0x76: {type(failure).__name__}"):
            sensor.read()
    assert [bus.closed for bus in opened] == [1, 1, 1]  # no handle (file descriptor) is left open


# ---- properties: for any JSON value the functions go on, and the shadows stay valid ------------------
# Any JSON value (no NaN or Infinity: a shadow document is strict JSON).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)
offsets = st.builds(timezone, st.timedeltas(min_value=-timedelta(hours=23, minutes=59),
                                            max_value=timedelta(hours=23, minutes=59)))
timestamps = st.datetimes(timezones=offsets).map(lambda moment: moment.isoformat())
# A valid reading with one field replaced by anything: the hardest inputs are nearly valid.
field_values = (st.sampled_from([HUGE, -HUGE, 1e308, BEFORE_YEAR_ONE, AFTER_YEAR_9999]) | timestamps | json_values
                | st.floats(-50, 1200))
nearly_valid = st.builds(lambda name, value: reading(**{name: value}),
                         st.sampled_from([*SENSOR_RANGES, SEA_LEVEL_PRESSURE, "sampled_at"]), field_values)
weather_states = nearly_valid | json_values
events = weather_states | nearly_valid.map(lambda value: json.dumps(value).encode()) | st.binary(max_size=40)
PROPERTY = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])


def valid(parse, state, now) -> bool:
    try:
        parse(state, now)
    except InvalidReading:
        return False
    return True


@PROPERTY
@given(event=events)
def test_any_event_leaves_the_weather_shadow_valid_or_unchanged(event):
    greengrass, clock = FlakyGreengrass(), ManualClock()
    writer = make_writer(greengrass, clock)
    writer.handle(reading(sampled_at="2013-11-05T11:00:00Z"))
    before = greengrass.get_shadow(THING, WEATHER_SHADOW)
    result = writer.handle(event)
    after = greengrass.get_shadow(THING, WEATHER_SHADOW)
    if result["accepted"]:
        assert valid(parse_model_reading, after["state"]["reported"], clock.now())  # what inference takes
        assert after["state"]["reported"]["sampled_at"] > before["state"]["reported"]["sampled_at"]
    else:
        assert after == before and isinstance(result["reason"], str)


@PROPERTY
@given(state=weather_states)
def test_any_weather_state_gives_the_rain_shadow_a_prediction_or_a_status(state):
    greengrass, clock = FlakyGreengrass(), ManualClock()
    greengrass.update_shadow(THING, WEATHER_SHADOW, {"state": {"reported": reading()}})
    greengrass.bus.drain()  # its update/documents message must not reach the subscription made below, later
    service = make_service(greengrass, clock)
    service.heartbeat()
    service.evaluate({"state": {"reported": state}})
    document = greengrass.get_shadow(THING, RAIN_SHADOW)
    reported = document["state"]["reported"]
    assert len(json.dumps(document)) < SHADOW_LIMIT
    # What the models take: a valid reading with its sea-level pressure.
    if valid(parse_model_reading, state, clock.now()):  # a new prediction, the previous one (older input) or stale
        assert "probability" in reported or reported["status"] == inference.STALE_INPUT
    else:
        assert reported["status"] == inference.INVALID_INPUT and isinstance(reported["detail"], str)
        assert set(reported).isdisjoint({"raining", "probability"})


@PROPERTY
@given(state=weather_states)
def test_a_garbage_weather_shadow_never_ends_the_inference_heartbeat(state):
    greengrass, clock = FlakyGreengrass(), ManualClock()
    try:
        greengrass.update_shadow(THING, WEATHER_SHADOW, {"state": {"reported": state}})
    except ShadowUpdateRejected:  # the shadow service refuses a state that is not an object
        pass
    make_service(greengrass, clock).heartbeat()
    reported = rain(greengrass)
    assert reported.get("status") in STATUSES or "probability" in reported


# ---- configuration: any environment gives a config or one ConfigError -----------------------------------
VARIABLES = sorted({name for function in FUNCTIONS for name in function.environment} | {env.THING_NAME})
LOADERS = (load_sensor_config, load_shadow_writer_config, load_inference_config)
values = st.text(alphabet="0123456789.xe+-²٣ ", max_size=8) | st.text(max_size=12) | st.sampled_from(
    ["1e308", "inf", "nan", "9" * 5000, "0x76", "²"])


@PROPERTY
@given(overrides=st.dictionaries(st.sampled_from(VARIABLES), values))
def test_any_environment_gives_a_usable_config_or_a_config_error(overrides):
    environment = {**standalone_environment(THING), **overrides}
    for load in LOADERS:
        try:
            config = load(environment)
        except ConfigError as error:
            assert "\n" not in str(error)
            continue
        # Every interval is one a loop can wait for (a timer overflow would end its thread).
        for interval in ("sample_interval_s", "inference_interval_s"):
            assert 0 < getattr(config, interval, 1) <= MAX_INTERVAL_S
        assert 0 < getattr(config, "max_input_age_s", 1) < math.inf
