"""The synthesized deployment's handler modules wired to the simulated Greengrass, BME680 and cloud.

Like a core device running the deployment (see core.py): each Lambda component's service is
built from its handler module's `build` with the core's own environment and port (several cores can
run in one process), each pinned one runs its long-lived loop, each event source invokes its
function, every IPC call goes through the component's access control, and the synchroniser pushes
the shadows ShadowManager is configured to sync to a cloud shadow service (a moto server) while it
is reachable and the IoT policy allows it.
"""
from __future__ import annotations

import json
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from device_code import config as env
from device_code import runtime
from device_code.contracts import (ALTITUDE_M, DEFAULT_ALTITUDE_M, RAIN_SHADOW, READINGS_TOPIC, WEATHER_SHADOW,
                                   shadow_topic)
from device_code.port import ShadowNotFound
from model_training.artifact import artifact_folder
from model_training.metrics import confusion_counts

from .chip import SimulatedBme680
from .core import DEVICE_TO_CLOUD, SimulatedCore
from .greengrass import LocalGreengrass
from .replay import HOUR_S, Observation, SimClock, WeatherReplay
from .sync import CloudShadowSync


def resolve_model_dir(path: Path) -> Path:
    """Accept build/model (the training output) or the unpacked artifact folder itself."""
    folder = artifact_folder(path)
    if folder is not None:
        return folder
    raise SystemExit(f"no trained model in {path} (expected metadata.json there or in rain_model/): "
                     "run `make train` (`make demo` does it for you)")


@dataclass
class Step:
    observation: Observation
    reading: dict[str, Any] | None = None
    published_at: float | None = None
    weather: dict[str, Any] | None = None  # the weather shadow's state the reading became
    prediction: dict[str, Any] | None = None
    latency_s: float | None = None


@dataclass
class SimulationSettings:
    model_dir: Path
    step_seconds: float = 0.25  # wall seconds per replayed hour
    log_level: str = "WARNING"
    extra_environment: dict[str, str] = field(default_factory=dict)
    # The station altitude of every simulated core (--altitude), else its stationAltitudes entry, else 0 m.
    altitude_m: float | None = None
    station_altitudes: Mapping[str, float] = field(default_factory=dict)
    # How much warmer than the air the chip reads (--sensor-warming): a Pi heating its own sensor.
    sensor_warming_c: float = 0.0

    def altitude_of(self, thing_name: str) -> float:
        if self.altitude_m is not None:
            return self.altitude_m
        return self.station_altitudes.get(thing_name, DEFAULT_ALTITUDE_M)

    def overrides(self, core_folder: Path) -> dict[str, str]:
        """The variables the simulator sets instead of the template's: host paths (the model, and the
        station file and reading history in the simulated core's own folder), and a schedule in
        simulated hours: one reading per replayed hour, a heartbeat every half hour, input stale
        after 6 hours (still well above a busy machine's thread delays at this speed)."""
        return {env.LOG_LEVEL: self.log_level, env.MODEL_DIR: str(self.model_dir),
                env.STATION_FILE: str(core_folder / "station.json"),
                env.HISTORY_FILE: str(core_folder / "reading_history.json"),
                env.SAMPLE_INTERVAL_S: str(HOUR_S), env.INFERENCE_INTERVAL_S: str(HOUR_S / 2),
                env.MAX_INPUT_AGE_S: str(6 * HOUR_S), **self.extra_environment}


class EdgeSimulation:
    def __init__(self, window: list[Observation], settings: SimulationSettings, core: SimulatedCore,
                 iot_data: Any | None = None) -> None:
        self.window, self.settings, self.core = window, settings, core
        self.thing_name = core.thing_name
        self.clock = SimClock(window[0].time, speed=HOUR_S / settings.step_seconds)
        # The core's own folder: its station file, as install.sh writes it, and its reading history.
        self._folder = tempfile.TemporaryDirectory(prefix=f"rainedge-{core.thing_name}-")
        self.folder = Path(self._folder.name)
        self.altitude_m = settings.altitude_of(core.thing_name)
        Path(settings.overrides(self.folder)[env.STATION_FILE]).write_text(json.dumps({ALTITUDE_M: self.altitude_m}))
        self.replay = WeatherReplay(window, self.altitude_m, settings.sensor_warming_c)
        self.chip = SimulatedBme680(self.replay.environment)
        self.greengrass = LocalGreengrass()
        self.steps = [Step(row) for row in window]
        self._step_of_reading: dict[str, Step] = {}
        self.synced_shadows, direction = core.shadow_sync()
        self.sync = (CloudShadowSync(self.greengrass, self.thing_name, self.synced_shadows, iot_data,
                                     refusal=core.cloud_refusal)
                     if iot_data is not None and direction in DEVICE_TO_CLOUD else None)
        self._progress = threading.Condition()
        self._modules = core.handler_modules()
        self.services: dict[str, Any] = {}
        self.greengrass.bus.tap(self._observe)

    def start(self) -> None:
        """Build every function of the deployment for this core, then run it as Greengrass would."""
        overrides = self.settings.overrides(self.folder)
        wiring = runtime.Wiring(environ=lambda function: self.core.environment(function, overrides),
                                connect=lambda function: self.core.port(self.greengrass, function),
                                clock=self.clock, open_i2c_bus=lambda bus: self.chip)
        # Every function is built (its configuration checked: a missing variable stops the run
        # naming it) before anything runs, although Greengrass starts an on-demand one only when invoked.
        self.services = {name: module.build(wiring.context(module.host.function))
                         for name, module in self._modules.items()}
        if self.sync is not None:
            self.sync.start()
        for name, component in self.core.components.items():
            for topic, _ in component.event_sources:
                self.greengrass.add_event_source(topic, lambda event, context, service=self.services[name]:
                                                 service.handle(event))
        for name, component in self.core.components.items():
            if component.pinned:
                self.services[name].start()

    def stop(self, sync_timeout_s: float = 10.0) -> bool:
        """Stop the functions, deliver what is in flight, let the cloud catch up; True when in sync."""
        self.stop_functions()
        return self.finish_sync(sync_timeout_s)

    def stop_functions(self) -> None:
        """Stop the functions and deliver what is in flight on the local bus."""
        for service in self.services.values():
            if hasattr(service, "stop"):
                service.stop()
        self.greengrass.bus.drain()
        self._folder.cleanup()

    def finish_sync(self, timeout_s: float) -> bool:
        """Let the cloud catch up with the local shadows, then stop syncing; True when in sync."""
        if self.sync is None:
            return False
        synced = self.sync.wait_until_synced(timeout_s)
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
        if topic == READINGS_TOPIC:
            # Runs in the sensor's thread right after the conversion that produced this reading.
            if self.replay.position < len(self.steps):
                step = self.steps[self.replay.position]
                step.reading, step.published_at = message, published_at
                self._step_of_reading[message["sampled_at"]] = step
            self.replay.advance()
        elif topic == shadow_topic(self.thing_name, WEATHER_SHADOW, "update/documents"):
            reported = message["current"]["state"].get("reported", {})
            step = self._step_of_reading.get(reported.get("sampled_at"))
            if step is not None:
                step.weather = reported
            return
        elif topic == shadow_topic(self.thing_name, RAIN_SHADOW, "update/documents"):
            reported = message["current"]["state"].get("reported", {})
            step = self._step_of_reading.get(reported.get("input_sampled_at"))
            if reported.get("probability") is None or step is None or step.prediction is not None:
                return
            step.prediction, step.latency_s = reported, published_at - step.published_at
        else:
            return
        with self._progress:
            self._progress.notify_all()

    def confusion(self) -> tuple[int, int, int, int]:
        """model_training.metrics.confusion_counts over the predicted hours."""
        done = [step for step in self.steps if step.prediction]
        return confusion_counts([step.prediction["raining"] for step in done],
                                [step.observation.rain for step in done])

    def cloud_matches(self, cloud: Any, synced: bool) -> dict[str, bool]:
        """For each synced shadow: does the cloud's reported state equal the local one?"""
        refused = self.sync.refused if self.sync else {}
        return {name: synced and name not in refused and self.local_reported(name) is not None
                and cloud.reported(self.thing_name, name) == self.local_reported(name)
                for name in self.synced_shadows}

    def healthy(self, matches: dict[str, bool]) -> bool:
        """Every hour predicted, every synced shadow equal in the cloud, nothing refused or unheard."""
        return (self.predicted_steps() == len(self.steps) and bool(matches) and all(matches.values())
                and not self.core.refusals() and not self.unheard_topics())

    def unheard_topics(self) -> dict[str, int]:
        """Our topics whose messages reached nobody (the shadow service's own topics often do)."""
        return {topic: count for topic, count in self.greengrass.bus.unheard.items() if not topic.startswith("$aws/")}

    def local_reported(self, shadow_name: str) -> dict[str, Any] | None:
        """The local shadow's reported state; None when the shadow does not exist."""
        try:
            return self.greengrass.get_shadow(self.thing_name, shadow_name)["state"]["reported"]
        except ShadowNotFound:
            return None
