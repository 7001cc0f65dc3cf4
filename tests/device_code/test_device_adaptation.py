"""The station's adaptation on the device: delivered in the `adaptation` shadow's desired state, checked
against the model in force, applied to the predictions it names, reported, and never lost to a bad delivery."""
from __future__ import annotations

import dataclasses
import json
import os

import pytest
from device_test_support import (METADATA, THING, FlakyGreengrass, ManualClock, humid_means_rain, make_service,
                                 reading)
from hypothesis import given, settings
from hypothesis import strategies as st

from device_code.adaptation import (COEFFICIENTS, FIELDS, FORMAT, HOLDOUT_CHECKS, HOLDOUT_KEYS, apply_adaptation,
                                    content_id, offset_inputs, validate_adaptation)
from device_code.adaptation_shadow import (APPLIED, MAX_DETAIL, NONE, REJECTED, REPORTED_KEYS, adaptation_text,
                                           choose, desired_adaptation, parse_adaptation_text, predict)
from device_code.contracts import ADAPTATION_SHADOW, FEATURES, RAIN_SHADOW, UNITS, WEATHER_SHADOW
from device_code.functions import GET_THING_SHADOW, INFERENCE, SHADOWS, THING as ANY_THING, UPDATE_THING_SHADOW
from device_code.inference import RAIN_KEYS
from device_code.model import INSTANTANEOUS, TREND, RainModel
from device_code.port import ShadowUpdateRejected
from device_code.selftest import serve

OFFSETS = {"temperature": -2.0, "humidity": 5.0, "pressure": 12.0}


def make_adaptation(model_version: str = "rain-test", model: str = INSTANTANEOUS, **changes) -> dict:
    """A valid adaptation, built from the schema's own names (a schema change fails here, loudly)."""
    adaptation = {"format": FORMAT, "model_version": model_version, "model": model, "units": dict(UNITS),
                  "input_offsets": dict(OFFSETS),
                  "coefficients": {name: value for name, value in zip(COEFFICIENTS, (1.2, -0.4, 0.1, 0.3, -0.2))},
                  "input_means": {"temperature": 10.0, "humidity": 70.0, "pressure": 1015.0},
                  "input_scales": {"temperature": 6.0, "humidity": 15.0, "pressure": 8.0},
                  "threshold": 0.35, "regularisation": 30.0, "fitted_rows": 600, "fitted_rain_rows": 70,
                  "holdout": {**{key: 0.25 for key in HOLDOUT_KEYS}, "check": HOLDOUT_CHECKS[0], "roc_auc_global": None},
                  "csv_sha256": "0" * 64, **changes}
    adaptation["id"] = content_id(adaptation)
    assert set(adaptation) == set(FIELDS) and validate_adaptation(adaptation, model_version) is None
    return adaptation


def deliver(greengrass, value) -> None:
    """What ShadowManager leaves in the local shadow after `make adapt` wrote `value` in the cloud."""
    greengrass.update_shadow(THING, ADAPTATION_SHADOW, {"state": {"desired": {"adaptation": value}}})


def write_weather(greengrass, **overrides):
    greengrass.update_shadow(THING, WEATHER_SHADOW, {"state": {"reported": reading(**overrides)}})


def delivered_and_running(greengrass, clock, value, **service_options):
    """An inference service after its first heartbeat, with `value` delivered and a reading in the weather shadow."""
    deliver(greengrass, value)
    write_weather(greengrass)
    service = make_service(greengrass, clock, **service_options)
    service.heartbeat()
    return service


def reported(greengrass, shadow=ADAPTATION_SHADOW) -> dict:
    return greengrass.get_shadow(THING, shadow)["state"]["reported"]


def expected_probability(adaptation: dict, humidity: float = 93.0) -> float:
    """What the fake model (P = humidity / 100) says for the corrected reading, recalibrated."""
    raw = reading(humidity=humidity)
    values = {"temperature": raw["temperature"], "humidity": raw["humidity"], "pressure": raw["sea_level_pressure"]}
    corrected = offset_inputs(adaptation, values)
    return float(apply_adaptation(adaptation, corrected["humidity"] / 100.0, corrected)[0])


def test_a_valid_adaptation_is_applied_named_in_the_rain_shadow_and_reported(greengrass, clock):
    adaptation = make_adaptation()
    deliver(greengrass, adaptation_text(adaptation))
    write_weather(greengrass)
    make_service(greengrass, clock).heartbeat()
    rain = reported(greengrass, RAIN_SHADOW)
    probability = expected_probability(adaptation)
    assert rain["adaptation"] == adaptation["id"] and "adaptation" in RAIN_KEYS
    assert rain["probability"] == round(probability, 4) and rain["threshold"] == 0.35
    assert rain["raining"] is (probability >= 0.35)
    assert probability != pytest.approx(0.93, abs=1e-3)  # it is not the global model's answer
    assert reported(greengrass) == {"in_force": adaptation["id"], "offered": adaptation["id"], "status": APPLIED,
                                    "model_version": "rain-test",
                                    "checked_at": "2013-11-05T12:00:00.000Z"}


def test_the_offsets_apply_to_every_prediction_the_recalibration_only_to_its_model(greengrass, clock):
    adaptation = make_adaptation(model=TREND)  # the history is empty: the instantaneous model answers
    deliver(greengrass, adaptation_text(adaptation))
    write_weather(greengrass)
    make_service(greengrass, clock).heartbeat()
    rain = reported(greengrass, RAIN_SHADOW)
    assert rain["model"] == INSTANTANEOUS and rain["adaptation"] == adaptation["id"]
    assert rain["probability"] == round((93.0 + OFFSETS["humidity"]) / 100.0, 4) and rain["threshold"] == 0.5


def test_drift_is_measured_on_the_readings_as_the_models_see_them(greengrass, clock):
    """A sensor offset the adaptation corrects is no drift: the drift monitor gets the corrected reading."""
    seen = []
    service = delivered_and_running(greengrass, clock, adaptation_text(make_adaptation()))
    service.drift.add = seen.append
    clock.advance(60)
    write_weather(greengrass, humidity=80.0)
    service.heartbeat()
    raw = reading(humidity=80.0)
    assert seen and all(each == seen[0] for each in seen)  # the subscription and the heartbeat see one reading
    corrected = seen[0]
    assert (corrected.temperature, corrected.humidity, corrected.pressure) == pytest.approx(
        (raw["temperature"] + OFFSETS["temperature"], 80.0 + OFFSETS["humidity"],
         raw["sea_level_pressure"] + OFFSETS["pressure"]))


def test_an_adaptation_for_another_model_falls_back_to_the_global_model_and_says_so(greengrass, clock):
    deliver(greengrass, adaptation_text(make_adaptation("rain-other")))
    write_weather(greengrass)
    make_service(greengrass, clock).heartbeat()
    state = reported(greengrass)
    assert state["status"] == REJECTED and "in_force" not in state
    assert "fitted for model 'rain-other', not 'rain-test' in force" in state["detail"]
    assert state["detail"].endswith("the global model applies")
    rain = reported(greengrass, RAIN_SHADOW)
    assert rain["probability"] == 0.93 and "adaptation" not in rain


def test_an_edited_adaptation_is_rejected_and_the_one_in_force_stays(greengrass, clock):
    good = make_adaptation()
    service = delivered_and_running(greengrass, clock, adaptation_text(good))
    edited = make_adaptation(threshold=0.2)
    edited["threshold"] = 0.05  # after its id was computed
    deliver(greengrass, adaptation_text(edited))
    clock.advance(10)
    service.heartbeat()
    state = reported(greengrass)
    assert state["status"] == REJECTED and state["in_force"] == good["id"] and state["offered"] == edited["id"]
    assert "is not the content's hash" in state["detail"] and state["detail"].endswith(f"{good['id']} stays in force")
    assert reported(greengrass, RAIN_SHADOW)["adaptation"] == good["id"]
    assert reported(greengrass, RAIN_SHADOW)["threshold"] == 0.35


def test_removing_the_adaptation_returns_to_the_global_model(greengrass, clock):
    service = delivered_and_running(greengrass, clock, adaptation_text(make_adaptation()))
    deliver(greengrass, None)  # make adapt CLEAR=1
    clock.advance(10)
    service.heartbeat()
    assert reported(greengrass) == {"status": NONE, "model_version": "rain-test", "checked_at": "2013-11-05T12:00:10.000Z"}
    rain = reported(greengrass, RAIN_SHADOW)
    assert rain["probability"] == 0.93 and "adaptation" not in rain


def test_no_adaptation_shadow_means_the_global_model_and_is_said_once(greengrass, clock):
    write_weather(greengrass)
    service = make_service(greengrass, clock)
    service.heartbeat()
    clock.advance(10)
    service.heartbeat()
    assert reported(greengrass)["status"] == NONE
    assert greengrass.get_shadow(THING, ADAPTATION_SHADOW)["version"] == 1  # nothing new to say


def test_a_model_change_rechecks_the_adaptation(greengrass, clock, tmp_path):
    """The serving link moves to another model version: an adaptation fitted for the old one no longer applies."""
    for version in ("rain-old", "rain-new"):
        (tmp_path / version).mkdir()
    link = tmp_path / "serving"
    serve(tmp_path / "rain-old", link)

    def load(path):
        version = os.path.basename(os.path.realpath(path))
        return RainModel(dataclasses.replace(METADATA, version=version), "fake", humid_means_rain)

    adaptation = make_adaptation("rain-old")
    service = delivered_and_running(greengrass, clock, adaptation_text(adaptation), load=load, model_dir=str(link))
    assert reported(greengrass, RAIN_SHADOW)["adaptation"] == adaptation["id"]
    serve(tmp_path / "rain-new", link)
    clock.advance(10)
    service.heartbeat()
    state = reported(greengrass)
    assert (state["status"], state["model_version"]) == (REJECTED, "rain-new") and "in_force" not in state
    assert "fitted for model 'rain-old', not 'rain-new' in force" in state["detail"]
    rain = reported(greengrass, RAIN_SHADOW)
    assert rain["model_version"] == "rain-new" and rain["probability"] == 0.93 and "adaptation" not in rain


def test_a_reported_state_written_by_someone_else_is_restored(greengrass, clock):
    adaptation = make_adaptation()
    service = delivered_and_running(greengrass, clock, adaptation_text(adaptation))
    greengrass.update_shadow(THING, ADAPTATION_SHADOW, {"state": {"reported": {"in_force": "sha256:forged", "x": 1}}})
    clock.advance(10)
    service.heartbeat()
    assert reported(greengrass)["in_force"] == adaptation["id"] and "x" not in reported(greengrass)
    assert set(reported(greengrass)) <= set(REPORTED_KEYS)


def test_an_unreadable_adaptation_shadow_keeps_what_is_in_force(greengrass, clock):
    adaptation = make_adaptation()
    service = delivered_and_running(greengrass, clock, adaptation_text(adaptation))
    greengrass.unreadable_shadows.add(ADAPTATION_SHADOW)
    write_weather(greengrass, humidity=50.0, sampled_at="2013-11-05T12:00:05Z")
    clock.advance(10)
    service.heartbeat()
    assert reported(greengrass, RAIN_SHADOW)["adaptation"] == adaptation["id"]
    assert reported(greengrass, RAIN_SHADOW)["probability"] == round(expected_probability(adaptation, 50.0), 4)


# What a shadow can hold (JSON: no NaN or infinity); the text of an adaptation may still spell them.
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                    max_leaves=20)
_VALID = make_adaptation()


def near_miss(field: str, value, rehash: bool) -> str:
    """A valid adaptation with one field replaced by anything, its id kept or (where it can be) recomputed."""
    adaptation = {**_VALID, field: value}
    if rehash and field != "id":
        try:
            adaptation["id"] = content_id(adaptation)
        except ValueError:  # NaN: no canonical JSON, so no id
            pass
    return json.dumps(adaptation)


HOSTILE = (JSON.filter(lambda value: value is not None)
           | st.builds(near_miss, st.sampled_from(FIELDS), JSON | st.just(float("nan")), st.booleans())
           | JSON.map(json.dumps) | st.just("[" * 2000 + "]" * 2000) | st.just("x" * 5000))


@settings(max_examples=150, deadline=None)
@given(value=HOSTILE)
def test_a_hostile_desired_state_never_stops_the_loop_nor_replaces_the_adaptation_in_force(value):
    greengrass, clock = FlakyGreengrass(), ManualClock()
    write_weather(greengrass)
    service = make_service(greengrass, clock)
    deliver(greengrass, adaptation_text(_VALID))
    service.heartbeat()
    try:
        deliver(greengrass, value)
    except ShadowUpdateRejected:  # the local shadow service refuses it (too large): nothing reaches the device
        return
    clock.advance(10)
    service.heartbeat()
    state = reported(greengrass)
    if state["status"] == APPLIED:  # a near miss that is a valid adaptation after all
        offered, _ = parse_adaptation_text(value)
        assert validate_adaptation(offered, "rain-test") is None and state["in_force"] == offered["id"]
    else:
        assert state["status"] == REJECTED and state["in_force"] == _VALID["id"]
        assert len(state["detail"]) <= MAX_DETAIL and state["detail"].isprintable()
    assert reported(greengrass, RAIN_SHADOW)["adaptation"] == state["in_force"]


@given(document=JSON)
def test_choose_takes_any_document_and_keeps_a_valid_adaptation_in_force(document):
    choice = choose(document, "rain-test", _VALID)
    assert choice.in_force in (None, _VALID)
    assert (choice.in_force is None) == (choice.status == NONE)
    _, problem = desired_adaptation(document)
    assert problem is None or choice.status == REJECTED


def test_the_inference_function_may_read_the_adaptation_shadow_and_write_it_and_nothing_more():
    """Least privilege (developer guide, "Interact with local shadows", Authorization: GetThingShadow and
    UpdateThingShadow on $aws/things/thingName/shadow/name/shadowName for a named shadow)."""
    resource = f"$aws/things/{ANY_THING}/shadow/name/{ADAPTATION_SHADOW}"
    grants = [grant for grant in INFERENCE.grants if resource in grant.resources]
    assert [(grant.service, sorted(grant.operations), grant.resources) for grant in grants] == [
        (SHADOWS, sorted([GET_THING_SHADOW, UPDATE_THING_SHADOW]), (resource,))]
    assert not any("*" in resource for grant in INFERENCE.grants for resource in grant.resources)


def test_the_largest_adaptation_and_the_reported_state_fit_one_shadow_document():
    """The adaptation is at most MAX_ADAPTATION_BYTES of JSON; desired and reported together must stay
    within the 8 KB a shadow holds (AWS IoT Developer Guide, "Diagnosing problems with shadows"), also as
    escaped text inside the desired state."""
    from device_code.adaptation import MAX_ADAPTATION_BYTES

    base = adaptation_text(make_adaptation())
    # A fitted adaptation, padded to the largest size the device takes (its sha256 field is free text to the schema).
    text = adaptation_text(make_adaptation(csv_sha256="0" * (MAX_ADAPTATION_BYTES - len(base.encode()) + 64)))
    assert len(text.encode()) == MAX_ADAPTATION_BYTES
    state = {"desired": {"adaptation": text},
             "reported": {"in_force": "sha256:" + "0" * 16, "status": REJECTED, "detail": "x" * MAX_DETAIL,
                          "model_version": "r" * 100, "checked_at": "2013-11-05T12:00:00.000Z"}}
    assert len(json.dumps({"state": state}).encode()) <= 8192


def test_the_device_predicts_under_an_adaptation_exactly_as_evaluate_scores_it(trained_model_dir):
    """One formula: what the inference function answers for each hour equals `evaluate --adaptation`."""
    import pandas as pd

    from device_code.contracts import Reading, format_timestamp
    from device_code.features import Series
    from device_code.model import load_model
    from device_code.simulator.replay import load_test_period
    from model_training.artifact import artifact_folder
    from model_training.evaluate import adapted_scores

    model = load_model(artifact_folder(trained_model_dir), "litert")
    hours = load_test_period("LGA")[:40]
    df = pd.DataFrame({"sampled_at": [format_timestamp(row.time) for row in hours],
                       **{name: [getattr(row, name) for row in hours] for name in FEATURES}})
    df["sampled_at"] = pd.to_datetime(df["sampled_at"])
    for model_name in (TREND, INSTANTANEOUS):
        adaptation = make_adaptation(model.metadata.version, model_name)
        expected, used = adapted_scores(model, adaptation, df)
        readings = [Reading(row.temperature, row.humidity, row.pressure, row.time) for row in hours]
        for index, current in enumerate(readings):
            prediction, in_force = predict(model, current, Series.from_readings(readings[:index + 1]), adaptation)
            assert (prediction.model, in_force) == (used[index], adaptation["id"])
            assert prediction.probability == pytest.approx(expected[index], abs=1e-6), (model_name, index)
        assert TREND in set(used) and INSTANTANEOUS in set(used)  # both paths: before and after a day of history
