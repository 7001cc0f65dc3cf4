import logging
import math
import os

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
                                             "temperature_compensation": "off",
                                             # No station file: the documented default of 0 m.
                                             "sea_level_pressure": 1004.2, "altitude_m": 0.0,
                                             "altitude_source": "default",
                                             "altitude_detail": "no station file /nonexistent/station.json"}


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


# ---- the station file: the altitude the pressure is reduced with --------------------------------------
def test_the_station_file_gives_the_altitude_and_both_pressures_are_written(greengrass, clock, tmp_path):
    station = tmp_path / "station.json"
    station.write_text('{"altitude_m": 500}')
    # The standard atmosphere at 500 m: 954.61 hPa and 11.75 degC, which is 1013.25 hPa at sea level.
    make_writer(greengrass, clock, station_file=station).handle(reading(pressure=954.61, temperature=11.75))
    reported = weather(greengrass)["state"]["reported"]
    assert reported["pressure"] == 954.61
    assert reported["sea_level_pressure"] == pytest.approx(1013.25, abs=0.05)
    assert (reported["altitude_m"], reported["altitude_source"], reported["altitude_detail"]) == (
        500, "station_file", str(station))


def test_the_compensated_temperature_is_the_one_the_reduction_uses(greengrass, clock, tmp_path):
    station = tmp_path / "station.json"
    station.write_text('{"altitude_m": 1000}')
    # 2 * 29.25 - 50.0 = 8.5 degC, the standard atmosphere's at 1000 m, where it has 898.76 hPa.
    writer = make_writer(greengrass, clock, compensation="on", station_file=station)
    writer.handle(reading(pressure=898.76, temperature=29.25))
    reported = weather(greengrass)["state"]["reported"]
    assert reported["temperature"] == 8.5 and reported["sea_level_pressure"] == pytest.approx(1013.25, abs=0.05)


def test_a_high_pressure_day_a_little_above_sea_level_may_reduce_beyond_the_sensor_range(greengrass, clock,
                                                                                          tmp_path):
    station = tmp_path / "station.json"
    station.write_text('{"altitude_m": 120.5}')
    assert make_writer(greengrass, clock, station_file=station).handle(reading(pressure=1090.0))["accepted"]
    assert weather(greengrass)["state"]["reported"]["sea_level_pressure"] > 1100


@pytest.mark.parametrize("content, problem", [
    ("", "not JSON"),
    ("{not json", "not JSON"),
    ('{"altitude": 500}', "is not {\"altitude_m\": <metres>}"),
    ('{"altitude_m": 500, "note": "roof"}', "is not {\"altitude_m\": <metres>}"),
    ("[500]", "is not {\"altitude_m\": <metres>}"),
    ('{"altitude_m": "500"}', "altitude_m '500' is not a number from -500 to 9000"),
    ('{"altitude_m": true}', "altitude_m True is not a number from -500 to 9000"),
    ('{"altitude_m": NaN}', "altitude_m nan is not a number from -500 to 9000"),
    ('{"altitude_m": 12000}', "altitude_m 12000 is not a number from -500 to 9000"),
    ('{"altitude_m": 1e400}', "altitude_m inf is not a number from -500 to 9000"),
    (b"\xff\xfe", "not UTF-8 text"),
    ("[" * 4000, "nested deeper"),
    ("[" * 100_000, "larger than 4096 bytes"),
    (" " * 5000 + '{"altitude_m": 5}', "larger than 4096 bytes"),
])
def test_a_malformed_station_file_gives_no_sea_level_pressure_and_says_why(greengrass, clock, tmp_path, caplog,
                                                                           content, problem):
    station = tmp_path / "station.json"
    station.write_bytes(content if isinstance(content, bytes) else content.encode())
    with caplog.at_level(logging.ERROR):
        assert make_writer(greengrass, clock, station_file=station).handle(reading())["accepted"]
    reported = weather(greengrass)["state"]["reported"]
    assert reported["pressure"] == 1004.2  # the measurement itself is still recorded
    assert "sea_level_pressure" not in reported and "altitude_m" not in reported  # null removes them
    assert reported["altitude_source"] == "invalid"
    assert reported["altitude_detail"].startswith(str(station)) and problem in reported["altitude_detail"]
    assert len(reported["altitude_detail"]) < 150 and str(station) in caplog.text


@pytest.mark.parametrize("make", [lambda path: path.mkdir(), lambda path: os.mkfifo(path)],
                         ids=["a folder", "a FIFO"])
def test_a_station_path_that_is_no_regular_file_is_unusable_and_never_blocks(greengrass, clock, tmp_path, make):
    station = tmp_path / "station.json"
    make(station)
    assert make_writer(greengrass, clock, station_file=station).handle(reading())["accepted"]
    reported = weather(greengrass)["state"]["reported"]
    assert reported["altitude_source"] == "invalid" and "sea_level_pressure" not in reported


def test_the_station_file_is_read_at_each_reading(greengrass, clock, tmp_path):
    station = tmp_path / "station.json"
    writer = make_writer(greengrass, clock, station_file=station)
    writer.handle(reading(sampled_at="2013-11-05T11:58:00Z"))
    assert weather(greengrass)["state"]["reported"]["altitude_source"] == "default"
    station.write_text('{"altitude_m": 500}')  # install.sh ran again
    writer.handle(reading())
    assert weather(greengrass)["state"]["reported"]["altitude_m"] == 500
