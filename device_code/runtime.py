"""What the three functions share at run time: clock, logging, backoff and the process wiring.

A Greengrass Lambda is a module whose handler the runtime calls; anything long-lived must live at
module level. `FunctionHost` keeps one service per process, built on first use from the process
`Wiring` (environment, Greengrass port, clock). On a device the wiring is the real environment and
Greengrass IPC; the simulator and the tests install their own.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Generic, Mapping, Protocol, TypeVar

from .port import GreengrassPort

# The nucleus sets these in every component's environment (Lambda components included): the
# thing name always, the IPC socket path for components that may use IPC.
GREENGRASS_VARIABLES = ("AWS_IOT_THING_NAME", "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT")


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Sleep up to `seconds`; True when `stop` was set."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(max(0.0, seconds))


def open_smbus(bus_number: int):
    import smbus2

    return smbus2.SMBus(bus_number)


@dataclass
class Wiring:
    environ: Mapping[str, str]
    port_factory: Callable[[], GreengrassPort]
    clock: Clock
    # I2C bus number -> an smbus2.SMBus-like object (the simulator hands out its simulated chip).
    open_i2c_bus: Callable[[int], object] = open_smbus


def _ipc_port() -> GreengrassPort:
    from .ipc import IpcPort  # only on a device: the simulator never imports the AWS SDK

    return IpcPort.connect()


_wiring = Wiring(environ=os.environ, port_factory=_ipc_port, clock=SystemClock())
_port: GreengrassPort | None = None
_wiring_lock = threading.Lock()


def install(wiring: Wiring) -> None:
    """Replace the process wiring (simulator, tests). Call before any function starts."""
    global _wiring, _port
    with _wiring_lock:
        _wiring, _port = wiring, None


def wiring() -> Wiring:
    return _wiring


def port() -> GreengrassPort:
    """The process's one Greengrass connection, opened on first use."""
    global _port
    with _wiring_lock:
        if _port is None:
            _port = _wiring.port_factory()
        return _port


def running_on_greengrass() -> bool:
    """True inside a Greengrass component process (never in the simulator or the tests)."""
    return any(name in os.environ for name in GREENGRASS_VARIABLES)


def configure_logging(level: str) -> None:
    """One line per event on stdout, which Greengrass writes to the component's log file."""
    root = logging.getLogger()
    if not root.handlers:  # keep a host's logging (the simulator's, pytest's) when it has one
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    logging.getLogger("device_code").setLevel(level)


class Backoff:
    """Exponential backoff: initial, 2x, 4x ... capped; reset after a success."""

    def __init__(self, initial_s: float, cap_s: float) -> None:
        self.initial_s, self.cap_s = initial_s, cap_s
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.cap_s, self.initial_s * 2**self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


Service = TypeVar("Service")


class FunctionHost(Generic[Service]):
    """Holds one function's service for the life of the process (a pinned Lambda's container)."""

    def __init__(self, build: Callable[[Wiring], Service]) -> None:
        self._build = build
        self._service: Service | None = None
        self._lock = threading.Lock()

    def get(self) -> Service:
        with self._lock:
            if self._service is None:
                self._service = self._build(wiring())
            return self._service

    def start(self) -> Service:
        """For a pinned function: build the service once and make sure its loop runs."""
        service = self.get()
        service.start()  # type: ignore[attr-defined]
        return service

    def discard(self) -> Service | None:
        """Forget the service (the simulator's and tests' teardown); returns it for stopping."""
        with self._lock:
            service, self._service = self._service, None
            return service


class LongLivedLoop:
    """Runs `step` on a background thread every `interval_s` until stopped; a failing step never ends it.

    Steps are scheduled at a fixed rate (no drift from the time a step takes). `step` returns the
    delay until the next attempt when it wants a shorter one (retry with backoff), else None.
    """

    def __init__(self, name: str, step: Callable[[], float | None], interval_s: float, clock: Clock,
                 log: logging.Logger) -> None:
        self.name, self._step, self.interval_s, self._clock, self._log = name, step, interval_s, clock, log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        next_due = self._clock.monotonic()
        while not self._stop.is_set():
            try:
                retry_in = self._step()
            except Exception:  # the loop must outlive any bug in one step
                self._log.exception("%s: step failed; continuing", self.name)
                retry_in = None
            now = self._clock.monotonic()
            next_due = now + retry_in if retry_in is not None else max(next_due + self.interval_s, now)
            if self._clock.wait(self._stop, next_due - now):
                return
