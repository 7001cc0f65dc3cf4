"""Train the two rain models (trend, instantaneous), calibrate them, and score them with baselines.

Both are the same kind of network: the inputs normalised inside the model, a small ReLU network
plus a linear path straight from the normalised inputs to the logit ("wide and deep"), binary
cross-entropy WITHOUT class weights (weights that balance the classes inflate every probability),
Adam. Calibration is temperature scaling fitted on September only: p = sigmoid(a * logit), one
parameter, so it corrects over/under-confidence without learning September's rain rate (2.3 %,
a third of the year's) as an intercept. It is a layer of the exported model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from device_code.features import INSTANTANEOUS_INPUTS, TREND_INPUTS, covered
from device_code.model import INSTANTANEOUS, TREND
from model_training.baseline import fit_input_baseline
from model_training.data import LABEL, load_observations, split_by_time, trend_frame
from model_training.golden import golden_rows
from model_training.metrics import choose_threshold, classification_metrics, reliability_bins

SEED = 2013
LEARNING_RATE = 1e-3
BATCH_SIZE = 256
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class NetworkSpec:
    inputs: tuple[str, ...]
    hidden_units: tuple[int, ...]
    l2: float  # weight decay on the hidden layers
    # A fixed epoch count, not early stopping: September has only ~50 rainy hours, so the epoch
    # where its score peaks is noise.
    epochs: int


NETWORKS = {
    # 18 inputs whose relation to rain shifts between seasons: a smaller, weight-decayed network
    # stays close to the linear solution, which is what holds up out of time.
    TREND: NetworkSpec(TREND_INPUTS, hidden_units=(32, 16), l2=1e-3, epochs=30),
    # 3 inputs: rain is a sharp corner of (humidity, pressure) that needs the hidden layers.
    INSTANTANEOUS: NetworkSpec(INSTANTANEOUS_INPUTS, hidden_units=(64, 32), l2=0.0, epochs=15),
}


@dataclass(frozen=True)
class TrainedModel:
    name: str
    spec: NetworkSpec
    network: object  # keras.Model: (batch, len(spec.inputs)) float32 -> calibrated probability (batch, 1)
    calibration_slope: float
    threshold: float
    metrics: dict  # split -> metrics of the network; plus the baseline's and per station
    golden_inputs: dict  # input -> float32 column: held-out test rows the device's self-test replays


@dataclass(frozen=True)
class TrainingResult:
    models: dict[str, TrainedModel]
    splits: dict  # split -> {"from", "to", "rows"}
    seconds: float
    input_baseline: dict  # input -> annual cycle, residual spread, range (model_training.baseline)


def build_logit_network(spec: NetworkSpec, train_inputs: np.ndarray):
    import keras

    normalise = keras.layers.Normalization(name="normalise")
    normalise.adapt(train_inputs)
    inputs = keras.Input(shape=(len(spec.inputs),), name="inputs")
    normalised = normalise(inputs)
    hidden = normalised
    decay = keras.regularizers.L2(spec.l2) if spec.l2 else None
    for index, units in enumerate(spec.hidden_units):
        hidden = keras.layers.Dense(units, activation="relu", kernel_regularizer=decay, name=f"hidden_{index}")(hidden)
    deep = keras.layers.Dense(1, name="deep_logit")(hidden)
    wide = keras.layers.Dense(1, use_bias=False, name="wide_logit")(normalised)
    return keras.Model(inputs, keras.layers.Add(name="logit")([deep, wide]), name="rain_logit")


def fit_logit_network(spec: NetworkSpec, inputs: np.ndarray, rain: np.ndarray, seed: int):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    network = build_logit_network(spec, inputs)
    network.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                    loss=keras.losses.BinaryCrossentropy(from_logits=True))
    network.fit(inputs, rain.astype(np.float32), batch_size=BATCH_SIZE, epochs=spec.epochs, shuffle=True, verbose=0)
    return network


def fit_calibration_slope(logits: np.ndarray, rain: np.ndarray) -> float:
    """Temperature scaling: the a maximising the likelihood of sigmoid(a * logit) on `rain`."""
    from sklearn.linear_model import LogisticRegression

    scaling = LogisticRegression(C=np.inf, fit_intercept=False).fit(logits.reshape(-1, 1), rain)
    return float(scaling.coef_[0, 0])


def calibrated_network(logit_network, slope: float):
    """The logit network followed by sigmoid(slope * logit): the model that is exported."""
    import keras

    calibration = keras.layers.Dense(1, activation="sigmoid", use_bias=False, trainable=False, name="calibration")
    probability = calibration(logit_network.output)
    calibration.set_weights([np.array([[slope]], dtype=np.float32)])
    return keras.Model(logit_network.input, probability, name="rain_model")


def predict(network, inputs: np.ndarray) -> np.ndarray:
    # A direct call: Keras' predict() would trace a new function for every network.
    return np.asarray(network(inputs, training=False)).reshape(-1)


def fit_logistic_baseline(inputs: np.ndarray, rain: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(inputs, rain)


def train_model(name: str, parts: dict[str, pd.DataFrame], seed: int) -> TrainedModel:
    """`parts`: split -> rows this model can score (their inputs, LABEL and origin)."""
    spec = NETWORKS[name]
    inputs = {split: part[list(spec.inputs)].to_numpy(dtype=np.float32) for split, part in parts.items()}
    rain = {split: part[LABEL].to_numpy() for split, part in parts.items()}
    logit_network = fit_logit_network(spec, inputs["train"], rain["train"], seed)
    slope = fit_calibration_slope(predict(logit_network, inputs["validation"]), rain["validation"])
    network = calibrated_network(logit_network, slope)
    probability = {split: predict(network, values) for split, values in inputs.items()}
    threshold = choose_threshold(rain["validation"], probability["validation"])

    baseline = fit_logistic_baseline(inputs["train"], rain["train"])
    baseline_probability = {split: baseline.predict_proba(values)[:, 1] for split, values in inputs.items()}
    baseline_threshold = choose_threshold(rain["validation"], baseline_probability["validation"])

    test_stations = parts["test"]["origin"].to_numpy()
    metrics = {
        "network": {split: {**classification_metrics(rain[split], probability[split], threshold), "threshold": threshold}
                    for split in SPLITS},
        "logistic_baseline": {
            split: {**classification_metrics(rain[split], baseline_probability[split], baseline_threshold),
                    "threshold": baseline_threshold}
            for split in SPLITS
        },
        "test_by_station": {
            station: classification_metrics(rain["test"][test_stations == station],
                                            probability["test"][test_stations == station], threshold)
            for station in sorted(set(test_stations))
        },
        "test_reliability": reliability_bins(rain["test"], probability["test"]),
    }
    golden = golden_rows(rain["test"])
    golden_inputs = {input_name: inputs["test"][golden, column] for column, input_name in enumerate(spec.inputs)}
    return TrainedModel(name, spec, network, slope, threshold, metrics, golden_inputs)


def _with_trend_inputs(df: pd.DataFrame) -> pd.DataFrame:
    """The observations plus each row's trend inputs and whether its history covers them (from
    the station's full series: history may reach into the previous split, as it does on a device;
    only readings, never labels)."""
    df = pd.concat([df, trend_frame(df).drop(columns=list(INSTANTANEOUS_INPUTS))], axis=1)
    df["trend_covered"] = covered({name: df[name].to_numpy() for name in TREND_INPUTS})
    return df


def _train_models(splits: dict[str, pd.DataFrame], seed: int) -> dict[str, TrainedModel]:
    """Both models on the same split; the trend model on the rows its history covers."""
    models = {
        INSTANTANEOUS: train_model(INSTANTANEOUS, splits, seed),
        TREND: train_model(TREND, {split: part[part["trend_covered"]] for split, part in splits.items()}, seed),
    }
    for split, part in splits.items():
        models[TREND].metrics["network"][split]["coverage"] = float(part["trend_covered"].mean())
    return models


def train(seed: int = SEED, observations: pd.DataFrame | None = None) -> TrainingResult:
    """Fit, calibrate and score both models on the time split."""
    started = time.perf_counter()
    splits = dict(zip(SPLITS, split_by_time(_with_trend_inputs(load_observations() if observations is None
                                                                 else observations))))
    models = _train_models(splits, seed)
    split_info = {
        split: {"from": part["time_hour"].min().isoformat(), "to": part["time_hour"].max().isoformat(),
                "rows": int(len(part))}
        for split, part in splits.items()
    }
    return TrainingResult(models, split_info, time.perf_counter() - started, fit_input_baseline(splits["train"]))


def leave_one_station_out(seed: int = SEED, observations: pd.DataFrame | None = None) -> dict[str, dict]:
    """For each station: both models trained and calibrated on the OTHER stations (Jan-Aug, Sep),
    scored on this one's Oct-Dec. How the models carry to a station they never saw."""
    splits = dict(zip(SPLITS, split_by_time(_with_trend_inputs(load_observations() if observations is None
                                                                 else observations))))
    results = {}
    for station in sorted(splits["test"]["origin"].unique()):
        held_out = {split: part[(part["origin"] == station) == (split == "test")] for split, part in splits.items()}
        results[station] = {name: model.metrics["network"]["test"]
                            for name, model in _train_models(held_out, seed).items()}
    return results
