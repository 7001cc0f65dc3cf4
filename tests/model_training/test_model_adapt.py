"""`adapt`, `evaluate --adaptation` and the adaptation's schema (model_training.adapt, device_code.adaptation).

Stations are made of real Oct-Dec readings with labels drawn from the global model itself, so the
truth is known: shifting the inputs afterwards (a sensor bias) makes the global model wrong in a way
the adaptation can learn, and nothing else is there to learn. Where a station has reference columns,
they are the readings before the bias: a reference station at the same place.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, strategies as st

from device_code.model import INSTANTANEOUS, TREND, load_model
from model_training.adapt import MIN_RECALIBRATION_EVENTS, SENSOR_TOLERANCE, AdaptationRefused, fit_adaptation
from device_code.adaptation import (
    COEFFICIENTS, FIELDS, FORMAT, apply_adaptation, content_id, validate_adaptation,
)
from model_training.cli import main
from model_training.evaluate import REFERENCE_COLUMNS, adapted_scores, score

BIAS = {"pressure": -20.0, "temperature": 3.0}
READINGS = ["temperature", "humidity", "pressure"]


@pytest.fixture(scope="session")
def global_model(model_folder):
    return load_model(model_folder, "litert")


def labelled_by_the_global_model(model, readings: pd.DataFrame, seed: int, rate_factor: float = 1.0) -> pd.DataFrame:
    probability, _ = score(model, readings)
    rain = np.random.default_rng(seed).random(len(readings)) < np.minimum(1.0, rate_factor * probability)
    return readings.assign(rain=rain.astype(int))


def biased(station: pd.DataFrame, bias: dict[str, float] = BIAS) -> pd.DataFrame:
    return station.assign(**{name: station[name] + offset for name, offset in bias.items()})


def with_reference(station: pd.DataFrame) -> pd.DataFrame:
    """The station's readings as a reference station at its place records them (before any bias)."""
    return station.assign(**{column: station[name] for name, column in REFERENCE_COLUMNS.items()})


@pytest.fixture(scope="session")
def biased_station(global_model, test_split) -> pd.DataFrame:
    """All Oct-Dec readings as one station without times (instantaneous model), sensor biased."""
    readings = test_split[READINGS].reset_index(drop=True)
    return biased(labelled_by_the_global_model(global_model, readings, seed=1))


@pytest.fixture(scope="session")
def biased_timed_station(global_model, test_split) -> pd.DataFrame:
    """JFK's hours with sampled_at (the trend model scores them), sensor biased."""
    hours = (test_split[test_split["origin"] == "JFK"].rename(columns={"time_hour": "sampled_at"})
             [["sampled_at", *READINGS]].reset_index(drop=True))
    return biased(labelled_by_the_global_model(global_model, hours, seed=2))


@pytest.fixture(scope="session")
def adaptation(global_model, biased_station) -> dict:
    return fit_adaptation(global_model, biased_station, 0.3, "0" * 64)


def write_csv(station: pd.DataFrame, path: Path) -> Path:
    station.to_csv(path, index=False)
    return path


def test_a_fit_on_biased_readings_beats_the_global_model_on_the_held_out_last_part(adaptation, metadata):
    holdout = adaptation["holdout"]
    assert holdout["log_loss_adapted"] < holdout["log_loss_global"]
    assert holdout["ece_adapted"] < holdout["ece_global"]
    assert adaptation["model"] == INSTANTANEOUS and adaptation["model_version"] == metadata["version"]
    assert validate_adaptation(adaptation, metadata["version"]) is None


def test_adapt_writes_the_adaptation_and_evaluate_scores_the_adapted_model(capsys, model_folder, biased_station,
                                                                          tmp_path, metadata):
    csv, out = write_csv(biased_station, tmp_path / "station.csv"), tmp_path / "adaptation.json"
    assert main(["adapt", "--model", str(model_folder), "--csv", str(csv), "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["format"] == FORMAT and written["id"] in capsys.readouterr().out
    assert validate_adaptation(written, metadata["version"]) is None

    assert main(["evaluate", "--model", str(model_folder), "--csv", str(csv), "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--model", str(model_folder), "--csv", str(csv), "--json", "--adaptation", str(out)]) == 0
    after = json.loads(capsys.readouterr().out)
    assert "adaptation" not in before
    assert after["adaptation"] == {"id": written["id"], "model": INSTANTANEOUS, "rows": len(biased_station)}
    assert after["threshold"] == written["threshold"] != before["threshold"]
    assert after["brier"] < before["brier"] and after["ece"] < before["ece"]


def test_evaluate_without_an_adaptation_is_unchanged(capsys, model_folder, test_split_csv, metadata):
    assert main(["evaluate", "--model", str(model_folder), "--csv", str(test_split_csv), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = metadata["models"][INSTANTANEOUS]["metrics"]["network"]["test"]
    assert "adaptation" not in result
    for key in ("roc_auc", "ece", "f1", "brier", "threshold"):
        assert result[key] == pytest.approx(expected[key], abs=1e-4), key


def test_adapt_refuses_when_the_fitting_hours_mislead_and_writes_nothing(capsys, global_model, model_folder,
                                                                        test_split, tmp_path):
    """Three times the global model's rain in the first 70 % of the rows, the global model's own rate
    after: what the fit learns is wrong on the held-out part."""
    readings = test_split[READINGS].reset_index(drop=True)
    cut = int(0.7 * len(readings))
    station = pd.concat([labelled_by_the_global_model(global_model, readings.iloc[:cut], seed=3, rate_factor=3.0),
                         labelled_by_the_global_model(global_model, readings.iloc[cut:], seed=4)])
    csv, out = write_csv(station, tmp_path / "misleading.csv"), tmp_path / "adaptation.json"
    assert main(["adapt", "--model", str(model_folder), "--csv", str(csv), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("adaptation not written: not better than the global")
    assert "log loss" in lines[0] and captured.out == ""
    assert not out.exists()


@pytest.mark.parametrize("content, expected", [
    ("temperature,humidity,pressure\n12,90,1000\n", "lacks column(s) ['rain']"),
    ("temperature,humidity,pressure,rain\n" + "12,90,1000,0\n12,95,995,1\n" * 40, "too few rows"),
    ("temperature,humidity,pressure,rain\n12,nan,1000,1\n", "missing or non-numeric"),
    ("temperature,humidity,pressure,rain,reference_pressure\n12,90,1000,1,wet\n", "'reference_pressure' has 1 missing"),
    ("temperature,humidity,pressure,rain,reference_temperature\n12,90,1000,1,200\n", "'reference_temperature' has 1 value"),
])
def test_adapt_refuses_bad_input_in_one_line_and_writes_nothing(capsys, model_folder, tmp_path, content, expected):
    csv, out = tmp_path / "bad.csv", tmp_path / "adaptation.json"
    csv.write_text(content)
    assert main(["adapt", "--model", str(model_folder), "--csv", str(csv), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert not out.exists()


def test_without_a_reference_and_with_too_little_rain_there_is_nothing_to_adapt(capsys, model_folder, tmp_path):
    csv, out = tmp_path / "dry.csv", tmp_path / "adaptation.json"
    csv.write_text("temperature,humidity,pressure,rain\n" + "12,90,1000,0\n" * 290 + "12,95,995,1\n" * 10)
    assert main(["adapt", "--model", str(model_folder), "--csv", str(csv), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("adaptation not written: nothing to adapt: input offsets: no reference columns")
    assert f"a recalibration needs {MIN_RECALIBRATION_EVENTS} of each" in line
    assert not out.exists()


def dry_start(station: pd.DataFrame, rainy_rows: int) -> pd.DataFrame:
    """The station's labels with only `rainy_rows` rainy hours, all in the first fifth: a dry spell with
    too little rain to recalibrate and none in the held-out part, as a dry October gives."""
    rain = np.zeros(len(station), dtype=int)
    rain[np.flatnonzero(station["rain"].to_numpy()[: len(station) // 5])[:rainy_rows]] = 1
    return station.assign(rain=rain)


def test_a_reference_station_gives_the_sensor_offsets_which_the_models_then_see(global_model, biased_timed_station,
                                                                               metadata):
    station = dry_start(with_reference(biased_timed_station.assign(**{
        name: biased_timed_station[name] - offset for name, offset in BIAS.items()})).pipe(biased), rainy_rows=8)
    adaptation = fit_adaptation(global_model, station, 0.3, "reference")
    assert adaptation["input_offsets"] == pytest.approx({"temperature": -BIAS["temperature"], "humidity": 0.0,
                                                          "pressure": -BIAS["pressure"]}, abs=1e-9)
    # Too few rainy hours to recalibrate: the global calibration and threshold stay.
    assert adaptation["coefficients"] == {"logit": 1.0, "intercept": 0.0, "temperature": 0.0, "humidity": 0.0,
                                          "pressure": 0.0}
    assert adaptation["threshold"] == metadata["models"][TREND]["threshold"]
    # No rain held out: the reference, not log loss, confirmed the offsets there.
    assert adaptation["holdout"]["check"] == "reference" and adaptation["holdout"]["rain_rows"] == 0
    assert validate_adaptation(adaptation, metadata["version"]) is None
    # Under the adaptation the models score exactly the unbiased readings.
    unbiased = station.assign(**{name: station[name] - offset for name, offset in BIAS.items()})
    adapted, used = adapted_scores(global_model, adaptation, station)
    expected, expected_used = score(global_model, unbiased)
    assert np.array_equal(used, expected_used) and adapted == pytest.approx(expected, abs=1e-6)


def test_offsets_within_the_sensors_tolerance_are_no_bias(global_model, biased_timed_station):
    small = {name: 0.9 * tolerance for name, tolerance in SENSOR_TOLERANCE.items()}
    station = dry_start(biased(with_reference(biased_timed_station), small), rainy_rows=8)
    with pytest.raises(AdaptationRefused, match=r"nothing to adapt: input offsets: temperature -0.90 degC \(within \+-1\), pressure -0.54 hPa \(within"):
        fit_adaptation(global_model, station, 0.3, "small")


def test_an_offset_the_held_out_hours_do_not_show_is_refused(global_model, biased_timed_station):
    """The sensor was off only while the first hours were recorded (a box in the sun, since moved)."""
    station = dry_start(with_reference(biased_timed_station), rainy_rows=8)
    early = np.arange(len(station)) < len(station) // 2
    station["pressure"] = station["pressure"] + np.where(early, BIAS["pressure"], 0.0)
    with pytest.raises(AdaptationRefused, match="the offsets do not hold on the held-out"):
        fit_adaptation(global_model, station, 0.3, "moved")


def test_blank_reference_cells_are_hours_without_a_reference(capsys, model_folder, biased_timed_station, tmp_path,
                                                             metadata):
    station = dry_start(biased(with_reference(biased_timed_station.assign(**{
        name: biased_timed_station[name] - offset for name, offset in BIAS.items()}))), rainy_rows=8)
    station.loc[station.index % 3 == 0, list(REFERENCE_COLUMNS.values())] = np.nan
    csv, out = write_csv(station, tmp_path / "gaps.csv"), tmp_path / "adaptation.json"
    assert main(["adapt", "--model", str(model_folder), "--csv", str(csv), "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["input_offsets"]["pressure"] == pytest.approx(-BIAS["pressure"], abs=1e-6)
    said = capsys.readouterr().out
    assert "input offsets [temperature -3.00, pressure +20.00]" in said
    assert "confirmed by the reference station (no rain held out to compare on)" in said


def test_the_holdout_is_the_last_part_by_time_whatever_the_row_order(global_model, biased_timed_station):
    in_order = fit_adaptation(global_model, biased_timed_station, 0.3, "in order")
    shuffled = biased_timed_station.sample(frac=1.0, random_state=5).reset_index(drop=True)
    from_shuffled = fit_adaptation(global_model, shuffled, 0.3, "shuffled")
    assert in_order["model"] == TREND
    assert from_shuffled["holdout"].pop("check") == in_order["holdout"].pop("check") == "log_loss"
    assert from_shuffled["holdout"] == pytest.approx(in_order["holdout"], rel=1e-9)
    assert from_shuffled["coefficients"] == pytest.approx(in_order["coefficients"], rel=1e-6)
    assert from_shuffled["fitted_rows"] == in_order["fitted_rows"]


def test_apply_adaptation_matches_the_formula_by_hand():
    adaptation = {"coefficients": {"logit": 2.0, "intercept": -1.0, "temperature": 0.5, "humidity": 0.0, "pressure": 0.0},
                  "input_means": {"temperature": 10.0, "humidity": 50.0, "pressure": 1010.0},
                  "input_scales": {"temperature": 5.0, "humidity": 10.0, "pressure": 8.0}}
    # logit(0.8) = ln 4; z_temperature = (15 - 10) / 5 = 1.
    expected = 1 / (1 + math.exp(-(2 * math.log(4) - 1 + 0.5)))
    result = apply_adaptation(adaptation, 0.8, {"temperature": 15.0, "humidity": 70.0, "pressure": 990.0})
    assert result == pytest.approx([expected], rel=1e-12)


def with_field(adaptation: dict, path: str, value) -> dict:
    """A copy with one (dotted) field replaced and the id recomputed (when JSON can hold the value):
    only that field is wrong."""
    changed = copy.deepcopy(adaptation)
    *parents, last = path.split(".")
    target = changed
    for key in parents:
        target = target[key]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    try:
        changed["id"] = content_id(changed)
    except ValueError:  # NaN or infinity: validate_adaptation must refuse it before any hash
        pass
    return changed


DELETE = object()


@pytest.mark.parametrize("path, value, expected", [
    ("format", "rainedge-adaptation/2", "format"),
    ("model", "hourly", "model is"),
    ("units", {"temperature": "degF", "humidity": "%RH", "pressure": "hPa"}, "units"),
    ("coefficients.logit", -1.0, "coefficients.logit"),
    ("coefficients.logit", 0.0, "coefficients.logit"),
    ("coefficients.intercept", 11.0, "coefficients.intercept"),
    ("coefficients.pressure", True, "coefficients.pressure"),
    ("coefficients.humidity", "0.1", "coefficients.humidity"),
    ("coefficients.temperature", DELETE, "coefficients is"),
    ("input_means.pressure", 5000.0, "input_means.pressure"),
    ("input_scales.humidity", 0.0, "input_scales.humidity"),
    ("input_scales", [1, 2, 3], "input_scales is"),
    ("threshold", 1.0, "threshold"),
    ("threshold", 0.0, "threshold"),
    ("threshold", None, "threshold"),
    ("fitted_rows", 0, "fitted_rows"),
    ("fitted_rain_rows", 10 ** 9, "exceeds fitted_rows"),
    ("holdout.log_loss_adapted", "low", "holdout.log_loss_adapted"),
    ("holdout.extra", 1, "holdout is"),
    ("regularisation", -1.0, "regularisation"),
    ("csv_sha256", DELETE, "fields missing ['csv_sha256']"),
    ("comment", "hello", "unknown"),
    ("coefficients.pressure", 10 ** 400, "coefficients.pressure"),
    ("input_offsets.pressure", 61.0, "input_offsets.pressure"),
    ("input_offsets.temperature", "warm", "input_offsets.temperature"),
    ("input_offsets", {"pressure": 1.0}, "input_offsets is"),
    ("holdout.check", "vibes", "holdout.check"),
])
def test_validate_adaptation_refuses_each_bad_field(adaptation, metadata, path, value, expected):
    problem = validate_adaptation(with_field(adaptation, path, value), metadata["version"])
    assert problem is not None and expected in problem


def test_validate_adaptation_refuses_an_edit_another_model_and_non_json(adaptation, metadata):
    edited = copy.deepcopy(adaptation)
    edited["threshold"] = 0.5
    assert "not the content's hash" in validate_adaptation(edited, metadata["version"])
    assert "the global model applies" in validate_adaptation(adaptation, "rain-0000000000000000")
    assert "JSON object" in validate_adaptation([adaptation], metadata["version"])
    assert "cannot represent" in validate_adaptation(with_field(adaptation, "threshold", 0.5) | {"threshold": math.nan},
                                                     metadata["version"])


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=6)


@given(field=st.sampled_from(FIELDS + tuple(f"coefficients.{name}" for name in COEFFICIENTS)
                             + ("input_means.pressure", "input_scales.temperature", "holdout.rows")),
       value=json_values)
def test_validate_adaptation_answers_any_value_and_what_it_accepts_gives_probabilities(adaptation, metadata, field, value):
    candidate = with_field(adaptation, field, value)
    problem = validate_adaptation(candidate, metadata["version"])
    assert problem is None or isinstance(problem, str) and "\n" not in problem
    if problem is None:
        probability = apply_adaptation(candidate, [0.0, 0.3, 1.0], {"temperature": [-40, 10, 85], "humidity": [0, 50, 100],
                                                                   "pressure": [870, 1010, 1085]})
        assert np.all((probability >= 0) & (probability <= 1))


def test_fit_adaptation_refuses_a_csv_of_several_stations(global_model, biased_timed_station):
    from model_training.evaluate import EvaluationInputError

    two = biased_timed_station.assign(station=np.where(np.arange(len(biased_timed_station)) % 2, "a", "b"))
    with pytest.raises(EvaluationInputError, match="2 stations"):
        fit_adaptation(global_model, two, 0.3, "x")


def test_a_refusal_is_an_exception_not_a_file(global_model, biased_station):
    labels_reversed = biased_station.assign(rain=1 - biased_station["rain"])
    with pytest.raises(AdaptationRefused):
        fit_adaptation(global_model, labels_reversed, 0.3, "x")
