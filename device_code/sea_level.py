"""Station pressure -> sea-level pressure, the quantity the rain models were trained on.

The BME680 measures the pressure where it stands; weather observations (and the training data)
report it reduced to sea level. A Pi at 500 m reads ~955 hPa on an ordinary day, which a model
trained on sea-level pressure takes for a deep storm.

Formula: the barometric formula of the standard atmosphere's troposphere (ICAO / ISO 2533:
temperature falling 0.0065 K per metre), solved for the sea-level pressure, with the air column's
temperature anchored at the measured station temperature:

    p0 = p * (1 - L*h / (T + L*h + 273.15)) ** (-g0*M / (R*L))

(the reduction formula as given e.g. by keisoku.magicgifted.com/en/sea-level-pressure-correction-calculator,
whose rounded exponent 5.257 is g0*M/(R*L) = 5.25588 computed from the constants below). With the
standard atmosphere's own temperature at h it returns exactly 1013.25 hPa for the standard
atmosphere's pressure at h.
"""
from __future__ import annotations

import math

LAPSE_RATE_K_PER_M = 0.0065
STANDARD_GRAVITY = 9.80665  # m/s^2
MOLAR_MASS_DRY_AIR = 0.0289644  # kg/mol
GAS_CONSTANT = 8.31432  # J/(mol K), the value the standard atmosphere tables use
EXPONENT = STANDARD_GRAVITY * MOLAR_MASS_DRY_AIR / (GAS_CONSTANT * LAPSE_RATE_K_PER_M)
ZERO_CELSIUS_K = 273.15
# From the Dead Sea shore (-430 m) to where the BME680's 300 hPa floor is reached (~9,000 m).
ALTITUDE_RANGE_M = (-500.0, 9000.0)


def sea_level_pressure(station_pressure_hpa: float, altitude_m: float, temperature_c: float) -> float:
    """The station pressure reduced to sea level (hPa), using the measured air temperature."""
    for name, value in (("station pressure", station_pressure_hpa), ("altitude", altitude_m),
                        ("temperature", temperature_c)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} {value!r} is not a finite number")
    low, high = ALTITUDE_RANGE_M
    if not low <= altitude_m <= high:
        raise ValueError(f"altitude {altitude_m} m is outside [{low:g}, {high:g}] m")
    if station_pressure_hpa <= 0:
        raise ValueError(f"station pressure {station_pressure_hpa} hPa is not positive")
    sea_level_temperature_k = temperature_c + ZERO_CELSIUS_K + LAPSE_RATE_K_PER_M * altitude_m
    if sea_level_temperature_k <= 0:
        raise ValueError(f"temperature {temperature_c} degC at {altitude_m} m is below absolute zero at sea level")
    return station_pressure_hpa * (1.0 - LAPSE_RATE_K_PER_M * altitude_m / sea_level_temperature_k) ** -EXPONENT
