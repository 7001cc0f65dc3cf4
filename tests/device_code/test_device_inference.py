import logging

import pytest
from device_test_support import METADATA, THING, humid_means_rain, make_service, reading

from device_code.contracts import RAIN_SHADOW, WEATHER_SHADOW
from device_code.model import ModelUnavailable, RainModel, load_model


def write_weather(greengrass, **overrides):
    greengrass.update_shadow(THING, WEATHER_SHADOW, {"state": {"reported": reading(**overrides)}})


def rain(greengrass):
    return greengrass.get_shadow(THING, RAIN_SHADOW)["state"]["reported"]


def test_heartbeat_predicts_from_the_weather_shadow(greengrass, clock):
    write_weather(greengrass)
    make_service(greengrass, clock).heartbeat()
    assert rain(greengrass) == {"raining": True, "probability": 0.93, "threshold": 0.5, "model_version": "rain-test",
                                "runtime": "fake", "input_sampled_at": "2013-11-05T11:59:00.000Z",
                                "predicted_at": "2013-11-05T12:00:00.000Z"}


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
    assert set(rain(greengrass)) == {"raining", "probability", "threshold", "model_version", "runtime",
                                     "input_sampled_at", "predicted_at"}


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

    def broken(temperature, humidity, pressure):
        return float("nan")

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


def test_the_trained_model_runs_on_litert(trained_model_dir):
    model = load_model(trained_model_dir / "rain_model")
    assert model.runtime == "litert"
    wet, dry = model.probability(10.0, 97.0, 1000.0), model.probability(20.0, 40.0, 1025.0)
    assert 0.0 <= dry < wet <= 1.0


@pytest.mark.slow
def test_the_saved_model_is_the_fallback_without_tflite(tmp_path, trained_model_dir):
    import shutil

    shutil.copytree(trained_model_dir / "rain_model", tmp_path / "model", ignore=shutil.ignore_patterns("*.tflite"))
    fallback = load_model(tmp_path / "model")
    litert = load_model(trained_model_dir / "rain_model")
    assert fallback.runtime == "tensorflow"
    assert fallback.probability(10.0, 97.0, 1000.0) == pytest.approx(litert.probability(10.0, 97.0, 1000.0), abs=1e-4)
