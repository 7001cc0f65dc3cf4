"""Pinned Lambda `sensor`: every SAMPLE_INTERVAL_S, one BME680 reading to the local readings topic.

Greengrass starts a pinned Lambda when the core starts and keeps its process; code meant to run
forever must be started outside the handler and must not block the import. So the module starts
its loop on a daemon thread at import when it runs under Greengrass, and `handler` (invoked only if
something sends the function an event) just makes sure the loop runs.
"""
from __future__ import annotations

import logging
from typing import Callable

from . import runtime
from .bme680_sensor import Bme680Sensor, SensorUnavailable
from .config import SensorConfig, load_sensor_config
from .contracts import READINGS_TOPIC, Reading
from .functions import SENSOR
from .port import GreengrassPort, PortError

log = logging.getLogger(__name__)
# First retry after an I2C failure; doubles up to the sample interval.
FIRST_RETRY_S = 1.0


class SensorService:
    def __init__(self, config: SensorConfig, port: GreengrassPort, clock: runtime.Clock,
                 read_sensor: Callable[[], tuple[float, float, float]]) -> None:
        self.config, self._port, self._clock, self._read_sensor = config, port, clock, read_sensor
        self._backoff = runtime.Backoff(FIRST_RETRY_S, cap_s=config.sample_interval_s)
        self.loop = runtime.LongLivedLoop("sensor", self.sample_once, config.sample_interval_s, clock, log)

    def sample_once(self) -> float | None:
        """Read and publish one reading; on an I2C failure return the backoff delay before the retry."""
        try:
            temperature, humidity, pressure = self._read_sensor()
        except SensorUnavailable as error:
            delay = self._backoff.next_delay()
            log.warning("sensor read failed (attempt %d), retrying in %.1f s: %s",
                        self._backoff.failures, delay, error)
            return delay
        self._backoff.reset()
        reading = Reading(round(temperature, 2), round(humidity, 3), round(pressure, 2), self._clock.now())
        try:
            self._port.publish(READINGS_TOPIC, reading.as_message())
        except PortError as error:
            log.error("could not publish reading to %s: %s", READINGS_TOPIC, error)
        else:
            log.debug("published %s", reading)
        return None

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()

    def handle(self, event: object) -> dict:
        """An invocation only makes sure the loop runs (it is started at import under Greengrass)."""
        self.start()
        return {"status": "running"}


def build(context: runtime.FunctionContext) -> SensorService:
    config = load_sensor_config(context.environ)
    runtime.configure_logging(config.log_level)
    chip = Bme680Sensor(lambda: context.open_i2c_bus(config.i2c_bus), config.i2c_address)
    log.info("sensor: BME680 at bus %d address 0x%02x, every %.0f s to %s", config.i2c_bus,
             config.i2c_address, config.sample_interval_s, READINGS_TOPIC)
    return SensorService(config, context.port, context.clock, chip.read)


host = runtime.FunctionHost(SENSOR, build)


def handler(event, context):
    return host.get().handle(event)


if runtime.running_on_greengrass():
    host.start()
