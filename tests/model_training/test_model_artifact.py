"""The artifact built by `make train`: contract, quality floors, SavedModel/LiteRT agreement."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from model_training.artifact import LiteRTModel, SavedModel
from model_training.data import FEATURES, file_sha256, weather_csv_path

AGREEMENT_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def litert_model(model_folder):
    return LiteRTModel(model_folder)


@pytest.fixture(scope="module")
def saved_model(model_folder):
    return SavedModel(model_folder)


def out_of_range_probes() -> dict[str, np.ndarray]:
    """Corners of and far beyond the BME680 ranges, plus non-physical values."""
    temperature = [-40.0, 85.0, -100.0, 200.0, 20.0, 20.0, 20.0, 0.0]
    humidity = [0.0, 100.0, 50.0, 50.0, -10.0, 150.0, 100.0, 0.0]
    pressure = [300.0, 1100.0, 1013.0, 1013.0, 1013.0, 1013.0, 50.0, 5000.0]
    return {name: np.array(values, dtype=np.float32) for name, values in zip(FEATURES, (temperature, humidity, pressure))}


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


def test_metadata_follows_the_contract(metadata: dict):
    assert metadata["feature_order"] == ["temperature", "humidity", "pressure"]
    assert metadata["units"] == {"temperature": "degC", "humidity": "%RH", "pressure": "hPa"}
    assert metadata["valid_ranges"] == {
        "temperature": [-40.0, 85.0],
        "humidity": [0.0, 100.0],
        "pressure": [300.0, 1100.0],
    }
    assert 0.0 < metadata["threshold"] < 1.0
    assert metadata["training_data_sha256"] == file_sha256(weather_csv_path())
    assert metadata["version"].startswith("rain-") and len(metadata["version"]) == len("rain-") + 16
    assert metadata["created_by"]


def test_threshold_is_the_validation_choice_not_the_test_one(metadata: dict):
    network = metadata["metrics"]["network"]
    assert network["validation"]["threshold"] == network["test"]["threshold"] == metadata["threshold"]


def test_quality_floors_on_october_to_december(metadata: dict):
    test = metadata["metrics"]["network"]["test"]
    assert test["n"] > 6000
    assert test["roc_auc"] >= 0.93
    assert test["pr_auc"] >= 0.45


def test_network_beats_the_logistic_baseline_or_the_card_says_why_not(metadata: dict, trained_model_dir: Path):
    network = metadata["metrics"]["network"]["test"]["pr_auc"]
    baseline = metadata["metrics"]["logistic_baseline"]["test"]["pr_auc"]
    card = (trained_model_dir / "model_card.md").read_text()
    if network > baseline:
        assert "beats the logistic baseline" in card
    else:
        assert "does NOT beat the logistic baseline" in card
    assert f"{network:.3f}" in card and f"{baseline:.3f}" in card


def test_both_runtimes_expose_the_named_signature(model_folder: Path):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    litert_signature = Interpreter(model_path=str(model_folder / "model.tflite")).get_signature_list()
    assert litert_signature == {"serving_default": {"inputs": sorted(FEATURES), "outputs": ["probability"]}}

    serving = tf.saved_model.load(str(model_folder / "saved_model")).signatures["serving_default"]
    inputs = serving.structured_input_signature[1]
    assert set(inputs) == set(FEATURES)
    for spec in inputs.values():
        assert spec.dtype == tf.float32 and spec.shape.as_list() == [None]
    output = serving.structured_outputs["probability"]
    assert output.dtype == tf.float32 and output.shape.as_list() == [None]


def test_saved_model_and_litert_agree_on_the_test_split(test_split, litert_model, saved_model):
    columns = [test_split[name].to_numpy(dtype=np.float32) for name in FEATURES]
    from_litert = litert_model.predict(*columns)
    from_saved_model = saved_model.predict(*columns)
    assert from_litert.shape == from_saved_model.shape == (len(test_split),)
    assert np.all((from_litert >= 0) & (from_litert <= 1))
    np.testing.assert_allclose(from_litert, from_saved_model, rtol=0, atol=AGREEMENT_TOLERANCE)


def test_saved_model_and_litert_agree_out_of_range(litert_model, saved_model):
    probes = out_of_range_probes()
    from_litert = litert_model.predict(**probes)
    assert np.all(np.isfinite(from_litert))
    np.testing.assert_allclose(from_litert, saved_model.predict(**probes), rtol=0, atol=AGREEMENT_TOLERANCE)


def test_single_reading_batch_matches_the_batched_prediction(litert_model, test_split):
    row = test_split.iloc[0]
    single = litert_model.predict(*([np.float32(row[name])] for name in FEATURES))
    batched = litert_model.predict(*(test_split[name].to_numpy(dtype=np.float32)[:5] for name in FEATURES))
    assert single.shape == (1,)
    assert single[0] == pytest.approx(batched[0], abs=AGREEMENT_TOLERANCE)


def test_saturated_low_pressure_air_is_rain_and_dry_high_pressure_air_is_not(litert_model, metadata):
    probability = litert_model.predict([12.0, 12.0], [97.0, 35.0], [1000.0, 1030.0])
    assert probability[0] >= metadata["threshold"] > probability[1]
