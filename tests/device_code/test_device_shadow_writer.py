import logging
import math

import pytest
from device_test_support import THING, make_writer, reading

from device_code.contracts import WEATHER_SHADOW
from device_code.port import ShadowNotFound
from device_code.shadow_writer import CpuThermometer


def weather(greengrass):
    return greengrass.get_shadow(THING, WEATHER_SHADOW)


def test_valid_reading_becomes_the_weather_shadow(greengrass, clock):
    assert make_writer(greengrass, clock).handle(reading()) == {"accepted": True}
    document = weather(greengrass)
    assert document["version"] == 1
    assert document["state"]["reported"] == {"temperature": 11.5, "humidity": 93.0, "pressure": 1004.2,
                                             "sampled_at": "2013-11-05T11:59:00.000Z",
                                             "temperature_compensation": "off"}


@pytest.mark.parametrize("event, reason", [
    (reading(temperature=math.nan), "temperature=nan is not a finite number"),
    (b'{"temperature": NaN, "humidity": 50, "pressure": 1000, "sampled_at": "2013-11-05T11:00:00Z"}',
     "temperature=nan"),
    (reading(humidity=104.0), "humidity=104.0 is outside the valid range [0.0, 100.0]"),
    (reading(pressure=1200), "pressure=1200 is outside"),
    (reading(temperature=-41), "temperature=-41 is outside"),
    (reading(temperature="11.5"), "temperature='11.5' is not a finite number"),
    (reading(humidity=True), "humidity=True is not a finite number"),
    ({"humidity": 50.0, "pressure": 1000.0, "sampled_at": "2013-11-05T11:00:00Z"}, "temperature is missing"),
    (reading(sampled_at="yesterday"), "'yesterday' is not an ISO-8601 timestamp"),
    (reading(sampled_at="2013-11-05T11:00:00"), "has no time zone"),
    (reading(sampled_at=1383652800), "must be an ISO-8601 UTC string"),
    (reading(sampled_at="2013-11-05T12:30:00Z"), "is in the future"),
    (b'{"temperature": 11.5, "humid', "Unterminated string"),
    (b"\xff\xfe", "decode"),
    ([11.5, 93.0, 1004.2], "must be a JSON object, got list"),
])
def test_invalid_readings_are_rejected_and_never_overwrite_the_shadow(greengrass, clock, caplog, event, reason):
    writer = make_writer(greengrass, clock)
    writer.handle(reading(sampled_at="2013-11-05T11:00:00Z"))
    before = weather(greengrass)
    with caplog.at_level(logging.WARNING):
        result = writer.handle(event)
    assert result["accepted"] is False and reason in result["reason"]
    assert "rejected reading" in caplog.text
    assert weather(greengrass) == before


def test_no_shadow_is_created_from_garbage(greengrass, clock):
    make_writer(greengrass, clock).handle(reading(pressure=-1))
    with pytest.raises(ShadowNotFound):
        weather(greengrass)


def test_an_older_reading_does_not_replace_a_newer_one(greengrass, clock):
    writer = make_writer(greengrass, clock)
    writer.handle(reading(sampled_at="2013-11-05T11:59:00Z"))
    result = writer.handle(reading(temperature=30.0, sampled_at="2013-11-05T11:58:00Z"))
    assert result["accepted"] is False and "not newer" in result["reason"]
    assert weather(greengrass)["state"]["reported"]["temperature"] == 11.5


def test_a_malformed_shadow_document_is_replaced_by_a_valid_reading(greengrass, clock):
    greengrass.update_shadow(THING, WEATHER_SHADOW, {"state": {"reported": {"sampled_at": "garbage"}}})
    assert make_writer(greengrass, clock).handle(reading())["accepted"] is True
    assert weather(greengrass)["state"]["reported"]["sampled_at"] == "2013-11-05T11:59:00.000Z"


def test_rejected_shadow_update_is_reported_not_raised(greengrass, clock, caplog):
    greengrass.reject_updates = True
    with caplog.at_level(logging.ERROR):
        result = make_writer(greengrass, clock).handle(reading())
    assert result == {"accepted": False,
                      "reason": "shadow update failed: UpdateThingShadow: ServiceError: simulated rejection"}
    assert "weather shadow update failed" in caplog.text


def test_cpu_compensation_is_applied_and_reported(greengrass, clock, tmp_path):
    zone = tmp_path / "temp"
    thermometer = CpuThermometer(zone, window=2)
    writer = make_writer(greengrass, clock, compensation="on", cpu=thermometer.mean_celsius)
    zone.write_text("20000\n")
    writer.handle(reading(temperature=15.0, sampled_at="2013-11-05T11:58:00Z"))
    zone.write_text("24000\n")
    writer.handle(reading(temperature=15.0))
    reported = weather(greengrass)["state"]["reported"]
    # 2 * 15.0 - mean(20.0, 24.0)
    assert reported["temperature"] == 8.0
    assert (reported["raw_temperature"], reported["cpu_temperature"]) == (15.0, 22.0)
    assert reported["temperature_compensation"] == "2*sensor-cpu_mean"


def test_compensation_off_removes_what_compensation_on_left(greengrass, clock):
    make_writer(greengrass, clock, compensation="on").handle(reading(temperature=30.0, sampled_at="2013-11-05T11:58:00Z"))
    assert weather(greengrass)["state"]["reported"]["cpu_temperature"] == 50.0
    make_writer(greengrass, clock).handle(reading())
    reported = weather(greengrass)["state"]["reported"]
    assert "cpu_temperature" not in reported and "raw_temperature" not in reported


def test_unreadable_cpu_temperature_keeps_the_raw_reading(greengrass, clock, tmp_path):
    thermometer = CpuThermometer(tmp_path / "missing")
    make_writer(greengrass, clock, compensation="on", cpu=thermometer.mean_celsius).handle(reading())
    reported = weather(greengrass)["state"]["reported"]
    assert (reported["temperature"], reported["temperature_compensation"]) == (11.5, "unavailable")


def test_compensation_producing_an_impossible_temperature_is_rejected(greengrass, clock):
    result = make_writer(greengrass, clock, compensation="on", cpu=lambda: 140.0).handle(reading(temperature=10.0))
    assert result["accepted"] is False and "compensated temperature -120.0" in result["reason"]
