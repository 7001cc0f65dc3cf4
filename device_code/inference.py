"""Pinned Lambda `inference`: the `weather` shadow -> rain model -> the `rain` shadow.

The models are loaded from MODEL_DIR (LiteRT preferred, TensorFlow fallback), and again whenever
MODEL_DIR comes to resolve elsewhere: on a device it is the model component's serving link, which only a
passed self-test moves, so a new model takes over between two predictions and the function never stops
for an update. A prediction follows each new reading within milliseconds because the function listens on
the weather shadow's local `update/documents` topic; every INFERENCE_INTERVAL_S a heartbeat re-reads the
shadow, which catches a missed event, notices when the input grows stale, follows the serving link and
retries a model that failed to load.
When no prediction can be made, the `rain` shadow gets a `status` saying why, and the loop goes on.
Like `sensor`, the long-lived part starts at import under Greengrass, on its own thread.

The rain shadow is this device's: it says what the device last concluded, and nothing else. An
outcome is written when it is new (the first after a start always is), and each heartbeat reads the
shadow back: when it holds anything but what the device last wrote (a write from the cloud, synced
down; a key someone added; a deleted shadow), the current outcome is written again, with every key
the device did not write removed. An outcome that does not change is not rewritten.

Every valid reading it sees (from either path) goes into its reading history (device_code.history,
persisted in HISTORY_FILE, so a restart keeps it). The models take the sea-level pressure the
shadow writer computed: the trend model when the history covers its window, the instantaneous
model otherwise; the rain shadow's `model` says which. Each also feeds the drift monitor
(device_code.drift), whose summary every rain shadow write carries as `drift`.

Each heartbeat also reads the `adaptation` shadow (device_code.adaptation_shadow): the station's own
adaptation, which the cloud asks for in its desired state, is checked against the model in force, applied to
every later prediction of the model it corrects (the rain shadow's `adaptation` names it, and `probability`,
`threshold` and `raining` are the adapted ones), and what is in force, or why an adaptation was rejected,
goes into the adaptation shadow's reported state. A new model re-checks it.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from . import runtime
from .config import InferenceConfig, load_inference_config
from .adaptation_shadow import GLOBAL_MODEL, REJECTED, AdaptationChoice, as_the_models_see_it, choose, predict
from .contracts import (ADAPTATION_SHADOW, RAIN_SHADOW, WEATHER_SHADOW, InvalidReading, format_timestamp, in_future,
                        parse_model_reading, reported_state, shadow_topic, update_to_hold, without_nulls)
from .functions import INFERENCE
from .drift import DriftMonitor
from .history import ReadingHistory
from .model import ModelUnavailable, RainModel, load_model
from .port import GreengrassPort, Message, PortError, ShadowNotFound

log = logging.getLogger(__name__)

# Every key of the rain shadow's reported state; each write sets all of them (null deletes), so a
# status never sits next to an old prediction and vice versa.
RAIN_KEYS = ("raining", "probability", "threshold", "model", "model_version", "runtime", "adaptation",
             "input_sampled_at", "predicted_at", "status", "detail", "checked_at", "drift")
STALE_INPUT, INVALID_INPUT, NO_INPUT = "stale_input", "invalid_input", "no_input"
MODEL_UNAVAILABLE, PREDICTION_FAILED = "model_unavailable", "prediction_failed"


@dataclass
class OwnedReport:
    """A shadow's reported state that only this device writes (all of the rain shadow's, the adaptation shadow's
    reported half): what it last wrote, for which outcome. It is written when the outcome is new, or when the shadow
    holds anything but that (a write from the cloud, synced down; a key someone added; a deleted shadow), every
    key the device did not write removed."""

    shadow: str
    outcome: tuple | None = None
    written: dict[str, Any] = field(default_factory=dict)

    def due(self, outcome: tuple, held: dict[str, Any] | None) -> bool:
        """`held`: the reported state read back from the shadow ({} when there is none), None when not read."""
        return outcome != self.outcome or (held is not None and without_nulls(held) != without_nulls(self.written))

    def write(self, port: GreengrassPort, thing: str, outcome: tuple, reported: dict[str, Any],
              held: dict[str, Any] | None) -> None:
        """Make the shadow hold `reported` and nothing else; a PortError is the caller's (nothing is recorded)."""
        update = update_to_hold(held if held is not None else self.written, reported)
        port.update_shadow(thing, self.shadow, {"state": {"reported": update}})
        self.outcome, self.written = outcome, reported


class InferenceService:
    def __init__(self, config: InferenceConfig, port: GreengrassPort, clock: runtime.Clock,
                 load: Callable[[Path], RainModel] = load_model, history: ReadingHistory | None = None) -> None:
        self.config, self._port, self._clock, self._load = config, port, clock, load
        self.history = history if history is not None else ReadingHistory(config.history_file)
        self.model: RainModel | None = None
        self.drift = DriftMonitor(None)
        self._model_error: str | None = None
        self._served: str | None = None  # where MODEL_DIR resolved when the model was loaded
        self._subscribed = False
        self._lock = threading.Lock()
        self._rain_report = OwnedReport(RAIN_SHADOW)
        self._newest_input: datetime | None = None
        self.adaptation: AdaptationChoice = GLOBAL_MODEL
        self._adaptation_report = OwnedReport(ADAPTATION_SHADOW)
        self.documents_topic = shadow_topic(config.thing_name, WEATHER_SHADOW, "update/documents")
        self.loop = runtime.LongLivedLoop("inference", self.heartbeat, config.inference_interval_s, clock, log)

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()

    def handle(self, event: object) -> dict:
        """An invocation makes sure the loop runs, and takes weather documents as an event source
        would deliver them (deduplicated with the subscription)."""
        self.start()
        if isinstance(event, dict) and "current" in event:
            self.on_weather_documents(self.documents_topic, event)
        return {"status": "running"}

    def heartbeat(self) -> None:
        self._refresh_model()
        self._refresh_adaptation()
        self._try_subscribe()
        try:
            document: Message | None = self._port.get_shadow(self.config.thing_name, WEATHER_SHADOW)
        except ShadowNotFound:
            document = None
        except PortError as error:
            log.error("could not read the weather shadow: %s", error)
            return None
        self.evaluate(document, read_back=True)
        return None

    def on_weather_documents(self, topic: str, message: Message) -> None:
        """Handler of `.../weather/update/documents`: {"previous", "current", "timestamp"}."""
        current = message.get("current") if isinstance(message, dict) else None
        self.evaluate(current if current is not None else message)

    def _refresh_model(self) -> None:
        """Load the model MODEL_DIR names when there is none yet or MODEL_DIR now resolves elsewhere (the model
        component's self-test moved its serving link to a model that passed). A new model that does not load
        leaves the one being served in place; it is tried again when the link moves once more."""
        served = os.path.realpath(self.config.model_dir)
        if self.model is not None and served == self._served:
            return
        try:
            model = self._load(self.config.model_dir)
        except ModelUnavailable as error:
            if self.model is None:
                self._model_error = str(error)
                log.error("model unavailable (retrying every %.0f s): %s", self.config.inference_interval_s, error)
            else:
                self._served = served
                log.error("the model at %s does not load, %s goes on serving: %s", served,
                          self.model.metadata.version, error)
            return
        with self._lock:
            self.model, self._served, self._model_error = model, served, None
            self.drift = DriftMonitor(model.metadata.baselines)
        log.info("inference: model %s on %s", model.metadata.version, model.runtime)

    def _refresh_adaptation(self) -> None:
        """Choose the adaptation in force from the adaptation shadow for the model in force, and report it when
        that changed or the reported state holds anything but what this device last wrote. A shadow that
        cannot be read leaves everything as it is; there is nothing to check an adaptation against without a model."""
        model = self.model
        if model is None:
            return
        try:
            document: Message | None = self._port.get_shadow(self.config.thing_name, ADAPTATION_SHADOW)
        except ShadowNotFound:
            document = None
        except PortError as error:
            log.error("could not read the adaptation shadow (%s stays in force): %s",
                      self.adaptation.in_force_id or "the global model", error)
            return
        version = model.metadata.version
        with self._lock:
            choice = choose(document, version, self.adaptation.in_force)
            if choice != self.adaptation:
                log.log(logging.WARNING if choice.status == REJECTED else logging.INFO, "adaptation %s: %s",
                        choice.status, choice.detail or choice.in_force_id or "the global model applies")
            self.adaptation = choice
        try:
            held = dict(reported_state(document))
        except InvalidReading:  # no shadow yet, or no reported state
            held = {}
        outcome = (choice.in_force_id, choice.status, choice.detail, version)
        if not self._adaptation_report.due(outcome, held):
            return
        try:
            self._adaptation_report.write(self._port, self.config.thing_name, outcome,
                                          choice.reported(version, self._clock.now()), held)
        except PortError as error:
            log.error("adaptation shadow update rejected (retried next heartbeat): %s", error)

    def _try_subscribe(self) -> None:
        if self._subscribed:
            return
        try:
            self._port.subscribe(self.documents_topic, self.on_weather_documents)
            self._subscribed = True
        except PortError as error:
            log.error("could not subscribe to %s (the heartbeat still predicts): %s", self.documents_topic, error)

    def evaluate(self, document: Any, read_back: bool = False) -> dict[str, Any] | None:
        """Predict from a weather shadow document (or None); write the outcome when it is new, or when
        (`read_back`: the heartbeat) the rain shadow holds anything but what this device last wrote."""
        with self._lock:
            if self.model is None and self._model_error is None:
                return None  # still loading: the heartbeat evaluates right after
            now = self._clock.now()
            reported, outcome_key = self._outcome(document, now)
            if reported is None:
                return None
            held = self._rain_shadow_held() if read_back else None
            if not self._rain_report.due(outcome_key, held):
                return None
            restoring = outcome_key == self._rain_report.outcome
            try:
                self._rain_report.write(self._port, self.config.thing_name, outcome_key, reported, held)
            except PortError as error:
                log.error("rain shadow update rejected: %s", error)
                return None
            if restoring:
                log.warning("the rain shadow held what this device did not write: restored")
            if reported["status"] is not None:
                log.warning("no prediction: %s (%s)", reported["status"], reported["detail"])
            return reported

    def _rain_shadow_held(self) -> dict[str, Any] | None:
        """The rain shadow's reported state ({} when there is none), None when it cannot be read."""
        try:
            return dict(reported_state(self._port.get_shadow(self.config.thing_name, RAIN_SHADOW)))
        except (ShadowNotFound, InvalidReading):  # deleted, or without a reported state
            return {}
        except PortError as error:
            log.error("could not read the rain shadow back (it is checked again next heartbeat): %s", error)
            return None

    def _outcome(self, document: Any, now: datetime) -> tuple[dict[str, Any] | None, tuple | None]:
        if self.model is None:
            return self._status(MODEL_UNAVAILABLE, self._model_error, None, now)
        if document is None:
            return self._status(NO_INPUT, "the weather shadow does not exist yet", None, now)
        try:
            state = reported_state(document)
            input_at_text = state.get("sampled_at")
            reading = parse_model_reading(state, now, self.model.metadata.valid_ranges)
        except InvalidReading as error:
            return self._status(INVALID_INPUT, str(error), None, now)
        # Late and repeated readings too: the history slots them in by time, or ignores them.
        self.history.add(reading, now)
        # Drift is of what the models see: a sensor offset an adaptation corrects is no drift.
        self.drift.add(as_the_models_see_it(reading, self.adaptation.in_force, self.model.metadata.version))
        newest = self._newest_input
        if newest is not None and not in_future(newest, now) and reading.sampled_at < newest:
            return None, None  # an event overtaken by a newer input: nothing to say
        self._newest_input = reading.sampled_at
        age_s = (now - reading.sampled_at).total_seconds()
        if age_s > self.config.max_input_age_s:
            return self._status(STALE_INPUT, f"input is {age_s:.0f} s old (MAX_INPUT_AGE_S="
                                f"{self.config.max_input_age_s:.0f})", input_at_text, now)
        try:
            prediction, adaptation_id = predict(self.model, reading, self.history.series(), self.adaptation.in_force)
        except Exception as error:  # a runtime failure must not end the loop
            return self._status(PREDICTION_FAILED, f"{type(error).__name__}: {error}", input_at_text, now)
        reported = dict.fromkeys(RAIN_KEYS)
        reported.update(raining=prediction.raining, probability=round(prediction.probability, 4),
                        threshold=prediction.threshold, model=prediction.model,
                        model_version=prediction.model_version, runtime=prediction.runtime,
                        adaptation=adaptation_id, input_sampled_at=input_at_text, predicted_at=format_timestamp(now),
                        drift=self.drift.summary())
        return reported, ("prediction", input_at_text, prediction.model_version, prediction.model, adaptation_id)

    def _status(self, status: str, detail: str | None, input_at: str | None,
                now: datetime) -> tuple[dict[str, Any], tuple]:
        reported = dict.fromkeys(RAIN_KEYS)
        reported.update(status=status, detail=detail, input_sampled_at=input_at, checked_at=format_timestamp(now),
                        drift=self.drift.summary())
        return reported, (status, input_at, detail if status != STALE_INPUT else None)


def build(context: runtime.FunctionContext) -> InferenceService:
    config = load_inference_config(context.environ)
    runtime.configure_logging(config.log_level)
    return InferenceService(config, context.port, context.clock)


host = runtime.FunctionHost(INFERENCE, build)


def handler(event, context):
    return host.get().handle(event)


if runtime.running_on_greengrass():
    host.start()
