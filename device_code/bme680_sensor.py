"""The BME680 read through the `bme680` driver over I2C (`smbus2`), with the gas heater off.

Settings: forced mode (one conversion per reading, the chip sleeps in between), oversampling
temperature 8x / pressure 4x / humidity 2x and IIR filter size 3: Bosch's and the driver's
weather-station profile, where noise matters more than the few milliseconds a conversion takes.
The gas heater is off: it heats the chip (biasing the temperature) and the model does not use gas.
"""
from __future__ import annotations

import logging
from typing import Callable, Protocol

import bme680

log = logging.getLogger(__name__)


class I2CBus(Protocol):
    """The part of smbus2.SMBus the driver uses."""

    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None: ...

    def close(self) -> None: ...


class SensorUnavailable(RuntimeError):
    """The chip did not answer, answered wrongly, or had no new data."""


class Bme680Sensor:
    """Opens the chip on first use and again after any I2C failure (the chip may have been reset)."""

    def __init__(self, open_bus: Callable[[], I2CBus], address: int) -> None:
        self._open_bus, self._address = open_bus, address
        self._bus: I2CBus | None = None
        self._driver: bme680.BME680 | None = None

    def _connect(self) -> bme680.BME680:
        self._bus = self._open_bus()
        driver = bme680.BME680(i2c_addr=self._address, i2c_device=self._bus)
        driver.set_temperature_oversample(bme680.OS_8X)
        driver.set_pressure_oversample(bme680.OS_4X)
        driver.set_humidity_oversample(bme680.OS_2X)
        driver.set_filter(bme680.FILTER_SIZE_3)
        driver.set_gas_status(bme680.DISABLE_GAS_MEAS)
        driver.set_gas_heater_status(bme680.GAS_HEAT_DISABLE)
        return driver

    def read(self) -> tuple[float, float, float]:
        """(temperature °C, humidity %RH, pressure hPa); raises SensorUnavailable."""
        try:
            if self._driver is None:
                self._driver = self._connect()
            if not self._driver.get_sensor_data():
                raise SensorUnavailable("the BME680 reported no new data after a forced conversion")
            data = self._driver.data
            return data.temperature, data.humidity, data.pressure
        except Exception as error:
            # Bus errors are OSError, a failed chip-id read is the driver's RuntimeError, a chip
            # answering garbage can make it raise anything: each releases the bus and is retried.
            self._disconnect()
            if isinstance(error, SensorUnavailable):
                raise
            raise SensorUnavailable(f"BME680 at 0x{self._address:02x}: {type(error).__name__}: {error}") from error

    def _disconnect(self) -> None:
        """Close the bus (an smbus2.SMBus holds /dev/i2c-N open) so a retry starts clean."""
        bus, self._bus, self._driver = self._bus, None, None
        if bus is not None:
            try:
                bus.close()
            except Exception:  # closing is best effort; the next read opens a new handle
                pass
