"""The rain models of one artifact: the only code that loads the artifact and runs it.

The artifact folder (MODEL_DIR on the device: the unpacked model component) holds two calibrated
models behind named signatures of one `model.tflite` and one `saved_model/`, described by
`metadata.json`:
- `trend` (signature `trend`): the reading plus its changes over the last hours, computed by
  device_code.features from the device's reading history; it needs that history to reach back
  `features.HISTORY_WINDOW_S` with a reading within `features.LAG_TOLERANCE_S` of each lag;
- `instantaneous` (signature `serving_default`): the reading alone; used while the history does not
  cover the trend model's window (first start, a long gap).
Both output `probability`, calibrated: of the hours a model gives 0.3, about 30 % are rainy.

Runtimes: LiteRT on `model.tflite` (~50 MiB, microseconds per prediction on a Pi) is preferred;
TensorFlow on `saved_model/` (~700 MiB, optional on the device) is the fallback. model_training's
evaluate and bench load models through `load_model` too, naming the runtime they want.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from . import features, files
from .contracts import FEATURES, finite_number, shown
from .drift import InputBaseline, read_baselines
from .features import HasReadingValues, Series

log = logging.getLogger(__name__)

TREND, INSTANTANEOUS = "trend", "instantaneous"
OUTPUT_NAME = "probability"
# What each model needs from the history: the trend model's lags come from device_code.features.
HISTORY_REQUIREMENTS = {
    TREND: {"window_s": features.HISTORY_WINDOW_S, "lag_tolerance_s": features.LAG_TOLERANCE_S,
            "lags_s": [*features.RANGE_LAGS_S, features.DAY_LAG_S]},
    INSTANTANEOUS: None,
}
MODEL_INPUTS = {TREND: features.TREND_INPUTS, INSTANTANEOUS: features.INSTANTANEOUS_INPUTS}
# (signature name, named float32 [batch] inputs) -> probabilities [batch]
Runner = Callable[[str, Mapping[str, np.ndarray]], np.ndarray]
# Read through device_code.files: an artifact's metadata.json is ~17 KiB and its model.tflite ~25 KiB;
# nothing larger is read into memory.
METADATA_MAX_BYTES = 1 << 20
TFLITE_MAX_BYTES = 64 << 20
MAX_NAME_LENGTH = 100  # of a version or a signature name


class ModelUnavailable(RuntimeError):
    """No usable model in MODEL_DIR (missing, corrupt, or metadata that does not fit the contract)."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    signature: str
    inputs: tuple[str, ...]
    threshold: float


@dataclass(frozen=True)
class ModelMetadata:
    version: str
    valid_ranges: dict[str, tuple[float, float]]
    models: Mapping[str, ModelSpec] = field(default_factory=dict)
    # The inputs' training baseline (device_code.drift); None for an artifact made before it existed.
    baselines: Mapping[str, InputBaseline] | None = None


@dataclass(frozen=True)
class Prediction:
    probability: float
    raining: bool
    threshold: float
    model: str  # TREND | INSTANTANEOUS
    model_version: str
    runtime: str


def _checked_probabilities(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all((values >= 0.0) & (values <= 1.0)):  # NaN fails too
        raise ValueError(f"model returned {values[~((values >= 0.0) & (values <= 1.0))][0]}, not a probability")
    return values


@dataclass(frozen=True)
class RainModel:
    metadata: ModelMetadata
    runtime: str  # "litert" | "tensorflow"
    runner: Runner

    def run(self, model_name: str, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One model on a batch of inputs (each a [batch] array named as in its spec)."""
        spec = self.metadata.models[model_name]
        batch = {name: np.asarray(inputs[name], dtype=np.float32).reshape(-1) for name in spec.inputs}
        return _checked_probabilities(self.runner(spec.signature, batch))

    def predict_series(self, now: Series, history: Series | None) -> tuple[np.ndarray, np.ndarray]:
        """Probability for each reading in `now`, and the model that made it: the trend model where
        `history` covers its window, the instantaneous model elsewhere (everywhere without history)."""
        probability = np.empty(len(now))
        used = np.full(len(now), INSTANTANEOUS, dtype=object)
        if history is not None and TREND in self.metadata.models:
            trend_inputs = features.trend_inputs(now, history)
            rows = features.covered(trend_inputs)
            if rows.any():
                probability[rows] = self.run(TREND, {name: values[rows] for name, values in trend_inputs.items()})
                used[rows] = TREND
        rest = used == INSTANTANEOUS
        if rest.any():
            probability[rest] = self.run(INSTANTANEOUS, {name: values[rest] for name, values
                                                         in features.instantaneous_inputs(now).items()})
        return probability, used

    def predict(self, reading: HasReadingValues, history: Series) -> Prediction:
        """The device's prediction for its newest reading (sea-level pressure), with the history
        of its earlier readings (device_code.history.ReadingHistory.series())."""
        probabilities, used = self.predict_series(Series.from_readings([reading]), history)
        spec = self.metadata.models[used[0]]
        probability = float(probabilities[0])
        return Prediction(probability=probability, raining=probability >= spec.threshold, threshold=spec.threshold,
                          model=spec.name, model_version=self.metadata.version, runtime=self.runtime)


def _read_spec(name: str, raw: Mapping) -> ModelSpec:
    if list(raw["inputs"]) != list(MODEL_INPUTS[name]):
        raise ValueError(f"model {name!r} takes inputs {shown(raw['inputs'])}; this device code computes "
                         f"{list(MODEL_INPUTS[name])} (device code and model artifact are from different builds)")
    if raw.get("history") != HISTORY_REQUIREMENTS[name]:
        raise ValueError(f"model {name!r} needs history {shown(raw.get('history'))}; this device code provides "
                         f"{HISTORY_REQUIREMENTS[name]}")
    threshold = finite_number(raw["threshold"])
    if threshold is None or not 0.0 < threshold < 1.0:
        raise ValueError(f"model {name!r} has threshold {shown(raw['threshold'])}; expected a number within (0, 1)")
    return ModelSpec(name=name, signature=_string(raw, "signature"), inputs=tuple(raw["inputs"]),
                     threshold=threshold)


def _string(raw: Mapping, key: str) -> str:
    # Short: the version goes into every rain shadow write, which must stay far below 8 KiB.
    if not isinstance(raw[key], str) or not 0 < len(raw[key]) <= MAX_NAME_LENGTH:
        raise ValueError(f"{key} {shown(raw[key])} is not a string of 1-{MAX_NAME_LENGTH} characters")
    return raw[key]


def _valid_range(name: str, raw: object) -> tuple[float, float]:
    bounds = [finite_number(value) for value in raw] if isinstance(raw, list) else []
    if len(bounds) != 2 or None in bounds or bounds[0] > bounds[1]:
        raise ValueError(f"valid_ranges {name!r} is {shown(raw)}; expected [low, high], finite numbers, low <= high")
    return bounds[0], bounds[1]


def read_metadata(model_dir: Path) -> ModelMetadata:
    path = Path(model_dir) / "metadata.json"
    try:
        raw = files.read_json(path, METADATA_MAX_BYTES)
        if not isinstance(raw, dict):
            raise ValueError("metadata.json is not a JSON object")
        if list(raw["feature_order"]) != list(FEATURES):
            raise ValueError(f"feature_order {shown(raw['feature_order'])} is not {list(FEATURES)}")
        models = {name: _read_spec(name, spec) for name, spec in raw["models"].items() if name in MODEL_INPUTS}
        if INSTANTANEOUS not in models:
            raise ValueError(f"no {INSTANTANEOUS!r} model among {shown(sorted(raw['models']))}")
        ranges = {name: _valid_range(name, raw["valid_ranges"][name]) for name in FEATURES}
        return ModelMetadata(version=_string(raw, "version"), valid_ranges=ranges, models=models,
                             baselines=read_baselines(raw.get("input_baseline")))
    except files.UnusableFile as error:
        raise ModelUnavailable(str(error)) from error
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        raise ModelUnavailable(f"{path}: {type(error).__name__}: {error}") from error


def _litert_runner(model_dir: Path, signatures: list[str]) -> Runner:
    from ai_edge_litert.interpreter import Interpreter

    # Its content, not its path: the interpreter would block on a FIFO there.
    interpreter = Interpreter(model_content=files.read_bytes(model_dir / "model.tflite", TFLITE_MAX_BYTES))
    runners = {signature: interpreter.get_signature_runner(signature) for signature in signatures}
    return lambda signature, inputs: runners[signature](**inputs)[OUTPUT_NAME]


def _tensorflow_runner(model_dir: Path, signatures: list[str]) -> Runner:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model_dir / "saved_model"))
    functions = {signature: loaded.signatures[signature] for signature in signatures}
    # The concrete functions convert the float32 arrays to tensors themselves.
    return lambda signature, inputs: functions[signature](**inputs)[OUTPUT_NAME].numpy()


RUNTIMES: tuple[tuple[str, str, Callable[[Path, list[str]], Runner]], ...] = (
    ("litert", "model.tflite", _litert_runner),
    ("tensorflow", "saved_model", _tensorflow_runner),
)
RUNTIME_NAMES = tuple(name for name, _, _ in RUNTIMES)


def load_model(model_dir: Path, runtime: str | None = None) -> RainModel:
    """Load every model of the artifact with `runtime`, or (None, on the device) with the first
    runtime that loads and answers a probe prediction of each model. ModelUnavailable otherwise."""
    model_dir = Path(model_dir)
    if runtime is not None and runtime not in RUNTIME_NAMES:
        raise ValueError(f"runtime {runtime!r} is not one of {list(RUNTIME_NAMES)}")
    metadata = read_metadata(model_dir)
    signatures = [spec.signature for spec in metadata.models.values()]
    mid_range = {name: (low + high) / 2 for name, (low, high) in metadata.valid_ranges.items()}
    # A steady mid-range reading: every change input is 0.
    probe = {name: np.array([mid_range.get(name, 0.0)]) for name in features.TREND_INPUTS}
    failures = []
    for runtime_name, artifact, make_runner in RUNTIMES:
        if runtime not in (None, runtime_name):
            continue
        if not (model_dir / artifact).exists():
            failures.append(f"{artifact} missing")
            continue
        try:
            model = RainModel(metadata, runtime_name, make_runner(model_dir, signatures))
            for name in metadata.models:
                model.run(name, probe)
        except ImportError as error:
            failures.append(f"{runtime_name} not installed ({error.name})")
        except Exception as error:  # a corrupt artifact fails in many library-specific ways
            failures.append(f"{artifact} unusable: {type(error).__name__}: {error}")
        else:
            log.info("models %s of %s loaded from %s with %s", sorted(metadata.models), metadata.version, model_dir,
                     runtime_name)
            if failures:
                log.warning("fell back to %s: %s", runtime_name, "; ".join(failures))
            return model
    raise ModelUnavailable(f"no usable model in {model_dir}: " + "; ".join(failures))
