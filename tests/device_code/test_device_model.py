"""device_code.model with the artifact `make train` built: both models, the choice between them,
explicit runtimes, and metadata from another build refused."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_code.contracts import Reading
from device_code.drift import DriftMonitor
from device_code.features import HISTORY_WINDOW_S, Series
from device_code.history import ReadingHistory
from device_code.model import INSTANTANEOUS, TREND, ModelUnavailable, load_model, read_metadata

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


def test_without_history_the_instantaneous_model_predicts(model):
    empty = ReadingHistory(None).series()
    prediction = model.predict(READING, empty)
    assert prediction.model == INSTANTANEOUS
    alone = model.run(INSTANTANEOUS, {"temperature": [12.0], "humidity": [93.0], "pressure": [1004.0]})
    assert prediction.probability == pytest.approx(float(alone[0]))
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


def test_a_fifo_in_place_of_model_tflite_falls_back_without_blocking(model_dir, tmp_path, project_root):
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (copy / "model.tflite").unlink()
    os.mkfifo(copy / "model.tflite")
    # In a process of its own: a runtime blocked in C code keeps the interpreter lock, and would freeze the suite.
    loaded = subprocess.run([sys.executable, "-c", "import sys; from device_code.model import load_model; "
                             "print(load_model(sys.argv[1]).runtime)", str(copy)],
                            cwd=project_root, capture_output=True, text=True, timeout=120)
    assert loaded.stdout.split()[-1:] == ["tensorflow"], loaded.stderr[-2000:]


def every_place(document, path=()):
    """The key paths of every value in a JSON document."""
    yield path
    children = document.items() if isinstance(document, dict) else enumerate(document) \
        if isinstance(document, list) else ()
    for key, child in children:
        yield from every_place(child, (*path, key))


def replaced(document, path, value):
    document = json.loads(json.dumps(document))
    if not path:
        return value
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return document


# Any JSON value, and what no float or parser holds: 400-digit integers, floats near the largest, deep nesting.
hostile_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10)
    | st.sampled_from([10**400, -10**400, 1e308, -1e308, 5e-324, "v" * 5000, json.loads("[" * 500 + "]" * 500)]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)


@settings(max_examples=300)
@given(data=st.data())
def test_any_value_anywhere_in_metadata_gives_finite_metadata_or_model_unavailable(model_dir, tmp_path_factory,
                                                                                  data):
    original = json.loads((model_dir / "metadata.json").read_text())
    place = data.draw(st.sampled_from(list(every_place(original))))
    folder = tmp_path_factory.mktemp("model")
    (folder / "metadata.json").write_text(json.dumps(replaced(original, place, data.draw(hostile_values))))
    try:
        metadata = read_metadata(folder)
    except ModelUnavailable as error:
        assert "\n" not in str(error) and len(str(error)) < 1500  # short whatever the file holds
        return
    # What the device computes with and writes: finite floats, drift sums that stay finite, a short version.
    assert len(metadata.version) <= 100
    assert all(math.isfinite(bound) for bounds in metadata.valid_ranges.values() for bound in bounds)
    assert all(0 < spec.threshold < 1 and isinstance(spec.signature, str) for spec in metadata.models.values())
    monitor = DriftMonitor(metadata.baselines)
    for hour in range(30):
        monitor.add(Reading(85.0, 0.0, 3567.0, NOW + timedelta(hours=hour)))
    assert json.loads(json.dumps(monitor.summary(), allow_nan=False)) is not None
