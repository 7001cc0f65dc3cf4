"""What the demo's predictions were worth, against the observed rain of the replayed hours.

The rain shadow's predictions (trend model or instantaneous model, whichever answered) are scored
at the thresholds the artifact stores, next to two references on the same hours: the always-dry
baseline, and the instantaneous model alone, run through device_code.model on the very readings
the inference function took (the weather shadow's temperature, humidity and sea-level pressure).
Calibration: the mean probability shown against the share of rainy hours, and the Brier score.
A few days hold a handful of rainy hours: these numbers illustrate, the held-out metrics of the
model card measure.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from device_code.contracts import SEA_LEVEL_PRESSURE, Reading
from device_code.features import Series
from device_code.model import INSTANTANEOUS, TREND, RainModel
from model_training.metrics import classification_metrics, confusion_counts

from .simulation import Step


@dataclass(frozen=True)
class DemoReport:
    times: list[datetime]
    rain: np.ndarray  # observed, 0/1
    probability: np.ndarray  # shown in the rain shadow
    threshold: np.ndarray  # of the model that answered
    model: np.ndarray  # TREND | INSTANTANEOUS, per hour
    instantaneous: np.ndarray  # the instantaneous model alone on the same readings
    instantaneous_threshold: float

    @classmethod
    def of(cls, steps: list[Step], model: RainModel) -> "DemoReport":
        """The predicted hours of a run; `model` is the artifact the run used."""
        done = [step for step in steps if step.prediction is not None and step.weather is not None]
        no_history = Series.from_readings([])
        alone = [model.predict(Reading(step.weather["temperature"], step.weather["humidity"],
                                       step.weather[SEA_LEVEL_PRESSURE], step.observation.time), no_history)
                 for step in done]
        return cls(times=[step.observation.time for step in done],
                   rain=np.array([step.observation.rain for step in done], dtype=int),
                   probability=np.array([step.prediction["probability"] for step in done], dtype=float),
                   threshold=np.array([step.prediction["threshold"] for step in done], dtype=float),
                   model=np.array([step.prediction["model"] for step in done], dtype=object),
                   instantaneous=np.array([prediction.probability for prediction in alone], dtype=float),
                   instantaneous_threshold=model.metadata.models[INSTANTANEOUS].threshold)

    def rows(self) -> list[tuple[str, np.ndarray, np.ndarray | float]]:
        """(predictor, probability per hour, threshold) of what is compared."""
        return [("rainedge (as shown)", self.probability, self.threshold),
                ("instantaneous model alone", self.instantaneous, self.instantaneous_threshold),
                ("always dry", np.zeros(len(self.rain)), 1.0)]

    def lines(self) -> list[str]:
        n = len(self.rain)
        if n == 0:
            return ["no predictions to score"]
        by_model = {name: int(np.sum(self.model == name)) for name in (TREND, INSTANTANEOUS)}
        thresholds = ", ".join(f"{name} {self.threshold[self.model == name][0]:.3f}"
                               for name in (TREND, INSTANTANEOUS) if by_model[name])
        lines = [f"predictions {n}: trend model {by_model[TREND]}, instantaneous model {by_model[INSTANTANEOUS]} "
                 "(while the history does not reach a day back)",
                 f"at the stored thresholds ({thresholds}); {int(self.rain.sum())} of {n} hours rainy:",
                 f"  {'predictor':<27}{'precision':>10}{'recall':>8}{'F1':>7}{'accuracy':>10}"
                 f"{'TP':>5}{'FP':>4}{'FN':>4}{'TN':>5}"]
        briers = {}
        for name, probability, threshold in self.rows():
            metrics = classification_metrics(self.rain, probability, threshold)
            tp, fp, fn, tn = confusion_counts(probability >= threshold, self.rain)
            precision = f"{metrics['precision']:.3f}" if tp + fp else "-"  # nothing predicted: undefined
            lines.append(f"  {name:<27}{precision:>10}{metrics['recall']:>8.3f}{metrics['f1']:>7.3f}"
                         f"{metrics['accuracy']:>10.3f}{tp:>5}{fp:>4}{fn:>4}{tn:>5}")
            briers[name] = metrics["brier"]
        shown, alone, dry = briers.values()
        lines.append(f"calibration of the probabilities shown: mean {self.probability.mean():.3f} against "
                     f"{self.rain.mean():.3f} of hours rainy; Brier score {shown:.4f} (instantaneous model alone "
                     f"{alone:.4f}, always dry {dry:.4f})")
        return lines
