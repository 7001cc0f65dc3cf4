"""The ledger (infra/ledger.py) as teardown and audit read it: what fleet provisioning made, per device.

An item is acted on only when it is exactly what the pre-provisioning hook writes for this app: a thing
`<prefix>-<serial>` of valid characters, the policy named for that thing, certificate ids of 64 hex
digits. Anything else in the table is reported and never acted on. An item is removed only after
everything it names is gone, so a teardown cut off anywhere resumes from the ledger.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from infra.config import APP_TAG
from infra.fleet_hook.handler import (CERTIFICATE_ID, LEDGER_CERTIFICATES, LEDGER_KEY, LEDGER_POLICY, THING_NAME,
                                      device_policy_name)
from infra.lifecycle.aws import AwsClients, call, call_unless_gone, paginate
from infra.lifecycle.outputs import StackOutputs

# DynamoDB TableName: 3-255 of [a-zA-Z0-9_.-] (API reference, CreateTable).
TABLE_NAME = re.compile(r"[a-zA-Z0-9_.-]{3,255}")
SCAN_TOKEN = ("ExclusiveStartKey", "LastEvaluatedKey")  # DynamoDB Scan's continuation (for `paginate`)


@dataclass(frozen=True)
class Entry:
    """One provisioned device as the hook recorded it."""

    thing_name: str
    certificate_ids: tuple[str, ...]
    policy_name: str


@dataclass(frozen=True)
class Ledger:
    table: str | None  # None: the app has no ledger here (no fleet provisioning, or the table is gone)
    entries: tuple[Entry, ...] = ()
    unrecognised: tuple[str, ...] = ()  # items that are not the hook's record: reported, never acted on

    @property
    def things(self) -> tuple[str, ...]:
        return tuple(entry.thing_name for entry in self.entries)


def ledger_table_name(clients: AwsClients, name_prefix: str, outputs: StackOutputs | None) -> str | None:
    """The stack's ledger: named in its outputs; without outputs, the table of the exact derived name
    only while it carries the app's tag (the stack tags every resource it makes)."""
    if outputs is not None:
        return outputs.fleet.ledger_table_name if outputs.fleet else None
    table = f"{name_prefix}-ledger"  # RainEdgeConfig.ledger_table_name
    described = call_unless_gone(clients.dynamodb.describe_table, TableName=table)
    if described is None:
        return None
    tags = paginate(clients.dynamodb.list_tags_of_resource, "Tags", token=("NextToken", "NextToken"),
                    ResourceArn=described["Table"]["TableArn"])
    return table if {"Key": APP_TAG, "Value": name_prefix} in tags else None


def read_ledger(clients: AwsClients, name_prefix: str, table: str | None) -> Ledger:
    if table is None or not TABLE_NAME.fullmatch(table):
        return Ledger(None)
    try:
        items = paginate(clients.dynamodb.scan, "Items", token=SCAN_TOKEN, TableName=table, ConsistentRead=True)
    except clients.dynamodb.exceptions.ResourceNotFoundException:
        return Ledger(None)
    entries, unrecognised = [], []
    for item in items:
        entry = _entry(item, name_prefix)
        if entry is None:
            unrecognised.append(str(item.get(LEDGER_KEY, item))[:200])
        else:
            entries.append(entry)
    return Ledger(table, tuple(entries), tuple(unrecognised))


def forget(clients: AwsClients, ledger: Ledger, entry: Entry, echo: Callable[[str], None]) -> None:
    """Remove the entry; only ever called once everything it names is gone."""
    call(clients.dynamodb.delete_item, TableName=ledger.table, Key={LEDGER_KEY: {"S": entry.thing_name}})
    echo(f"removed {entry.thing_name} from the ledger: its thing, certificates and policy are gone")


def delete_empty_ledger(clients: AwsClients, ledger: Ledger, echo: Callable[[str], None]) -> None:
    """The retained table, once the stack is gone and nothing is left in it."""
    if ledger.table is None:
        return
    if paginate(clients.dynamodb.scan, "Items", token=SCAN_TOKEN, TableName=ledger.table, ConsistentRead=True):
        echo(f"the ledger {ledger.table} still records devices: it is kept; run `make destroy` again")
        return
    if call_unless_gone(clients.dynamodb.delete_table, TableName=ledger.table) is not None:
        echo(f"deleted the ledger table {ledger.table}")


def _entry(item: dict[str, Any], name_prefix: str) -> Entry | None:
    thing = item.get(LEDGER_KEY, {}).get("S")
    policy = item.get(LEDGER_POLICY, {}).get("S")
    certificates = item.get(LEDGER_CERTIFICATES, {}).get("SS", [])
    if not (isinstance(thing, str) and THING_NAME.fullmatch(thing) and thing.startswith(f"{name_prefix}-")
            and policy == device_policy_name(name_prefix, thing)
            and all(isinstance(cid, str) and CERTIFICATE_ID.fullmatch(cid) for cid in certificates)):
        return None
    return Entry(thing, tuple(sorted(certificates)), policy)
