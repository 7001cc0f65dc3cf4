"""The simulator's Greengrass stand-in: MQTT topic matching and the local shadow service."""
import pytest

from device_code.port import ShadowNotFound, ShadowUpdateRejected
from device_code.simulator.greengrass import LocalGreengrass
from device_code.simulator.pubsub import topic_matches, validate_filter

DOCS = "$aws/things/core/shadow/name/weather/update/documents"


@pytest.mark.parametrize("topic_filter, topic, expected", [
    ("rainedge/core/readings", "rainedge/core/readings", True),
    ("rainedge/+/readings", "rainedge/core/readings", True),
    ("rainedge/+/readings", "rainedge/core/extra/readings", False),
    ("rainedge/#", "rainedge/core/readings", True),
    ("rainedge/#", "rainedge", True),
    ("rainedge/core", "rainedge/core/readings", False),
    ("rainedge/core/readings/#", "rainedge/core/readings", True),
    ("#", DOCS, False),  # '$' topics are not matched by a leading wildcard
    ("+/things/core/shadow/name/weather/update/documents", DOCS, False),
    ("$aws/things/+/shadow/name/+/update/documents", DOCS, True),
    ("$aws/things/core/shadow/name/rain/update/documents", DOCS, False),
])
def test_mqtt_topic_matching(topic_filter, topic, expected):
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize("bad", ["a/#/b", "a/b#", "a/+b"])
def test_malformed_filters_are_refused(bad):
    with pytest.raises(ValueError, match="must be a whole level"):
        validate_filter(bad)


def test_publish_delivers_copies_in_order_and_survives_a_failing_subscriber():
    greengrass = LocalGreengrass()
    received = []
    greengrass.subscribe("rainedge/+/readings", lambda topic, message: 1 / 0)
    greengrass.subscribe("rainedge/+/readings", lambda topic, message: received.append(message))
    sent = {"n": 1}
    for n in (1, 2, 3):
        sent["n"] = n
        greengrass.publish("rainedge/core/readings", sent)
    greengrass.bus.drain()
    assert received == [{"n": 1}, {"n": 2}, {"n": 3}]
    with pytest.raises(ValueError, match="no wildcards"):
        greengrass.publish("rainedge/+/readings", {})


def test_shadow_updates_merge_version_and_publish_documents_and_delta():
    greengrass = LocalGreengrass()
    seen = {}
    greengrass.subscribe("$aws/things/core/shadow/name/weather/update/#",
                         lambda topic, message: seen.setdefault(topic.rsplit("/", 1)[1], []).append(message))
    with pytest.raises(ShadowNotFound):
        greengrass.get_shadow("core", "weather")
    greengrass.update_shadow("core", "weather", {"state": {"reported": {"a": 1, "b": {"x": 1}}}})
    greengrass.update_shadow("core", "weather", {"state": {"reported": {"a": None, "b": {"y": 2}},
                                                           "desired": {"c": 3}}})
    greengrass.bus.drain()
    document = greengrass.get_shadow("core", "weather")
    assert document["version"] == 2
    assert document["state"] == {"reported": {"b": {"x": 1, "y": 2}}, "desired": {"c": 3}}
    assert [m["current"]["version"] for m in seen["documents"]] == [1, 2]
    assert seen["documents"][1]["previous"]["state"]["reported"] == {"a": 1, "b": {"x": 1}}
    assert seen["delta"] == [{"state": {"c": 3}, "version": 2, "timestamp": seen["delta"][0]["timestamp"]}]
    assert len(seen["accepted"]) == 2


@pytest.mark.parametrize("request_body, code", [
    ({"state": {"reported": {"a": 1}}, "version": 7}, 409),
    ({"state": {"reported": {"blob": "x" * 9000}}}, 413),
    ({"state": {"reported": [1, 2]}}, 400),
    ({"state": {"elsewhere": {}}}, 400),
    ({"reported": {"a": 1}}, 400),
])
def test_bad_updates_are_rejected_and_published_as_rejected(request_body, code):
    greengrass = LocalGreengrass()
    rejected = []
    greengrass.subscribe("$aws/things/core/shadow/name/rain/update/rejected",
                         lambda topic, message: rejected.append(message))
    greengrass.update_shadow("core", "rain", {"state": {"reported": {"a": 0}}})
    with pytest.raises(ShadowUpdateRejected, match=str(code)):
        greengrass.update_shadow("core", "rain", request_body)
    greengrass.bus.drain()
    assert rejected[0]["code"] == code
    assert greengrass.get_shadow("core", "rain")["state"]["reported"] == {"a": 0}
