"""The three real handler modules wired to the simulated Greengrass, BME680 and cloud in one process.

Like a core device: `sensor` and `inference` run as long-lived loops, `shadow_writer` is invoked
by its event source on the readings topic, and the synchroniser pushes the named shadows to a
cloud shadow service (a moto server) while it is reachable.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_code import inference, runtime, sensor, shadow_writer
from device_code.contracts import RAIN_SHADOW, WEATHER_SHADOW, readings_topic, shadow_topic

from .chip import SimulatedBme680
from .greengrass import LocalGreengrass
from .replay import HOUR_S, Observation, SimClock, WeatherReplay
from .sync import CloudShadowSync

THING_NAME = "rainedge-sim-core"


@dataclass
class Step:
    observation: Observation
    reading: dict[str, Any] | None = None
    published_at: float | None = None
    prediction: dict[str, Any] | None = None
    latency_s: float | None = None


@dataclass
class SimulationSettings:
    model_dir: Path
    step_seconds: float = 0.25  # wall seconds per replayed hour
    log_level: str = "WARNING"
    extra_environment: dict[str, str] = field(default_factory=dict)


class EdgeSimulation:
    def __init__(self, window: list[Observation], settings: SimulationSettings, iot_data: Any | None = None) -> None:
        self.window, self.settings = window, settings
        self.clock = SimClock(window[0].time, speed=HOUR_S / settings.step_seconds)
        self.replay = WeatherReplay(window)
        self.chip = SimulatedBme680(self.replay.environment)
        self.greengrass = LocalGreengrass()
        self.steps = [Step(row) for row in window]
        self._step_of_reading: dict[str, Step] = {}
        self.sync = (CloudShadowSync(self.greengrass, THING_NAME, (WEATHER_SHADOW, RAIN_SHADOW), iot_data)
                     if iot_data is not None else None)
        self._progress = threading.Condition()
        self.greengrass.bus.tap(self._observe)
        self.environment = {
            "AWS_IOT_THING_NAME": THING_NAME, "LOG_LEVEL": settings.log_level,
            # One reading per replayed hour, a heartbeat every half hour. Input counts as stale after
            # 6 simulated hours: at this speed that is still well above a busy machine's thread delays.
            "SAMPLE_INTERVAL_S": str(HOUR_S), "I2C_BUS": "1", "I2C_ADDRESS": "0x76",
            "CPU_TEMP_COMPENSATION": "off",
            "MODEL_DIR": str(settings.model_dir), "INFERENCE_INTERVAL_S": str(HOUR_S / 2),
            "MAX_INPUT_AGE_S": str(6 * HOUR_S), **settings.extra_environment,
        }

    def start(self) -> None:
        runtime.install(runtime.Wiring(environ=self.environment, port_factory=lambda: self.greengrass,
                                       clock=self.clock, open_i2c_bus=lambda bus: self.chip))
        if self.sync is not None:
            self.sync.start()
        self.greengrass.add_event_source(readings_topic(THING_NAME), shadow_writer.handler)
        inference.host.start()
        sensor.host.start()

    def stop(self, sync_timeout_s: float = 10.0) -> bool:
        """Stop the functions, deliver what is in flight, let the cloud catch up; True when in sync."""
        for module in (sensor, inference):
            service = module.host.discard()
            if service is not None:
                service.stop()
        shadow_writer.host.discard()
        self.greengrass.bus.drain()
        if self.sync is None:
            return False
        synced = self.sync.wait_until_synced(sync_timeout_s)
        self.sync.stop()
        return synced

    def predicted_steps(self) -> int:
        return sum(step.prediction is not None for step in self.steps)

    def wait_for_predictions(self, count: int, timeout_s: float) -> bool:
        return self.wait_for(lambda: self.predicted_steps() >= count, timeout_s)

    def wait_for(self, condition, timeout_s: float) -> bool:
        with self._progress:
            return self._progress.wait_for(condition, timeout_s)

    def _observe(self, topic: str, message: dict[str, Any], published_at: float) -> None:
        """Tap on the local bus: which reading belongs to which hour, and when its prediction came."""
        if topic == readings_topic(THING_NAME):
            # Runs in the sensor's thread right after the conversion that produced this reading.
            if self.replay.position < len(self.steps):
                step = self.steps[self.replay.position]
                step.reading, step.published_at = message, published_at
                self._step_of_reading[message["sampled_at"]] = step
            self.replay.advance()
        elif topic == shadow_topic(THING_NAME, RAIN_SHADOW, "update/documents"):
            reported = message["current"]["state"].get("reported", {})
            step = self._step_of_reading.get(reported.get("input_sampled_at"))
            if reported.get("probability") is None or step is None or step.prediction is not None:
                return
            step.prediction, step.latency_s = reported, published_at - step.published_at
        else:
            return
        with self._progress:
            self._progress.notify_all()

    def local_reported(self, shadow_name: str) -> dict[str, Any]:
        return self.greengrass.get_shadow(THING_NAME, shadow_name)["state"]["reported"]

