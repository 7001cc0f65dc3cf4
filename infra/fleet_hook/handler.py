"""Pre-provisioning hook of the rainedge fleet provisioning template.

AWS IoT calls it before it provisions a device with the claim certificate; the device is
provisioned only when the answer says {"allowProvisioning": true} within 5 seconds (AWS IoT
developer guide, "Pre-provisioning hooks"). It refuses a SerialNumber that does not match the
configured pattern, would give a thing name AWS IoT or this app cannot use, or names a thing that
already exists: a leaked claim can neither take over an existing device nor create arbitrary names.

Before it allows a device it records, in the stack's ledger table, what provisioning will make for
it (the thing; the certificate AWS IoT created from the device's CSR, whose id the hook receives as
`certificateId`, "Pre-provisioning hooks", Pre-provision hook input; the device's IoT policy), then
creates that policy under an exact name the template attaches by name. Teardown deletes what the ledger names and nothing else (infra/ledger.py).
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


# ---- names the app keeps for itself -------------------------------------------------------------------
# A device's name is its key folder in secretsDir (infra/device_keys.py) and its MQTT client id. The app
# keeps two folders there for itself: the claim's key (`<prefix>-claim`) and the fleet bundle
# (infra/lifecycle/fleet_bundle.py); the claim connects as `<prefix>-claim-<serial>` (its policy allows
# client/<prefix>-claim-*, infra/fleet.py). Folders are compared without case: on macOS and Windows,
# `A` and `a` are one folder. One rule for listed devices (infra/config.py) and provisioned ones (decide).
BUNDLE_FOLDER = "fleet-bundle"


def claim_name(name_prefix: str) -> str:
    """The claim certificate's key folder and CSR name; its connections use `<claim_name>-<serial>`."""
    return f"{name_prefix}-claim"


def reserved_name_problem(name_prefix: str, name: str) -> str | None:
    """Why no device may be called `name` (the app keeps it for itself), or None."""
    claim, folded = claim_name(name_prefix).lower(), name.lower()
    if folded == claim:
        return f"the claim certificate's key folder ({claim_name(name_prefix)}) in secretsDir"
    if folded == BUNDLE_FOLDER:
        return f"the fleet bundle's folder ({BUNDLE_FOLDER}) in secretsDir"
    if folded.startswith(f"{claim}-"):
        return f"a client id of the claim's connections ({claim_name(name_prefix)}-<serial>)"
    return None


# ---- serialNumberPattern: a grammar Python's backtracking `re` cannot blow up on -----------------------
# `re` backtracks: a repeat inside a repeat or an alternation ((a|a)*b) takes exponential time, and so
# does a run of repeats that can split the text many ways ([a-z]*[a-z]*[a-z]*b). The grammar has
# neither: a sequence of single-character atoms, each repeated a fixed or bounded number of times, and
# `re` tries at most one way per split of the serial number among the repeats of variable count, i.e.
# the product of their (most - fewest + 1) counts, with * and + counted as up to MAX_THING_NAME (decide
# bounds the serial's length before matching). MAX_SPLITS bounds that product, so matching takes under
# a millisecond whatever the serial number (measured: 0.4 ms for the slowest patterns the grammar takes,
# such as twelve [a-z]? before a class that fails; the hook has 5 s). A count has at most two digits,
# so none overflows.
MAX_PATTERN, MAX_REPEAT, MAX_SPLITS = 100, MAX_THING_NAME, 4096
SERIAL_PATTERN_RULE = (
    f"1-{MAX_PATTERN} characters of atoms (a letter, digit, _ or -; '.'; or a class such as [0-9a-f] of letters, "
    f"digits, _, - and ranges), each optionally followed by ?, *, +, {{n}} or {{m,n}} (n at most {MAX_REPEAT}); "
    f"no groups, alternation, anchors, escapes or negated classes; the variable counts multiplied (* and + as "
    f"{MAX_REPEAT + 1} and {MAX_REPEAT}) at most {MAX_SPLITS}; never matching an empty serial number")
_ATOM = re.compile(r"(?:[A-Za-z0-9_.-]|\[(?P<members>[^\]]{1,40})\])"
                   r"(?P<repeat>[?*+]|\{(?P<fewest>[0-9]{1,2})(?:,(?P<most>[0-9]{1,2}))?\})?")
_CLASS_MEMBERS = re.compile(r"-?(?:[A-Za-z0-9_](?:-[A-Za-z0-9_])?)+-?")
_CLASS_RANGE = re.compile(r"([A-Za-z0-9_])-([A-Za-z0-9_])")
_SHORTHAND_REPEATS = {"?": (0, 1), "*": (0, MAX_REPEAT), "+": (1, MAX_REPEAT)}


def serial_pattern_problem(pattern: Any) -> str | None:
    """What keeps `pattern` out of SERIAL_PATTERN_RULE (a few words), or None when it is in it."""
    if not isinstance(pattern, str) or not 0 < len(pattern) <= MAX_PATTERN:
        return f"is not 1-{MAX_PATTERN} characters"
    splits, shortest, at = 1, 0, 0
    while at < len(pattern):
        atom = _ATOM.match(pattern, at)
        if atom is None:
            return f"has {pattern[at:at + 10]!r} at character {at + 1}, which is none of the atoms"
        members, repeat = atom.group("members"), atom.group("repeat")
        if members is not None and (not _CLASS_MEMBERS.fullmatch(members) or any(
                not _same_kind(first, last) for first, last in _CLASS_RANGE.findall(members))):
            return f"has the class [{members}], which is not of letters, digits, _, - and ranges such as a-f"
        if repeat is None or repeat in _SHORTHAND_REPEATS:
            fewest, most = _SHORTHAND_REPEATS.get(repeat, (1, 1))
        else:
            fewest = int(atom.group("fewest"))
            most = fewest if atom.group("most") is None else int(atom.group("most"))
            if not fewest <= most <= MAX_REPEAT:
                return f"repeats {repeat}, not n or m to n times with m <= n <= {MAX_REPEAT}"
        splits, shortest, at = splits * (most - fewest + 1), shortest + fewest, atom.end()
    if splits > MAX_SPLITS:
        return f"splits a serial number up to {splits} ways, more than {MAX_SPLITS}"
    if shortest == 0:
        return "matches an empty serial number"
    return None


def _same_kind(first: str, last: str) -> bool:
    """A class range such as a-f, A-F or 0-9: ends of one kind, in order ('_' starts no range)."""
    return first <= last and any(test(first) and test(last) for test in (str.isdigit, str.islower, str.isupper))


def decide(parameters: Any, serial_pattern: str, name_prefix: str,
           thing_exists: Callable[[str], bool]) -> tuple[bool, str]:
    """(allow, reason) for the template parameters a device sent."""
    serial = parameters.get(SERIAL_PARAMETER) if isinstance(parameters, dict) else None
    if not isinstance(serial, str):
        return False, f"SerialNumber {serial!r} does not match {serial_pattern}"
    problem = serial_pattern_problem(serial_pattern)
    if problem is not None:
        return False, f"serialNumberPattern {serial_pattern!r} {problem}: no serial number is taken"
    name = thing_name(name_prefix, serial)
    # The name's length first: it bounds the serial number the pattern runs on.
    if len(name) <= MAX_THING_NAME and not re.fullmatch(serial_pattern, serial):
        return False, f"SerialNumber {serial!r} does not match {serial_pattern}"
    if not THING_NAME.fullmatch(name):
        return False, f"thing name {name!r} is not 1-64 of A-Z a-z 0-9 _ -"
    reserved = reserved_name_problem(name_prefix, name)
    if reserved is not None:
        return False, f"thing name {name!r} is reserved: it is {reserved}"
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
# The hook's settings, as the stack sets them on the function (infra/fleet.py). CANARY_SERIALS: comma-separated.
HOOK_SETTINGS = ("SERIAL_NUMBER_PATTERN", "NAME_PREFIX", "LEDGER_TABLE", "DEVICE_POLICY_DOCUMENT", "FLEET_GROUP",
                 "CANARY_GROUP", "CANARY_SERIALS")
# The provisioning template's parameter naming the device's thing group (its ring, infra/releases.py). The hook
# always sets it: its "parameterOverrides" are "the values of any properties to override" ("Pre-provisioning
# hooks", Pre-provision hook return value), so a device cannot choose its ring by sending the parameter itself.
RING_PARAMETER = "RingGroup"


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


def ring_group(serial: str, settings: dict[str, str]) -> str:
    canary = settings["CANARY_SERIALS"].split(",") if settings["CANARY_SERIALS"] else []
    return settings["CANARY_GROUP"] if serial in canary else settings["FLEET_GROUP"]


def answer(event: Any, settings: dict[str, str], iot: Any, dynamodb: Any) -> tuple[dict[str, Any], str]:
    """(the hook's answer to AWS IoT, why): whether to provision, and the device's ring when it does."""
    allow, reason = admit(event, settings, iot, dynamodb)
    if not allow:
        return {"allowProvisioning": False}, reason
    group = ring_group(event["parameters"][SERIAL_PARAMETER], settings)
    return {"allowProvisioning": True, "parameterOverrides": {RING_PARAMETER: group}}, f"{reason}, in {group}"


def handler(event: dict, context: object) -> dict:
    import boto3  # in the Lambda runtime

    response, reason = answer(event, {name: os.environ[name] for name in HOOK_SETTINGS},
                              boto3.client("iot"), boto3.client("dynamodb"))
    print(f"{'allowed' if response['allowProvisioning'] else 'refused'}: {reason}")
    return response
