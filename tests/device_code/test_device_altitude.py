"""Pressure at any altitude, end to end through the functions: the station file -> shadow_writer ->
the weather shadow -> inference -> the model's input, with known altitude/pressure pairs."""
from __future__ import annotations

import json

import pytest
from device_test_support import METADATA, THING, humid_means_rain, make_service, make_writer, reading
from test_device_sea_level import STANDARD_ATMOSPHERE

from device_code.contracts import RAIN_SHADOW, WEATHER_SHADOW
from device_code.model import RainModel

# A published worked example: 1003 hPa at 150 m and 15 degC is 1020.97 hPa at sea level.
WORKED_EXAMPLE = (150, 1003.0, 15.0, 1020.97)
KNOWN_PAIRS = [(altitude, pressure, temperature, 1013.25) for altitude, pressure, temperature in STANDARD_ATMOSPHERE]


def run_edge(greengrass, clock, station_file, **values):
    """One reading through the shadow writer and the inference function; what the model was given."""
    seen = []

    def model(signature, inputs):
        seen.append({name: float(column[0]) for name, column in inputs.items()})
        return humid_means_rain(signature, inputs)

    service = make_service(greengrass, clock, load=lambda path: RainModel(METADATA, "fake", model))
    service.heartbeat()  # loads the model and subscribes to the weather shadow's update/documents
    assert make_writer(greengrass, clock, station_file=station_file).handle(reading(**values))["accepted"]
    greengrass.bus.drain()
    weather = greengrass.get_shadow(THING, WEATHER_SHADOW)["state"]["reported"]
    return weather, greengrass.get_shadow(THING, RAIN_SHADOW)["state"]["reported"], seen


@pytest.mark.parametrize("altitude, pressure, temperature, at_sea_level", [*KNOWN_PAIRS, WORKED_EXAMPLE])
def test_the_model_gets_the_sea_level_pressure_of_a_station_at_any_altitude(greengrass, clock, tmp_path, altitude,
                                                                          pressure, temperature, at_sea_level):
    station = tmp_path / "station.json"
    station.write_text(json.dumps({"altitude_m": altitude}))
    weather, rain, seen = run_edge(greengrass, clock, station, pressure=pressure, temperature=temperature)
    assert (weather["pressure"], weather["altitude_m"], weather["altitude_source"]) == (pressure, altitude,
                                                                                       "station_file")
    assert weather["sea_level_pressure"] == pytest.approx(at_sea_level, abs=0.05)
    assert seen[-1]["pressure"] == pytest.approx(weather["sea_level_pressure"])
    assert "probability" in rain


def test_without_a_station_file_the_station_is_at_sea_level(greengrass, clock, tmp_path):
    weather, rain, seen = run_edge(greengrass, clock, tmp_path / "absent.json", pressure=1004.2)
    assert (weather["altitude_m"], weather["altitude_source"]) == (0, "default")
    assert seen[-1]["pressure"] == pytest.approx(1004.2) and "probability" in rain


def test_a_malformed_station_file_gives_invalid_input_naming_it_never_a_prediction(greengrass, clock, tmp_path):
    station = tmp_path / "station.json"
    station.write_text('{"altitude_m": "five hundred"}')
    weather, rain, seen = run_edge(greengrass, clock, station, pressure=954.61)
    assert weather["pressure"] == 954.61 and "sea_level_pressure" not in weather
    assert rain["status"] == "invalid_input" and str(station) in rain["detail"]
    assert "probability" not in rain and seen == []  # no prediction from a wrong pressure
