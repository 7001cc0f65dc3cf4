"""What the device functions share at run time: clock, logging, backoff and the process wiring.

A Greengrass Lambda is a module whose handler the runtime calls; anything long-lived must live at
module level. `FunctionHost` keeps one service per function and process, built on first use from the
process `Wiring`: the function's environment, its Greengrass port, the clock. On a device the wiring
is the real environment and Greengrass IPC (each function is its own process); the simulator and
the tests install their own, in which several functions share one process.

Building a service never talks to Greengrass: the port connects on first use, from the thread that
uses it (a pinned function's worker thread), and retries with backoff. An IPC socket that is not
ready yet therefore never makes the module import fail.
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

from .config import THING_NAME
from .functions import DeviceFunction
from .port import GreengrassPort, Message, MessageCallback, PortError

log = logging.getLogger(__name__)

# The nucleus sets these in every component's environment (Lambda components included): the
# thing name always, the IPC socket path for components that may use IPC.
GREENGRASS_VARIABLES = (THING_NAME, "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT")
# Reconnection to Greengrass IPC: 1 s, 2 s, 4 s ... at most a minute apart.
CONNECT_RETRY_FIRST_S, CONNECT_RETRY_CAP_S = 1.0, 60.0


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


def connect_ipc(function: DeviceFunction) -> GreengrassPort:
    """On a device each function is its own process with its own IPC credentials."""
    from .ipc import IpcPort  # only on a device: the simulator never imports the AWS SDK

    return IpcPort.connect()


class Backoff:
    """Exponential backoff: initial, 2x, 4x ... capped; reset after a success.

    The exponent stops growing once the cap is reached, so any number of failures (a chip dead
    for days) keeps returning the cap instead of overflowing.
    """

    def __init__(self, initial_s: float, cap_s: float) -> None:
        self.initial_s, self.cap_s = initial_s, cap_s
        self.failures = 0

    def next_delay(self) -> float:
        delay = self.initial_s
        for _ in range(self.failures):
            if delay >= self.cap_s:
                break
            delay *= 2
        self.failures += 1
        return min(self.cap_s, delay)

    def reset(self) -> None:
        self.failures = 0


class LazyPort:
    """A GreengrassPort that connects on first use and reconnects with backoff.

    While a connection attempt is backing off, calls fail at once with PortError (the functions
    already log such failures and go on); each failed attempt is logged once.
    """

    def __init__(self, connect: Callable[[], GreengrassPort], clock: Clock, name: str) -> None:
        self._connect, self._clock, self.name = connect, clock, name
        self._port: GreengrassPort | None = None
        self._backoff = Backoff(CONNECT_RETRY_FIRST_S, CONNECT_RETRY_CAP_S)
        self._retry_at = float("-inf")
        self._last_error = ""
        self._lock = threading.Lock()

    def _connected(self) -> GreengrassPort:
        with self._lock:
            if self._port is not None:
                return self._port
            now = self._clock.monotonic()
            if now < self._retry_at:
                raise PortError(f"not connected to Greengrass (next attempt in {self._retry_at - now:.0f} s): "
                                f"{self._last_error}")
            try:
                self._port = self._connect()
            except Exception as error:  # the IPC client raises many kinds while the nucleus starts
                delay = self._backoff.next_delay()
                self._retry_at = now + delay
                self._last_error = f"{type(error).__name__}: {error}"
                log.error("%s: could not connect to Greengrass IPC (attempt %d), next attempt in %.0f s: %s",
                          self.name, self._backoff.failures, delay, self._last_error)
                raise PortError(f"could not connect to Greengrass: {self._last_error}") from error
            if self._backoff.failures:
                log.info("%s: connected to Greengrass IPC after %d failed attempts", self.name, self._backoff.failures)
            self._backoff.reset()
            return self._port

    def publish(self, topic: str, message: Message) -> None:
        self._connected().publish(topic, message)

    def subscribe(self, topic_filter: str, callback: MessageCallback) -> None:
        self._connected().subscribe(topic_filter, callback)

    def get_shadow(self, thing_name: str, shadow_name: str) -> Message:
        return self._connected().get_shadow(thing_name, shadow_name)

    def update_shadow(self, thing_name: str, shadow_name: str, document: Message) -> Message:
        return self._connected().update_shadow(thing_name, shadow_name, document)


@dataclass(frozen=True)
class FunctionContext:
    """What one function's service is built from."""

    environ: Mapping[str, str]
    port: GreengrassPort  # connects on first use, never while the service is built
    clock: Clock
    # I2C bus number -> an smbus2.SMBus-like object (the simulator hands out its simulated chip).
    open_i2c_bus: Callable[[int], object]


@dataclass
class Wiring:
    """How this process reaches the world; the simulator and the tests install their own."""

    environ: Callable[[DeviceFunction], Mapping[str, str]] = lambda function: os.environ
    connect: Callable[[DeviceFunction], GreengrassPort] = connect_ipc
    clock: Clock = SystemClock()
    open_i2c_bus: Callable[[int], object] = open_smbus

    def context(self, function: DeviceFunction) -> FunctionContext:
        return FunctionContext(environ=self.environ(function),
                               port=LazyPort(lambda: self.connect(function), self.clock, function.name),
                               clock=self.clock, open_i2c_bus=self.open_i2c_bus)


_wiring = Wiring()
_wiring_lock = threading.Lock()


def install(wiring: Wiring) -> None:
    """Replace the process wiring (simulator, tests). Call before any function starts."""
    global _wiring
    with _wiring_lock:
        _wiring = wiring


def wiring() -> Wiring:
    with _wiring_lock:
        return _wiring


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


Service = TypeVar("Service")


class FunctionHost(Generic[Service]):
    """Holds one function's service for the life of the process (a pinned Lambda's container).

    Every service has `handle(event)`, which the module's Lambda `handler` calls; a pinned one also
    has `start()`/`stop()` for its long-lived loop.
    """

    def __init__(self, function: DeviceFunction, build: Callable[[FunctionContext], Service]) -> None:
        self.function, self._build = function, build
        self._service: Service | None = None
        self._lock = threading.Lock()

    def get(self) -> Service:
        with self._lock:
            if self._service is None:
                self._service = self._build(wiring().context(self.function))
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
