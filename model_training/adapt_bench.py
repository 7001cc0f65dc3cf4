"""Benchmark the per-station adaptation (model_training.adapt) on the held-out NYC airports.

    python -m model_training.adapt_bench [--model build/model] [--json FILE]

Per airport of the test split (Oct-Dec 2013), as recorded and with a synthetic sensor bias: `adapt`
fits on the airport's first 30 % of hours (holding out its own last part, as the command does), and
global and adapted model are scored on the remaining 70 %. Each airport's reference station is a
neighbouring airport (REFERENCE_STATION, 15-25 km away, never the airport itself): its recorded
temperature and sea-level pressure of the same hour are the CSV's reference columns, as the official
station that gives a Pi its rain labels would give them. A refused adaptation leaves the global
model in force, so its "adapted" scores are the global ones. Every hour is scored with the history
before it, as on the device: the 70 % starts with a day of history from the 30 %.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from device_code.model import ModelUnavailable, load_model  # noqa: E402
from model_training.adapt import DEFAULT_HOLDOUT, AdaptationRefused, fit_adaptation, log_loss  # noqa: E402
from model_training.artifact import ModelArtifactError, opened_artifact  # noqa: E402
from model_training.bench import publish  # noqa: E402
from model_training.data import LABEL, load_observations, split_by_time  # noqa: E402
from model_training.evaluate import (REFERENCE_COLUMNS, TIME_COLUMN, EvaluationInputError, adapted_scores,  # noqa: E402
                                     score)
from model_training.metrics import classification_metrics  # noqa: E402

ADAPTATION_SHARE = 0.3
# A BME680 whose pressure is reduced to sea level with altitude 0 while it stands ~100 m up reads
# ~12 hPa low; one in a box next to the Pi's CPU reads ~2 degC warm.
SYNTHETIC_BIAS = {"pressure": -12.0, "temperature": 2.0}
GOALS = {"roc_auc": (">=", 0.93), "f1": (">=", 0.60), "ece": ("<=", 0.05)}
METRICS = ("roc_auc", "f1", "ece", "log_loss")
# Newark-LaGuardia ~25 km, JFK-LaGuardia ~15 km.
REFERENCE_STATION = {"EWR": "LGA", "JFK": "LGA", "LGA": "JFK"}


def airport_hours(test: pd.DataFrame, airport: str, biased: bool) -> pd.DataFrame:
    """The airport's hours as a Pi there would record them, with its reference station's readings."""
    def recorded(origin: str) -> pd.DataFrame:
        return (test[test["origin"] == origin].sort_values("time_hour")
                .rename(columns={"time_hour": TIME_COLUMN})[[TIME_COLUMN, "temperature", "humidity", "pressure", LABEL]])

    reference = recorded(REFERENCE_STATION[airport]).set_index(TIME_COLUMN)
    hours = recorded(airport).reset_index(drop=True)
    for name, column in REFERENCE_COLUMNS.items():
        hours[column] = hours[TIME_COLUMN].map(reference[name]).to_numpy(dtype=np.float64)
    if biased:
        for name, offset in SYNTHETIC_BIAS.items():
            hours[name] += offset
    return hours


def scores(rain: np.ndarray, probability: np.ndarray, thresholds: np.ndarray) -> dict:
    metrics = classification_metrics(rain, probability, thresholds)
    return {"roc_auc": metrics["roc_auc"], "f1": metrics["f1"], "ece": metrics["ece"],
            "log_loss": log_loss(rain, probability)}


def bench_station(model, hours: pd.DataFrame) -> dict:
    cut = int(round(len(hours) * ADAPTATION_SHARE))
    probability, used = score(model, hours)
    thresholds = np.array([model.metadata.models[name].threshold for name in used])
    later, rain = slice(cut, None), hours[LABEL].to_numpy()
    row = {"hours_adapted_on": cut, "hours_scored": len(hours) - cut, "rain_rows_adapted_on": int(rain[:cut].sum()),
           "rain_rows_scored": int(rain[later].sum()),
           "global": scores(rain[later], probability[later], thresholds[later])}
    try:
        adaptation = fit_adaptation(model, hours.iloc[:cut].reset_index(drop=True), DEFAULT_HOLDOUT, "benchmark")
    except (AdaptationRefused, EvaluationInputError) as refusal:
        return {**row, "adaptation": None, "refused": str(refusal), "adapted": row["global"]}
    probability, used = adapted_scores(model, adaptation, hours)
    thresholds = np.where(used == adaptation["model"], adaptation["threshold"], thresholds)
    return {**row, "adaptation": adaptation, "refused": None,
            "adapted": scores(rain[later], probability[later], thresholds[later])}


def goals_met(row: dict) -> dict[str, bool]:
    met = {name: (row["adapted"][name] >= limit if op == ">=" else row["adapted"][name] <= limit)
           for name, (op, limit) in GOALS.items()}
    met["log_loss_not_worse"] = row["adapted"]["log_loss"] <= row["global"]["log_loss"]
    return met


def benchmark(model_path: Path) -> dict:
    test = split_by_time(load_observations())[2]
    with opened_artifact(model_path) as folder:
        model = load_model(folder, "litert")
    rows = []
    for biased in (False, True):
        for airport in sorted(test["origin"].unique()):
            row = {"station": airport, "biased": biased, **bench_station(model, airport_hours(test, airport, biased))}
            rows.append({**row, "goals_met": goals_met(row)})
    return {"model_version": model.metadata.version, "adaptation_share": ADAPTATION_SHARE,
            "synthetic_bias": SYNTHETIC_BIAS, "goals": GOALS, "stations": rows}


def _cell(value) -> str:
    return "  n/a" if value is None else f"{value:.3f}"


def _outcome(adaptation: dict) -> str:
    offsets = ", ".join(f"{name} {value:+.1f}" for name, value in adaptation["input_offsets"].items() if value)
    recalibrated = adaptation["coefficients"] != {"logit": 1.0, "intercept": 0.0, "temperature": 0.0,
                                                  "humidity": 0.0, "pressure": 0.0}
    return f"{adaptation['id']} offsets [{offsets or 'none'}]" + (" + recalibration" if recalibrated else "")


def format_table(report: dict) -> str:
    bias = ", ".join(f"{name} {offset:+g}" for name, offset in SYNTHETIC_BIAS.items())
    lines = [f"model {report['model_version']}: adapted on each airport's first {ADAPTATION_SHARE:.0%} of Oct-Dec 2013, "
             f"scored on the rest (global -> adapted); biased: {bias}",
             f"{'station':<12}{'fit/scored (rainy)':<22}" + "".join(f"{name:>16}" for name in METRICS) + "  adaptation"]
    for row in report["stations"]:
        name = row["station"] + (" biased" if row["biased"] else "")
        counts = f"{row['hours_adapted_on']}({row['rain_rows_adapted_on']})/{row['hours_scored']}({row['rain_rows_scored']})"
        cells = "".join(f"{_cell(row['global'][m]):>8}->{_cell(row['adapted'][m]):<6}" for m in METRICS)
        outcome = _outcome(row["adaptation"]) if row["adaptation"] else f"refused: {row['refused']}"
        missed = [name for name, met in row["goals_met"].items() if not met]
        lines.append(f"{name:<12}{counts:<22}{cells}  {outcome}" + (f"  [missed: {', '.join(missed)}]" if missed else ""))
    goals = ", ".join(f"{name} {op} {limit:g}" for name, (op, limit) in GOALS.items())
    lines.append(f"goals (adapted, on the 70 %): {goals}, log loss not worse than global")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_training.adapt_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("build/model"), help="rain_model.zip, its folder, or build/model")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    try:
        report = benchmark(args.model)
    except (ModelArtifactError, ModelUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    publish(format_table(report), report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
