"""The artifact built by `make train`: contract, quality goals, calibration, SavedModel/LiteRT agreement."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from device_code import features
from device_code.model import INSTANTANEOUS, TREND, load_model
from model_training.data import file_sha256, trend_frame, weather_csv_path
from model_training.metrics import expected_calibration_error

AGREEMENT_TOLERANCE = 1e-5
# The goals of issue 12, on Oct-Dec 2013.
GOALS = {TREND: {"roc_auc": 0.95, "pr_auc": 0.60}, INSTANTANEOUS: {"roc_auc": 0.93, "pr_auc": 0.50}}
MAX_ECE = 0.02


@pytest.fixture(scope="module")
def litert_model(model_folder):
    return load_model(model_folder, "litert")


@pytest.fixture(scope="module")
def tensorflow_model(model_folder):
    return load_model(model_folder, "tensorflow")


@pytest.fixture(scope="module")
def test_inputs(observations, test_split):
    """Each model's inputs on the test months (trend inputs from each airport's full series)."""
    trend = trend_frame(observations)[observations["time_hour"] >= test_split["time_hour"].min()]
    trend = trend[features.covered({name: trend[name].to_numpy() for name in features.TREND_INPUTS})]
    rain = observations.loc[trend.index, "rain"].to_numpy()
    return {
        INSTANTANEOUS: ({name: test_split[name].to_numpy() for name in features.INSTANTANEOUS_INPUTS},
                        test_split["rain"].to_numpy()),
        TREND: ({name: trend[name].to_numpy() for name in features.TREND_INPUTS}, rain),
    }


def out_of_range_probes(inputs: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Corners of and far beyond the BME680 ranges, non-physical values, huge changes."""
    columns = {
        "temperature": [-40.0, 85.0, -100.0, 200.0, 20.0, 20.0, 20.0, 0.0],
        "humidity": [0.0, 100.0, 50.0, 50.0, -10.0, 150.0, 100.0, 0.0],
        "pressure": [300.0, 1100.0, 1013.0, 1013.0, 1013.0, 1013.0, 50.0, 5000.0],
    }
    changes = [0.0, 0.0, -200.0, 200.0, 50.0, -50.0, 1000.0, -1000.0]
    return {name: np.array(columns.get(name, changes), dtype=np.float32) for name in inputs}


def test_zip_holds_exactly_the_unpacked_folder(trained_model_dir: Path, model_folder: Path):
    with zipfile.ZipFile(trained_model_dir / "rain_model.zip") as archive:
        zipped = {name: hashlib.sha256(archive.read(name)).hexdigest() for name in archive.namelist()}
    unpacked = {
        path.relative_to(model_folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in model_folder.rglob("*")
        if path.is_file()
    }
    assert zipped == unpacked
    assert {"metadata.json", "model.tflite", "saved_model/saved_model.pb"} <= set(zipped)
    assert (trained_model_dir / "model_card.md").is_file()
    assert (trained_model_dir / "reliability.png").read_bytes().startswith(b"\x89PNG")


def test_metadata_says_which_model_is_which_what_it_takes_and_what_history_it_needs(metadata: dict):
    assert metadata["feature_order"] == ["temperature", "humidity", "pressure"]
    assert metadata["units"] == {"temperature": "degC", "humidity": "%RH", "pressure": "hPa"}
    assert metadata["valid_ranges"] == {"temperature": [-40.0, 85.0], "humidity": [0.0, 100.0],
                                        "pressure": [300.0, 1100.0]}
    models = metadata["models"]
    assert set(models) == {TREND, INSTANTANEOUS}
    assert models[INSTANTANEOUS]["signature"] == "serving_default"
    assert models[INSTANTANEOUS]["inputs"] == ["temperature", "humidity", "pressure"]
    assert models[INSTANTANEOUS]["history"] is None
    assert models[TREND]["signature"] == "trend"
    assert models[TREND]["inputs"] == list(features.TREND_INPUTS)
    assert models[TREND]["history"] == {"window_s": 24 * 3600 + 900, "lag_tolerance_s": 900,
                                        "lags_s": [3600, 7200, 10800, 86400]}
    for model in models.values():
        assert 0.0 < model["threshold"] < 1.0
        assert model["output"] == "probability"
        assert model["calibration"]["slope"] > 0
    assert metadata["training_data_sha256"] == file_sha256(weather_csv_path())
    assert metadata["version"].startswith("rain-") and len(metadata["version"]) == len("rain-") + 16
    assert metadata["created_by"]


def test_thresholds_are_the_validation_choice_not_the_test_one(metadata: dict):
    for model in metadata["models"].values():
        network = model["metrics"]["network"]
        assert network["validation"]["threshold"] == network["test"]["threshold"] == model["threshold"]


@pytest.mark.parametrize("name", [TREND, INSTANTANEOUS])
def test_quality_goals_on_october_to_december(metadata: dict, name: str):
    test = metadata["models"][name]["metrics"]["network"]["test"]
    assert test["n"] > 6000
    assert test["roc_auc"] >= GOALS[name]["roc_auc"]
    assert test["pr_auc"] >= GOALS[name]["pr_auc"]
    assert test["ece"] <= MAX_ECE


def test_the_trend_model_scores_nearly_every_test_hour(metadata: dict):
    assert metadata["models"][TREND]["metrics"]["network"]["test"]["coverage"] > 0.97


@pytest.mark.parametrize("name", [TREND, INSTANTANEOUS])
def test_the_exported_graph_is_calibrated_on_the_test_months(litert_model, test_inputs, name):
    """Calibration is inside model.tflite: its raw output, not a post-processing step, has ECE <= 0.02."""
    inputs, rain = test_inputs[name]
    probability = litert_model.run(name, inputs)
    assert expected_calibration_error(rain, probability) <= MAX_ECE
    assert probability.mean() == pytest.approx(rain.mean(), abs=MAX_ECE)


def test_network_beats_the_logistic_baseline_or_the_card_says_why_not(metadata: dict, trained_model_dir: Path):
    card = (trained_model_dir / "model_card.md").read_text()
    for name, model in metadata["models"].items():
        network = model["metrics"]["network"]["test"]["pr_auc"]
        baseline = model["metrics"]["logistic_baseline"]["test"]["pr_auc"]
        verdict = "beats its logistic baseline" if network > baseline else "does NOT beat its logistic baseline"
        assert f"The {name} network {verdict} on test PR-AUC ({network:.3f} vs {baseline:.3f})" in card


def test_card_reports_calibration_and_per_station_results(metadata: dict, trained_model_dir: Path):
    card = (trained_model_dir / "model_card.md").read_text()
    assert "![reliability diagram](reliability.png)" in card
    for name, model in metadata["models"].items():
        test = model["metrics"]["network"]["test"]
        assert f"| brier | {test['brier']:.3f} |" in card and f"| ece | {test['ece']:.3f} |" in card
        for station, values in model["metrics"]["test_by_station"].items():
            assert f"| {station} | {values['n']} | {values['roc_auc']:.3f} |" in card


def test_both_runtimes_expose_both_named_signatures(model_folder: Path):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    assert Interpreter(model_path=str(model_folder / "model.tflite")).get_signature_list() == {
        "serving_default": {"inputs": sorted(features.INSTANTANEOUS_INPUTS), "outputs": ["probability"]},
        "trend": {"inputs": sorted(features.TREND_INPUTS), "outputs": ["probability"]},
    }
    loaded = tf.saved_model.load(str(model_folder / "saved_model"))
    for signature, inputs in (("serving_default", features.INSTANTANEOUS_INPUTS), ("trend", features.TREND_INPUTS)):
        serving = loaded.signatures[signature]
        specs = serving.structured_input_signature[1]
        assert set(specs) == set(inputs)
        for spec in specs.values():
            assert spec.dtype == tf.float32 and spec.shape.as_list() == [None]
        output = serving.structured_outputs["probability"]
        assert output.dtype == tf.float32 and output.shape.as_list() == [None]


@pytest.mark.parametrize("name", [TREND, INSTANTANEOUS])
def test_saved_model_and_litert_agree_on_the_test_split(litert_model, tensorflow_model, test_inputs, name):
    inputs, rain = test_inputs[name]
    from_litert = litert_model.run(name, inputs)
    from_saved_model = tensorflow_model.run(name, inputs)
    assert from_litert.shape == from_saved_model.shape == rain.shape
    np.testing.assert_allclose(from_litert, from_saved_model, rtol=0, atol=AGREEMENT_TOLERANCE)


@pytest.mark.parametrize("name", [TREND, INSTANTANEOUS])
def test_saved_model_and_litert_agree_out_of_range(litert_model, tensorflow_model, name):
    probes = out_of_range_probes(litert_model.metadata.models[name].inputs)
    from_litert = litert_model.run(name, probes)
    assert np.all(np.isfinite(from_litert))
    np.testing.assert_allclose(from_litert, tensorflow_model.run(name, probes), rtol=0, atol=AGREEMENT_TOLERANCE)


def test_single_reading_batch_matches_the_batched_prediction(litert_model, test_split):
    columns = {name: test_split[name].to_numpy()[:5] for name in features.INSTANTANEOUS_INPUTS}
    batched = litert_model.run(INSTANTANEOUS, columns)
    single = litert_model.probability(*(columns[name][0] for name in features.INSTANTANEOUS_INPUTS))
    assert single == pytest.approx(batched[0], abs=AGREEMENT_TOLERANCE)


def test_saturated_low_pressure_air_is_rain_and_dry_high_pressure_air_is_not(litert_model):
    probability = litert_model.run(INSTANTANEOUS, {"temperature": [12.0, 12.0], "humidity": [97.0, 35.0],
                                                   "pressure": [1000.0, 1030.0]})
    assert probability[0] >= litert_model.metadata.models[INSTANTANEOUS].threshold > probability[1]


def test_rising_humidity_and_falling_pressure_raise_the_trend_model_probability(litert_model):
    steady = {name: np.zeros(1) for name in features.TREND_INPUTS}
    steady.update(temperature=np.array([12.0]), humidity=np.array([90.0]), pressure=np.array([1005.0]))
    worsening = {**steady, "humidity_change_1h": np.array([8.0]), "humidity_change_3h": np.array([15.0]),
                 "humidity_now_minus_3h_min": np.array([15.0]), "pressure_change_3h": np.array([-3.0]),
                 "pressure_3h_max_minus_now": np.array([3.0]), "temperature_change_1h": np.array([-2.0])}
    assert litert_model.run(TREND, worsening)[0] > litert_model.run(TREND, steady)[0]
