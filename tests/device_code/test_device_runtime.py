"""The process wiring: connecting to Greengrass never happens while a function is built (so a module
import under Greengrass cannot fail on an IPC socket that is not ready), and reconnects back off."""
import logging
import threading

import pytest
from device_test_support import THING

from device_code import runtime
from device_code.contracts import READINGS_TOPIC
from device_code.port import PortError
from device_code.simulator.core import standalone_environment


class FailingConnect:
    """Fails the first `failures` connection attempts, like an IPC socket the nucleus has not opened yet."""

    def __init__(self, greengrass, failures):
        self.greengrass, self.failures, self.attempts = greengrass, failures, 0

    def __call__(self, function=None):
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionRefusedError("AWS_GG_NUCLEUS_DOMAIN_SOCKET not ready")
        return self.greengrass


def test_the_port_connects_on_first_use_and_backs_off_between_attempts(greengrass, clock, caplog):
    connect = FailingConnect(greengrass, failures=3)
    port = runtime.LazyPort(connect, clock, "sensor")
    assert connect.attempts == 0  # building a port does not connect
    with caplog.at_level(logging.ERROR):
        with pytest.raises(PortError, match="could not connect to Greengrass"):
            port.publish(READINGS_TOPIC, {})
        for _ in range(5):  # within the backoff step: no new attempt, no new log line
            with pytest.raises(PortError, match="next attempt in 1 s"):
                port.publish(READINGS_TOPIC, {})
    assert connect.attempts == 1
    assert caplog.text.count("could not connect to Greengrass IPC") == 1
    for expected_attempts, wait in ((2, 1.0), (3, 2.0)):
        clock.advance(wait)
        with pytest.raises(PortError):
            port.publish(READINGS_TOPIC, {})
        assert connect.attempts == expected_attempts
    clock.advance(4.0)
    received = []
    greengrass.subscribe(READINGS_TOPIC, lambda topic, message: received.append(message))
    port.publish(READINGS_TOPIC, {"n": 1})
    port.publish(READINGS_TOPIC, {"n": 2})
    greengrass.bus.drain()
    assert received == [{"n": 1}, {"n": 2}] and connect.attempts == 4


def test_a_pinned_function_starts_although_greengrass_ipc_is_not_ready(greengrass, clock):
    from device_code import sensor
    from device_code.simulator.chip import SimulatedBme680

    connect = FailingConnect(greengrass, failures=2)
    published = threading.Event()
    greengrass.subscribe(READINGS_TOPIC, lambda topic, message: published.set())
    runtime.install(runtime.Wiring(environ=lambda function: standalone_environment(THING, SAMPLE_INTERVAL_S="1"),
                                   connect=connect, clock=runtime.SystemClock(),
                                   open_i2c_bus=lambda bus: SimulatedBme680(lambda: (12.0, 70.0, 1010.0))))
    try:
        assert sensor.handler({}, None) == {"status": "running"}  # what the import runs under Greengrass
        assert connect.attempts <= 1  # building the service did not connect; its loop thread does
        assert published.wait(15)  # after two refused attempts (1 s, 2 s) the readings flow
        assert connect.attempts == 3
    finally:
        sensor.host.discard().stop()
        runtime.install(runtime.Wiring())


def test_backoff_stays_at_its_cap_for_any_number_of_failures():
    backoff = runtime.Backoff(1.0, cap_s=60.0)
    delays = [backoff.next_delay() for _ in range(5000)]  # weeks of a dead chip at one try a minute
    assert delays[:7] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
    assert set(delays[6:]) == {60.0}
    backoff.reset()
    assert backoff.next_delay() == 1.0
