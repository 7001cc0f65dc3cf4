"""The cloud side of the simulator: a moto server on 127.0.0.1 (IoT + IoT data plane) via boto3."""
from __future__ import annotations

import json
import socket
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
# Fail fast when the endpoint is down: the synchroniser retries on its own.
_CLIENT_CONFIG = Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MotoCloud:
    """Start/stop a moto server; the simulated thing exists in IoT so its shadows can be written."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None

    def start(self) -> "MotoCloud":
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint, config=_CLIENT_CONFIG,
                            aws_access_key_id="simulator", aws_secret_access_key="simulator")

    def create_thing(self, thing_name: str) -> None:
        self.client("iot").create_thing(thingName=thing_name)

    def thing_exists(self, thing_name: str) -> bool:
        client = self.client("iot")
        try:
            client.describe_thing(thingName=thing_name)
        except client.exceptions.ResourceNotFoundException:
            return False
        return True

    def reported(self, thing_name: str, shadow_name: str) -> dict[str, Any] | None:
        """The cloud shadow's reported state; None when the shadow does not exist."""
        client = self.client("iot-data")
        try:
            response = client.get_thing_shadow(thingName=thing_name, shadowName=shadow_name)
        except client.exceptions.ResourceNotFoundException:
            return None
        return json.loads(response["payload"].read())["state"]["reported"]

    def __enter__(self) -> "MotoCloud":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
