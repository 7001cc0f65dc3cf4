"""A simulated BME680 on an I2C bus: registers, calibration data and ADC values.

It answers the smbus2 calls the `bme680` driver makes, so the real driver identifies the chip,
reads its calibration, configures it and converts raw ADC values into readings. The chip turns
the environment it is given (°C, %RH, hPa) into ADC values by inverting Bosch's floating-point
compensation formulas (datasheet 3.3.1), while the driver uses the integer ones: the round trip
checks both. Not modelled: noise, the IIR filter's memory, the gas sensor (off in rainedge).
"""
from __future__ import annotations

import errno
import threading
from typing import Callable

from bme680 import constants as reg

Environment = Callable[[], tuple[float, float, float]]

# Calibration of one real-looking chip (the datasheet's parameter names).
CALIBRATION = {
    "t1": 26143, "t2": 26364, "t3": 3,
    "p1": 36383, "p2": -10313, "p3": 88, "p4": 7046, "p5": -98, "p6": 30, "p7": 42,
    "p8": -230, "p9": -2856, "p10": 30,
    "h1": 753, "h2": 1012, "h3": 0, "h4": 45, "h5": 20, "h6": 120, "h7": -100,
    "gh1": -53, "gh2": -11536, "gh3": 18,
}
ADC_20_BIT_MAX = (1 << 20) - 1
ADC_16_BIT_MAX = (1 << 16) - 1
# Output of a measurement whose oversampling is "skipped" (datasheet 3.3.3).
SKIPPED_ADC = 0x80000


def _word(value: int) -> tuple[int, int]:
    """(LSB, MSB) of a 16-bit two's-complement word."""
    value &= 0xFFFF
    return value & 0xFF, value >> 8


def calibration_bytes(c: dict[str, int]) -> list[int]:
    """The 41 bytes the driver reads from 0x89 (25) and 0xe1 (16), laid out as its index map expects."""
    data = [0] * reg.COEFF_SIZE
    for name, lsb, msb in (("t1", reg.T1_LSB_REG, reg.T1_MSB_REG), ("t2", reg.T2_LSB_REG, reg.T2_MSB_REG),
                           ("p1", reg.P1_LSB_REG, reg.P1_MSB_REG), ("p2", reg.P2_LSB_REG, reg.P2_MSB_REG),
                           ("p4", reg.P4_LSB_REG, reg.P4_MSB_REG), ("p5", reg.P5_LSB_REG, reg.P5_MSB_REG),
                           ("p8", reg.P8_LSB_REG, reg.P8_MSB_REG), ("p9", reg.P9_LSB_REG, reg.P9_MSB_REG),
                           ("gh2", reg.GH2_LSB_REG, reg.GH2_MSB_REG)):
        data[lsb], data[msb] = _word(c[name])
    for name, index in (("t3", reg.T3_REG), ("p3", reg.P3_REG), ("p6", reg.P6_REG), ("p7", reg.P7_REG),
                        ("p10", reg.P10_REG), ("h3", reg.H3_REG), ("h4", reg.H4_REG), ("h5", reg.H5_REG),
                        ("h6", reg.H6_REG), ("h7", reg.H7_REG), ("gh1", reg.GH1_REG), ("gh3", reg.GH3_REG)):
        data[index] = c[name] & 0xFF
    # H1 and H2 are 12-bit values sharing register 0xe2 (H1 low nibble, H2 high nibble).
    data[reg.H1_MSB_REG] = c["h1"] >> 4
    data[reg.H2_MSB_REG] = c["h2"] >> 4
    data[reg.H1_LSB_REG] = (c["h1"] & 0x0F) | ((c["h2"] & 0x0F) << 4)
    return data


def _t_fine(adc_t: float, c: dict[str, int]) -> float:
    var1 = (adc_t / 16384.0 - c["t1"] / 1024.0) * c["t2"]
    var2 = ((adc_t / 131072.0 - c["t1"] / 8192.0) ** 2) * (c["t3"] * 16.0)
    return var1 + var2


def _pressure_pa(adc_p: float, t_fine: float, c: dict[str, int]) -> float:
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * (c["p6"] / 131072.0)
    var2 = var2 + var1 * c["p5"] * 2.0
    var2 = var2 / 4.0 + c["p4"] * 65536.0
    var1 = ((c["p3"] * var1 * var1) / 16384.0 + c["p2"] * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * c["p1"]
    pressure = ((1048576.0 - adc_p - var2 / 4096.0) * 6250.0) / var1
    var1 = c["p9"] * pressure * pressure / 2147483648.0
    var2 = pressure * (c["p8"] / 32768.0)
    var3 = (pressure / 256.0) ** 3 * (c["p10"] / 131072.0)
    return pressure + (var1 + var2 + var3 + c["p7"] * 128.0) / 16.0


def _humidity(adc_h: float, temperature: float, c: dict[str, int]) -> float:
    var1 = adc_h - (c["h1"] * 16.0 + (c["h3"] / 2.0) * temperature)
    var2 = var1 * ((c["h2"] / 262144.0) * (1.0 + (c["h4"] / 16384.0) * temperature
                                          + (c["h5"] / 1048576.0) * temperature * temperature))
    return var2 + (c["h6"] / 16384.0 + (c["h7"] / 2097152.0) * temperature) * var2 * var2


def _invert(forward: Callable[[int], float], target: float, high: int) -> int:
    """The ADC value in [0, high] whose forward value is closest to target (forward is monotonic)."""
    low, increasing = 0, forward(high) > forward(0)
    while high - low > 1:
        middle = (low + high) // 2
        if (forward(middle) < target) == increasing:
            low = middle
        else:
            high = middle
    return min((low, high), key=lambda adc: abs(forward(adc) - target))


def adc_values(temperature: float, humidity: float, pressure_hpa: float,
               c: dict[str, int] = CALIBRATION) -> tuple[int, int, int]:
    """(adc_temperature, adc_pressure, adc_humidity) that a chip with calibration c would output."""
    adc_t = _invert(lambda adc: _t_fine(adc, c) / 5120.0, temperature, ADC_20_BIT_MAX)
    t_fine = _t_fine(adc_t, c)
    adc_p = _invert(lambda adc: _pressure_pa(adc, t_fine, c), pressure_hpa * 100.0, ADC_20_BIT_MAX)
    adc_h = _invert(lambda adc: _humidity(adc, t_fine / 5120.0, c), humidity, ADC_16_BIT_MAX)
    return adc_t, adc_p, adc_h


class SimulatedBme680:
    """smbus2.SMBus-compatible bus with one BME680 (low-gas variant) at `address`.

    `absent=True` makes every transfer fail like a missing chip (NACK -> EREMOTEIO);
    `fail_next(n)` makes the next n transfers fail like a glitching bus.
    """

    def __init__(self, environment: Environment, address: int = reg.I2C_ADDR_PRIMARY) -> None:
        self.environment, self.address = environment, address
        self.absent = False
        self.conversions = 0
        self._failures_pending = 0
        self._registers = [0] * 256
        self._lock = threading.Lock()
        self._power_on()

    def _power_on(self) -> None:
        regs = self._registers
        regs[:] = [0] * 256
        regs[reg.CHIP_ID_ADDR] = reg.CHIP_ID
        regs[reg.CHIP_VARIANT_ADDR] = reg.VARIANT_LOW
        calibration = calibration_bytes(CALIBRATION)
        regs[reg.COEFF_ADDR1:reg.COEFF_ADDR1 + reg.COEFF_ADDR1_LEN] = calibration[:reg.COEFF_ADDR1_LEN]
        regs[reg.COEFF_ADDR2:reg.COEFF_ADDR2 + reg.COEFF_ADDR2_LEN] = calibration[reg.COEFF_ADDR1_LEN:]
        regs[reg.ADDR_RES_HEAT_VAL_ADDR] = 0x2A
        regs[reg.ADDR_RES_HEAT_RANGE_ADDR] = 0x16
        regs[reg.ADDR_RANGE_SW_ERR_ADDR] = 0x10

    def fail_next(self, transfers: int) -> None:
        with self._lock:
            self._failures_pending += transfers

    def _check_transfer(self, address: int) -> None:
        if address != self.address or self.absent:
            raise OSError(errno.EREMOTEIO, f"Remote I/O error (no ACK from 0x{address:02x})")
        if self._failures_pending:
            self._failures_pending -= 1
            raise OSError(errno.EIO, "Input/output error (simulated bus glitch)")

    # --- the smbus2 calls the driver makes ---
    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        with self._lock:
            self._check_transfer(i2c_addr)
            return self._registers[register]

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        with self._lock:
            self._check_transfer(i2c_addr)
            return self._registers[register:register + length]

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        with self._lock:
            self._check_transfer(i2c_addr)
            self._write(register, value)

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None:
        with self._lock:
            self._check_transfer(i2c_addr)
            for offset, value in enumerate(data):
                self._write(register + offset, value)

    def close(self) -> None:
        """smbus2.SMBus.close(): nothing to release."""

    def _write(self, register: int, value: int) -> None:
        if register == reg.SOFT_RESET_ADDR:
            if value == reg.SOFT_RESET_CMD:
                self._power_on()
            return
        self._registers[register] = value & 0xFF
        if register == reg.CONF_T_P_MODE_ADDR and value & reg.MODE_MSK == reg.FORCED_MODE:
            self._convert()

    def _convert(self) -> None:
        """One forced-mode conversion: fill the data registers, flag new data, go back to sleep."""
        regs = self._registers
        adc_t, adc_p, adc_h = adc_values(*self.environment())
        if not regs[reg.CONF_T_P_MODE_ADDR] & reg.OST_MSK:
            adc_t = SKIPPED_ADC
        if not regs[reg.CONF_T_P_MODE_ADDR] & reg.OSP_MSK:
            adc_p = SKIPPED_ADC
        if not regs[reg.CONF_OS_H_ADDR] & reg.OSH_MSK:
            adc_h = 0x8000
        self.conversions += 1
        field = reg.FIELD0_ADDR
        regs[field] = reg.NEW_DATA_MSK
        regs[field + 1] = self.conversions & 0xFF
        regs[field + 2:field + 5] = [adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4]
        regs[field + 5:field + 8] = [adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4]
        regs[field + 8:field + 10] = [adc_h >> 8, adc_h & 0xFF]
        regs[reg.CONF_T_P_MODE_ADDR] &= ~reg.MODE_MSK & 0xFF
