"""The real `bme680` driver against the simulated chip, and the sensor wrapper's failure handling."""
import bme680
import pytest
from bme680 import constants as reg

from device_code.bme680_sensor import Bme680Sensor, SensorUnavailable
from device_code.simulator.chip import SimulatedBme680

# Where the driver's integer compensation and the chip's floating-point inversion may differ.
TOLERANCE = {"temperature": 0.011, "humidity": 0.05, "pressure": 0.05}


@pytest.fixture
def environment():
    return {"value": (20.0, 50.0, 1013.25)}


@pytest.fixture
def chip(environment):
    return SimulatedBme680(lambda: environment["value"])


@pytest.mark.parametrize("temperature, humidity, pressure", [
    (20.0, 50.0, 1013.25), (-39.5, 0.5, 300.5), (84.9, 99.5, 1099.9), (5.3, 93.2, 985.4), (-3.9, 35.07, 1042.7),
])
def test_real_driver_reads_what_the_chip_simulates(chip, environment, temperature, humidity, pressure):
    environment["value"] = (temperature, humidity, pressure)
    sensor = Bme680Sensor(lambda: chip, reg.I2C_ADDR_PRIMARY)
    t, h, p = sensor.read()
    assert t == pytest.approx(temperature, abs=TOLERANCE["temperature"])
    assert h == pytest.approx(humidity, abs=TOLERANCE["humidity"])
    assert p == pytest.approx(pressure, abs=TOLERANCE["pressure"])


def test_readings_follow_the_environment(chip, environment):
    sensor = Bme680Sensor(lambda: chip, reg.I2C_ADDR_PRIMARY)
    first = sensor.read()
    environment["value"] = (25.0, 80.0, 990.0)
    second = sensor.read()
    assert first != second and second[0] == pytest.approx(25.0, abs=0.011)
    assert chip.conversions >= 2


def test_chip_is_configured_for_weather_with_gas_heater_off(chip):
    Bme680Sensor(lambda: chip, reg.I2C_ADDR_PRIMARY).read()
    # Read the registers back with the driver's getters, skipping its constructor (which would
    # reset the chip to the driver's defaults, gas measurement on).
    reader = bme680.BME680.__new__(bme680.BME680)
    reader.i2c_addr, reader._i2c = reg.I2C_ADDR_PRIMARY, chip
    assert reader.get_gas_status() == reg.DISABLE_GAS_MEAS
    assert reader.get_gas_heater_status() == reg.GAS_HEAT_DISABLE
    assert (reader.get_temperature_oversample(), reader.get_pressure_oversample(),
            reader.get_humidity_oversample(), reader.get_filter()) == (reg.OS_8X, reg.OS_4X, reg.OS_2X,
                                                                       reg.FILTER_SIZE_3)


def test_missing_chip_is_reported_as_unavailable(chip):
    chip.absent = True
    with pytest.raises(SensorUnavailable, match="0x76"):
        Bme680Sensor(lambda: chip, reg.I2C_ADDR_PRIMARY).read()


def test_wrong_address_is_reported_as_unavailable(chip):
    with pytest.raises(SensorUnavailable, match="0x77"):
        Bme680Sensor(lambda: chip, reg.I2C_ADDR_SECONDARY).read()


def test_sensor_reconnects_after_a_bus_glitch(chip, monkeypatch):
    opened, closed = [], []
    monkeypatch.setattr(chip, "close", lambda: closed.append(1))
    sensor = Bme680Sensor(lambda: opened.append(1) or chip, reg.I2C_ADDR_PRIMARY)
    sensor.read()
    chip.fail_next(1)
    with pytest.raises(SensorUnavailable, match="Input/output error"):
        sensor.read()
    assert len(closed) == 1  # the failed bus handle is released
    assert sensor.read()[0] == pytest.approx(20.0, abs=0.011)
    assert len(opened) == 2  # the chip is re-initialised after a failure
