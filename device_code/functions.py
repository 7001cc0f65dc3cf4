"""The device functions, declared once: what each one runs, how Greengrass runs it, what it may do.

This is what runs on the device, so it is the one definition: the stack builds each Lambda
component, its environment, event source, dependencies and IPC access control from it
(infra/components.py), the lifecycle tools take the function names from it, and the simulator and
the tests check the synthesized deployment against it. A new function is one handler module and
one entry in FUNCTIONS.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import config as env
from .contracts import ADAPTATION_SHADOW, RAIN_SHADOW, READINGS_TOPIC, WEATHER_SHADOW, named_shadow, shadow_topic

# Resolved per core by the nucleus when `interpolateComponentConfiguration` is on (nucleus >= 2.6;
# developer guide, "Interpolate component configuration" / Greengrass nucleus configuration).
THING = "{iot:thingName}"

# IPC services and operations of component `accessControl` (developer guide, "Authorize components
# to perform IPC operations"; "Publish/subscribe local messages"; "Interact with local shadows").
PUBSUB = "aws.greengrass.ipc.pubsub"
SHADOWS = "aws.greengrass.ShadowManager"
PUBLISH_TO_TOPIC = "aws.greengrass#PublishToTopic"
SUBSCRIBE_TO_TOPIC = "aws.greengrass#SubscribeToTopic"
GET_THING_SHADOW = "aws.greengrass#GetThingShadow"
UPDATE_THING_SHADOW = "aws.greengrass#UpdateThingShadow"


@dataclass(frozen=True)
class Grant:
    """One IPC authorisation policy: `operations` on `resources` of one IPC `service`."""

    service: str
    description: str
    operations: tuple[str, ...]
    resources: tuple[str, ...]


@dataclass(frozen=True)
class DeviceFunction:
    name: str  # the Lambda function is <namePrefix>-<name>
    component: str  # the Greengrass component is <componentPrefix>.<component>
    handler: str
    pinned: bool  # long-lived (one process, started with the core) or on demand
    environment: tuple[str, ...]  # variables the stack sets; each is required on the device
    grants: tuple[Grant, ...]
    event_source: str | None = None  # a local PUB_SUB topic whose messages invoke the function
    needs_model: bool = False  # depends on the model component (MODEL_DIR points into it)
    # Group to run as instead of the default ggc_group: the sensor opens /dev/i2c-*, which
    # Raspberry Pi OS gives to group i2c.
    posix_group: str | None = None

    @property
    def uses_local_shadows(self) -> bool:
        """Components that use local shadows depend on ShadowManager (developer guide,
        "Interact with shadows in components")."""
        return any(grant.service == SHADOWS for grant in self.grants)


SENSOR = DeviceFunction(
    name="sensor",
    component="Sensor",
    handler="device_code.sensor.handler",
    pinned=True,
    environment=(env.LOG_LEVEL, env.SAMPLE_INTERVAL_S, env.I2C_BUS, env.I2C_ADDRESS),
    grants=(Grant(PUBSUB, "Publish BME680 readings", (PUBLISH_TO_TOPIC,), (READINGS_TOPIC,)),),
    posix_group="i2c",
)
SHADOW_WRITER = DeviceFunction(
    name="shadow-writer",
    component="ShadowWriter",
    handler="device_code.shadow_writer.handler",
    pinned=False,
    environment=(env.LOG_LEVEL, env.CPU_TEMP_COMPENSATION, env.CPU_TEMP_PATH, env.STATION_FILE),
    grants=(Grant(SHADOWS, "Read and write the weather shadow", (GET_THING_SHADOW, UPDATE_THING_SHADOW),
                  (named_shadow(THING, WEATHER_SHADOW),)),),
    event_source=READINGS_TOPIC,
)
INFERENCE = DeviceFunction(
    name="inference",
    component="Inference",
    handler="device_code.inference.handler",
    pinned=True,
    environment=(env.LOG_LEVEL, env.MODEL_DIR, env.HISTORY_FILE, env.INFERENCE_INTERVAL_S, env.MAX_INPUT_AGE_S),
    grants=(
        Grant(SHADOWS, "Read the latest reading", (GET_THING_SHADOW,), (named_shadow(THING, WEATHER_SHADOW),)),
        # Read back too: the device restores the rain shadow when something else wrote it.
        Grant(SHADOWS, "Write the prediction and read it back", (GET_THING_SHADOW, UPDATE_THING_SHADOW),
              (named_shadow(THING, RAIN_SHADOW),)),
        # Read the desired adaptation, report the one in force. IPC grants an operation on a shadow, not on
        # one half of it: the code writes only `reported` (device_code/adaptation_shadow.py).
        Grant(SHADOWS, "Read the station's adaptation and report the one in force",
              (GET_THING_SHADOW, UPDATE_THING_SHADOW), (named_shadow(THING, ADAPTATION_SHADOW),)),
        Grant(PUBSUB, "Hear every update of the weather shadow", (SUBSCRIBE_TO_TOPIC,),
              (shadow_topic(THING, WEATHER_SHADOW, "update/documents"),)),
    ),
    needs_model=True,
)
FUNCTIONS = (SENSOR, SHADOW_WRITER, INFERENCE)
