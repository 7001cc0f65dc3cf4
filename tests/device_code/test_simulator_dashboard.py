"""The offline dashboard: the synthesized rules on recorded shadow documents, the alarms' conditions on
the resulting metrics, and the picture."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from device_code.contracts import RAIN_SHADOW, WEATHER_SHADOW, shadow_topic
from device_code.simulator.dashboard import ShadowDocuments, panels, render, silence_in_readings
from infra.synthesized import SynthesizedStack

THING = "pi-roof"
START = datetime(2013, 11, 5, 0, 0, tzinfo=timezone.utc)


def at(hours: float) -> int:
    return int((START + timedelta(hours=hours)).timestamp() * 1000)


def document(shadow: str, reported: dict, hours: float) -> tuple[str, dict, int]:
    return shadow_topic(THING, shadow, "update/documents"), {"current": {"state": {"reported": reported}}}, at(hours)


def weather(hours: float) -> tuple[str, dict, int]:
    return document(WEATHER_SHADOW, {"temperature": 10.0 + hours, "humidity": 80.0, "pressure": 1010.0}, hours)


def prediction(hours: float, probability: float = 0.7, drift: str = "ok") -> tuple[str, dict, int]:
    return document(RAIN_SHADOW, {"probability": probability, "threshold": 0.6, "raining": probability >= 0.6,
                                  "drift": {"verdict": drift}}, hours + 0.01)


# Hourly readings, then ten hours of silence; the model fails for a while in between.
RUN = [weather(0), prediction(0), weather(1), prediction(1),
       weather(2), document(RAIN_SHADOW, {"status": "model_unavailable"}, 2.01),
       weather(3), document(RAIN_SHADOW, {"status": "model_unavailable"}, 3.01),
       weather(4), prediction(4, 0.2, drift="drifting"), weather(14), prediction(14, drift="warming_up")]


@pytest.fixture(scope="module")
def stack(template) -> SynthesizedStack:
    return SynthesizedStack(template)


def test_the_silence_window_is_counted_in_readings_of_the_deployed_configuration(stack):
    # cdk.json: a reading every 60 s, silent after 5 of them (a 300 s alarm window).
    assert silence_in_readings(stack) == 5


def test_panels_carry_the_metrics_the_rules_make(stack):
    data = panels(RUN, stack)
    assert [value for _, value in data.metrics["Temperature"][THING]] == [10, 11, 12, 13, 14, 24]
    assert [value for _, value in data.metrics["Raining"][THING]] == [1, 1, 0, 1]
    assert data.statuses == {(THING, "model_unavailable"): 2}


def test_alarm_states_follow_the_alarms_conditions(stack):
    data = panels(RUN, stack)
    silent = [(start, stop) for start, stop, in_alarm in data.alarms["device silent"][THING] if in_alarm]
    # Silent five reading intervals after the reading at 4 h, until the reading at 14 h.
    assert silent == [(START + timedelta(hours=9), START + timedelta(hours=14))]
    fault = [(round((start - START).total_seconds() / 3600, 2), in_alarm)
             for start, _, in_alarm in data.alarms["model fault"][THING]]
    assert fault == [(0.01, False), (1.01, False), (2.01, True), (3.01, True), (4.01, False), (14.01, False)]
    # Drifting from the prediction that said so until the next rain shadow update said otherwise (a
    # status write without a drift summary counts as "unknown", as the rules' CASE makes it).
    drifting = [(round((start - START).total_seconds() / 3600, 2), round((stop - START).total_seconds() / 3600, 2))
                for start, stop, in_alarm in data.alarms["drifting"][THING] if in_alarm]
    assert drifting == [(4.01, 14.01)]


def test_only_the_synced_shadows_documents_are_recorded():
    class Clock:
        def now(self):
            return START

    documents = ShadowDocuments(Clock())
    for topic in (shadow_topic(THING, WEATHER_SHADOW, "update/documents"), shadow_topic(THING, RAIN_SHADOW,
                                                                                          "update/accepted"),
                  "rainedge/readings", shadow_topic(THING, RAIN_SHADOW, "update/documents")):
        documents.observe(topic, {}, 0.0)
    assert [topic.split("/")[5] for topic, _, _ in documents.recorded] == [WEATHER_SHADOW, RAIN_SHADOW]
    assert {at_ms for _, _, at_ms in documents.recorded} == {at(0)}


def test_render_writes_the_picture(stack, tmp_path):
    path = tmp_path / "demo" / "dashboard.png"
    render(RUN, stack, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
