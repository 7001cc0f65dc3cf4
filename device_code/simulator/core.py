"""A simulated Greengrass core running the synthesized deployment the way Greengrass and AWS IoT would.

Everything comes from the template `make synth` wrote (read through infra.synthesized): which
Lambda components exist, their handler, environment, pinned flag and event sources; the
deployment's configuration merges (IPC `accessControl`, the nucleus' interpolation switch,
ShadowManager's sync); and the IoT policies attached to the simulated thing's certificate.
Enforced as on a core:
- an IPC call that the component's `accessControl` does not grant fails with UnauthorizedError
  (`{iot:thingName}` is resolved only when the nucleus' interpolateComponentConfiguration is on);
- a PUB_SUB event source with an MQTT wildcard is refused at start (API reference, LambdaEventSource);
- a component variable the device code requires but the template does not set stops the function;
- a synchronised shadow that the thing's IoT policies do not allow ShadowManager to get, update and
  delete in the cloud is never synced (AWS IoT answers 403), and the caller can say which and why.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from device_code import config as env
from device_code.contracts import named_shadow
from device_code.functions import (GET_THING_SHADOW, PUBLISH_TO_TOPIC, PUBSUB, SHADOWS, SUBSCRIBE_TO_TOPIC, THING,
                                   UPDATE_THING_SHADOW, DeviceFunction)
from device_code.port import GreengrassPort, Message, MessageCallback, PortError
from infra.fleet_hook.handler import RING_PARAMETER, SERIAL_PARAMETER, decide, ring_group
from infra.greengrass import NUCLEUS, SHADOW_MANAGER, SHADOW_SYNC_ACTIONS
from infra.iot_policy import allows_any
from infra.synthesized import DeployedVersion, LambdaComponent, Pseudo, SynthesizedStack, TemplateError

from .greengrass import LocalGreengrass

DEVICE_TO_CLOUD = ("betweenDeviceAndCloud", "deviceToCloud")


class UnauthorizedError(PortError):
    """Greengrass IPC refused an operation the component is not authorised to perform."""


class DeploymentError(TemplateError):
    """The synthesized deployment cannot run on a core as it is; the message names the cause."""


@dataclass(frozen=True)
class IpcCall:
    component: str
    service: str
    operation: str
    resource: str
    allowed: bool


def standalone_environment(thing_name: str, model_dir: Path | str = "/nonexistent", **overrides: str) -> dict[str, str]:
    """Every variable the device functions require, for running them outside a deployment (the
    bench, unit tests): the defaults of cdk.json, the given model folder, no CPU thermal zone, no
    station file (0 m), and a history file under /dev/null, which no one (root neither) can create:
    the history stays in memory and each save is logged as failed. Give HISTORY_FILE a folder of your
    own to keep it."""
    values = {env.THING_NAME: thing_name, env.LOG_LEVEL: "INFO", env.SAMPLE_INTERVAL_S: "60", env.I2C_BUS: "1",
              env.I2C_ADDRESS: "0x76", env.CPU_TEMP_COMPENSATION: "off", env.CPU_TEMP_PATH: "/nonexistent",
              env.STATION_FILE: "/nonexistent/station.json", env.MODEL_DIR: str(model_dir),
              env.HISTORY_FILE: "/dev/null/reading_history.json", env.INFERENCE_INTERVAL_S: "10",
              env.MAX_INPUT_AGE_S: "300"}
    return {**values, **overrides}


def _granted(pattern: str, resource: str) -> bool:
    # Greengrass IPC authorisation: exact resources, or `*` for any (developer guide, "Authorize
    # components to perform IPC operations", wildcards).
    return pattern == "*" or pattern == resource


class AuthorizedPort:
    """The local Greengrass as one component sees it: every call checked against its accessControl."""

    def __init__(self, greengrass: LocalGreengrass, component: str, grants: Mapping[str, list[dict[str, Any]]],
                 record: Callable[[IpcCall], None]) -> None:
        self._greengrass, self.component, self._grants, self._record = greengrass, component, grants, record

    def _check(self, service: str, operation: str, resource: str) -> None:
        allowed = any(operation in policy.get("operations", ()) and
                      any(_granted(pattern, resource) for pattern in policy.get("resources", ()))
                      for policy in self._grants.get(service, []))
        self._record(IpcCall(self.component, service, operation, resource, allowed))
        if not allowed:
            raise UnauthorizedError(f"{self.component} is not authorized to perform {operation} on {resource} "
                                    f"(accessControl of {service} in the deployment)")

    def publish(self, topic: str, message: Message) -> None:
        self._check(PUBSUB, PUBLISH_TO_TOPIC, topic)
        self._greengrass.publish(topic, message)

    def subscribe(self, topic_filter: str, callback: MessageCallback) -> None:
        self._check(PUBSUB, SUBSCRIBE_TO_TOPIC, topic_filter)
        self._greengrass.subscribe(topic_filter, callback)

    def get_shadow(self, thing_name: str, shadow_name: str) -> Message:
        self._check(SHADOWS, GET_THING_SHADOW, named_shadow(thing_name, shadow_name))
        return self._greengrass.get_shadow(thing_name, shadow_name)

    def update_shadow(self, thing_name: str, shadow_name: str, document: Message) -> Message:
        self._check(SHADOWS, UPDATE_THING_SHADOW, named_shadow(thing_name, shadow_name))
        return self._greengrass.update_shadow(thing_name, shadow_name, document)


@dataclass
class SimulatedCore:
    """One core device `thing_name` running the deployment of `stack`, with the IoT policies
    attached to its certificate (resolved for `pseudo`)."""

    stack: SynthesizedStack
    thing_name: str
    policies: dict[str, dict[str, Any]]
    group: str  # its ring's thing group: the deployment it runs
    pseudo: Pseudo = field(default_factory=Pseudo)
    calls: list[IpcCall] = field(default_factory=list)

    @classmethod
    def listed(cls, stack: SynthesizedStack, thing_name: str, pseudo: Pseudo = Pseudo()) -> "SimulatedCore":
        """A device listed in the stack: its thing and policies are resources of the template."""
        if thing_name not in stack.thing_names():
            raise DeploymentError(f"thing {thing_name!r} is not a core device of the template "
                                  f"(its things: {', '.join(stack.thing_names()) or 'none'})")
        return cls(stack, thing_name, stack.policies_of_thing(thing_name, pseudo), stack.group_of_thing(thing_name),
                   pseudo)

    @classmethod
    def provisioned(cls, stack: SynthesizedStack, serial_number: str, thing_exists: Callable[[str], bool],
                    pseudo: Pseudo = Pseudo()) -> "SimulatedCore":
        """A device that joins by fleet provisioning: the template's pre-provisioning hook decides
        (its real code with its synthesized settings), then the provisioning template makes it."""
        parameters = {SERIAL_PARAMETER: serial_number}
        settings = stack.pre_provisioning_hook_settings(pseudo)
        allowed, reason = decide(parameters, settings["SERIAL_NUMBER_PATTERN"], settings["NAME_PREFIX"], thing_exists)
        if not allowed:
            raise DeploymentError(f"serial number {serial_number!r} refused by the pre-provisioning hook: {reason}")
        # The hook's parameterOverrides name the ring (infra/fleet_hook/handler.ring_group).
        thing = stack.provisioned_thing({**parameters, RING_PARAMETER: ring_group(serial_number, settings)}, pseudo)
        (group,) = thing.thing_groups
        return cls(stack, thing.thing_name, {thing.policy_name: thing.policy_document}, group, pseudo)

    def __post_init__(self) -> None:
        self.deployment: dict[str, DeployedVersion] = self.stack.deployment(self.group)
        self.components: dict[str, LambdaComponent] = self.stack.lambda_components(self.group)
        for component in self.components.values():
            for topic, kind in component.event_sources:
                if kind == "PUB_SUB" and ("+" in topic or "#" in topic):
                    raise DeploymentError(
                        f"{component.name}: PUB_SUB event source {topic!r} has an MQTT wildcard, which Greengrass "
                        "does not support (API reference, LambdaEventSource); use a literal topic")

    # ---- the functions ----------------------------------------------------------------------
    def component_of(self, function: DeviceFunction) -> LambdaComponent:
        for component in self.components.values():
            if component.handler == function.handler:
                return component
        raise DeploymentError(f"no Lambda component in the deployment runs {function.handler}")

    def handler_modules(self) -> dict[str, Any]:
        """Component name -> the imported handler module (its `host` and `handler`)."""
        modules = {}
        for name, component in self.components.items():
            module_name = component.handler.rsplit(".", 1)[0]
            try:
                modules[name] = importlib.import_module(module_name)
            except ImportError as error:
                raise DeploymentError(f"{name}: handler {component.handler} cannot be imported: {error}") from None
        return modules

    def environment(self, function: DeviceFunction, overrides: Mapping[str, str]) -> dict[str, str]:
        """What the component's process gets: the template's variables (those of them the simulator
        overrides take the simulator's values; it adds none) and the nucleus' thing name."""
        environment = self.component_of(function).environment
        return {**environment, **{key: value for key, value in overrides.items() if key in environment},
                env.THING_NAME: self.thing_name}

    def grants(self, component: str) -> dict[str, list[dict[str, Any]]]:
        """The component's accessControl as the nucleus applies it on this core."""
        interpolate = self.deployment.get(NUCLEUS, DeployedVersion("", {}, None)).merge.get(
            "interpolateComponentConfiguration", False)
        access = self.deployment[component].merge.get("accessControl", {})
        return {service: [{**policy, "resources": [self._interpolate(r, interpolate) for r in policy["resources"]]}
                          for policy in policies.values()]
                for service, policies in access.items()}

    def _interpolate(self, resource: str, enabled: bool) -> str:
        return resource.replace(THING, self.thing_name) if enabled else resource

    def port(self, greengrass: LocalGreengrass, function: DeviceFunction) -> GreengrassPort:
        name = self.component_of(function).name
        return AuthorizedPort(greengrass, name, self.grants(name), self.calls.append)

    def refusals(self) -> list[IpcCall]:
        return [call for call in self.calls if not call.allowed]

    # ---- ShadowManager and the cloud --------------------------------------------------------
    def shadow_sync(self) -> tuple[tuple[str, ...], str]:
        """(named shadows ShadowManager synchronises for this core, direction)."""
        merge = self.deployment.get(SHADOW_MANAGER)
        if merge is None:
            return (), "none"
        synchronize = merge.merge.get("synchronize", {})
        return (tuple(synchronize.get("coreThing", {}).get("namedShadows", [])),
                synchronize.get("direction", "betweenDeviceAndCloud"))

    def cloud_refusal(self, shadow: str) -> str | None:
        """Why AWS IoT would refuse ShadowManager's calls for `shadow`, or None when it allows them."""
        arn = f"arn:{self.pseudo.partition}:iot:{self.pseudo.region}:{self.pseudo.account}:thing/{self.thing_name}/{shadow}"
        denied = [action for action in SHADOW_SYNC_ACTIONS if not allows_any(self.policies.values(), action, arn)]
        if not denied:
            return None
        names = ", ".join(self.policies) or "no policy at all"
        return f"the IoT policies of {self.thing_name} ({names}) do not allow {', '.join(denied)} on {arn}"
