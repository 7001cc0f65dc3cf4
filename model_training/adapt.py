"""Fit a per-station adaptation of the global model (the formula and schema: device_code.adaptation).

The station's labelled CSV (the one `evaluate` reads) is scored by the global model as the device
would; its last part (by sampled_at when there is one, else by row order) is held out. On the rest
the correction p' = sigmoid(a*logit(p) + b + sum c_i*z_i) is fitted by penalised maximum likelihood,
the penalty pulling (a, b, c) towards the global model (1, 0, 0), so that a few labelled hours move it only
as far as they show; then the F1-maximising threshold. It is kept only when it beats the global
model on the held-out part in log loss.

Which model it corrects: the one that scored most of the CSV's rows, as it will serve most of the
station's readings: the trend model for a CSV with sampled_at and a day of history, else the
instantaneous model. Rows the other model scored are left out of the fit and the comparison.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from device_code.contracts import UNITS
from device_code.model import INSTANTANEOUS, TREND, RainModel
from device_code.adaptation import (
    COEFFICIENTS, FORMAT, PROBABILITY_EPSILON, adapted_logit, apply_adaptation, content_id, logit,
    standardised_inputs, validate_adaptation,
)
from model_training.data import FEATURES, LABEL
from model_training.evaluate import STATION_COLUMN, TIME_COLUMN, EvaluationInputError, score
from model_training.metrics import choose_threshold, classification_metrics

DEFAULT_HOLDOUT = 0.3
# The L2 weight towards the global model, in units of one labelled reading's log loss. Hourly weather
# is strongly autocorrelated: a few hundred labelled hours hold a few dozen rain events, and with a
# weight of 1 the fit chased them (the intercept moved by 2 on 450 winter hours and did worse on the
# following ones). 30 was chosen on Jan-Aug 2013 windows (the global model's training months, with and
# without a synthetic bias), never on the Oct-Dec hours the benchmark scores.
REGULARISATION = 30.0
# Below these the comparison on the held-out part says nothing.
MIN_FIT_ROWS, MIN_HOLDOUT_ROWS = 100, 30
MIN_FIT_RAIN_ROWS, MIN_FIT_DRY_ROWS = 5, 5
NEWTON_STEPS, NEWTON_TOLERANCE = 50, 1e-10


class AdaptationRefused(Exception):
    """The data cannot give an adaptation worth using; the message says why, with the numbers."""


def log_loss(rain: np.ndarray, probability: np.ndarray) -> float:
    clipped = np.clip(probability, PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
    return float(-np.mean(np.where(rain == 1, np.log(clipped), np.log1p(-clipped))))


def fit_correction(global_logit: np.ndarray, standardised: np.ndarray, rain: np.ndarray,
                   regularisation: float) -> np.ndarray:
    """The coefficients (COEFFICIENTS order) minimising the log loss summed over the rows plus
    regularisation/2 * |(a, b, c) - (1, 0, 0)|^2. Newton's method with step halving: five parameters,
    a convex objective, a handful of steps."""
    prior = np.array([1.0, 0.0, *np.zeros(len(FEATURES))])
    design = np.column_stack([global_logit, np.ones(len(rain)), standardised])

    def objective(coefficients: np.ndarray) -> float:
        z = adapted_logit(coefficients, global_logit, standardised)
        return float(np.sum(np.logaddexp(0.0, z) - rain * z) + 0.5 * regularisation * np.sum((coefficients - prior) ** 2))

    coefficients = prior.copy()
    for _ in range(NEWTON_STEPS):
        probability = 1.0 / (1.0 + np.exp(-adapted_logit(coefficients, global_logit, standardised)))
        gradient = design.T @ (probability - rain) + regularisation * (coefficients - prior)
        weights = probability * (1.0 - probability)
        # The penalty keeps the system solvable even when an input is constant at this station.
        hessian = (design * weights[:, None]).T @ design + regularisation * np.eye(len(prior))
        step = np.linalg.solve(hessian, gradient)
        length, before = 1.0, objective(coefficients)
        while objective(coefficients - length * step) > before and length > 1e-6:
            length /= 2
        coefficients = coefficients - length * step
        if np.max(np.abs(length * step)) < NEWTON_TOLERANCE:
            break
    return coefficients


def time_order(df: pd.DataFrame) -> np.ndarray:
    """Row positions from first to last: by sampled_at when the CSV has it, else as written."""
    if TIME_COLUMN not in df.columns:
        return np.arange(len(df))
    return np.argsort(df[TIME_COLUMN].to_numpy(), kind="stable")


def corrected_model(df: pd.DataFrame, used: np.ndarray) -> str:
    return TREND if TIME_COLUMN in df.columns and np.mean(used == TREND) >= 0.5 else INSTANTANEOUS


def _inputs(df: pd.DataFrame, positions: np.ndarray) -> dict[str, np.ndarray]:
    return {name: df[name].to_numpy(dtype=np.float64)[positions] for name in FEATURES}


def _check_one_station(df: pd.DataFrame) -> None:
    if STATION_COLUMN in df.columns and df[STATION_COLUMN].nunique() > 1:
        raise EvaluationInputError(f"the CSV holds {df[STATION_COLUMN].nunique()} stations "
                                   f"({', '.join(map(repr, sorted(df[STATION_COLUMN].unique())[:5]))}); "
                                   "an adaptation is fitted on one station's readings")


def _check_counts(rain_fit: np.ndarray, rain_holdout: np.ndarray, model_name: str) -> None:
    rain_rows, dry_rows = int(rain_fit.sum()), int(len(rain_fit) - rain_fit.sum())
    if len(rain_fit) < MIN_FIT_ROWS or len(rain_holdout) < MIN_HOLDOUT_ROWS:
        raise EvaluationInputError(
            f"too few rows scored by the {model_name} model: {len(rain_fit)} to fit and {len(rain_holdout)} held out; "
            f"at least {MIN_FIT_ROWS} and {MIN_HOLDOUT_ROWS}")
    if rain_rows < MIN_FIT_RAIN_ROWS or dry_rows < MIN_FIT_DRY_ROWS:
        raise EvaluationInputError(
            f"the part to fit has {rain_rows} rainy and {dry_rows} dry rows; at least {MIN_FIT_RAIN_ROWS} of each")
    if not 0 < rain_holdout.sum() < len(rain_holdout):
        raise EvaluationInputError(
            f"the held-out part has {int(rain_holdout.sum())} rainy rows of {len(rain_holdout)}; it needs both rain and dry")


def _holdout_record(fraction: float, rain: np.ndarray, global_probability: np.ndarray, global_threshold: float,
                    adapted_probability: np.ndarray, adapted_threshold: float) -> dict:
    before = classification_metrics(rain, global_probability, global_threshold)
    after = classification_metrics(rain, adapted_probability, adapted_threshold)
    record = {"fraction": fraction, "rows": int(len(rain)), "rain_rows": int(rain.sum()),
              "log_loss_global": log_loss(rain, global_probability),
              "log_loss_adapted": log_loss(rain, adapted_probability)}
    for key in ("roc_auc", "f1", "ece"):
        record[f"{key}_global"], record[f"{key}_adapted"] = before[key], after[key]
    return record


def fit_adaptation(model: RainModel, df: pd.DataFrame, holdout_fraction: float, csv_sha256: str) -> dict:
    """The adaptation of `model` to the station whose labelled readings `df` holds (read_labelled_csv).
    EvaluationInputError for data that cannot be fitted; AdaptationRefused when the fit does not beat
    the global model on the held-out part."""
    _check_one_station(df)
    probability, used = score(model, df)
    model_name = corrected_model(df, used)
    order = time_order(df)
    order = order[used[order] == model_name]
    cut = int(round(len(order) * (1.0 - holdout_fraction)))
    fit_rows, holdout_rows = order[:cut], order[cut:]
    rain = df[LABEL].to_numpy(dtype=np.float64)
    _check_counts(rain[fit_rows], rain[holdout_rows], model_name)

    fit_inputs = _inputs(df, fit_rows)
    # A spread of 0 (a constant reading) would divide by zero; such an input's z is then 0 anyway.
    statistics = {"input_means": {name: float(np.mean(fit_inputs[name])) for name in FEATURES},
                  "input_scales": {name: max(float(np.std(fit_inputs[name])), 1e-3) for name in FEATURES}}
    coefficients = fit_correction(logit(probability[fit_rows]), standardised_inputs(statistics, fit_inputs),
                                  rain[fit_rows], REGULARISATION)
    adaptation = {"format": FORMAT, "model_version": model.metadata.version, "model": model_name, "units": UNITS,
                  "coefficients": dict(zip(COEFFICIENTS, map(float, coefficients))), **statistics,
                  "regularisation": REGULARISATION}
    adaptation["threshold"] = choose_threshold(rain[fit_rows], apply_adaptation(adaptation, probability[fit_rows],
                                                                                fit_inputs))
    holdout = _holdout_record(holdout_fraction, rain[holdout_rows], probability[holdout_rows],
                              model.metadata.models[model_name].threshold,
                              apply_adaptation(adaptation, probability[holdout_rows], _inputs(df, holdout_rows)),
                              adaptation["threshold"])
    adaptation.update(fitted_rows=int(len(fit_rows)), fitted_rain_rows=int(rain[fit_rows].sum()), holdout=holdout,
                      csv_sha256=csv_sha256)
    adaptation["id"] = content_id(adaptation)
    problem = validate_adaptation(adaptation, model.metadata.version)
    if problem:
        raise AdaptationRefused(f"the fitted adaptation is unusable: {problem}")
    if holdout["log_loss_adapted"] >= holdout["log_loss_global"]:
        raise AdaptationRefused(
            f"not better than the global {model_name} model on the held-out last {holdout['rows']} rows "
            f"({holdout['rain_rows']} rainy): log loss {holdout['log_loss_adapted']:.4f} adapted vs "
            f"{holdout['log_loss_global']:.4f} global (fitted on {len(fit_rows)} rows, {int(rain[fit_rows].sum())} rainy)")
    return adaptation

