"""The cloud side of the simulator: a moto server on 127.0.0.1 (IoT + IoT data plane) via boto3."""
from __future__ import annotations

import json
import socket
import threading
from typing import Any

import boto3
from botocore.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

REGION = "us-east-1"
# Fail fast when the endpoint is down: the synchroniser retries on its own.
_CLIENT_CONFIG = Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1})


class CloudUnavailable(RuntimeError):
    """The moto server cannot start (its port is taken, or not ours to bind)."""


class MotoCloud:
    """Start/stop a moto server; the simulated thing exists in IoT so its shadows can be written.

    The socket is bound here, in the caller's thread, so a port that is taken fails at once (moto's
    ThreadedMotoServer binds in its own thread, where werkzeug turns the error into SystemExit, and
    then waits forever). Port 0, the default, lets the system pick a free port: nothing can take it
    between choosing and binding.
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MotoCloud":
        try:
            listener = socket.create_server(("127.0.0.1", self.port))
        except OSError as error:
            raise CloudUnavailable(f"cannot start the moto server on 127.0.0.1:{self.port}: {error.strerror}") from None
        with listener:  # the server works on its own duplicate of the socket
            self.port = listener.getsockname()[1]
            self._server = make_server("127.0.0.1", self.port, DomainDispatcherApplication(create_backend_app),
                                       threaded=True, request_handler=MotoRequestHandler, fd=listener.fileno())
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None

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
        """Starts the server unless it runs already; leaving the block stops it."""
        return self if self._server is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
