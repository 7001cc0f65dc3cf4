"""Fit a per-station adaptation of the global model (the formula and schema: device_code.adaptation).

The station's labelled CSV (the one `evaluate` reads) is scored by the global model as the device
would; its last part (by sampled_at when there is one, else by row order) is held out. On the rest:
1. Input offsets, where the CSV has a nearby reference station's readings (reference_temperature,
   reference_pressure): the median of reference minus station, kept only where it exceeds the BME680's
   absolute accuracy (within it, the sensor is as good as it is sold and the difference is the sites').
   A dry spell says little about a biased sensor (the labels of a rainless October favour any change
   that predicts less rain), a reference says it directly.
2. A recalibration, where the part holds enough rain: p' = sigmoid(a*logit(p) + b + sum c_i*z_i) on the
   corrected readings, fitted by penalised maximum likelihood, the penalty pulling (a, b, c) towards the
   global model (1, 0, 0), then the F1-maximising threshold. With fewer rainy hours than
   EVENTS_PER_COEFFICIENT per coefficient the fit chases a handful of events, so there is none: the
   global model's calibration and threshold stay.
It is kept only when it beats the global model on the held-out part in log loss; where that part has
no rain (or no dry hour), log loss would reward whatever predicts that one class, so an offset correction
(the only adaptation then) is checked by the reference instead: on the held-out hours the station must
still be off by more than the tolerance, and within it once corrected.

Which model it corrects: the one that scored most of the CSV's rows, as it will serve most of the
station's readings: the trend model for a CSV with sampled_at and a day of history, else the
instantaneous model. Rows the other model scored are left out of the fit and the comparison.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from device_code.contracts import FEATURES as INPUTS, UNITS
from device_code.model import INSTANTANEOUS, TREND, RainModel
from device_code.adaptation import (
    COEFFICIENTS, FORMAT, PROBABILITY_EPSILON, adapted_logit, apply_adaptation, content_id, logit,
    standardised_inputs, validate_adaptation,
)
from model_training.data import FEATURES, LABEL
from model_training.evaluate import (REFERENCE_COLUMNS, STATION_COLUMN, TIME_COLUMN, EvaluationInputError,
                                     adapted_scores, corrected, score)
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
# Rainy (and dry) hours per fitted coefficient before a recalibration is fitted at all: the "ten events
# per variable" rule of thumb for logistic regression (Peduzzi et al., J Clin Epidemiol 1996).
EVENTS_PER_COEFFICIENT = 10
MIN_RECALIBRATION_EVENTS = EVENTS_PER_COEFFICIENT * len(COEFFICIENTS)
# The BME680's absolute accuracy: pressure +-0.6 hPa (0-65 degC; datasheet BST-BME680-DS001, pressure
# specification); temperature +-1.0 degC (0-65 degC; same datasheet's temperature table, not reached by
# this project's search: the figure Bosch publishes for the BME68x family). An offset within it is no bias.
SENSOR_TOLERANCE = {"temperature": 1.0, "pressure": 0.6}
# A day of hours with a reference reading before an offset is estimated.
MIN_REFERENCE_ROWS = 24
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
    if len(rain_fit) < MIN_FIT_ROWS or len(rain_holdout) < MIN_HOLDOUT_ROWS:
        raise EvaluationInputError(
            f"too few rows scored by the {model_name} model: {len(rain_fit)} to fit and {len(rain_holdout)} held out; "
            f"at least {MIN_FIT_ROWS} and {MIN_HOLDOUT_ROWS}")


def recalibration_problem(rain_fit: np.ndarray, rain_holdout: np.ndarray) -> str | None:
    """Why the labels cannot carry a recalibration, or None when they can."""
    rain_rows, dry_rows = int(rain_fit.sum()), int(len(rain_fit) - rain_fit.sum())
    if min(rain_rows, dry_rows) < MIN_RECALIBRATION_EVENTS:
        return (f"the part to fit has {rain_rows} rainy and {dry_rows} dry rows; a recalibration needs "
                f"{MIN_RECALIBRATION_EVENTS} of each ({EVENTS_PER_COEFFICIENT} per coefficient)")
    if not 0 < rain_holdout.sum() < len(rain_holdout):
        return f"the held-out part has {int(rain_holdout.sum())} rainy rows of {len(rain_holdout)}; it needs both"
    return None


def estimate_offsets(df: pd.DataFrame, fit_rows: np.ndarray) -> tuple[dict[str, float], str]:
    """The station's input offsets (reference minus station, the median over the part to fit), 0 where there
    is no reference or the offset is within the sensor's tolerance; and what was found, in words."""
    offsets, found = dict.fromkeys(INPUTS, 0.0), []
    for name, column in REFERENCE_COLUMNS.items():
        if column not in df.columns:
            continue
        difference = (df[column].to_numpy(dtype=np.float64) - df[name].to_numpy(dtype=np.float64))[fit_rows]
        difference = difference[np.isfinite(difference)]
        if len(difference) < MIN_REFERENCE_ROWS:
            found.append(f"{name}: {len(difference)} reference hours, at least {MIN_REFERENCE_ROWS}")
            continue
        median = float(np.median(difference))
        within = abs(median) <= SENSOR_TOLERANCE[name]
        offsets[name] = 0.0 if within else median
        found.append(f"{name} {median:+.2f} {UNITS[name]}" + (f" (within +-{SENSOR_TOLERANCE[name]:g})" if within else ""))
    return offsets, ", ".join(found) or "no reference columns"


def _holdout_record(fraction: float, rain: np.ndarray, global_probability: np.ndarray, global_threshold: float,
                    adapted_probability: np.ndarray, adapted_threshold: float) -> dict:
    before = classification_metrics(rain, global_probability, global_threshold)
    after = classification_metrics(rain, adapted_probability, adapted_threshold)
    one_class = not 0 < rain.sum() < len(rain)
    record = {"check": "reference" if one_class else "log_loss", "fraction": fraction, "rows": int(len(rain)), "rain_rows": int(rain.sum()),
              "log_loss_global": log_loss(rain, global_probability),
              "log_loss_adapted": log_loss(rain, adapted_probability)}
    for key in ("roc_auc", "f1", "ece"):
        record[f"{key}_global"], record[f"{key}_adapted"] = before[key], after[key]
    return record


def _median_difference(df: pd.DataFrame, name: str, rows: np.ndarray) -> tuple[float, int]:
    difference = (df[REFERENCE_COLUMNS[name]].to_numpy(dtype=np.float64) - df[name].to_numpy(dtype=np.float64))[rows]
    difference = difference[np.isfinite(difference)]
    return (float(np.median(difference)) if len(difference) else float("nan")), len(difference)


def reference_problem(df: pd.DataFrame, inputs: pd.DataFrame, offsets: dict[str, float],
                      holdout_rows: np.ndarray) -> str | None:
    """Why the held-out hours' reference readings do not confirm `offsets`, or None when they do."""
    for name, offset in offsets.items():
        if not offset:
            continue
        before, rows = _median_difference(df, name, holdout_rows)
        after, _ = _median_difference(inputs, name, holdout_rows)
        tolerance = SENSOR_TOLERANCE[name]
        if rows < MIN_REFERENCE_ROWS:
            return f"{name}: {rows} held-out reference hours, at least {MIN_REFERENCE_ROWS}"
        if abs(before) <= tolerance or abs(after) > tolerance:
            return (f"{name} differs from the reference by {before:+.2f} {UNITS[name]} uncorrected and {after:+.2f} "
                    f"corrected; a bias is off by more than +-{tolerance:g} and within it once corrected")
    return None


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
    offsets, offsets_found = estimate_offsets(df, fit_rows)
    no_recalibration = recalibration_problem(rain[fit_rows], rain[holdout_rows])
    if no_recalibration and not any(offsets.values()):
        raise AdaptationRefused(f"nothing to adapt: input offsets: {offsets_found}; no recalibration: {no_recalibration}")

    adaptation = {"format": FORMAT, "model_version": model.metadata.version, "model": model_name, "units": UNITS,
                  "input_offsets": offsets, "regularisation": REGULARISATION}
    inputs = corrected(adaptation, df)
    fit_inputs = _inputs(inputs, fit_rows)
    # A spread of 0 (a constant reading) would divide by zero; such an input's z is then 0 anyway.
    adaptation.update(input_means={name: float(np.mean(fit_inputs[name])) for name in FEATURES},
                      input_scales={name: max(float(np.std(fit_inputs[name])), 1e-3) for name in FEATURES})
    if no_recalibration:
        coefficients, threshold = np.array([1.0, 0.0, *np.zeros(len(FEATURES))]), model.metadata.models[model_name].threshold
    else:
        corrected_probability = score(model, inputs)[0][fit_rows]
        coefficients = fit_correction(logit(corrected_probability), standardised_inputs(adaptation, fit_inputs),
                                      rain[fit_rows], REGULARISATION)
        adaptation["coefficients"] = dict(zip(COEFFICIENTS, map(float, coefficients)))
        threshold = choose_threshold(rain[fit_rows], apply_adaptation(adaptation, corrected_probability, fit_inputs))
    adaptation.update(coefficients=dict(zip(COEFFICIENTS, map(float, coefficients))), threshold=float(threshold))
    holdout = _holdout_record(holdout_fraction, rain[holdout_rows], probability[holdout_rows],
                              model.metadata.models[model_name].threshold,
                              adapted_scores(model, adaptation, df)[0][holdout_rows], adaptation["threshold"])
    adaptation.update(fitted_rows=int(len(fit_rows)), fitted_rain_rows=int(rain[fit_rows].sum()), holdout=holdout,
                      csv_sha256=csv_sha256)
    adaptation["id"] = content_id(adaptation)
    problem = validate_adaptation(adaptation, model.metadata.version)
    if problem:
        raise AdaptationRefused(f"the fitted adaptation is unusable: {problem}")
    if holdout["check"] == "reference":
        problem = reference_problem(df, inputs, offsets, holdout_rows)
        if problem:
            raise AdaptationRefused(f"the offsets do not hold on the held-out last {holdout['rows']} rows "
                                    f"(no rain in them to compare on): {problem}")
    elif holdout["log_loss_adapted"] >= holdout["log_loss_global"]:
        raise AdaptationRefused(
            f"not better than the global {model_name} model on the held-out last {holdout['rows']} rows "
            f"({holdout['rain_rows']} rainy): log loss {holdout['log_loss_adapted']:.4f} adapted vs "
            f"{holdout['log_loss_global']:.4f} global (fitted on {len(fit_rows)} rows, {int(rain[fit_rows].sum())} rainy)")
    return adaptation

