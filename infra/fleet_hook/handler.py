"""Pre-provisioning hook of the rainedge fleet provisioning template.

AWS IoT calls it before it provisions a device with the claim certificate; the device is
provisioned only when the answer says {"allowProvisioning": true} within 5 seconds (AWS IoT
developer guide, "Pre-provisioning hooks"). It refuses a SerialNumber that does not match the
configured pattern, would give a thing name AWS IoT or this app cannot use, or names a thing that
already exists: a leaked claim can neither take over an existing device nor create arbitrary names.

Before it allows a device it records, in the stack's ledger table, what provisioning will make for
it (the thing, the certificate AWS IoT created from the device's CSR, whose id the hook receives
as `certificateId` ("Pre-provisioning hooks", Pre-provision hook input), and the device's IoT policy), then creates that policy under an exact name the
template attaches by name. Teardown deletes what the ledger names and nothing else (infra/ledger.py).
A provisioning template's policy is either named (an existing policy) or given a document (then it
is named by a hash of it), not both ("Provisioning templates", Policy resources): so the hook makes it.
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


# The ledger's item of one provisioned device (infra/ledger.py declares the table with this key).
LEDGER_KEY = "thingName"
LEDGER_CERTIFICATES = "certificateIds"
LEDGER_POLICY = "policyName"
# Stands for the thing name in the device policy document the stack hands the hook.
THING_SLOT = "@THING_NAME@"
# A certificate id: 64 hex digits (AWS IoT API reference, Certificate: certificateId "(0x)?[a-fA-F0-9]+", length 64).
CERTIFICATE_ID = re.compile(r"(0x)?[a-fA-F0-9]{64}")
# The hook's settings, as the stack sets them on the function (infra/fleet.py).
HOOK_SETTINGS = ("SERIAL_NUMBER_PATTERN", "NAME_PREFIX", "LEDGER_TABLE", "DEVICE_POLICY_DOCUMENT")


def device_policy_name(name_prefix: str, thing: str) -> str:
    """Each core device's own IoT policy, listed (infra/identity.py) or provisioned alike."""
    return f"{name_prefix}-device-{thing}"


def device_policy_document(slotted_document: str, thing: str) -> str:
    """The device policy of `thing`; its name is already THING_NAME-valid, so it cannot break the JSON."""
    return slotted_document.replace(THING_SLOT, thing)


def admit(event: Any, settings: dict[str, str], iot: Any, dynamodb: Any) -> tuple[bool, str]:
    """(allow, reason) for a RegisterThing request; records what an allowed one makes before it is made."""
    event = event if isinstance(event, dict) else {}
    parameters = event.get("parameters")
    prefix = settings["NAME_PREFIX"]
    allow, reason = decide(parameters, settings["SERIAL_NUMBER_PATTERN"], prefix, lambda name: _exists(
        iot, "describe_thing", thingName=name))
    if not allow:
        return False, reason
    certificate_id = event.get("certificateId")
    if not isinstance(certificate_id, str) or not CERTIFICATE_ID.fullmatch(certificate_id):
        return False, f"certificateId {certificate_id!r} is not a certificate id"
    thing = thing_name(prefix, parameters[SERIAL_PARAMETER])
    policy = device_policy_name(prefix, thing)
    key = {LEDGER_KEY: {"S": thing}}
    recorded = dynamodb.get_item(TableName=settings["LEDGER_TABLE"], Key=key, ConsistentRead=True).get("Item")
    if recorded is None and _exists(iot, "get_policy", policyName=policy):
        return False, f"policy {policy} exists but the ledger does not record it: it is not this app's"
    dynamodb.update_item(
        TableName=settings["LEDGER_TABLE"], Key=key,
        UpdateExpression=f"SET {LEDGER_POLICY} = :policy ADD {LEDGER_CERTIFICATES} :certificate",
        ExpressionAttributeValues={":policy": {"S": policy}, ":certificate": {"SS": [certificate_id]}})
    try:
        iot.create_policy(policyName=policy,
                          policyDocument=device_policy_document(settings["DEVICE_POLICY_DOCUMENT"], thing))
    except iot.exceptions.ResourceAlreadyExistsException:
        if recorded is None:  # made by someone else between our look and our create: not ours to record
            dynamodb.delete_item(TableName=settings["LEDGER_TABLE"], Key=key)
            return False, f"policy {policy} appeared while provisioning {thing}: it is not this app's"
    return True, f"provisioning {thing} (recorded in the ledger with certificate {certificate_id})"


def _exists(iot: Any, describe: str, **params: Any) -> bool:
    """Whether an IoT describe call finds its resource. The error class is the client's own (boto3's modelled
    exceptions): install.sh runs this module on a Pi whose Python has only the standard library."""
    try:
        getattr(iot, describe)(**params)
    except iot.exceptions.ResourceNotFoundException:
        return False
    return True


def handler(event: dict, context: object) -> dict:
    import boto3  # in the Lambda runtime

    allow, reason = admit(event, {name: os.environ[name] for name in HOOK_SETTINGS},
                          boto3.client("iot"), boto3.client("dynamodb"))
    print(f"{'allowed' if allow else 'refused'}: {reason}")
    return {"allowProvisioning": allow}
