"""The production IPC adapter against a fake GreengrassCoreIPCClientV2 (same call shapes, real SDK models)."""
import json
import logging

import pytest
from awsiot.greengrasscoreipc import model

from device_code.ipc import IpcPort
from device_code.port import PortError, ShadowNotFound, ShadowUpdateRejected


class FakeIpcClient:
    def __init__(self):
        self.calls = []
        self.raise_next = None
        self.shadow_payload = b'{"state": {"reported": {"temperature": 11.5}}, "version": 3}'

    def _call(self, name, **kwargs):
        self.calls.append((name, kwargs))
        if self.raise_next is not None:
            error, self.raise_next = self.raise_next, None
            raise error

    def publish_to_topic(self, *, topic, publish_message):
        self._call("publish_to_topic", topic=topic, publish_message=publish_message)
        return model.PublishToTopicResponse()

    def subscribe_to_topic(self, *, topic, on_stream_event, on_stream_error):
        self._call("subscribe_to_topic", topic=topic, on_stream_event=on_stream_event,
                   on_stream_error=on_stream_error)
        return model.SubscribeToTopicResponse(), object()

    def get_thing_shadow(self, *, thing_name, shadow_name):
        self._call("get_thing_shadow", thing_name=thing_name, shadow_name=shadow_name)
        return model.GetThingShadowResponse(payload=self.shadow_payload)

    def update_thing_shadow(self, *, thing_name, shadow_name, payload):
        self._call("update_thing_shadow", thing_name=thing_name, shadow_name=shadow_name, payload=payload)
        return model.UpdateThingShadowResponse(payload=b'{"version": 4}')


@pytest.fixture
def client():
    return FakeIpcClient()


def test_publish_sends_a_json_message(client):
    IpcPort(client).publish("rainedge/core/readings", {"temperature": 11.5})
    name, kwargs = client.calls[0]
    assert name == "publish_to_topic" and kwargs["topic"] == "rainedge/core/readings"
    assert kwargs["publish_message"].json_message.message == {"temperature": 11.5}


def test_subscription_decodes_json_and_binary_messages_and_survives_a_failing_callback(client, caplog):
    received = []

    def callback(topic, message):
        if message.get("explode"):
            raise RuntimeError("handler bug")
        received.append((topic, message))

    IpcPort(client).subscribe("$aws/things/core/shadow/name/weather/update/documents", callback)
    on_event, on_error = client.calls[0][1]["on_stream_event"], client.calls[0][1]["on_stream_error"]
    context = model.MessageContext(topic="$aws/things/core/shadow/name/weather/update/documents")
    on_event(model.SubscriptionResponseMessage(json_message=model.JsonMessage(message={"a": 1}, context=context)))
    on_event(model.SubscriptionResponseMessage(
        binary_message=model.BinaryMessage(message=json.dumps({"b": 2}).encode(), context=context)))
    with caplog.at_level(logging.ERROR):
        on_event(model.SubscriptionResponseMessage(
            json_message=model.JsonMessage(message={"explode": True}, context=context)))
        assert on_error(model.ServiceError(message="stream hiccup")) is False  # keep the stream open
    assert received == [(context.topic, {"a": 1}), (context.topic, {"b": 2})]
    assert "could not be handled" in caplog.text and "stream hiccup" in caplog.text


def test_get_shadow_parses_the_payload_and_maps_not_found(client):
    port = IpcPort(client)
    assert port.get_shadow("core", "weather")["version"] == 3
    assert client.calls[0] == ("get_thing_shadow", {"thing_name": "core", "shadow_name": "weather"})
    client.raise_next = model.ResourceNotFoundError(message="No shadow exists with name: weather")
    with pytest.raises(ShadowNotFound, match="No shadow exists"):
        port.get_shadow("core", "weather")


def test_update_shadow_sends_json_bytes_and_maps_rejections(client):
    port = IpcPort(client)
    assert port.update_shadow("core", "rain", {"state": {"reported": {"raining": True}}}) == {"version": 4}
    assert json.loads(client.calls[0][1]["payload"]) == {"state": {"reported": {"raining": True}}}
    for error in (model.ConflictError(message="Version conflict"), model.InvalidArgumentsError(message="too big")):
        client.raise_next = error
        with pytest.raises(ShadowUpdateRejected, match=error.message):
            port.update_shadow("core", "rain", {"state": {}})


@pytest.mark.parametrize("error", [model.UnauthorizedError(message="not authorized for this resource"),
                                   ConnectionResetError("not authorized: connection closed by the nucleus")])
@pytest.mark.parametrize("operation", ["publish", "subscribe", "get_shadow", "update_shadow"])
def test_other_ipc_errors_become_port_errors(client, operation, error):
    client.raise_next = error
    port = IpcPort(client)
    call = {"publish": lambda: port.publish("t", {}), "subscribe": lambda: port.subscribe("t", print),
            "get_shadow": lambda: port.get_shadow("core", "weather"),
            "update_shadow": lambda: port.update_shadow("core", "weather", {"state": {}})}[operation]
    with pytest.raises(PortError, match="not authorized") as raised:
        call()
    assert type(raised.value) is PortError
