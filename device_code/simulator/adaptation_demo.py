"""`python -m device_code.simulator --adapt-demo`: one biased station learns its own weather.

The station's Pi heats its BME680 (model_training.adapt_bench's synthetic bias: +2 °C) and its station file
says 0 m while it stands STANDS_AT_M up, so the sea-level pressure it reports is ~12 hPa low. Two cores of
that station run the synthesized deployment's own shadow writer and inference function (their handler
modules, the core's environment and IPC access control, the real model) on virtual time, replaying its
airport's held-out Oct-Dec hours. After the first ADAPTATION_SHARE of them, one core's labelled hours (what
its weather shadow held, the airport's rain reports as labels and its readings as the reference) are fitted
and delivered by `make adapt`'s own steps (infra/lifecycle/adapt.py: `python -m model_training adapt`, the
check, the desired state of the cloud shadow, here in moto); the simulator's ShadowManager brings it down
and the inference function checks and applies it. The other core never gets one: the global model. Both are
scored on the remaining hours (model_training.metrics) from what their rain shadows said.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from device_code import config as env
from device_code import runtime
from device_code.adaptation_shadow import APPLIED, choose
from device_code.contracts import (ADAPTATION_SHADOW, ALTITUDE_M, RAIN_SHADOW, READINGS_TOPIC, SEA_LEVEL_PRESSURE,
                                   WEATHER_SHADOW, format_timestamp)
from device_code.functions import INFERENCE, SHADOW_WRITER
from device_code.model import read_metadata
from device_code.port import ShadowNotFound
from infra.config import CLOUD_TO_DEVICE_DIRECTIONS
from infra.lifecycle.adapt import checked_adaptation, fit, write_desired
from infra.lifecycle.aws import LifecycleError
from infra.lifecycle.status import adaptation_cell
from model_training.adapt import log_loss
from model_training.adapt_bench import ADAPTATION_SHARE, SYNTHETIC_BIAS
from model_training.evaluate import REFERENCE_COLUMNS, TIME_COLUMN
from model_training.metrics import classification_metrics

from .core import SimulatedCore
from .events import EventLoop, ProcessPort, VirtualClock, VirtualGreengrass
from .replay import HOUR_S, Observation, WeatherReplay
from .simulation import SimulationSettings
from .sync import CloudShadowSync

# 100 m up, reduced with 0 m: ~12 hPa low, the benchmark's pressure bias (SYNTHETIC_BIAS["pressure"]).
STANDS_AT_M = 100.0
# A reading reaches the shadow writer this long after the hour it replays.
SAMPLE_DELAY_S = 5.0
METRICS = ("log_loss", "roc_auc", "f1", "ece")


@dataclass
class Station:
    """One core of the station on the loop: its local shadows, and its shadow writer and inference function as
    the deployment builds them."""

    name: str
    core: SimulatedCore
    loop: EventLoop
    settings: SimulationSettings
    folder: Path
    greengrass: VirtualGreengrass = field(init=False)
    seen: list[dict[str, Any]] = field(default_factory=list)  # the weather shadow's reported state, per reading
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # input_sampled_at -> rain shadow reported

    def __post_init__(self) -> None:
        self.greengrass = VirtualGreengrass(self.loop)
        self.port = ProcessPort(self.greengrass)
        overrides = self.settings.overrides(self.folder)
        # The installer's station file: the altitude the owner typed, 0 m, not where the Pi stands.
        Path(overrides[env.STATION_FILE]).write_text(json.dumps({ALTITUDE_M: 0.0}))
        wiring = runtime.Wiring(environ=lambda function: self.core.environment(function, overrides),
                                connect=lambda function: self.core.port(self.port, function),
                                clock=VirtualClock(self.loop), open_i2c_bus=lambda bus: None)
        modules = {module.host.function.name: module for module in self.core.handler_modules().values()}
        self.writer = modules[SHADOW_WRITER.name].build(wiring.context(SHADOW_WRITER))
        self.inference = modules[INFERENCE.name].build(wiring.context(INFERENCE))
        # The shadow writer's PUB_SUB event source, as the Lambda manager wires it.
        self.greengrass.bus.subscribe(READINGS_TOPIC, lambda topic, message: self.writer.handle(message))
        interval_s = float(overrides[env.INFERENCE_INTERVAL_S])
        self.loop.every(0.0, interval_s, lambda: self.inference.heartbeat() or True)

    def sense(self, reading: dict[str, Any]) -> None:
        self.greengrass.bus.publish(READINGS_TOPIC, reading)
        self.loop.after(1.0, self._record)

    def _record(self) -> None:
        weather = self.reported(WEATHER_SHADOW)
        rain = self.reported(RAIN_SHADOW)
        self.seen.append(weather)
        if rain.get("probability") is not None:
            self.answers[rain["input_sampled_at"]] = rain

    def reported(self, shadow: str) -> dict[str, Any]:
        try:
            return self.greengrass.shadows.get(self.core.thing_name, shadow)["state"].get("reported", {})
        except ShadowNotFound:
            return {}


def labelled_hours(station: Station, observations: list[Observation]) -> pd.DataFrame:
    """What `make dataset` exports for the station, with the airport's rain reports and readings joined: the
    readings as its weather shadow held them (sea-level pressure as reduced on the device)."""
    truth = {row.time: row for row in observations}
    rows = []
    for weather in station.seen:
        row = truth.get(pd.Timestamp(weather["sampled_at"]).to_pydatetime())
        if row is None or weather.get(SEA_LEVEL_PRESSURE) is None:
            continue
        rows.append({TIME_COLUMN: weather["sampled_at"], "temperature": weather["temperature"],
                     "humidity": weather["humidity"], "pressure": weather[SEA_LEVEL_PRESSURE], "rain": row.rain,
                     REFERENCE_COLUMNS["temperature"]: row.temperature, REFERENCE_COLUMNS["pressure"]: row.pressure})
    return pd.DataFrame(rows)


def scores(answers: list[dict[str, Any]], rain: np.ndarray) -> dict[str, float | None]:
    probability = np.array([answer["probability"] for answer in answers])
    thresholds = np.array([answer["threshold"] for answer in answers])
    metrics = classification_metrics(rain, probability, thresholds)
    return {"log_loss": log_loss(rain, probability), "roc_auc": metrics["roc_auc"], "f1": metrics["f1"],
            "ece": metrics["ece"]}


def _cell(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:.3f}"


def run_adaptation_demo(core: SimulatedCore, observations: list[Observation], settings: SimulationSettings,
                        cloud: Any, project_root: Path, echo=print) -> int:
    """The demo; 0 when the adapted core applied its adaptation and scored no worse on log loss."""
    names, direction = core.shadow_sync()
    if ADAPTATION_SHADOW not in names or direction not in CLOUD_TO_DEVICE_DIRECTIONS:
        echo(f"adapt demo: ShadowManager does not bring the {ADAPTATION_SHADOW!r} shadow down (synchronises "
             f"{list(names)}, direction {direction}): no adaptation can reach a device")
        return 1
    cloud.create_thing(core.thing_name)
    iot_data = cloud.client("iot-data")
    loop = EventLoop(observations[0].time)
    replay = WeatherReplay(observations, STANDS_AT_M, SYNTHETIC_BIAS["temperature"])
    cut = int(round(len(observations) * ADAPTATION_SHARE))
    delivered: str | None = None
    with tempfile.TemporaryDirectory(prefix="rainedge-adapt-demo-") as scratch:
        folder = Path(scratch)
        stations = []
        for name in ("global", "adapted"):
            (folder / name).mkdir()
            stations.append(Station(name, core, loop, settings, folder / name))
        plain, adapted = stations
        sync = CloudShadowSync(adapted.port, core.thing_name, names, iot_data, refusal=core.cloud_refusal)
        echo(f"adapt demo: station {core.thing_name} at {STANDS_AT_M:g} m with a station file of 0 m and a sensor "
             f"{SYNTHETIC_BIAS['temperature']:+g} °C warm; {len(observations)} hours from "
             f"{observations[0].time:%Y-%m-%d}; adapted on the first {cut}, scored on the other {len(observations) - cut}")
        for index, row in enumerate(observations):
            loop.run_until((row.time - observations[0].time).total_seconds() + SAMPLE_DELAY_S)
            temperature, humidity, pressure = replay.environment()
            replay.advance()
            reading = {"temperature": round(temperature, 2), "humidity": round(humidity, 2),
                       "pressure": round(pressure, 2), "sampled_at": format_timestamp(row.time)}
            for station in stations:
                station.sense(reading)
            if index == cut - 1:
                loop.run_until(loop.now_s + 2.0)
                delivered = deliver(adapted, observations[:cut], settings, iot_data, sync, project_root, folder, echo)
                if delivered is None:
                    return 1
        loop.run_until(loop.now_s + HOUR_S)
        for shadow in (ADAPTATION_SHADOW, RAIN_SHADOW):
            sync.push(shadow)
        document = json.loads(iot_data.get_thing_shadow(thingName=core.thing_name,
                                                        shadowName=ADAPTATION_SHADOW)["payload"].read())
        refused = core.refusals()
    later = observations[cut:]
    stamps = [format_timestamp(row.time) for row in later]
    missing = {station.name: sum(stamp not in station.answers for stamp in stamps) for station in stations}
    if any(missing.values()) or refused:
        for call in dict.fromkeys(refused):
            echo(f"adapt demo: IPC refused: {call.component} may not {call.operation} on {call.resource}")
        echo(f"adapt demo: hours without a prediction: {missing}")
        return 1
    rain = np.array([row.rain for row in later])
    before = scores([plain.answers[stamp] for stamp in stamps], rain)
    after = scores([adapted.answers[stamp] for stamp in stamps], rain)
    in_force = {adapted.answers[stamp].get("adaptation") for stamp in stamps}
    cell, rejection = adaptation_cell(document["state"])
    echo(f"cloud: the adaptation shadow reports {document['state'].get('reported')}; `make status` shows "
         f"ADAPTATION {cell}" + (f" ({rejection})" if rejection else ""))
    echo(f"scored on the last {len(later)} hours ({int(rain.sum())} rainy), from what the rain shadows said:")
    echo(f"  {'':<16}" + "".join(f"{name:>10}" for name in METRICS))
    for name, values in (("global model", before), ("adapted", after)):
        echo(f"  {name:<16}" + "".join(f"{_cell(values[metric]):>10}" for metric in METRICS))
    echo(f"  rain shadow `adaptation` over those hours: {sorted(map(str, in_force))}")
    applied = document["state"].get("reported", {}).get("status") == APPLIED and in_force == {delivered}
    return 0 if applied and after["log_loss"] <= before["log_loss"] else 1


def deliver(station: Station, observations: list[Observation], settings: SimulationSettings, iot_data: Any,
            sync: CloudShadowSync, project_root: Path, folder: Path, echo) -> str | None:
    """`make adapt` for the station: fit on its labelled hours, check, write the cloud shadow's desired state;
    then ShadowManager's pull. The adaptation's id, or None (said why) when there is nothing to deliver."""
    csv = folder / "labelled.csv"
    labelled_hours(station, observations).to_csv(csv, index=False)
    version = read_metadata(settings.model_dir).version
    try:
        summary = fit(project_root, settings.model_dir, csv, folder / "adaptation.json")
        adaptation = checked_adaptation(folder / "adaptation.json", version)
    except LifecycleError as error:
        echo(f"adapt demo: {error}")
        return None
    echo(f"make adapt: {summary}")
    write_desired(iot_data, station.core.thing_name, adaptation)
    if not sync.pull(ADAPTATION_SHADOW):
        echo(f"adapt demo: the cloud refused ShadowManager: {sync.refused[ADAPTATION_SHADOW]}")
        return None
    local = station.greengrass.shadows.get(station.core.thing_name, ADAPTATION_SHADOW)
    echo(f"ShadowManager: desired adaptation synced down; the device's own check says: "
         f"{choose(local, version, None).status}")
    return adaptation["id"]
