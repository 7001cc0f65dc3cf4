"""promote and rollback: move the candidate model to the fleet ring only through the gate, or take the canary
ring back to the promoted model. Each decision is recorded with its evidence (infra/releases.py); the
deployment itself is `make deploy` (the Makefile runs it after a passed gate or a rollback).

The evidence, read from the cloud over the bake window (from the canary deployment's creation):
- each device of either ring: its execution of its ring's deployment (ListEffectiveDeployments
  coreDeviceExecutionStatus) and the model its rain shadow says answered (model_version);
- whether its rain shadow now holds a status the fleet alarms count (silent: stale or missing input;
  model fault), and whether any alarm of the app is in ALARM (DescribeAlarms);
- its rain shadow updates in the window, from the shadow records the IoT rules write
  (infra/shadow_records.py, one FilterLogEvents over the window): predictions, rain predictions, and
  statuses saying why there was none.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from device_code.contracts import RAIN_SHADOW
from device_code.drift import DRIFTING
from infra import fleet_index as fx
from infra import releases
from infra import shadow_records as sr
from infra.lifecycle.aws import AwsClients, LifecycleError, call, paginate
from infra.lifecycle.gate import Decision, DeviceEvidence, GateSettings, decide
from infra.lifecycle.outputs import StackOutputs
from infra.lifecycle.scope import group_members
from infra.lifecycle.settings import AppNames
from infra.lifecycle.status import reported_state
from infra.model_artifact import model_version

ALARM_STATUSES = (*fx.SILENT_STATUSES, *sr.FAULT_STATUSES)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def record_counts(clients: AwsClients, log_group: str, window: Window) -> dict[str, dict[str, int]]:
    """Per thing: rain shadow updates, predictions and rain predictions in the window, from the shadow records."""
    counts: dict[str, dict[str, int]] = {}
    events = paginate(clients.logs.filter_log_events, "events", logGroupName=log_group,
                      startTime=int(window.start.timestamp() * 1000), endTime=int(window.end.timestamp() * 1000))
    for event in events:
        try:
            record = json.loads(event.get("message", ""))
        except ValueError:
            continue
        thing = record.get(sr.THING) if isinstance(record, dict) else None
        if not isinstance(thing, str):
            continue
        tally = counts.setdefault(thing, {"updates": 0, "predictions": 0, "raining": 0})
        if sr.RAINING in record:  # a prediction record (RAIN_PREDICTIONS)
            tally["updates"] += 1
            tally["predictions"] += 1
            tally["raining"] += record[sr.RAINING] == 1
        elif sr.STATUS in record:  # a rain status record (RAIN_STATUSES): no prediction, and why
            tally["updates"] += 1
    return counts


def device_evidence(clients: AwsClients, thing: str, deployment_id: str,
                    counts: dict[str, dict[str, int]]) -> DeviceEvidence:
    deployments = paginate(clients.greengrassv2.list_effective_deployments, "effectiveDeployments",
                           coreDeviceThingName=thing)
    status = next((item["coreDeviceExecutionStatus"] for item in deployments
                   if item["deploymentId"] == deployment_id), None)
    rain = reported_state(clients, thing, RAIN_SHADOW)
    rain = rain if isinstance(rain, dict) else {}
    drift = rain.get("drift") if isinstance(rain.get("drift"), dict) else {}
    failing = tuple(name for name, matched in (
        ("rain shadow status " + str(rain.get("status")), rain.get("status") in ALARM_STATUSES),
        ("drifting inputs", drift.get("verdict") == DRIFTING)) if matched)
    version = rain.get("model_version")
    return DeviceEvidence(thing_name=thing, model_version=version if isinstance(version, str) else None,
                          deployment_status=status, failing=failing, **counts.get(thing, {}))


def alarms_in_alarm(clients: AwsClients, outputs: StackOutputs) -> list[str]:
    names = list(outputs.monitoring.alarm_names) if outputs.monitoring else []
    if not names:
        return []
    found = paginate(clients.cloudwatch.describe_alarms, "MetricAlarms", AlarmNames=names)
    return [alarm["AlarmName"] for alarm in found if alarm.get("StateValue") == "ALARM"]


def evaluate(clients: AwsClients, outputs: StackOutputs, names: AppNames, now: datetime | None = None) -> Decision:
    """The gate's decision on the deployed candidate, from what the cloud says now."""
    now = now or datetime.now(timezone.utc)
    created = call(clients.greengrassv2.get_deployment, deploymentId=outputs.canary_deployment_id)["creationTimestamp"]
    window = Window(created, now)
    log_group = names.config.monitoring_log_group_name(sr.RECORDS_PURPOSE)
    if log_group not in (outputs.monitoring.log_group_names if outputs.monitoring else ()):
        raise LifecycleError(f"the stack outputs no shadow records log group {log_group}: deploy the current stack first")
    counts = record_counts(clients, log_group, window)
    canary = [device_evidence(clients, thing, outputs.canary_deployment_id, counts)
              for thing in sorted(group_members(clients, outputs.canary_group_name))]
    fleet = [device_evidence(clients, thing, outputs.deployment_id, counts)
             for thing in sorted(group_members(clients, outputs.thing_group_name))]
    decision = decide(candidate=outputs.candidate_model_version, promoted=outputs.promoted_model_version,
                      canary=canary, fleet=fleet, baked_s=window.seconds, settings=GateSettings.of(names.config))
    alarming = alarms_in_alarm(clients, outputs)
    if decision.promote and alarming:
        return replace(decision, promote=False, reason=f"alarm {', '.join(alarming)} in ALARM: the fleet is not healthy")
    return decision


def _entry(decision: str, candidate: str, promoted: str, reason: str, now: datetime,
           evidence: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"decision": decision, "candidate": candidate, "promoted": promoted, "reason": reason,
            "at": now.isoformat(timespec="seconds"), **({"evidence": evidence} if evidence else {})}


def run_promote(clients: AwsClients, names: AppNames, outputs: StackOutputs, echo: Callable[[str], None] = print,
                now: datetime | None = None) -> bool:
    """Decide, record, and on a pass make the deployed candidate the promoted model. True when promoted."""
    now = now or datetime.now(timezone.utc)
    folder = names.releases_dir
    if not (folder / releases.PROMOTED_ZIP).is_file():
        raise LifecycleError(f"no promoted model in {releases.RELEASES / releases.PROMOTED_ZIP}: `make deploy` records the first release")
    if outputs.candidate_model_version == outputs.promoted_model_version:
        raise LifecycleError(f"the canary ring runs the promoted model {outputs.promoted_model_version}: nothing to "
                             "promote; `make train` a new candidate and `make deploy` it to the canary ring first")
    candidate_zip = candidate_of(names, outputs)
    decision = evaluate(clients, outputs, names, now)
    echo(f"promote: {decision.line()}")
    if decision.promote:
        releases.promote_zip(folder, candidate_zip)
    releases.record(folder, _entry(releases.PROMOTED if decision.promote else releases.REFUSED, decision.candidate,
                                 decision.promoted, decision.reason, now, decision.record()))
    if decision.promote:
        echo(f"promote: {decision.candidate} is the promoted model ({releases.RELEASES / releases.PROMOTED_ZIP}); "
             "`make deploy` moves the fleet ring to it")
    return decision.promote


def record_first_release(names: AppNames, outputs: StackOutputs, echo: Callable[[str], None] = print,
                         now: datetime | None = None) -> None:
    """After a deploy: with nothing promoted yet, the model both rings now run becomes the promoted one (there was
    no earlier model to protect), which arms the gate for every later candidate. Otherwise nothing."""
    now = now or datetime.now(timezone.utc)
    folder = names.releases_dir
    if (folder / releases.PROMOTED_ZIP).is_file() or outputs.promoted_model_version != outputs.candidate_model_version:
        return
    releases.promote_zip(folder, candidate_of(names, outputs))
    releases.record(folder, _entry(releases.PROMOTED, outputs.candidate_model_version, "none",
                                 "first release: no earlier model to protect", now))
    echo(f"release: {outputs.candidate_model_version} recorded as the promoted model ({releases.RELEASES / releases.PROMOTED_ZIP}); "
         "from now on a new model reaches the fleet ring only through `make promote`")


def candidate_of(names: AppNames, outputs: StackOutputs) -> Path:
    """The local zip of the candidate the canary ring runs; refuses when modelZip is another model."""
    candidate_zip = names.model_zip
    local = model_version(candidate_zip)
    if local != outputs.candidate_model_version:
        raise LifecycleError(f"modelZip holds {local}, but the canary ring runs {outputs.candidate_model_version}: "
                             "`make deploy` the new candidate to the canary ring and let it bake first")
    return candidate_zip


def run_rollback(names: AppNames, outputs: StackOutputs, echo: Callable[[str], None] = print,
                 now: datetime | None = None) -> None:
    now = now or datetime.now(timezone.utc)
    if outputs.candidate_model_version == outputs.promoted_model_version:
        raise LifecycleError(f"the canary ring already runs the promoted model {outputs.promoted_model_version}: "
                             "nothing to roll back")
    releases.record(names.releases_dir, _entry(releases.ROLLED_BACK, outputs.candidate_model_version,
                                               outputs.promoted_model_version, "rolled back by the operator", now))
    echo(f"rollback: {outputs.candidate_model_version} is rolled back; `make deploy` puts the canary ring back on "
         f"{outputs.promoted_model_version}")
