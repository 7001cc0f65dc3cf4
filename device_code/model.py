"""The rain model, loaded once from the unpacked model artifact (MODEL_DIR).

LiteRT (`model.tflite`) is preferred: ~50 MiB and microseconds per prediction on a Pi. The
TensorFlow SavedModel is the fallback (TensorFlow is optional on the device: ~700 MiB). Both use
the `serving_default` signature with float32 inputs temperature/humidity/pressure -> probability.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .contracts import FEATURES

log = logging.getLogger(__name__)
SIGNATURE = "serving_default"


class ModelUnavailable(RuntimeError):
    """No usable model in MODEL_DIR (missing, corrupt, or metadata that does not fit the contract)."""


@dataclass(frozen=True)
class ModelMetadata:
    version: str
    threshold: float
    valid_ranges: dict[str, tuple[float, float]]


@dataclass(frozen=True)
class RainModel:
    metadata: ModelMetadata
    runtime: str  # "litert" | "tensorflow"
    _predict: Callable[[float, float, float], float]

    def probability(self, temperature: float, humidity: float, pressure: float) -> float:
        value = float(self._predict(temperature, humidity, pressure))
        if not 0.0 <= value <= 1.0 or math.isnan(value):
            raise ValueError(f"model returned {value}, not a probability")
        return value


def read_metadata(model_dir: Path) -> ModelMetadata:
    path = model_dir / "metadata.json"
    try:
        raw = json.loads(path.read_text())
        if list(raw["feature_order"]) != list(FEATURES):
            raise ValueError(f"feature_order {raw['feature_order']} is not {list(FEATURES)}")
        threshold = float(raw["threshold"])
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold {threshold} is not within (0, 1)")
        ranges = {name: (float(raw["valid_ranges"][name][0]), float(raw["valid_ranges"][name][1]))
                  for name in FEATURES}
        return ModelMetadata(version=str(raw["version"]), threshold=threshold, valid_ranges=ranges)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as error:
        raise ModelUnavailable(f"{path}: {type(error).__name__}: {error}") from error


def _litert_predictor(model_dir: Path) -> Callable[[float, float, float], float]:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(model_dir / "model.tflite")).get_signature_runner(SIGNATURE)

    def predict(temperature: float, humidity: float, pressure: float) -> float:
        out = runner(temperature=np.array([temperature], np.float32), humidity=np.array([humidity], np.float32),
                     pressure=np.array([pressure], np.float32))
        return float(out["probability"][0])

    return predict


def _tensorflow_predictor(model_dir: Path) -> Callable[[float, float, float], float]:
    import tensorflow as tf

    signature = tf.saved_model.load(str(model_dir / "saved_model")).signatures[SIGNATURE]

    def predict(temperature: float, humidity: float, pressure: float) -> float:
        out = signature(temperature=tf.constant([temperature], tf.float32),
                        humidity=tf.constant([humidity], tf.float32), pressure=tf.constant([pressure], tf.float32))
        return float(out["probability"].numpy()[0])

    return predict


RUNTIMES: tuple[tuple[str, str, Callable[[Path], Callable[[float, float, float], float]]], ...] = (
    ("litert", "model.tflite", _litert_predictor),
    ("tensorflow", "saved_model", _tensorflow_predictor),
)


def load_model(model_dir: Path) -> RainModel:
    """The first runtime that loads and answers a probe prediction wins; ModelUnavailable otherwise."""
    metadata = read_metadata(model_dir)
    failures = []
    probe = [sum(metadata.valid_ranges[name]) / 2 for name in FEATURES]
    for runtime_name, artifact, make_predictor in RUNTIMES:
        if not (model_dir / artifact).exists():
            failures.append(f"{artifact} missing")
            continue
        try:
            model = RainModel(metadata, runtime_name, make_predictor(model_dir))
            model.probability(*probe)
        except ImportError as error:
            failures.append(f"{runtime_name} not installed ({error.name})")
        except Exception as error:  # a corrupt artifact fails in many library-specific ways
            failures.append(f"{artifact} unusable: {type(error).__name__}: {error}")
        else:
            log.info("model %s loaded from %s with %s", metadata.version, model_dir, runtime_name)
            if failures:
                log.warning("fell back to %s: %s", runtime_name, "; ".join(failures))
            return model
    raise ModelUnavailable(f"no usable model in {model_dir}: " + "; ".join(failures))
