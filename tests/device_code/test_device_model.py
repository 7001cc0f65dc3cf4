"""device_code.model with the artifact `make train` built: both models, the choice between them,
explicit runtimes, and metadata from another build refused."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from device_code.contracts import Reading
from device_code.features import HISTORY_WINDOW_S, Series
from device_code.history import ReadingHistory
from device_code.model import INSTANTANEOUS, TREND, ModelUnavailable, load_model

NOW = datetime(2013, 11, 5, 12, tzinfo=timezone.utc)
READING = Reading(temperature=12.0, humidity=93.0, pressure=1004.0, sampled_at=NOW)


@pytest.fixture(scope="module")
def model_dir(trained_model_dir):
    return trained_model_dir / "rain_model"


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir)


def day_of_history(humidity_then: float = 93.0, pressure_then: float = 1004.0) -> Series:
    history = ReadingHistory(None)
    for minutes in range(5, HISTORY_WINDOW_S // 60, 5):
        history.add(Reading(12.0, humidity_then, pressure_then, NOW - timedelta(minutes=minutes)), NOW)
    return history.series()


def test_the_device_loads_both_models_with_litert(model):
    assert model.runtime == "litert"
    assert set(model.metadata.models) == {TREND, INSTANTANEOUS}
    assert model.metadata.threshold == model.metadata.models[INSTANTANEOUS].threshold


def test_without_history_the_instantaneous_model_predicts(model):
    empty = ReadingHistory(None).series()
    prediction = model.predict(READING, empty)
    assert prediction.model == INSTANTANEOUS
    assert prediction.probability == pytest.approx(model.probability(12.0, 93.0, 1004.0))
    assert prediction.threshold == model.metadata.models[INSTANTANEOUS].threshold
    assert prediction.raining == (prediction.probability >= prediction.threshold)
    assert (prediction.model_version, prediction.runtime) == (model.metadata.version, "litert")


def test_with_a_day_of_history_the_trend_model_predicts_and_sees_the_change(model):
    steady = model.predict(READING, day_of_history())
    assert steady.model == TREND and steady.threshold == model.metadata.models[TREND].threshold
    # Same reading, but the air was dry and the pressure high all day: saturation just arrived.
    worsening = model.predict(READING, day_of_history(humidity_then=60.0, pressure_then=1012.0))
    assert worsening.probability != pytest.approx(steady.probability, abs=1e-3)


def test_a_history_with_a_hole_at_a_needed_lag_falls_back(model):
    history = day_of_history()
    keep = np.abs(history.at - (NOW.timestamp() - 3 * 3600)) > 900  # nothing near 3 h ago
    holed = Series(history.at[keep], history.temperature[keep], history.humidity[keep], history.pressure[keep])
    assert model.predict(READING, holed).model == INSTANTANEOUS


def test_both_runtimes_give_the_same_predictions(model, model_dir):
    tensorflow = load_model(model_dir, "tensorflow")
    assert tensorflow.runtime == "tensorflow"
    for history in (day_of_history(), ReadingHistory(None).series()):
        assert tensorflow.predict(READING, history).probability == pytest.approx(
            model.predict(READING, history).probability, abs=1e-5)


def test_an_unknown_runtime_is_a_programming_error(model_dir):
    with pytest.raises(ValueError, match="runtime 'savedmodel' is not one of"):
        load_model(model_dir, "savedmodel")


def rewrite_metadata(model_dir, tmp_path, change) -> object:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    metadata = json.loads((copy / "metadata.json").read_text())
    change(metadata)
    (copy / "metadata.json").write_text(json.dumps(metadata))
    return copy


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["models"]["trend"].update(inputs=m["models"]["trend"]["inputs"][:-1]),
         "different builds"),
        (lambda m: m["models"]["trend"]["history"].update(lag_tolerance_s=1800), "needs history"),
        (lambda m: m["models"].pop("instantaneous"), "no 'instantaneous' model"),
        (lambda m: m["models"]["instantaneous"].update(threshold=1.5), "expected a number within"),
    ],
    ids=["other-trend-inputs", "other-tolerance", "no-instantaneous", "bad-threshold"],
)
def test_metadata_from_another_build_is_refused(model_dir, tmp_path, change, message):
    with pytest.raises(ModelUnavailable, match=message):
        load_model(rewrite_metadata(model_dir, tmp_path, change))


def test_a_model_the_device_does_not_know_is_ignored(model_dir, tmp_path):
    copy = rewrite_metadata(model_dir, tmp_path,
                            lambda m: m["models"].update(nowcast={**m["models"]["trend"], "signature": "nowcast"}))
    assert set(load_model(copy).metadata.models) == {TREND, INSTANTANEOUS}


def test_the_trend_model_alone_cannot_be_loaded_without_its_signature(model_dir, tmp_path):
    copy = rewrite_metadata(model_dir, tmp_path, lambda m: m["models"]["trend"].update(signature="absent"))
    with pytest.raises(ModelUnavailable, match="model.tflite unusable.*saved_model unusable"):
        load_model(copy)
