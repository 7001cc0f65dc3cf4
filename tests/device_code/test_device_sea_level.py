"""Station pressure reduced to sea level, against known altitude/pressure pairs."""
from __future__ import annotations

import math

import pytest

from device_code.sea_level import EXPONENT, sea_level_pressure

# The standard atmosphere (ICAO / ISO 2533 / U.S. Standard Atmosphere 1976 tables): pressure and
# temperature at altitude when sea level has 1013.25 hPa and 15 degC.
STANDARD_ATMOSPHERE = [  # (altitude m, pressure hPa, temperature degC)
    (0, 1013.25, 15.0),
    (500, 954.61, 11.75),
    (1000, 898.76, 8.5),
    (2000, 794.98, 2.0),
]


def test_the_exponent_is_the_standard_atmosphere_one():
    assert EXPONENT == pytest.approx(5.2559, abs=1e-4)


@pytest.mark.parametrize(("altitude", "pressure", "temperature"), STANDARD_ATMOSPHERE)
def test_the_standard_atmosphere_reduces_to_1013_25_hpa(altitude, pressure, temperature):
    assert sea_level_pressure(pressure, altitude, temperature) == pytest.approx(1013.25, abs=0.05)


def test_a_published_worked_example():
    # 1003 hPa at 150 m and 15 degC -> 1020.97 hPa (with the rounded exponent 5.257; ours differs by < 0.01 hPa).
    assert sea_level_pressure(1003.0, 150.0, 15.0) == pytest.approx(1020.97, abs=0.01)


def test_the_issue_example_a_pi_at_500_m_reads_an_ordinary_day():
    # ~955 hPa at 500 m is an ordinary ~1013 hPa day, not a deep storm.
    assert 1010 < sea_level_pressure(955.0, 500.0, 12.0) < 1016


def test_agrees_with_the_hypsometric_equation_using_the_mean_column_temperature():
    """Hess / Stull: p0 = p * exp(g h / (Rd * T_mean)), T_mean = T + 0.0065 h / 2 (a second textbook form)."""
    for altitude, pressure, temperature in [(800, 920.0, 20.0), (1500, 840.0, -5.0), (300, 980.0, 30.0)]:
        mean_k = temperature + 273.15 + 0.0065 * altitude / 2
        hypsometric = pressure * math.exp(9.80665 * altitude / (287.05 * mean_k))
        assert sea_level_pressure(pressure, altitude, temperature) == pytest.approx(hypsometric, rel=2e-4)


def test_zero_altitude_changes_nothing_and_below_sea_level_lowers_the_pressure():
    assert sea_level_pressure(1001.3, 0.0, 25.0) == 1001.3
    assert sea_level_pressure(1060.0, -430.0, 30.0) < 1060.0


def test_colder_air_means_a_larger_correction():
    assert sea_level_pressure(900.0, 1000.0, -10.0) > sea_level_pressure(900.0, 1000.0, 30.0)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((950.0, 10_000.0, 0.0), "altitude 10000.0 m is outside"),
        ((950.0, -600.0, 0.0), "altitude -600.0 m is outside"),
        ((950.0, float("nan"), 0.0), "altitude nan is not a finite number"),
        ((float("inf"), 100.0, 0.0), "station pressure inf is not a finite number"),
        ((950.0, 100.0, True), "temperature True is not a finite number"),
        ((0.0, 100.0, 0.0), "is not positive"),
        ((950.0, 100.0, -300.0), "below absolute zero"),
    ],
)
def test_refuses_values_it_cannot_reduce(arguments, message):
    with pytest.raises(ValueError, match=message):
        sea_level_pressure(*arguments)
