"""The shadow-record rules as synthesized, run on shadow documents that the real device functions write
through the simulator's shadow service, and the records they write for Logs Insights."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from fake_model import METADATA, humid_means_rain

from device_code.config import load_inference_config, load_shadow_writer_config
from device_code.contracts import RAIN_SHADOW, WEATHER_SHADOW, shadow_topic
from device_code.history import ReadingHistory
from device_code.inference import InferenceService
from device_code.model import ModelUnavailable, RainModel
from device_code.shadow_writer import ShadowWriter
from device_code.simulator.core import standalone_environment
from device_code.simulator.greengrass import LocalGreengrass
from infra import shadow_records as fm
from infra.iot_sql import TopicRule
from infra.synthesized import SynthesizedStack

THING = "pi-garden"
NOW = datetime(2013, 11, 5, 12, 0, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)
READING = {"temperature": 11.5, "humidity": 93.0, "pressure": 1004.2, "sampled_at": "2013-11-05T11:59:00.000Z"}


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


class Device:
    """The shadow writer and the inference function on the simulator's Greengrass; records every
    `update/documents` message, which is what the cloud shadow service publishes too."""

    def __init__(self, load=lambda path: RainModel(METADATA, "fake", humid_means_rain)) -> None:
        self.greengrass, self.clock, self.documents = LocalGreengrass(), FixedClock(NOW), []
        self.greengrass.bus.tap(lambda topic, message, _: self.documents.append((topic, message))
                                if topic.endswith("/update/documents") else None)
        environment = standalone_environment(THING)
        self.writer = ShadowWriter(load_shadow_writer_config(environment), self.greengrass, self.clock, lambda: 50.0)
        self.inference = InferenceService(load_inference_config(environment), self.greengrass, self.clock, load,
                                          ReadingHistory(None))

    def read(self, **overrides) -> None:
        assert self.writer.handle({**READING, **overrides}) == {"accepted": True}

    def write(self, shadow: str, reported: dict) -> None:
        """A shadow update that bypasses the functions' validation (what a faulty device could send)."""
        self.greengrass.update_shadow(THING, shadow, {"state": {"reported": reported}})

    def predict(self) -> list[tuple[str, dict]]:
        self.inference.heartbeat()
        self.greengrass.bus.drain()
        return self.documents


@pytest.fixture(scope="module")
def rules(template) -> list[TopicRule]:
    payloads = SynthesizedStack(template).topic_rules().values()
    return [TopicRule(payload["Sql"]) for payload in payloads]


def metrics(rules, documents) -> set[tuple]:
    """(field, device, value) of every member of the records the rules write for `documents`."""
    found = set()
    for topic, document in documents:
        for rule in rules:
            record = rule.evaluate(topic, document, NOW_MS)
            if record is not None:
                thing = record.pop(fm.THING)
                found |= {(name, ((fm.THING, thing),), value) for name, value in record.items()}
    return found


def of_device(*pairs) -> tuple:
    return (("ThingName", THING), *pairs)


def test_the_template_has_one_rule_per_record_shape(rules):
    assert [rule.topic_filter for rule in rules] == [rule.topic_filter for rule in fm.SHADOW_RULES]


def test_a_reading_becomes_the_devices_weather_metrics(rules):
    device = Device()
    device.read()
    assert metrics(rules, device.documents) == {
        ("Temperature", of_device(), 11.5), ("Humidity", of_device(), 93.0), ("Pressure", of_device(), 1004.2)}


def test_a_prediction_becomes_probability_threshold_and_raining(rules):
    device = Device()
    device.read()
    rain_documents = [d for d in device.predict() if d[0] == shadow_topic(THING, RAIN_SHADOW, "update/documents")]
    assert metrics(rules, rain_documents) == {
        ("Probability", of_device(), 0.93), ("Threshold", of_device(), 0.5), ("Raining", of_device(), 1.0),
        ("Drift", of_device(), "unknown")}  # the fake model's artifact has no input baseline


def failing_model(path):
    def broken(signature, inputs):
        raise RuntimeError("interpreter crashed")
    return RainModel(METADATA, "fake", broken)


def unavailable(path):
    raise ModelUnavailable("no model.tflite in /nonexistent")


def invalid_weather(device):
    device.write(WEATHER_SHADOW, {**READING, "humidity": 150.0})


def old_weather(device):
    device.read()
    device.clock.current = NOW + timedelta(hours=2)


@pytest.mark.parametrize("status, load, prepare", [
    (fm.NO_INPUT, None, lambda device: None),
    (fm.INVALID_INPUT, None, invalid_weather),
    (fm.STALE_INPUT, None, old_weather),
    (fm.MODEL_UNAVAILABLE, unavailable, lambda device: device.read()),
    (fm.PREDICTION_FAILED, failing_model, lambda device: device.read()),
])
def test_each_status_is_counted_and_only_model_failures_are_faults(rules, status, load, prepare):
    device = Device(load) if load else Device()
    prepare(device)
    rain = [d for d in device.predict() if d[0] == shadow_topic(THING, RAIN_SHADOW, "update/documents")]
    assert rain[-1][1]["current"]["state"]["reported"]["status"] == status
    assert metrics(rules, rain) == {("Status", of_device(), status), ("Drift", of_device(), "unknown"),
                                    ("ModelFault", of_device(), int(status in fm.FAULT_STATUSES))}


def test_every_status_the_inference_function_writes_has_its_count():
    assert set(fm.NO_PREDICTION_STATUSES) == {fm.STALE_INPUT, fm.INVALID_INPUT, fm.NO_INPUT, fm.MODEL_UNAVAILABLE,
                                              fm.PREDICTION_FAILED}
    assert set(fm.FAULT_STATUSES) == {fm.MODEL_UNAVAILABLE, fm.PREDICTION_FAILED}


def test_an_unknown_status_is_recorded_as_other_so_the_records_stay_bounded(rules):
    device = Device()
    device.write(RAIN_SHADOW, {"status": "overheated' OR 'x", "checked_at": "2013-11-05T12:00:00.000Z"})
    # No drift in what it wrote: the record has no Drift member (the CASE of an undefined value).
    assert metrics(rules, device.documents) == {("Status", of_device(), fm.OTHER_STATUS), ("ModelFault", of_device(), 0)}


def test_the_drift_verdict_is_one_of_the_devices_words_or_unknown(rules):
    device = Device()
    device.write(RAIN_SHADOW, {"probability": 0.4, "threshold": 0.5, "raining": False,
                               "drift": {"verdict": "drifting"}})
    device.write(RAIN_SHADOW, {"probability": 0.4, "threshold": 0.5, "raining": False,
                               "drift": {"verdict": "x' OR '1"}})
    drifts = [value for name, _, value in metrics(rules, device.documents[:1]) if name == "Drift"]
    forged = [value for name, _, value in metrics(rules, device.documents[1:]) if name == "Drift"]
    assert drifts == ["drifting"] and forged == ["unknown"]


@pytest.mark.parametrize("shadow, reported", [
    (WEATHER_SHADOW, {**READING, "temperature": "hot"}),
    (WEATHER_SHADOW, {"temperature": 11.5, "humidity": 93.0}),
    (RAIN_SHADOW, {"probability": 0.4, "raining": False}),
    (RAIN_SHADOW, {"probability": [0.4], "threshold": 0.5, "raining": False}),
])
def test_a_malformed_document_makes_no_record(rules, shadow, reported):
    device = Device()
    device.write(shadow, reported)
    assert metrics(rules, device.documents) == set()


def test_other_shadows_and_other_topics_are_ignored(rules):
    document = {"current": {"state": {"reported": READING}}}
    for topic in (f"$aws/things/{THING}/shadow/update/documents",
                  f"$aws/things/{THING}/shadow/name/AWSManagedGreengrassV2Deployment/update/documents",
                  shadow_topic(THING, WEATHER_SHADOW, "update/accepted")):
        assert metrics(rules, [(topic, document)]) == set()


# ---- records ------------------------------------------------------------------------------------
def test_records_carry_no_embedded_metric_format_so_no_custom_metric_is_made(rules):
    """CloudWatch extracts metrics only from records with the `_aws` metadata ("Specification: Embedded
    metric format"); these records are for Logs Insights and make no custom metric."""
    device = Device()
    device.read()
    for topic, document in device.predict():
        for rule in rules:
            record = rule.evaluate(topic, document, NOW_MS)
            assert record is None or "_aws" not in record
