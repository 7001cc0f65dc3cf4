import json
import logging
import shutil
from datetime import timedelta

import numpy as np
import pytest
from device_test_support import METADATA, NOW, THING, humid_means_rain, make_service, reading

from device_code.config import load_inference_config
from device_code.contracts import (RAIN_SHADOW, WEATHER_SHADOW, Reading, format_timestamp, parse_timestamp,
                                   without_nulls)
from device_code.history import ReadingHistory
from device_code.inference import InferenceService
from device_code.model import ModelUnavailable, RainModel, load_model
from device_code.selftest import serve
from device_code.simulator.core import standalone_environment


def write_weather(greengrass, **overrides):
    greengrass.update_shadow(THING, WEATHER_SHADOW, {"state": {"reported": reading(**overrides)}})


def rain(greengrass):
    return greengrass.get_shadow(THING, RAIN_SHADOW)["state"]["reported"]


def test_heartbeat_predicts_from_the_weather_shadow(greengrass, clock):
    write_weather(greengrass)
    make_service(greengrass, clock).heartbeat()
    assert rain(greengrass) == {"raining": True, "probability": 0.93, "threshold": 0.5, "model": "instantaneous",
                                "model_version": "rain-test", "runtime": "fake",
                                "input_sampled_at": "2013-11-05T11:59:00.000Z",
                                "predicted_at": "2013-11-05T12:00:00.000Z",
                                # The fake model's artifact carries no input baseline.
                                "drift": {"verdict": "unknown", "hours": 0, "inputs": None}}


def test_a_new_weather_document_triggers_a_prediction_through_the_subscription(greengrass, clock):
    service = make_service(greengrass, clock)
    write_weather(greengrass, humidity=20.0, sampled_at="2013-11-05T11:58:00Z")
    service.heartbeat()  # loads the model, subscribes to .../weather/update/documents
    assert rain(greengrass)["raining"] is False
    write_weather(greengrass, humidity=80.0)
    greengrass.bus.drain()
    assert (rain(greengrass)["probability"], rain(greengrass)["input_sampled_at"]) == (0.8, "2013-11-05T11:59:00.000Z")


def test_unchanged_input_is_not_rewritten_on_each_heartbeat(greengrass, clock):
    write_weather(greengrass)
    service = make_service(greengrass, clock)
    service.heartbeat()
    clock.advance(10)
    service.heartbeat()
    assert greengrass.get_shadow(THING, RAIN_SHADOW)["version"] == 1


def test_stale_input_gives_a_status_instead_of_a_prediction(greengrass, clock):
    write_weather(greengrass)
    service = make_service(greengrass, clock, max_age="300")
    service.heartbeat()
    clock.advance(300)
    service.heartbeat()
    reported = rain(greengrass)
    assert reported["status"] == "stale_input" and "MAX_INPUT_AGE_S=300" in reported["detail"]
    assert "probability" not in reported and "raining" not in reported
    clock.advance(60)
    service.heartbeat()
    assert greengrass.get_shadow(THING, RAIN_SHADOW)["version"] == 2  # stale is said once


@pytest.mark.parametrize("weather_state, detail", [
    ({"temperature": 11.0, "humidity": 150.0, "pressure": 1000.0, "sampled_at": "2013-11-05T11:59:00Z"},
     "humidity=150.0 is outside"),
    ({"temperature": 11.0, "humidity": 50.0, "sampled_at": "2013-11-05T11:59:00Z"}, "pressure is missing"),
    ({"temperature": 11.0, "humidity": 50.0, "pressure": 1000.0, "sampled_at": "noon"}, "not an ISO-8601"),
])
def test_invalid_input_gives_a_status(greengrass, clock, weather_state, detail):
    greengrass.update_shadow(THING, WEATHER_SHADOW, {"state": {"reported": weather_state}})
    make_service(greengrass, clock).heartbeat()
    assert rain(greengrass)["status"] == "invalid_input" and detail in rain(greengrass)["detail"]


@pytest.mark.parametrize("document", [None, {"state": "reported"}, {"state": {"desired": {}}}, [1, 2]])
def test_malformed_shadow_documents_give_a_status(greengrass, clock, document):
    service = make_service(greengrass, clock)
    service.heartbeat()  # no weather shadow yet
    assert rain(greengrass)["status"] == "no_input"
    service.on_weather_documents("topic", {"current": document} if document is not None else {})
    assert rain(greengrass)["status"] == "invalid_input"
    assert "malformed shadow document" in rain(greengrass)["detail"]


def test_a_prediction_replaces_a_status_completely(greengrass, clock):
    service = make_service(greengrass, clock)
    service.heartbeat()
    write_weather(greengrass)
    greengrass.bus.drain()
    assert set(rain(greengrass)) == {"raining", "probability", "threshold", "model", "model_version", "runtime",
                                     "input_sampled_at", "predicted_at", "drift"}


def test_an_event_overtaken_by_newer_input_is_ignored(greengrass, clock):
    write_weather(greengrass, humidity=90.0)
    service = make_service(greengrass, clock)
    service.heartbeat()
    older = {"current": {"state": {"reported": reading(humidity=10.0, sampled_at="2013-11-05T11:30:00Z")}}}
    service.on_weather_documents("topic", older)
    assert rain(greengrass)["probability"] == 0.9


def test_missing_model_gives_a_status_and_is_retried_until_it_appears(greengrass, clock, tmp_path, caplog):
    write_weather(greengrass)
    attempts = []

    def load(path):
        attempts.append(path)
        if len(attempts) < 3:
            return load_model(path)  # the real loader on an empty folder
        return RainModel(METADATA, "fake", humid_means_rain)

    service = make_service(greengrass, clock, load=load, model_dir=str(tmp_path))
    with caplog.at_level(logging.ERROR):
        service.heartbeat()
    reported = rain(greengrass)
    assert reported["status"] == "model_unavailable" and "metadata.json" in reported["detail"]
    assert "model unavailable" in caplog.text
    service.heartbeat()
    assert greengrass.get_shadow(THING, RAIN_SHADOW)["version"] == 1
    service.heartbeat()
    assert rain(greengrass)["probability"] == 0.93 and len(attempts) == 3


def test_failing_prediction_gives_a_status(greengrass, clock):
    write_weather(greengrass)

    def broken(signature, inputs):
        return np.full(len(inputs["humidity"]), np.nan)

    make_service(greengrass, clock, load=lambda path: RainModel(METADATA, "fake", broken)).heartbeat()
    assert rain(greengrass)["status"] == "prediction_failed" and "not a probability" in rain(greengrass)["detail"]


def test_rejected_rain_update_is_logged_and_retried_on_the_next_heartbeat(greengrass, clock, caplog):
    write_weather(greengrass)
    service = make_service(greengrass, clock)
    greengrass.reject_updates = True
    with caplog.at_level(logging.ERROR):
        service.heartbeat()
    assert "rain shadow update rejected" in caplog.text
    greengrass.reject_updates = False
    service.heartbeat()
    assert rain(greengrass)["probability"] == 0.93


def test_corrupt_model_files_are_unavailable(tmp_path, trained_model_dir):
    (tmp_path / "metadata.json").write_text((trained_model_dir / "rain_model" / "metadata.json").read_text())
    (tmp_path / "model.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelUnavailable, match="model.tflite unusable.*saved_model missing"):
        load_model(tmp_path)
    (tmp_path / "metadata.json").write_text('{"version": "x", "feature_order": ["pressure"]}')
    with pytest.raises(ModelUnavailable, match="feature_order"):
        load_model(tmp_path)


def instantaneous(model, temperature, humidity, pressure):
    """The trained model's answer to one reading on a first start (no history)."""
    reading = Reading(temperature, humidity, pressure, NOW)
    return model.predict(reading, ReadingHistory(None).series()).probability


def test_the_trained_model_runs_on_litert(trained_model_dir):
    model = load_model(trained_model_dir / "rain_model")
    assert model.runtime == "litert"
    wet, dry = instantaneous(model, 10.0, 97.0, 1000.0), instantaneous(model, 20.0, 40.0, 1025.0)
    assert 0.0 <= dry < wet <= 1.0


@pytest.mark.slow
def test_the_saved_model_is_the_fallback_without_tflite(tmp_path, trained_model_dir):
    import shutil

    shutil.copytree(trained_model_dir / "rain_model", tmp_path / "model", ignore=shutil.ignore_patterns("*.tflite"))
    fallback = load_model(tmp_path / "model")
    litert = load_model(trained_model_dir / "rain_model")
    assert fallback.runtime == "tensorflow"
    assert instantaneous(fallback, 10.0, 97.0, 1000.0) == pytest.approx(instantaneous(litert, 10.0, 97.0, 1000.0),
                                                                        abs=1e-4)


# ---- the reading history: the trend model once it covers the window ------------------------------------
def hourly_weather(hours, humidity=93.0):
    """Weather states of the last `hours` hours before NOW, one an hour, newest last."""
    return [{"state": {"reported": reading(humidity=humidity, sampled_at=format_timestamp(NOW - timedelta(hours=h)))}}
            for h in range(hours, 0, -1)]


def feed(service, clock, documents):
    """Each document as its update/documents event would deliver it, the clock at its reading's time."""
    for document in documents:
        clock.current = parse_timestamp(document["state"]["reported"]["sampled_at"]) + timedelta(seconds=1)
        service.on_weather_documents("topic", {"current": document})


def test_the_trend_model_answers_once_the_history_covers_its_window(greengrass, clock):
    service = make_service(greengrass, clock)
    service.heartbeat()  # loads the model
    feed(service, clock, hourly_weather(24))
    assert rain(greengrass)["model"] == "instantaneous"  # 23 hours back: no reading a day ago yet
    feed(service, clock, [{"state": {"reported": reading(sampled_at=format_timestamp(NOW))}}])
    assert rain(greengrass)["model"] == "trend" and rain(greengrass)["threshold"] == 0.5


def test_a_heartbeat_later_in_the_hour_keeps_the_trend_model_for_the_same_reading(greengrass, clock):
    # The reading a day before the newest one must stay in the history for as long as that newest
    # reading may be predicted from (MAX_INPUT_AGE_S), not only for 24 h 15 min after it.
    service = make_service(greengrass, clock, max_age="3600")
    service.heartbeat()
    feed(service, clock, hourly_weather(24) + [{"state": {"reported": reading(sampled_at=format_timestamp(NOW))}}])
    assert rain(greengrass)["model"] == "trend"
    write_weather(greengrass, sampled_at=format_timestamp(NOW))  # what the heartbeat reads
    service.heartbeat()
    version = greengrass.get_shadow(THING, RAIN_SHADOW)["version"]
    for minutes in (20, 30, 45):
        clock.current = NOW + timedelta(minutes=minutes)
        service.heartbeat()
        assert rain(greengrass)["model"] == "trend"
    assert greengrass.get_shadow(THING, RAIN_SHADOW)["version"] == version  # nothing new to say


def test_a_restart_keeps_the_history_through_its_file(greengrass, clock, tmp_path):
    history_file = tmp_path / "work" / "reading_history.json"
    first = make_service(greengrass, clock, history=ReadingHistory(history_file))
    first.heartbeat()
    feed(first, clock, hourly_weather(25))
    restarted = make_service(greengrass, clock, history=ReadingHistory(history_file))
    restarted.heartbeat()
    feed(restarted, clock, [{"state": {"reported": reading(sampled_at=format_timestamp(NOW))}}])
    assert rain(greengrass)["model"] == "trend"


def test_the_history_file_is_the_one_the_configuration_names(greengrass, clock, tmp_path):
    config = load_inference_config(standalone_environment(THING, HISTORY_FILE=str(tmp_path / "history.json")))
    service = InferenceService(config, greengrass, clock, lambda path: RainModel(METADATA, "fake", humid_means_rain))
    write_weather(greengrass)
    service.heartbeat()
    assert len(json.loads((tmp_path / "history.json").read_text())["readings"]) == 1


def test_late_and_repeated_readings_fill_the_history_too(greengrass, clock):
    service = make_service(greengrass, clock)
    service.heartbeat()
    clock.current = NOW
    for document in reversed(hourly_weather(24)):  # newest first: every later event is overtaken
        service.on_weather_documents("topic", {"current": document})
        service.on_weather_documents("topic", {"current": document})
    assert len(service.history) == 24
    service.on_weather_documents("topic", {"current": {"state": {"reported": reading(sampled_at=format_timestamp(NOW))}}})
    assert rain(greengrass)["model"] == "trend"


def test_a_gap_at_a_lag_the_trend_model_needs_falls_back_to_the_instantaneous_model(greengrass, clock):
    service = make_service(greengrass, clock)
    service.heartbeat()
    without_3_hours_ago = [document for hours_ago, document in zip(range(25, 0, -1), hourly_weather(25))
                           if hours_ago != 3]
    feed(service, clock, without_3_hours_ago)
    feed(service, clock, [{"state": {"reported": reading(sampled_at=format_timestamp(NOW))}}])
    assert rain(greengrass)["model"] == "instantaneous"


# ---- the models take the sea-level pressure ----------------------------------------------------------
def recording_model(seen):
    def run(signature, inputs):
        seen.append({name: float(values[0]) for name, values in inputs.items()})
        return humid_means_rain(signature, inputs)

    return lambda path: RainModel(METADATA, "fake", run)


def test_the_model_is_fed_the_sea_level_pressure_not_the_station_pressure(greengrass, clock):
    seen = []
    write_weather(greengrass, pressure=954.61, sea_level_pressure=1013.25)
    make_service(greengrass, clock, load=recording_model(seen)).heartbeat()
    assert seen[-1]["pressure"] == pytest.approx(1013.25) and "probability" in rain(greengrass)


def test_a_sea_level_pressure_beyond_the_sensor_range_is_no_invalid_input(greengrass, clock):
    write_weather(greengrass, pressure=1090.0, sea_level_pressure=1104.5)  # 1090 hPa at 120 m
    make_service(greengrass, clock).heartbeat()
    assert "probability" in rain(greengrass)


@pytest.mark.parametrize("weather_state, detail", [
    ({"sea_level_pressure": None, "altitude_source": "invalid",
      "altitude_detail": "/greengrass/v2/rainedge/station.json: altitude_m '500' is not a number from -500 to 9000"},
     "sea_level_pressure is missing: the station altitude is unusable: /greengrass/v2/rainedge/station.json: "
     "altitude_m '500' is not"),
    ({"sea_level_pressure": None}, "sea_level_pressure is missing (the shadow writer reduces"),
    ({"sea_level_pressure": 1e39}, "sea_level_pressure=1e+39 is not a number within [278.7, 3567.8]"),
    ({"sea_level_pressure": "1013"}, "sea_level_pressure='1013' is not a number"),
])
def test_no_usable_sea_level_pressure_is_invalid_input(greengrass, clock, weather_state, detail):
    state = {**reading(), **weather_state}
    greengrass.update_shadow(THING, WEATHER_SHADOW, {"state": {"reported": {k: v for k, v in state.items()
                                                                            if v is not None}}})
    make_service(greengrass, clock).heartbeat()
    reported = rain(greengrass)
    assert reported["status"] == "invalid_input" and detail in reported["detail"]
    assert "probability" not in reported and len(reported["detail"]) < 200


# ---- the rain shadow is the device's: it says what the device last concluded ---------------------------
def write_rain(greengrass, reported):
    """A write to the rain shadow from elsewhere: the cloud (synced down to the core), a person, a script."""
    greengrass.update_shadow(THING, RAIN_SHADOW, {"state": {"reported": reported}})


def test_a_rain_shadow_written_from_the_cloud_is_restored_while_the_input_stays_stale(greengrass, clock):
    write_weather(greengrass)
    service = make_service(greengrass, clock, max_age="300")
    service.heartbeat()
    clock.advance(600)  # the sensor died: no newer reading
    service.heartbeat()
    write_rain(greengrass, {"raining": True, "probability": 0.99})
    interval = service.config.inference_interval_s
    clock.advance(interval)
    service.heartbeat()
    restored = rain(greengrass)
    assert restored["status"] == "stale_input" and {"raining", "probability"}.isdisjoint(restored)
    version = greengrass.get_shadow(THING, RAIN_SHADOW)["version"]
    for _ in range(int(10 * 3600 / interval)):  # ten hours of heartbeats on the same stale input
        clock.advance(interval)
        service.heartbeat()
    assert rain(greengrass)["status"] == "stale_input"
    assert greengrass.get_shadow(THING, RAIN_SHADOW)["version"] == version  # restored once, then nothing to say


def test_a_prediction_edited_elsewhere_is_restored_at_the_next_heartbeat(greengrass, clock):
    write_weather(greengrass, humidity=20.0)
    service = make_service(greengrass, clock)
    service.heartbeat()
    written = rain(greengrass)
    write_rain(greengrass, {"raining": True, "probability": 0.99, "drift": {"verdict": "drifting", "by": "ops"},
                            "note": "set by hand"})
    service.heartbeat()
    # Every key back, and nothing left that the device did not write.
    assert without_nulls(rain(greengrass)) == without_nulls(written)


def test_after_a_start_the_rain_shadow_holds_exactly_what_the_device_writes(greengrass, clock):
    write_rain(greengrass, {"raining": True, "note": "left from before", "drift": {"verdict": "ok", "by": "ops"}})
    write_weather(greengrass)
    make_service(greengrass, clock).heartbeat()
    assert without_nulls(rain(greengrass)) == {"raining": True, "probability": 0.93, "threshold": 0.5,
                                               "model": "instantaneous", "model_version": "rain-test",
                                               "runtime": "fake", "input_sampled_at": "2013-11-05T11:59:00.000Z",
                                               "predicted_at": "2013-11-05T12:00:00.000Z",
                                               "drift": {"verdict": "unknown", "hours": 0}}


def test_a_rain_shadow_that_cannot_be_read_back_is_not_rewritten_and_the_heartbeat_goes_on(greengrass, clock,
                                                                                            caplog):
    write_weather(greengrass)
    service = make_service(greengrass, clock)
    service.heartbeat()
    greengrass.unreadable_shadows.add(RAIN_SHADOW)
    with caplog.at_level(logging.ERROR):
        service.heartbeat()
    assert "could not read the rain shadow back" in caplog.text
    greengrass.unreadable_shadows.clear()
    assert greengrass.get_shadow(THING, RAIN_SHADOW)["version"] == 1  # nothing was written blindly


def artifact_copy(trained_model_dir, folder, version):
    """The trained artifact under another version: what a new model component version unpacks."""
    shutil.copytree(trained_model_dir / "rain_model", folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**metadata, "version": version}))
    return folder


def test_the_model_the_serving_link_moves_to_answers_from_the_next_heartbeat(greengrass, clock, tmp_path,
                                                                             trained_model_dir, caplog):
    """MODEL_DIR is the model component's serving link (infra/components.py): the self-test moves it, the
    function follows it between two predictions, without a restart, and a model that does not load leaves
    the one it serves in place."""
    first = artifact_copy(trained_model_dir, tmp_path / "1.0.1" / "rain_model", "rain-00000000000000aa")
    second = artifact_copy(trained_model_dir, tmp_path / "1.0.2" / "rain_model", "rain-00000000000000bb")
    broken = tmp_path / "1.0.3" / "rain_model"
    broken.mkdir(parents=True)
    link = tmp_path / "serving"
    serve(first, link)
    config = load_inference_config(standalone_environment(THING, str(link), MAX_INPUT_AGE_S="300"))
    service = InferenceService(config, greengrass, clock, load_model, ReadingHistory(None))
    write_weather(greengrass)
    service.heartbeat()
    assert rain(greengrass)["model_version"] == "rain-00000000000000aa"
    serve(second, link)
    clock.advance(10)
    service.heartbeat()
    assert rain(greengrass)["model_version"] == "rain-00000000000000bb"
    serve(broken, link)
    clock.advance(10)
    with caplog.at_level(logging.ERROR):
        service.heartbeat()
    assert rain(greengrass)["model_version"] == "rain-00000000000000bb"
    assert "does not load, rain-00000000000000bb goes on serving" in caplog.text


def test_serving_replaces_the_link_in_one_rename(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    link = tmp_path / "serving"
    serve(first, link)
    serve(second, link)
    assert link.resolve() == second.resolve() and sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "serving"]
