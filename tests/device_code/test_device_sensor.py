import logging
import threading

import pytest

from device_code import runtime
from device_code.bme680_sensor import SensorUnavailable
from device_code.config import load_sensor_config
from device_code.contracts import READINGS_TOPIC, parse_reading
from device_code.simulator.core import standalone_environment
from device_code.sensor import FIRST_RETRY_S, SensorService

from device_test_support import THING


def make_service(greengrass, clock, read, interval="60"):
    config = load_sensor_config(standalone_environment(THING, SAMPLE_INTERVAL_S=interval))
    return SensorService(config, greengrass, clock, read)


def collect(greengrass):
    received = []
    greengrass.subscribe(READINGS_TOPIC, lambda topic, message: received.append(message))
    return received


def test_a_reading_is_published_with_its_time(greengrass, clock):
    received = collect(greengrass)
    assert make_service(greengrass, clock, lambda: (11.504, 93.0004, 1004.204)).sample_once() is None
    greengrass.bus.drain()
    assert received == [{"temperature": 11.5, "humidity": 93.0, "pressure": 1004.2,
                         "sampled_at": "2013-11-05T12:00:00.000Z"}]
    parse_reading(received[0], clock.now())  # what the sensor sends passes the writer's validation


def test_i2c_failures_back_off_up_to_the_interval_and_recover(greengrass, clock, caplog):
    outcomes = [SensorUnavailable("no ACK")] * 8 + [(10.0, 80.0, 1000.0)]

    def read():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    received = collect(greengrass)
    service = make_service(greengrass, clock, read, interval="10")
    with caplog.at_level(logging.WARNING):
        delays = [service.sample_once() for _ in range(9)]
    greengrass.bus.drain()
    assert delays == [FIRST_RETRY_S, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0, None]
    assert len(received) == 1
    assert "sensor read failed (attempt 1)" in caplog.text and "no ACK" in caplog.text
    outcomes.append(SensorUnavailable("again"))
    assert service.sample_once() == FIRST_RETRY_S  # backoff starts over after a success


def test_publish_failure_is_logged_and_the_loop_goes_on(greengrass, clock, caplog):
    greengrass.publish_down = True
    service = make_service(greengrass, clock, lambda: (10.0, 80.0, 1000.0))
    with caplog.at_level(logging.ERROR):
        assert service.sample_once() is None
    assert "could not publish reading" in caplog.text


def test_long_lived_loop_survives_a_failing_step(clock, caplog):
    stop_after = threading.Event()
    calls = []

    def step():
        calls.append(1)
        if len(calls) == 1:
            raise ZeroDivisionError("bug in one step")
        if len(calls) == 3:
            stop_after.set()
            loop.stop(timeout_s=0)
        return None

    loop = runtime.LongLivedLoop("test", step, 5.0, clock, logging.getLogger("test"))
    with caplog.at_level(logging.ERROR):
        loop.start()
        assert stop_after.wait(5)
    assert len(calls) == 3
    assert "step failed; continuing" in caplog.text and "ZeroDivisionError" in caplog.text


def test_long_lived_loop_keeps_a_fixed_rate(clock):
    done = threading.Event()

    def step():
        clock.advance(2.0)  # the step itself takes 2 s
        if len(clock.waits) >= 2:
            done.set()
            loop.stop(timeout_s=0)

    loop = runtime.LongLivedLoop("rate", step, 10.0, clock, logging.getLogger("test"))
    loop.start()
    assert done.wait(5)
    assert clock.waits[:2] == [pytest.approx(8.0), pytest.approx(8.0)]


def test_handler_starts_the_loop_once_from_the_process_wiring(greengrass, clock):
    from device_code import sensor
    from device_code.simulator.chip import SimulatedBme680

    chip = SimulatedBme680(lambda: (12.0, 70.0, 1010.0))
    received, first_reading = [], threading.Event()
    greengrass.subscribe(READINGS_TOPIC, lambda topic, message: received.append(message) or first_reading.set())
    runtime.install(runtime.Wiring(environ=lambda function: standalone_environment(THING, SAMPLE_INTERVAL_S="3600"),
                                   connect=lambda function: greengrass, clock=runtime.SystemClock(),
                                   open_i2c_bus=lambda bus: chip))
    try:
        assert sensor.handler({}, None) == {"status": "running"}
        first = sensor.host.get()
        sensor.handler({}, None)
        assert sensor.host.get() is first
        assert first_reading.wait(10)
        assert received[0]["temperature"] == pytest.approx(12.0, abs=0.011)
    finally:
        sensor.host.discard().stop()


def test_running_on_greengrass_is_detected_from_the_environment(monkeypatch):
    for name in runtime.GREENGRASS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not runtime.running_on_greengrass()
    monkeypatch.setenv("AWS_IOT_THING_NAME", "core")
    assert runtime.running_on_greengrass()
