"""A model release over two rings of Greengrass cores, on virtual time: canary, bake, gate, fleet.

`python -m device_code.simulator.rollout [--devices 200] [--canary N] [--bake-hours 6] [--json PATH]` runs
three candidates through the release the product makes (infra/releases.py): the canary ring's deployment
(an IoT job with the project's rollout, abort and timeout settings, infra/deployment.py `rollout`) takes the
candidate, the rings bake, the promotion gate judges the canary ring against the fleet ring as `make promote`
does (infra.lifecycle.promote `evaluate`: one infra.lifecycle.gate.decide over every canary device and every
fleet device), and either the fleet ring's deployment takes the candidate or the canary ring's goes back to
the promoted model. It prints a table per candidate and exits 1 when an outcome the rules call for did not
happen:
- inverted: a real artifact whose models answer 1 - p; it passes its own self-test, so only the gate's
  rain-share check can stop it; the fleet ring must keep answering with the promoted model;
- broken: a candidate packaged with another model file; its self-test fails on every canary device that
  gets it, Greengrass rolls each back, the canary job aborts by its abort criteria, the gate refuses; those
  devices never stop answering with the promoted model;
- good: a genuinely different model (recalibrated); promoted after the bake, then rolled out to the fleet.
In every scenario no device of either ring may wait longer than one reading interval for a prediction.

Each device runs the real shadow writer and the real inference service (device_code.inference) with the
real model (LiteRT) on its own local shadows, fed a reading every sample interval from the held-out replay
of its airport (airports in turn; every device sees the weather of the same hour, as a region's stations
do). Its MODEL_DIR is its model component's serving link, as on a core (infra/components.py: MODEL_DIR is
`<root>/work/<model component>/serving`, SERVING_LINK): a real symbolic link in a temporary folder of the
device's own. A model deployment on a device is what the recipes make of it:
- the nucleus downloads the new version while the old one serves;
- the new model component version's Startup is the self-test, `python -s -P -m device_code.selftest
  <artifact> --serve {work:path}/serving` (infra/components.py `_self_test_step`): on a pass it points the
  link at the new artifact (device_code.selftest.serve: a new link renamed over the old one), on a fail it
  leaves the link alone; three fails make the component BROKEN, the deployment fails, and the rollback
  starts the previous version again, whose Startup passes and points the link where it already pointed;
- the inference component depends on the model SOFT, on any of our versions (infra/components.py
  ANY_MODEL_VERSION; "SOFT – The component doesn't restart if the dependency changes state", component
  recipe reference, ComponentDependencies): no model deployment changes its version, stops or restarts it.
  Its heartbeat (InferenceService._refresh_model) loads the model the link names when the link has moved
  and re-predicts the current reading with it; a failed candidate is never served.
The self-test runs for real once per artifact (the CLI, with --serve to a scratch link); every device gets
its verdict after the assumed SELF_TEST_S, and on a pass its own link is moved with the real
device_code.selftest.serve.

Cost: the inference service predicts when a new reading reaches its weather shadow (the subscription path).
Of its heartbeat, every INFERENCE_INTERVAL_S from its start, only the ticks that can change something are
stepped: the first (it loads the model and subscribes) and the first at or after each move of the serving
link (it takes the new model). Every other tick finds the same link, the same input (the reading history and
the drift monitor ignore a reading twice) and its own rain shadow, and writes nothing, while stepping them
all costs six predictions per reading; RolloutSettings.every_heartbeat steps them all, and the tests check
that this changes no rain shadow update. Every time a reading or a heartbeat runs at is a multiple of
1/1024 s (PHASES), so their differences are exact in binary floating point: "within one reading" is `<=
sample_interval_seconds`, with no tolerance.

Each scenario runs on device_code.simulator.events' loop in a process of its own (the CLI runs as many at once
as there are CPUs): no thread, no sleep; the wall clock only measures the run.
"""
from __future__ import annotations

import argparse
import bisect
import json
import logging
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Callable

from device_code.config import INFERENCE_INTERVAL_S, MAX_INPUT_AGE_S, load_inference_config, load_shadow_writer_config
from device_code.contracts import RAIN_SHADOW, READINGS_TOPIC, Reading, format_timestamp, shadow_topic
from device_code.history import ReadingHistory
from device_code.inference import InferenceService
from device_code.model import RainModel, load_model, read_metadata
from device_code import selftest
from device_code.shadow_writer import ShadowWriter
from infra.config import MODEL_COMPONENT, SELF_TEST_TIMEOUT_SECONDS, SERVING_LINK, RainEdgeConfig, read_cdk_context
from infra.fleet_index import MODEL_FAULT, SILENT, SILENT_STATUSES
from infra.lifecycle.gate import SUCCEEDED, Decision, DeviceEvidence, GateSettings, decide
from infra.shadow_records import FAULT_STATUSES

from . import candidates
from .core import standalone_environment
from .events import EventLoop, ProcessPort, VirtualClock, VirtualGreengrass
from .fleet import ORIGINS, fleet_serial
from .replay import HOUR_S, Observation, load_test_period

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROMOTED_ARTIFACT = PROJECT_ROOT / "build" / "model" / "rain_model"

# ---- Greengrass and IoT Jobs facts, each with its source ------------------------------------------------------
# The self-test step's Timeout (infra/config.py: the recipe reference's Startup default, 120 s).
STARTUP_TIMEOUT_S = float(SELF_TEST_TIMEOUT_SECONDS)
# nucleus Lifecycle MAXIMUM_CONTINUAL_ERROR = 3: "ERRORED three times ... the component becomes BROKEN".
MAXIMUM_CONTINUAL_ERROR = 3
# nucleus DeploymentConfigMerger WAIT_SVC_START_POLL_INTERVAL_MILLISEC = 1000: how often the deployment
# checks that every component is RUNNING (then reports) after the merge.
DEPLOYMENT_POLL_S = 1.0
# IoT job execution statuses; a device that has not finished inProgressTimeoutInMinutes after IN_PROGRESS
# "is set to TIMED_OUT" (IoTJobTimeoutConfig); CancelJob without force cancels "only job executions with
# status QUEUED" (IoT API CancelJob).
QUEUED, IN_PROGRESS, FAILED, TIMED_OUT, CANCELED = "QUEUED", "IN_PROGRESS", "FAILED", "TIMED_OUT", "CANCELED"
# failureType ALL (infra/deployment.py): every kind of failure counts toward the abort threshold.
FAILURES = (FAILED, TIMED_OUT, "REJECTED")
# detailed-deployment-status (developer guide, Check deployment status).
FAILED_ROLLBACK_COMPLETE, FAILED_UNABLE_TO_ROLLBACK = "FAILED_ROLLBACK_COMPLETE", "FAILED_UNABLE_TO_ROLLBACK"

# ---- Assumed durations on a Pi (not measured on one; each bounded by the fact above it) -------------------
# From the job notification to the device's IN_PROGRESS.
JOB_PICKUP_S = 2.0
# The model zip (~76 KB) and recipes, fetched while the old version still runs ("download artifacts (old
# version still running) -> ... merge", nucleus update ordering).
DOWNLOAD_S = 10.0
# One run of the model component's Startup (python + numpy + LiteRT import, the golden rows): a default
# the CLI can change; the run prints what it measured on this machine.
SELF_TEST_S = 10.0
# The inference Lambda's start (lambda-launcher, import, model load) before its first heartbeat, once, when the
# device boots: no model deployment stops or starts it (its SOFT dependency on the model, see the docstring).
INFERENCE_START_S = 5.0
# The cloud side reads the rain shadow as ShadowManager syncs it (realTime: each update, no delay assumed).

# ---- The simulated release ----------------------------------------------------------------------------------
WARMUP_S = 600.0  # the fleet answers this long before the canary deployment: a baseline exists
SETTLE_S = 600.0  # the run goes on this long after the last deployment finished
# Each device's sampling second within the interval, and so its heartbeat's, is a multiple of 1/PHASES of
# the interval: with integer intervals every reading and heartbeat time is a multiple of 1/1024 s, and sums
# and differences of such times are exact in binary floating point.
PHASES = 1024
HISTORY_S = 25 * HOUR_S  # each device's reading history (its persisted file) holds a day: the trend model answers
CANARY_SHARE, MIN_CANARY = 0.1, 5
INVERTED, BROKEN, GOOD = "inverted", "broken", "good"
SCENARIOS = (INVERTED, BROKEN, GOOD)
GOOD_SLOPE_FACTOR, BROKEN_SLOPE_FACTOR = 1.05, 1.1

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Artifact:
    version: str
    folder: Path

    @classmethod
    def at(cls, folder: Path) -> Artifact:
        return cls(version=read_metadata(folder).version, folder=folder)


@dataclass(frozen=True, kw_only=True)
class Candidates:
    promoted: Artifact
    inverted: Artifact
    broken: Artifact
    good: Artifact

    @classmethod
    def written(cls, promoted: Path, into: Path) -> Candidates:
        """Each candidate made from the promoted artifact with device_code.simulator.candidates."""
        good = candidates.recalibrated(promoted, into / GOOD, GOOD_SLOPE_FACTOR)
        sharper = candidates.recalibrated(promoted, into / "sharper", BROKEN_SLOPE_FACTOR)
        return cls(promoted=Artifact.at(promoted), good=Artifact.at(good),
                   inverted=Artifact.at(candidates.recalibrated(promoted, into / INVERTED, -1.0)),
                   broken=Artifact.at(candidates.with_model_file_of(sharper, promoted, into / BROKEN)))

    def candidate(self, scenario: str) -> Artifact:
        return getattr(self, scenario)


@dataclass(frozen=True, kw_only=True)
class RolloutSettings:
    devices: int = 200
    canary: int | None = None  # None: CANARY_SHARE of the devices, at least MIN_CANARY
    bake_s: float
    seed: int = 0  # places each device's sampling second within the interval
    self_test_s: float = SELF_TEST_S
    # Step every heartbeat tick of every inference service, not only those after a link move (see the docstring).
    every_heartbeat: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.canary_count < self.devices:
            raise ValueError(f"{self.canary_count} canary devices of {self.devices}: each ring needs a device")
        if not 0 < self.self_test_s < STARTUP_TIMEOUT_S:
            raise ValueError(f"a self-test of {self.self_test_s} s does not end within the Startup timeout")

    @property
    def canary_count(self) -> int:
        return self.canary if self.canary is not None else max(MIN_CANARY, round(self.devices * CANARY_SHARE))


def project_config() -> RainEdgeConfig:
    """The configuration `cdk deploy` uses: cdk.json's context."""
    return RainEdgeConfig.from_context(read_cdk_context(PROJECT_ROOT))


@cache
def airport_periods() -> dict[str, list[Observation]]:
    return {origin: load_test_period(origin) for origin in ORIGINS}


def release_start(bake_s: float) -> datetime:
    """The earliest midnight (UTC) of the test period after a day of history from which it rains at every
    airport within the bake window: a window in which the rain-share check has rain to compare."""
    periods = airport_periods()
    first = max(rows[0].time for rows in periods.values()) + timedelta(seconds=HISTORY_S)
    day = first.replace(hour=0) + timedelta(days=1)
    while day < min(rows[-1].time for rows in periods.values()):
        window_end = day + timedelta(seconds=WARMUP_S + bake_s)
        if all(any(row.rain and day <= row.time < window_end for row in rows) for rows in periods.values()):
            return day
        day += timedelta(days=1)
    raise ValueError(f"no day of the test period has rain at every airport within {bake_s / HOUR_S:.1f} h")


class SelfTests:
    """The model component's Startup step, run for real once per artifact: `python -s -P -m
    device_code.selftest <artifact> --serve <link>` with the artifact's own code/ on PYTHONPATH
    (infra/components.py `_self_test_step`), the link a scratch one; every device then gets that verdict and,
    on a pass, moves its own serving link with device_code.selftest.serve."""

    def __init__(self) -> None:
        self.verdicts: dict[Path, tuple[bool, str, float]] = {}

    def passed(self, artifact: Artifact) -> bool:
        if artifact.folder not in self.verdicts:
            with tempfile.TemporaryDirectory(prefix="rainedge-selftest-") as scratch:
                link = Path(scratch) / SERVING_LINK
                began = time.perf_counter()
                result = subprocess.run([sys.executable, "-s", "-P", "-m", selftest.__name__, str(artifact.folder),
                                         "--serve", str(link)],
                                        env={**os.environ, "PYTHONPATH": str(artifact.folder / selftest.CODE_FOLDER)},
                                        capture_output=True, text=True, timeout=STARTUP_TIMEOUT_S)
                took = time.perf_counter() - began
                line = (result.stdout.strip().splitlines() or [result.stderr.strip()[-200:]])[-1]
                # The CLI's contract: the link names the artifact after a pass, and does not exist after a fail.
                served = link.is_symlink() and Path(os.path.realpath(link)) == artifact.folder.resolve()
                if served != (result.returncode == 0):
                    raise RuntimeError(f"self-test of {artifact.folder} exited {result.returncode} but the link "
                                       f"{'names' if served else 'does not name'} it: {line}")
            self.verdicts[artifact.folder] = (result.returncode == 0, line.replace(str(link), SERVING_LINK), took)
        return self.verdicts[artifact.folder][0]


@dataclass(frozen=True, kw_only=True)
class RainUpdate:
    """One rain shadow update as the cloud sees it."""

    at_s: float
    model_version: str | None
    prediction: bool
    raining: bool
    status: str | None


@dataclass(kw_only=True)
class Execution:
    """One device's execution of one deployment's IoT job."""

    thing_name: str
    status: str = QUEUED
    detail: str | None = None
    notified_s: float | None = None
    started_s: float | None = None
    finished_s: float | None = None


class Device:
    """One core: its shadows, its shadow writer and inference service, its model component's serving link, and
    the nucleus's part of a deployment."""

    def __init__(self, *, thing_name: str, ring: str, origin: str, loop: EventLoop, config: RainEdgeConfig,
                 settings: RolloutSettings, models: Callable[[Path], RainModel], self_tests: SelfTests,
                 running: Artifact, root: Path) -> None:
        self.thing_name, self.ring, self.origin = thing_name, ring, origin
        self.running = running  # the model component version the nucleus's configuration holds
        self._loop, self._config, self._settings = loop, config, settings
        self._models, self._self_tests = models, self_tests
        self._clock = VirtualClock(loop)
        self._observations = airport_periods()[origin]
        self._times = [row.time for row in self._observations]
        # <greengrass root>/work/<model component>/serving: the work folder is named by the component, not its
        # version, so every version's Startup moves the same link (infra/config.py SERVING_LINK).
        self.link = root / "work" / config.component_name(MODEL_COMPONENT) / SERVING_LINK
        self.link.parent.mkdir(parents=True)
        self.greengrass = VirtualGreengrass(loop)
        self.history = ReadingHistory(None)  # the persisted history file
        self.service: InferenceService | None = None
        self._inference_start_s = 0.0
        self._ticks: set[float] = set()  # heartbeat ticks scheduled (when not every tick is)
        self.heartbeats = 0
        self.updates: list[RainUpdate] = []
        self.link_moves: list[tuple[float, str]] = []  # (when, the version it names now), after the boot
        writer = ShadowWriter(load_shadow_writer_config(standalone_environment(thing_name)),
                              ProcessPort(self.greengrass), self._clock, lambda: 0.0)
        # The shadow writer's PUB_SUB event source on the readings topic, as the Lambda manager wires it.
        self.greengrass.bus.subscribe(READINGS_TOPIC, lambda topic, message: writer.handle(message))
        self.greengrass.bus.subscribe(shadow_topic(thing_name, RAIN_SHADOW, "update/documents"), self._synced)

    def boot(self) -> None:
        """The model component's Startup passed before the run (the link names the promoted model), the day of
        readings its history file holds, then its sensor every sample interval from a second of its own, and its
        inference function once the first reading is in the weather shadow."""
        selftest.serve(self.running.folder, self.link)
        now = self._clock.now()
        for row in self._observations[self._index(now - timedelta(seconds=HISTORY_S)):self._index(now)]:
            self.history.add(Reading(temperature=row.temperature, humidity=row.humidity, pressure=row.pressure,
                                     sampled_at=row.time), now)
        phase = zlib.crc32(f"{self._settings.seed}:{self.thing_name}".encode()) % PHASES / PHASES
        first_s = self._loop.now_s + phase * self._config.sample_interval_seconds
        self._loop.every(first_s, self._config.sample_interval_seconds, self._sample)
        self._inference_start_s = first_s + INFERENCE_START_S
        self._loop.at(self._inference_start_s, self._start_inference)

    def _index(self, moment: datetime) -> int:
        return bisect.bisect_right(self._times, moment)

    def _sample(self) -> bool:
        """The sensor's reading: the replayed hour it falls in (sea-level pressure, a station at 0 m)."""
        now = self._clock.now()
        row = self._observations[max(0, self._index(now) - 1)]
        self.greengrass.bus.publish(READINGS_TOPIC, {"temperature": row.temperature, "humidity": row.humidity,
                                                     "pressure": row.pressure, "sampled_at": format_timestamp(now)})
        return True

    def _synced(self, topic: str, documents: dict) -> None:
        reported = documents["current"]["state"]["reported"]
        prediction = reported.get("probability") is not None
        self.updates.append(RainUpdate(at_s=self._loop.now_s, model_version=reported.get("model_version"),
                                       prediction=prediction, raining=prediction and bool(reported["raining"]),
                                       status=reported.get("status")))

    # ---- the inference component's process: started once, never stopped by a model deployment ----
    def _start_inference(self) -> None:
        environment = standalone_environment(self.thing_name, self.link, **{
            INFERENCE_INTERVAL_S: str(self._config.inference_interval_seconds),
            MAX_INPUT_AGE_S: str(self._config.max_input_age_seconds)})
        self.service = InferenceService(load_inference_config(environment), ProcessPort(self.greengrass), self._clock,
                                        self._models, self.history)
        if self._settings.every_heartbeat:
            self._loop.every(self._inference_start_s, self._config.inference_interval_seconds,
                             lambda: self._heartbeat() or True)
        else:
            self._heartbeat()

    def _heartbeat(self) -> None:
        self.heartbeats += 1
        self.service.heartbeat()

    def _heartbeat_from(self, time_s: float) -> None:
        """Step the heartbeat at its first tick at or after `time_s`: the ticks run every inference interval
        from the function's start (runtime.LongLivedLoop: a fixed rate)."""
        if self._settings.every_heartbeat or self.service is None:  # stepped anyway / its start loads the link
            return
        start_s, interval_s = self._inference_start_s, self._config.inference_interval_seconds
        tick_s = start_s + math.ceil((time_s - start_s) / interval_s) * interval_s
        while tick_s < time_s:
            tick_s += interval_s
        if tick_s not in self._ticks:
            self._ticks.add(tick_s)
            self._loop.at(tick_s, self._heartbeat)

    def serving(self) -> str | None:
        """The version the inference service answers with now."""
        return self.service.model.metadata.version if self.service and self.service.model else None

    def link_names(self) -> Path:
        return Path(os.path.realpath(self.link))

    # ---- the nucleus applying a deployment ----
    def apply(self, artifact: Artifact, report: Callable[[str, str | None], None]) -> None:
        """Download (the old model serves), then the new model component version's Startup; on BROKEN the
        rollback starts the previous version again. The inference component is not touched: its SOFT dependency
        on the model does not restart it, and its own version did not change."""
        if artifact == self.running:  # nothing changes: every component is RUNNING at the next check
            self._loop.after(DEPLOYMENT_POLL_S, lambda: report(SUCCEEDED, None))
            return
        previous = self.running
        rolled_back = lambda: self._startup(previous, 1, passed=lambda: report(FAILED, FAILED_ROLLBACK_COMPLETE),  # noqa: E731
                                            broken=lambda: report(FAILED, FAILED_UNABLE_TO_ROLLBACK))
        self._loop.after(DOWNLOAD_S, lambda: self._startup(artifact, 1, passed=lambda: report(SUCCEEDED, None),
                                                           broken=rolled_back))

    def _startup(self, artifact: Artifact, attempt: int, *, passed: Callable[[], None],
                 broken: Callable[[], None]) -> None:
        """The model component's Startup, the self-test: on a pass it points the serving link at `artifact` as it
        exits, and the next deployment check finds every component RUNNING; each failure is ERRORED and leaves
        the link alone, the third is BROKEN."""
        self.running = artifact
        ok = self._self_tests.passed(artifact)

        def ended() -> None:
            if ok:
                moved = self.link_names() != artifact.folder.resolve()
                selftest.serve(artifact.folder, self.link)
                if moved:
                    self.link_moves.append((self._loop.now_s, artifact.version))
                    self._heartbeat_from(self._loop.now_s)
                self._loop.after(DEPLOYMENT_POLL_S, passed)
            elif attempt < MAXIMUM_CONTINUAL_ERROR:
                self._startup(artifact, attempt + 1, passed=passed, broken=broken)
            else:
                broken()
        self._loop.after(self._settings.self_test_s, ended)

    # ---- what the cloud knows ----
    def evidence(self, execution: Execution | None, start_s: float, end_s: float) -> DeviceEvidence:
        window = [update for update in self.updates if start_s <= update.at_s < end_s]
        last = next((update for update in reversed(self.updates) if update.at_s < end_s), None)
        status = last.status if last else None
        failing = tuple(query.purpose for query, statuses in ((SILENT, SILENT_STATUSES), (MODEL_FAULT, FAULT_STATUSES))
                        if status in statuses)
        return DeviceEvidence(thing_name=self.thing_name, model_version=last.model_version if last else None,
                              deployment_status=execution.status if execution else None, failing=failing,
                              updates=len(window), predictions=sum(update.prediction for update in window),
                              raining=sum(update.raining for update in window))

    def prediction_gap(self, end_s: float) -> float:
        """The longest time between two rain shadow updates carrying a prediction, from the first to `end_s`."""
        times = [update.at_s for update in self.updates if update.prediction] + [end_s]
        return max(later - earlier for earlier, later in zip(times, times[1:])) if len(times) > 1 else end_s

    def takeovers(self) -> list[float]:
        """For each move of the serving link, how long until the rain shadow carried a prediction of the model it
        names (inf when it never did)."""
        delays = []
        for moved_s, version in self.link_moves:
            first = next((update.at_s for update in self.updates
                          if update.at_s >= moved_s and update.prediction and update.model_version == version), None)
            delays.append(first - moved_s if first is not None else float("inf"))
        return delays


class DeploymentJob:
    """The IoT job of one ring deployment revision: exponential rollout, abort criteria, in-progress timeout
    (RainEdgeConfig's rollout_* / abort_* / deployment_timeout_minutes, as infra/deployment.py `rollout`)."""

    def __init__(self, *, name: str, artifact: Artifact, devices: list[Device], loop: EventLoop,
                 config: RainEdgeConfig) -> None:
        self.name, self.artifact, self._devices, self._loop, self._config = name, artifact, devices, loop, config
        self.executions = {device.thing_name: Execution(thing_name=device.thing_name) for device in devices}
        self.created_s = loop.now_s
        self.cancelled_s: float | None = None
        self.cancel_reason = ""
        self.minutes: list[tuple[float, int]] = []  # (minute start, devices it may notify)
        self._waiting = list(devices)
        loop.every(loop.now_s, 60.0, self._minute)

    @classmethod
    def succeeded(cls, *, name: str, artifact: Artifact, devices: list[Device], loop: EventLoop,
                  config: RainEdgeConfig) -> DeploymentJob:
        """A revision every device of the ring applied before the run."""
        job = cls(name=name, artifact=artifact, devices=[], loop=loop, config=config)
        job.executions = {device.thing_name: Execution(thing_name=device.thing_name, status=SUCCEEDED)
                          for device in devices}
        return job

    def rate(self) -> int:
        """Devices notified this minute: baseRatePerMinute, times incrementFactor for each
        numberOfSucceededThings devices that succeeded, at most maximumPerMinute (IoTJobExponentialRolloutRate)."""
        config = self._config
        steps = self.count(SUCCEEDED) // config.rollout_increase_after_succeeded
        return min(config.rollout_maximum_per_minute,
                   int(config.rollout_base_rate_per_minute * config.rollout_increment_factor ** steps))

    def count(self, *statuses: str) -> int:
        return sum(execution.status in statuses for execution in self.executions.values())

    def _minute(self) -> bool:
        if self.cancelled_s is not None or not self._waiting:
            return False
        rate = self.rate()
        self.minutes.append((self._loop.now_s, rate))
        batch, self._waiting = self._waiting[:rate], self._waiting[rate:]
        for position, device in enumerate(batch):  # spread over the minute
            self._loop.after(position * 60.0 / rate, lambda device=device: self._notify(device))
        return True

    def _notify(self, device: Device) -> None:
        execution = self.executions[device.thing_name]
        if execution.status == QUEUED:
            execution.notified_s = self._loop.now_s
            self._loop.after(JOB_PICKUP_S, lambda: self._start(device, execution))

    def _start(self, device: Device, execution: Execution) -> None:
        if execution.status != QUEUED:  # cancelled before the device took it
            return
        execution.status, execution.started_s = IN_PROGRESS, self._loop.now_s
        self._loop.after(self._config.deployment_timeout_minutes * 60.0,
                         lambda: self._finish(execution, TIMED_OUT, None))
        device.apply(self.artifact, lambda status, detail: self._finish(execution, status, detail))

    def _finish(self, execution: Execution, status: str, detail: str | None) -> None:
        if execution.status != IN_PROGRESS:  # timed out before the device reported, or already reported
            return
        execution.status, execution.detail, execution.finished_s = status, detail, self._loop.now_s
        executed, failed = self.count(*FAILURES, SUCCEEDED, IN_PROGRESS), self.count(*FAILURES)
        # IoTJobAbortCriteria: minNumberOfExecutedThings "receive the configuration before the job can cancel",
        # thresholdPercentage "The minimum percentage of failureType failures".
        if (executed >= self._config.abort_min_executed_things
                and 100.0 * failed / executed >= self._config.abort_threshold_percentage):
            self.cancel(f"aborted: {failed} of {executed} executions failed")

    def cancel(self, reason: str) -> None:
        """CANCEL: executions still QUEUED never run; IN_PROGRESS and finished ones keep what they have."""
        if self.cancelled_s is not None:
            return
        self.cancelled_s, self.cancel_reason = self._loop.now_s, reason
        for execution in self.executions.values():
            if execution.status == QUEUED:
                execution.status = CANCELED

    def done(self) -> bool:
        return self.count(QUEUED, IN_PROGRESS) == 0

    def finished(self, status: str) -> list[Execution]:
        return sorted((execution for execution in self.executions.values() if execution.status == status
                       and execution.finished_s is not None), key=lambda execution: execution.finished_s)


@dataclass(frozen=True, kw_only=True)
class RingSummary:
    ring: str
    devices: int
    on_promoted: int
    on_candidate: int
    statuses: dict[str, int]
    max_gap_s: float
    within_interval: bool  # max_gap_s <= sample_interval_seconds
    link_moves: int  # moves of the devices' serving links during the run (after the boot)
    max_takeover_s: float | None  # the longest from a link move to a prediction of the model it names
    serving_running: bool  # every device answers with the model its link names, the version its nucleus holds


@dataclass(kw_only=True)
class ScenarioRun:
    scenario: str
    candidate: str
    promoted: str
    devices: int
    canary: int
    bake_s: float
    start: str
    self_test: str = ""
    timeline: list[tuple[float, str]] = field(default_factory=list)
    decision: Decision | None = None
    rings: list[RingSummary] = field(default_factory=list)
    checks: list[tuple[str, bool]] = field(default_factory=list)
    jobs: dict[str, DeploymentJob] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def ok(self) -> bool:
        return all(passed for _, passed in self.checks)

    def lines(self) -> list[str]:
        lines = [f"== {self.scenario} candidate {self.candidate} (promoted {self.promoted}): {self.devices} devices, "
                 f"{self.canary} canary, bake {self.bake_s / HOUR_S:g} h from {self.start}",
                 f"   self-test of the candidate: {self.self_test}",
                 "   virtual time  event"]
        lines += [f"   {_clock(at_s):>12}  {text}" for at_s, text in self.timeline]
        lines.append(f"   {'ring':<8}{'devices':>8}{'promoted':>9}{'candidate':>10}  {'deployment statuses':<36}"
                     f"{'max gap':>9}{'<= 1 reading':>13}{'link moves':>11}{'takeover':>9}")
        for ring in self.rings:
            statuses = ", ".join(f"{status} {count}" for status, count in sorted(ring.statuses.items()))
            takeover = f"{ring.max_takeover_s:.2f}s" if ring.max_takeover_s is not None else "-"
            lines.append(f"   {ring.ring:<8}{ring.devices:>8}{ring.on_promoted:>9}{ring.on_candidate:>10}  "
                         f"{statuses:<36}{ring.max_gap_s:>8.2f}s{'yes' if ring.within_interval else 'NO':>13}"
                         f"{ring.link_moves:>11}{takeover:>9}")
        lines.append("   (promoted/candidate: the model each device's inference answers with at the end; max gap: the "
                     "longest wait for a prediction; takeover: from a link move to the first prediction of its model)")
        lines += [f"   [{'ok' if passed else 'FAILED'}] {text}" for text, passed in self.checks]
        lines.append(f"   run: {self.wall_s:.1f} s wall, {self.cpu_s:.1f} s CPU")
        return lines

    def record(self) -> dict:
        return {"scenario": self.scenario, "candidate": self.candidate, "promoted": self.promoted,
                "devices": self.devices, "canary": self.canary, "bake_s": self.bake_s, "start": self.start,
                "self_test": self.self_test, "timeline": self.timeline,
                "decision": self.decision.record() if self.decision else None,
                "rings": [asdict(ring) for ring in self.rings], "checks": self.checks,
                "wall_s": self.wall_s, "cpu_s": self.cpu_s}


def _clock(at_s: float) -> str:
    hours, rest = divmod(round(at_s), 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


class Release:
    """Both rings of one run: their devices, their deployments, and what happened when."""

    def __init__(self, *, scenario: str, artifacts: Candidates, settings: RolloutSettings,
                 config: RainEdgeConfig, self_tests: SelfTests) -> None:
        self.config, self.settings, self.self_tests = config, settings, self_tests
        self.promoted, self.candidate = artifacts.promoted, artifacts.candidate(scenario)
        self.loop = EventLoop(release_start(settings.bake_s))
        loaded: dict[str, RainModel] = {}

        def models(model_dir: Path) -> RainModel:
            """The real load_model once per artifact folder the link resolves to: every device of this process
            runs the same bytes."""
            folder = os.path.realpath(model_dir)
            if folder not in loaded:
                loaded[folder] = load_model(Path(folder))
            return loaded[folder]
        # Each device's Greengrass root (its serving link lives there), removed with the Release.
        self._roots = tempfile.TemporaryDirectory(prefix="rainedge-rollout-")
        self.devices = [Device(thing_name=f"{config.name_prefix}-{fleet_serial(index)}",
                               ring=config.canary_group_name if index < settings.canary_count
                               else config.thing_group_name,
                               origin=ORIGINS[index % len(ORIGINS)], loop=self.loop, config=config, settings=settings,
                               models=models, self_tests=self.self_tests, running=self.promoted,
                               root=Path(self._roots.name) / fleet_serial(index))
                        for index in range(settings.devices)]
        self.jobs = {ring: DeploymentJob.succeeded(name=f"{ring} {self.promoted.version}", artifact=self.promoted,
                                                   devices=self.ring(ring), loop=self.loop, config=config)
                     for ring in config.thing_group_names}
        self.run = ScenarioRun(scenario=scenario, candidate=self.candidate.version, promoted=self.promoted.version,
                               devices=settings.devices, canary=settings.canary_count, bake_s=settings.bake_s,
                               start=self.loop.start.isoformat())

    def ring(self, group: str) -> list[Device]:
        return [device for device in self.devices if device.ring == group]

    def note(self, text: str) -> None:
        self.run.timeline.append((self.loop.now_s, text))

    def deploy(self, group: str, artifact: Artifact, what: str) -> DeploymentJob:
        """A new revision of the ring's deployment: "the status of the previous revision's AWS IoT job changes to
        CANCELLED" (developer guide, Check deployment status)."""
        self.jobs[group].cancel("a new revision")
        job = DeploymentJob(name=f"{what} {artifact.version}", artifact=artifact, devices=self.ring(group),
                            loop=self.loop, config=self.config)
        self.jobs[group] = self.run.jobs[what] = job
        self.note(f"{what} deployment created: {artifact.version} to {len(job.executions)} devices")
        self.loop.run_until(float("inf"), done=job.done)
        succeeded, failed = job.finished(SUCCEEDED), job.finished(FAILED)
        for label, executions in (("updated", succeeded), ("failed and rolled back", failed)):
            if executions:
                self.run.timeline.append((executions[0].finished_s, f"first {what} device {label}: "
                                                                    f"{executions[0].thing_name}"))
                self.run.timeline.append((executions[-1].finished_s, f"last {what} device {label} "
                                                                     f"({len(executions)}): {executions[-1].thing_name}"))
        if job.cancelled_s is not None:
            self.run.timeline.append((job.cancelled_s, f"{what} job {job.cancel_reason}; "
                                                       f"{job.count(CANCELED)} devices never get it"))
        self.run.timeline.sort(key=lambda entry: entry[0])
        self.note(f"{what} job done: " + ", ".join(f"{status} {job.count(status)}" for status in
                                                    (SUCCEEDED, FAILED, TIMED_OUT, CANCELED) if job.count(status)))
        return job

    def gate(self, bake_start_s: float) -> Decision:
        """infra.lifecycle.gate.decide over the bake window, every canary device against every fleet device, as
        `make promote` decides (infra.lifecycle.promote `evaluate`)."""
        self.loop.run_until(bake_start_s + self.settings.bake_s)
        self.note(f"bake window ends ({self.settings.bake_s / HOUR_S:g} h)")
        end_s = self.loop.now_s

        def evidence(devices: list[Device]) -> list[DeviceEvidence]:
            return [device.evidence(self.jobs[device.ring].executions.get(device.thing_name), bake_start_s, end_s)
                    for device in devices]
        decision = decide(candidate=self.candidate.version, promoted=self.promoted.version,
                          canary=evidence(self.ring(self.config.canary_group_name)),
                          fleet=evidence(self.ring(self.config.thing_group_name)), baked_s=end_s - bake_start_s,
                          settings=replace(GateSettings.of(self.config), bake_s=self.settings.bake_s))
        self.note(f"gate: {decision.line()}")
        self.run.decision = decision
        return decision

    def execute(self) -> ScenarioRun:
        began_wall, began_cpu = time.perf_counter(), time.process_time()
        # Every device ran the promoted version's Startup before the run: it passed, and its link names it.
        if not self.self_tests.passed(self.promoted):
            raise RuntimeError(f"the promoted model fails its self-test: {self.self_tests.verdicts[self.promoted.folder][1]}")
        for device in self.devices:
            device.boot()
        self.loop.run_until(WARMUP_S)
        canary, fleet = self.config.canary_group_name, self.config.thing_group_name
        self.deploy(canary, self.candidate, "canary")
        if self.gate(self.loop.now_s).promote:
            self.deploy(fleet, self.candidate, "fleet")
        else:
            self.deploy(canary, self.promoted, "rollback")
        end_s = self.loop.run_until(self.loop.now_s + SETTLE_S)
        self.note("run ends")
        verdict = self.self_tests.verdicts[self.candidate.folder]
        self.run.self_test = (f"{'passed' if verdict[0] else 'failed'} in {verdict[2]:.1f} s here "
                              f"(a Pi assumed {self.settings.self_test_s:g} s): {verdict[1]}")
        self.run.rings = [self._summary(group, end_s) for group in (canary, fleet)]
        self.run.checks = expected_outcomes(self)
        self.run.wall_s, self.run.cpu_s = time.perf_counter() - began_wall, time.process_time() - began_cpu
        return self.run

    def _summary(self, group: str, end_s: float) -> RingSummary:
        devices, job = self.ring(group), self.jobs[group]
        gap = max(device.prediction_gap(end_s) for device in devices)
        statuses: dict[str, int] = {}
        for execution in job.executions.values():
            key = execution.detail or execution.status
            statuses[key] = statuses.get(key, 0) + 1
        takeovers = [delay for device in devices for delay in device.takeovers()]
        return RingSummary(ring="canary" if group == self.config.canary_group_name else "fleet", devices=len(devices),
                           on_promoted=sum(device.serving() == self.promoted.version for device in devices),
                           on_candidate=sum(device.serving() == self.candidate.version for device in devices),
                           statuses=statuses, max_gap_s=gap, within_interval=gap <= self.config.sample_interval_seconds,
                           link_moves=len(takeovers), max_takeover_s=max(takeovers, default=None),
                           serving_running=all(device.serving() == device.running.version
                                               and device.link_names() == device.running.folder.resolve()
                                               for device in devices))


def expected_outcomes(release: Release) -> list[tuple[str, bool]]:
    """What the rules call for in each scenario, checked on what the devices and jobs did."""
    run, config, candidate = release.run, release.config, release.candidate.version
    canary, fleet = release.ring(config.canary_group_name), release.ring(config.thing_group_name)
    decision = run.decision
    never_candidate = all(update.model_version != candidate for device in fleet for update in device.updates)
    checks = [(f"the {ring.ring} ring's rain shadows never waited longer than one reading "
               f"({config.sample_interval_seconds} s) for a prediction: at most {ring.max_gap_s:.2f} s",
               ring.within_interval) for ring in run.rings]
    checks += [(f"each {ring.ring} device's inference took the model its serving link moved to within one "
                f"heartbeat ({config.inference_interval_seconds} s) of the move ({ring.link_moves} moves)",
                ring.max_takeover_s is None or ring.max_takeover_s <= config.inference_interval_seconds)
               for ring in run.rings]
    checks.append(("every device answers with the model its serving link names, the version its nucleus runs",
                   all(ring.serving_running for ring in run.rings)))
    if run.scenario in (INVERTED, BROKEN):
        canary_names = {device.thing_name for device in canary}
        named = decision.reason.split(":")[0] in canary_names
        checks.append((f"the gate refuses, naming a canary device: {decision.reason}",
                       not decision.promote and named))
        checks.append(("no fleet device ever answered with the candidate", never_candidate))
        rollback = run.jobs.get("rollback")
        checks.append(("after the rollback every canary device answers with the promoted model and its deployment "
                       "SUCCEEDED", rollback is not None and rollback.count(SUCCEEDED) == len(canary)
                       and all(device.serving() == release.promoted.version for device in canary)))
    if run.scenario == INVERTED:
        checks.append(("the refusal is the rain-share check", "predicts rain" in decision.reason))
    if run.scenario == BROKEN:
        job = run.jobs["canary"]
        received = [execution for execution in job.executions.values() if execution.started_s is not None]
        checks.append((f"every canary device that got the candidate was rolled back ({len(received)})",
                       all(execution.detail == FAILED_ROLLBACK_COMPLETE for execution in received)))
        notified_after = [execution for execution in job.executions.values()
                          if execution.notified_s is not None and execution.notified_s > (job.cancelled_s or 0)]
        checks.append((f"the canary job aborted; no device was notified after it ({job.count(CANCELED)} never got "
                       "the candidate)", job.cancelled_s is not None and not notified_after))
        checks.append(("every canary device answered with the promoted model throughout (the failed candidate never "
                       "moved a serving link)", all(update.model_version in (None, release.promoted.version)
                                                    for device in canary for update in device.updates)
                       and not any(device.link_moves for device in canary)))
    if run.scenario == GOOD:
        job = run.jobs.get("fleet")
        checks.append((f"the gate promotes: {decision.reason}", decision.promote))
        checks.append(("every fleet device answers with the candidate and its deployment SUCCEEDED",
                       job is not None and job.count(SUCCEEDED) == len(fleet) and job.cancelled_s is None
                       and all(device.serving() == candidate for device in release.devices)))
    return checks


def run_scenario(scenario: str, artifacts: Candidates, settings: RolloutSettings, *,
                 config: RainEdgeConfig | None = None, self_tests: SelfTests | None = None) -> ScenarioRun:
    """One release of the scenario's candidate; `self_tests` keeps the verdicts across runs."""
    return Release(scenario=scenario, artifacts=artifacts, settings=settings, config=config or project_config(),
                   self_tests=self_tests or SelfTests()).execute()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m device_code.simulator.rollout",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--canary", type=int, default=None,
                        help=f"canary devices (default {CANARY_SHARE:.0%} of the devices, at least {MIN_CANARY})")
    parser.add_argument("--bake-hours", type=float, default=None, help="default: the configuration's bakeMinutes")
    parser.add_argument("--self-test-seconds", type=float, default=SELF_TEST_S,
                        help="one run of the self-test on a device (assumed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every-heartbeat", action="store_true",
                        help="step every inference heartbeat, not only the first after each serving link move")
    parser.add_argument("--scenario", choices=SCENARIOS, action="append", help="default: all three")
    parser.add_argument("--json", type=Path, help="also write every scenario's record here")
    args = parser.parse_args(argv)
    config = project_config()
    bake_s = args.bake_hours * HOUR_S if args.bake_hours is not None else config.bake_minutes * 60.0
    try:
        settings = RolloutSettings(devices=args.devices, canary=args.canary, bake_s=bake_s, seed=args.seed,
                                   self_test_s=args.self_test_seconds, every_heartbeat=args.every_heartbeat)
    except ValueError as error:
        parser.error(str(error))
    scenarios = args.scenario or list(SCENARIOS)
    began_wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rainedge-candidates-") as scratch:
        artifacts = Candidates.written(PROMOTED_ARTIFACT, Path(scratch))
        # One process a scenario, as many at once as there are CPUs: the scenarios share nothing.
        with ProcessPoolExecutor(max_workers=min(len(scenarios), os.cpu_count() or 1)) as pool:
            reports = list(pool.map(_report, scenarios, [artifacts] * len(scenarios), [settings] * len(scenarios)))
    for lines, _, _ in reports:
        print("\n".join(lines))
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"all scenarios: {time.perf_counter() - began_wall:.1f} s wall on {os.cpu_count()} CPUs, "
          f"{time.process_time() + children.ru_utime + children.ru_stime:.1f} s CPU (self-tests included)")
    if args.json:
        args.json.write_text(json.dumps([record for _, record, _ in reports], indent=2, default=str) + "\n")
    return 0 if all(ok for _, _, ok in reports) else 1


def _report(scenario: str, artifacts: Candidates, settings: RolloutSettings) -> tuple[list[str], dict, bool]:
    run = run_scenario(scenario, artifacts, settings)
    return run.lines(), run.record(), run.ok()


if __name__ == "__main__":
    raise SystemExit(main())
