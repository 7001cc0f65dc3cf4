"""Pre-provisioning hook of the rainedge fleet provisioning template.

AWS IoT calls it before it provisions a device with the claim certificate; the device is
provisioned only when the answer says {"allowProvisioning": true} within 5 seconds (AWS IoT
developer guide, "Pre-provisioning hooks"). It refuses a SerialNumber that does not match the
configured pattern, would give a thing name AWS IoT or this app cannot use, or names a thing that
already exists: a leaked claim can neither take over an existing device nor create arbitrary names.
"""
from __future__ import annotations

import os
import re
from typing import Any, Callable

# The provisioning template's parameter the device fills from its serial number (infra/fleet.py).
SERIAL_PARAMETER = "SerialNumber"
# Thing names this app uses (listed and provisioned alike; infra/config.py takes them from here):
# CreateThing allows 1-128 of [a-zA-Z0-9:_-]; ':' is refused because the name goes into MQTT
# topics, ARNs and policy names, and at most 64 because it is the common name of the device's
# certificate request (X.509 upper bound ub-common-name, RFC 5280).
MAX_THING_NAME = 64
THING_NAME = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_THING_NAME}}}")


def thing_name(name_prefix: str, serial_number: str) -> str:
    """The provisioned thing of a serial number (the provisioning template builds the same)."""
    return f"{name_prefix}-{serial_number}"


def decide(parameters: Any, serial_pattern: str, name_prefix: str,
           thing_exists: Callable[[str], bool]) -> tuple[bool, str]:
    """(allow, reason) for the template parameters a device sent."""
    serial = parameters.get(SERIAL_PARAMETER) if isinstance(parameters, dict) else None
    if not isinstance(serial, str) or not re.fullmatch(serial_pattern, serial):
        return False, f"SerialNumber {serial!r} does not match {serial_pattern}"
    name = thing_name(name_prefix, serial)
    if not THING_NAME.fullmatch(name):
        return False, f"thing name {name!r} is not 1-64 of A-Z a-z 0-9 _ -"
    if thing_exists(name):
        return False, f"thing {name} already exists"
    return True, f"provisioning {name}"


def handler(event: dict, context: object) -> dict:
    import boto3  # in the Lambda runtime

    iot = boto3.client("iot")

    def thing_exists(name: str) -> bool:
        try:
            iot.describe_thing(thingName=name)
        except iot.exceptions.ResourceNotFoundException:
            return False
        return True

    allow, reason = decide(event.get("parameters"), os.environ["SERIAL_NUMBER_PATTERN"], os.environ["NAME_PREFIX"],
                           thing_exists)
    print(f"{'allowed' if allow else 'refused'}: {reason}")
    return {"allowProvisioning": allow}
