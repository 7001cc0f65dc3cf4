"""The `adaptation` shadow: which per-station adaptation (device_code.adaptation) this device holds in force.

Its two halves have different owners ("desired: the state properties and values requested to be updated
in the device; reported: ... reported by the device", AWS IoT Developer Guide, "Device Shadow service
documents"):
- `desired` is the cloud's: `make adapt` writes {"adaptation": <the rainedge-adaptation/1 object as its
  canonical JSON text>}, and {"adaptation": null} to remove it. Text, not the object itself: the shadow
  service merges an update into the document object by object and removes every property an update sets
  to null (AWS IoT Developer Guide, "Device Shadow service data flow", deleting properties), so an
  adaptation whose holdout holds a null ROC-AUC would arrive without that key, and leftovers of an earlier
  one could stay merged in; one string is replaced whole, exactly as fitted. ShadowManager, syncing
  betweenDeviceAndCloud, "syncs all state changes for specified shadows, regardless of whether the changes
  occur in local shadow documents or in cloud shadow documents" (developer guide, "Sync local device
  shadows with AWS IoT Core"), so a cloud-side write reaches the local shadow without a deployment.
- `reported` is the device's: REPORTED_KEYS, what it holds in force and why. The device never writes
  `desired` (unlike the rain shadow, where everything is the device's and a cloud edit is undone).
The desired key and the reported keys differ, so the shadow always holds a delta; the device does not use
it: it reads the whole document every heartbeat.

What the device decides, for the desired state and the model version in force:
- no adaptation asked for (no shadow, no desired state, the key absent or null): the global model, "none";
- an adaptation that validate_adaptation accepts for that model: "applied";
- anything else (not an object, edited, out of bounds, fitted for another model): "rejected" with the
  reason, and the adaptation that was in force STAYS in force when it is still valid for the model in
  force; otherwise the global model applies. A broken delivery never takes a good adaptation away, and a
  model change never keeps one fitted for another model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Mapping

from .adaptation import (GLOBAL_FALLBACK, MAX_ADAPTATION_BYTES, apply_adaptation, canonical_json, offset_inputs,
                         validate_adaptation)
from .contracts import FEATURES, Reading, format_timestamp, shown
from .features import Series
from .model import Prediction, RainModel

ADAPTATION_KEY = "adaptation"  # the one key of the desired state
APPLIED, REJECTED, NONE = "applied", "rejected", "none"
# Every key of the reported state; each write sets all of them (null deletes).
# `offered` is the id of the desired adaptation the device last checked, so the cloud can tell a verdict on an
# earlier offer from one on the current one.
REPORTED_KEYS = ("in_force", "offered", "status", "detail", "model_version", "checked_at")
# A detail is one line, far below what the reported state can hold next to a 4 KiB desired adaptation
# within the shadow's 8 KB ("The device's shadow supports 8 KB of data only": AWS IoT Developer Guide,
# "Diagnosing problems with shadows"; desired and reported both count), which is also ShadowManager's
# default local limit (shadowDocumentSizeLimitBytes 8192, at most 30720: aws-greengrass-shadow-manager README).
MAX_DETAIL = 300


@dataclass(frozen=True)
class AdaptationChoice:
    """The adaptation in force (a validated adaptation, or None: the global model), and what the
    device says about the adaptation shadow's desired state."""

    in_force: Mapping[str, Any] | None
    status: str  # APPLIED | REJECTED | NONE
    detail: str | None
    offered_id: str | None = None  # the id the desired adaptation claims, when it names one

    @property
    def in_force_id(self) -> str | None:
        return self.in_force["id"] if self.in_force is not None else None

    def reported(self, model_version: str, now: datetime) -> dict[str, Any]:
        return {"in_force": self.in_force_id, "offered": self.offered_id, "status": self.status, "detail": self.detail,
                "model_version": model_version, "checked_at": format_timestamp(now)}


GLOBAL_MODEL = AdaptationChoice(None, NONE, None)


def desired_adaptation(document: Any) -> tuple[Any, str | None]:
    """What the desired state of an adaptation shadow document (None: no shadow) asks for: (the offered
    adaptation, None) with None for "no adaptation", or (None, the problem) when it cannot say."""
    if document is None:
        return None, None
    state = document.get("state") if isinstance(document, Mapping) else None
    if not isinstance(state, Mapping):
        return None, f"malformed shadow document: no state object in {shown(document)}"
    desired = state.get("desired")
    if desired is None:
        return None, None
    if not isinstance(desired, Mapping):
        return None, f"the desired state is {shown(desired)}; expected an object"
    return parse_adaptation_text(desired.get(ADAPTATION_KEY))


def adaptation_text(adaptation: Mapping[str, Any]) -> str:
    """How an adaptation travels in the desired state."""
    return canonical_json(adaptation)


def parse_adaptation_text(text: Any) -> tuple[Any, str | None]:
    """(the adaptation `text` holds, None), (None, None) for no text, or (None, the problem)."""
    if text is None:
        return None, None
    if not isinstance(text, str):
        return None, f"desired {ADAPTATION_KEY} is {shown(text)}; expected the adaptation's JSON text (make adapt)"
    if len(text.encode()) > MAX_ADAPTATION_BYTES:
        return None, f"desired {ADAPTATION_KEY} is {len(text.encode())} bytes; an adaptation is at most {MAX_ADAPTATION_BYTES}"
    try:
        adaptation = json.loads(text)
    except (ValueError, RecursionError):
        return None, f"desired {ADAPTATION_KEY} is not JSON text: {shown(text)}"
    return (adaptation, None) if adaptation is not None else (None, f"desired {ADAPTATION_KEY} is the JSON text null")


def choose(document: Any, model_version: str, in_force: Mapping[str, Any] | None) -> AdaptationChoice:
    """The adaptation in force once the device has read `document` (the local adaptation shadow, None
    when there is none) with model `model_version` in force, `in_force` before."""
    offered, problem = desired_adaptation(document)
    if offered is None and problem is None:
        return GLOBAL_MODEL
    problem = problem or validate_adaptation(offered, model_version)
    if problem is None:
        return AdaptationChoice(offered, APPLIED, None, offered["id"])
    kept = in_force if in_force is not None and validate_adaptation(in_force, model_version) is None else None
    offered_id = offered.get("id") if isinstance(offered, Mapping) and isinstance(offered.get("id"), str) else None
    named = f"adaptation {shown(offered_id)}: " if offered_id is not None else ""
    reason = problem.removesuffix(f": {GLOBAL_FALLBACK}")
    outcome = f"{kept['id']} stays in force" if kept is not None else GLOBAL_FALLBACK
    return AdaptationChoice(kept, REJECTED, shown_line(f"{named}{reason}; {outcome}"), offered_id and shown_line(offered_id))


def shown_line(text: str) -> str:
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL - 1] + "…"


def as_the_models_see_it(reading: Reading, adaptation: Mapping[str, Any] | None, model_version: str) -> Reading:
    """The reading corrected by the adaptation's input offsets; as it is without one, or under one fitted for
    another model than `model_version` (one the device has not yet re-checked after a model change)."""
    if adaptation is None or adaptation["model_version"] != model_version:
        return reading
    corrected = offset_inputs(adaptation, {name: getattr(reading, name) for name in FEATURES})
    return replace(reading, **{name: float(value) for name, value in corrected.items()})


def predict(model: RainModel, reading: Reading, history: Series,
            adaptation: Mapping[str, Any] | None) -> tuple[Prediction, str | None]:
    """The prediction for `reading` (sea-level pressure: what the models take) with `history` before it,
    and the id of the adaptation it was made under (None: the global model's own). Under an adaptation of
    this model version, as model_training.evaluate scores it: the models see the reading and its history
    corrected by the adaptation's input offsets, and a prediction of the model it corrects is recalibrated
    and cut at its threshold."""
    if adaptation is None or adaptation["model_version"] != model.metadata.version:
        return model.predict(reading, history), None
    corrected = as_the_models_see_it(reading, adaptation, model.metadata.version)
    corrected_history = offset_inputs(adaptation, {name: getattr(history, name) for name in FEATURES})
    prediction = model.predict(corrected, Series(history.at, **corrected_history))
    if prediction.model != adaptation["model"]:
        return prediction, adaptation["id"]
    probability = float(apply_adaptation(adaptation, prediction.probability,
                                         {name: getattr(corrected, name) for name in FEATURES})[0])
    threshold = float(adaptation["threshold"])
    return (replace(prediction, probability=probability, threshold=threshold, raining=probability >= threshold),
            adaptation["id"])
