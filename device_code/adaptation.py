"""A per-station adaptation of the global rain model: its JSON schema, its check and its formula.

numpy and the device contracts only (no TensorFlow, no scikit-learn): the device validates and applies it;
model_training fits it (model_training.adapt).

    x_i = reading_i + offset_i
    p' = sigmoid(a * logit(p) + b + sum_i c_i * (x_i - mean_i) / scale_i)

where x_i is a reading's temperature (degC), humidity (%RH) and (sea-level) pressure (hPa) corrected by
the station's input offsets (its sensor against a nearby reference station: a warm box, a wrong altitude),
p the probability the artifact's models (version `model_version`) give for the corrected reading and its
corrected history, whichever model serves it. The offsets apply to every prediction; a and b, c_i and the
threshold to those of the model `model` only. a and b recalibrate the
global model for this station; the c_i correct what the global model gets wrong about this station's
inputs (a sensor that reads warm, a pressure reduced with the wrong altitude). a = 1, b = c_i = 0 is
the global model itself. A reading is "raining" when p' >= `threshold`, the station's own cut-off.

Format "rainedge-adaptation/1", one JSON object:
    format          "rainedge-adaptation/1"
    id              "sha256:" + the first 16 hex digits of SHA-256 over the canonical JSON of every
                    other field (sorted keys, no spaces): names the adaptation and reveals an edit
    model_version   the artifact's metadata.json "version" it was fitted for; any other model is a
                    different function, so a mismatch means: use the global model
    model           which of the artifact's models it corrects: "instantaneous" or "trend"
    units           the readings' units (device_code.contracts.UNITS)
    input_offsets   {"temperature": .., "humidity": .., "pressure": ..}: added to every reading (and its
                    history) before the models see it; 0 where the station's sensor needs no correction
    coefficients    {"logit": a, "intercept": b, "temperature": c, "humidity": c, "pressure": c}
    input_means, input_scales
                    {"temperature": .., "humidity": .., "pressure": ..}: the standardisation
    threshold       the decision cut-off on p', within (0, 1)
    regularisation  the L2 weight that pulled (a, b, c) towards the global model (1, 0, 0) when fitting
    fitted_rows, fitted_rain_rows
                    how many labelled readings (rainy ones) it was fitted on
    holdout         how it did on the held-out last part of those readings, against the global model:
                    {"fraction", "rows", "rain_rows", "log_loss_global", "log_loss_adapted",
                     "roc_auc_global", "roc_auc_adapted", "f1_global", "f1_adapted",
                     "ece_global", "ece_adapted"}
    csv_sha256      the SHA-256 of the CSV it was fitted on
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

import numpy as np

from .contracts import FEATURES, MODEL_INPUT_RANGES, UNITS, finite_number, shown
from .model import INSTANTANEOUS, TREND

FORMAT = "rainedge-adaptation/1"
MODELS = (INSTANTANEOUS, TREND)
COEFFICIENTS = ("logit", "intercept", *FEATURES)
# Probabilities are clipped this far from 0 and 1 before the logit: a float32 sigmoid saturates to
# exactly 0 or 1, whose logit is infinite.
PROBABILITY_EPSILON = 1e-6
# Bounds a fitted adaptation stays far inside; beyond them it is broken or not ours. The logit
# coefficient must stay positive: a negative one would turn the global model's ranking upside down.
LOGIT_COEFFICIENT_RANGE = (0.05, 5.0)
MAX_ABS_INTERCEPT = 10.0
MAX_ABS_INPUT_COEFFICIENT = 5.0
# An input's spread at one station: from a nearly constant reading to the whole sensor range.
INPUT_SCALE_RANGE = (1e-3, 500.0)
# Small enough for a shadow document (8 KiB) with room to spare.
MAX_ADAPTATION_BYTES = 4096
# What a mismatch of model versions means, said at the end of its problem.
GLOBAL_FALLBACK = "the global model applies"
# How the held-out part judged it: on log loss against the global model, or (a held-out part without both
# rain and dry hours, where log loss favours whatever predicts one class) by the reference station alone.
HOLDOUT_CHECKS = ("log_loss", "reference")
HOLDOUT_KEYS = ("check", "fraction", "rows", "rain_rows", "log_loss_global", "log_loss_adapted", "roc_auc_global",
                "roc_auc_adapted", "f1_global", "f1_adapted", "ece_global", "ece_adapted")
# How far a station's sensor may be off before it is broken rather than biased: ~500 m of altitude in
# pressure, a sensor in the sun or next to a CPU in temperature.
MAX_ABS_INPUT_OFFSET = {"temperature": 10.0, "humidity": 20.0, "pressure": 60.0}
FIELDS = ("format", "id", "model_version", "model", "units", "input_offsets", "coefficients", "input_means", "input_scales",
          "threshold", "regularisation", "fitted_rows", "fitted_rain_rows", "holdout", "csv_sha256")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def content_id(adaptation: Mapping[str, Any]) -> str:
    body = {key: value for key, value in adaptation.items() if key != "id"}
    return "sha256:" + hashlib.sha256(canonical_json(body).encode()).hexdigest()[:16]


def logit(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(probability, dtype=np.float64), PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
    return np.log(clipped) - np.log1p(-clipped)


def adapted_logit(coefficients: np.ndarray, global_logit: np.ndarray, standardised: np.ndarray) -> np.ndarray:
    """The formula, on arrays: coefficients in COEFFICIENTS order, standardised inputs [rows, FEATURES]."""
    return coefficients[0] * global_logit + coefficients[1] + standardised @ coefficients[2:]


def standardised_inputs(adaptation: Mapping[str, Any], inputs: Mapping[str, Any]) -> np.ndarray:
    return np.column_stack([
        (np.asarray(inputs[name], dtype=np.float64) - adaptation["input_means"][name]) / adaptation["input_scales"][name]
        for name in FEATURES
    ])


def offset_inputs(adaptation: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The readings' temperature, humidity and pressure as the models see them under `adaptation`."""
    return {name: np.asarray(inputs[name], dtype=np.float64) + adaptation["input_offsets"][name] for name in FEATURES}


def apply_adaptation(adaptation: Mapping[str, Any], probability: Any, inputs: Mapping[str, Any]) -> np.ndarray:
    """The adapted probability of each reading: `probability` from the global model `adaptation["model"]`,
    `inputs` the readings' temperature, humidity and pressure (scalars or arrays of one length), both
    after offset_inputs.
    `adaptation` must have passed validate_adaptation."""
    coefficients = np.array([adaptation["coefficients"][name] for name in COEFFICIENTS], dtype=np.float64)
    global_logit = np.atleast_1d(logit(probability))
    standardised = standardised_inputs(adaptation, {name: np.atleast_1d(inputs[name]) for name in FEATURES})
    return 1.0 / (1.0 + np.exp(-adapted_logit(coefficients, global_logit, standardised)))


def _number_problem(where: str, value: Any, low: float, high: float, open_interval: bool = False) -> str | None:
    number = finite_number(value)
    inside = number is not None and (low < number < high if open_interval else low <= number <= high)
    if inside:
        return None
    bounds = f"({low:g}, {high:g})" if open_interval else f"[{low:g}, {high:g}]"
    return f"{where} is {shown(value)}; expected a finite number within {bounds}"


def _per_input(adaptation: Mapping[str, Any], key: str) -> Mapping[str, Any] | str:
    """adaptation[key] when it is an object with exactly the three inputs, else the problem."""
    value = adaptation[key]
    if not isinstance(value, Mapping) or set(value) != set(FEATURES):
        return f"{key} is {shown(value)}; expected an object with exactly {list(FEATURES)}"
    return value


def _coefficient_problem(coefficients: Mapping[str, Any]) -> str | None:
    low, high = LOGIT_COEFFICIENT_RANGE
    checks = [("logit", low, high), ("intercept", -MAX_ABS_INTERCEPT, MAX_ABS_INTERCEPT),
              *((name, -MAX_ABS_INPUT_COEFFICIENT, MAX_ABS_INPUT_COEFFICIENT) for name in FEATURES)]
    for name, low, high in checks:
        problem = _number_problem(f"coefficients.{name}", coefficients[name], low, high)
        if problem:
            return problem
    return None


def _offsets_problem(adaptation: Mapping[str, Any]) -> str | None:
    offsets = _per_input(adaptation, "input_offsets")
    if isinstance(offsets, str):
        return offsets
    for name, bound in MAX_ABS_INPUT_OFFSET.items():
        problem = _number_problem(f"input_offsets.{name}", offsets[name], -bound, bound)
        if problem:
            return problem
    return None


def _statistics_problem(adaptation: Mapping[str, Any]) -> str | None:
    for key in ("input_means", "input_scales"):
        per_input = _per_input(adaptation, key)
        if isinstance(per_input, str):
            return per_input
        for name in FEATURES:
            low, high = MODEL_INPUT_RANGES[name] if key == "input_means" else INPUT_SCALE_RANGE
            problem = _number_problem(f"{key}.{name}", per_input[name], low, high)
            if problem:
                return problem
    return None


def _record_problem(adaptation: Mapping[str, Any]) -> str | None:
    """The fields that describe the fitting: a device shows them, so they must be what they claim."""
    for key in ("fitted_rows", "fitted_rain_rows"):
        value = adaptation[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"{key} is {shown(value)}; expected a positive integer"
    if adaptation["fitted_rain_rows"] > adaptation["fitted_rows"]:
        return f"fitted_rain_rows {adaptation['fitted_rain_rows']} exceeds fitted_rows {adaptation['fitted_rows']}"
    holdout = adaptation["holdout"]
    if not isinstance(holdout, Mapping) or set(holdout) != set(HOLDOUT_KEYS):
        return f"holdout is {shown(holdout)}; expected an object with exactly {list(HOLDOUT_KEYS)}"
    if holdout["check"] not in HOLDOUT_CHECKS:
        return f"holdout.check is {shown(holdout['check'])}; expected one of {list(HOLDOUT_CHECKS)}"
    for key in HOLDOUT_KEYS[1:]:
        # ROC-AUC is null for a part with one class only; every other entry is a number.
        if holdout[key] is not None or not key.startswith("roc_auc"):
            if finite_number(holdout[key]) is None or holdout[key] < 0:
                return f"holdout.{key} is {shown(holdout[key])}; expected a finite number >= 0"
    return _number_problem("regularisation", adaptation["regularisation"], 0.0, 1e6)


def validate_adaptation(adaptation: Any, model_version: str) -> str | None:
    """None when `adaptation` is a well-formed, unedited adaptation of this format fitted for the model
    `model_version`; else the problem, in one line (the device then keeps the global model)."""
    if not isinstance(adaptation, Mapping):
        return f"an adaptation is a JSON object, got {type(adaptation).__name__}"
    if adaptation.get("format") != FORMAT:
        return f"format is {shown(adaptation.get('format'))}; this code reads {FORMAT!r}"
    missing = [key for key in FIELDS if key not in adaptation]
    unknown = sorted(set(adaptation) - set(FIELDS), key=str)
    if missing or unknown:
        return f"fields missing {missing}, unknown {shown(unknown)}"
    try:
        size = len(canonical_json(adaptation).encode())
    except (TypeError, ValueError):  # NaN or infinity (allow_nan=False), a value JSON cannot hold
        return "holds a value JSON cannot represent (NaN, infinity, or not a JSON type)"
    except RecursionError:  # a shadow of a few KiB can hold thousands of nested lists
        return "is nested too deep for JSON"
    if size > MAX_ADAPTATION_BYTES:
        return f"is {size} bytes of JSON; at most {MAX_ADAPTATION_BYTES}"
    if adaptation["id"] != content_id(adaptation):
        return f"id {shown(adaptation['id'])} is not the content's hash {content_id(adaptation)} (edited or corrupt)"
    if adaptation["model_version"] != model_version:
        return f"fitted for model {shown(adaptation['model_version'])}, not {model_version!r} in force: {GLOBAL_FALLBACK}"
    if adaptation["model"] not in MODELS:
        return f"model is {shown(adaptation['model'])}; expected one of {list(MODELS)}"
    if adaptation["units"] != UNITS:
        return f"units are {shown(adaptation['units'])}; the readings are in {UNITS}"
    coefficients = adaptation["coefficients"]
    if not isinstance(coefficients, Mapping) or set(coefficients) != set(COEFFICIENTS):
        return f"coefficients is {shown(coefficients)}; expected an object with exactly {list(COEFFICIENTS)}"
    return (_coefficient_problem(coefficients) or _offsets_problem(adaptation) or _statistics_problem(adaptation)
            or _number_problem("threshold", adaptation["threshold"], 0.0, 1.0, open_interval=True)
            or _record_problem(adaptation))

