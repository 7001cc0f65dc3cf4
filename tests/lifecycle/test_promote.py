"""make promote / make rollback / the deploy preflight's release check, against moto (IoT, IoT data, Logs,
CloudWatch, CloudFormation) and the GreengrassV2 stand-in. The shadow records are made by running the
synthesized rules' own SQL (infra/iot_sql.py) on rain shadow documents, as AWS IoT would."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from infra import releases
from infra import shadow_records as sr
from infra.config import RainEdgeConfig
from infra.iot_sql import TopicRule
from infra.lifecycle.aws import LifecycleError
from infra.lifecycle.outputs import parse_outputs
from infra.lifecycle.preflight import check_release
from infra.lifecycle.promote import evaluate, record_first_release, run_promote, run_rollback
from infra.lifecycle.settings import AppNames
from infra_support import PROJECT_ROOT, model_variant

from .conftest import EXAMPLE_OUTPUTS

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
PROMOTED, CANDIDATE = "rain-00000000000000aa", "rain-00000000000000bb"
RECORDS = "/rainedge/shadow-records"
FLEET, CANARY = ["rainedge-f1", "rainedge-f2", "rainedge-f3", "rainedge-f4"], ["rainedge-c1", "rainedge-c2"]
OUTPUTS = parse_outputs({
    **EXAMPLE_OUTPUTS, "DeploymentId": "d-1", "CanaryDeploymentId": "dep-canary",
    "PromotedModelVersion": PROMOTED, "CandidateModelVersion": CANDIDATE,
    "AlarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:rainedge-alarms", "AlarmNames": "rainedge-silent",
    "TopicRuleNames": "rainedge_rain_predictions", "EventRuleName": "rainedge-deployment-failed",
    "MonitoringLogGroupNames": f"{RECORDS},/rainedge/rule-errors", "DashboardName": "rainedge-fleet",
})
RAIN_RULES = [TopicRule(rule.sql()) for rule in (sr.RAIN_PREDICTIONS, sr.RAIN_STATUSES)]


@pytest.fixture
def project(tmp_path) -> AppNames:
    """A project whose modelZip is the deployed candidate and whose release record promoted another model."""
    source = PROJECT_ROOT / "build" / "model" / "rain_model.zip"
    model_variant(source, tmp_path / "build" / "model" / "rain_model.zip", CANDIDATE)
    model_variant(source, tmp_path / releases.RELEASES / releases.PROMOTED_ZIP, PROMOTED)
    return AppNames(config=RainEdgeConfig(), project_root=tmp_path)


def rain(thing: str, version: str, raining: bool) -> dict:
    return {"raining": raining, "probability": 0.9 if raining else 0.1, "threshold": 0.4, "model_version": version,
            "input_sampled_at": "2026-12-01T11:59:00Z"}


def fleet_account(clients, fake_greengrass, *, baked: timedelta = timedelta(hours=7), canary_status="SUCCEEDED",
                  canary_rain_every: int = 5, canary_version: str = CANDIDATE) -> None:
    """Four fleet devices and two canary devices, an hour of predictions each (one a minute), rain one in five."""
    iot, logs = clients.iot, clients.logs
    for group, things in ((OUTPUTS.thing_group_name, FLEET), (OUTPUTS.canary_group_name, CANARY)):
        iot.create_thing_group(thingGroupName=group)
        for thing in things:
            iot.create_thing(thingName=thing)
            iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing)
    fake_greengrass.add_deployment("d-1", "rainedge-deployment", "arn:aws:iot:eu-west-1:123456789012:thinggroup/x",
                                   created=NOW - timedelta(days=3))
    fake_greengrass.add_deployment("dep-canary", "rainedge-canary-deployment",
                                   "arn:aws:iot:eu-west-1:123456789012:thinggroup/y", created=NOW - baked)
    logs.create_log_group(logGroupName=RECORDS)
    logs.create_log_stream(logGroupName=RECORDS, logStreamName="rules")
    events = []
    for thing in FLEET + CANARY:
        canary = thing in CANARY
        version, every = (canary_version, canary_rain_every) if canary else (PROMOTED, 5)
        deployment, status = ("dep-canary", canary_status) if canary else ("d-1", "SUCCEEDED")
        fake_greengrass.effective[thing] = [{"deploymentId": deployment, "coreDeviceExecutionStatus": status}]
        for minute in range(60):
            state = rain(thing, version, minute % every == 0)
            topic = f"$aws/things/{thing}/shadow/name/rain/update/documents"
            when = NOW - timedelta(minutes=60 - minute)
            for rule in RAIN_RULES:
                record = rule.evaluate(topic, {"current": {"state": {"reported": state}}}, int(when.timestamp() * 1000))
                if record is not None:
                    events.append({"timestamp": int(when.timestamp() * 1000), "message": json.dumps(record)})
        clients.iot_data.update_thing_shadow(thingName=thing, shadowName="rain",
                                             payload=json.dumps({"state": {"reported": state}}))
    logs.put_log_events(logGroupName=RECORDS, logStreamName="rules", logEvents=sorted(events, key=lambda e: e["timestamp"]))


def decisions(project: AppNames) -> list[dict]:
    return releases.decisions(project.project_root / releases.RELEASES)


def test_a_healthy_canary_after_the_bake_is_promoted_and_recorded(clients, fake_greengrass, project):
    fleet_account(clients, fake_greengrass)
    assert run_promote(clients, project, OUTPUTS, echo=print, now=NOW) is True
    folder = project.project_root / releases.RELEASES
    assert (folder / releases.PROMOTED_ZIP).read_bytes() == project.model_zip.read_bytes()
    (record,) = decisions(project)
    assert (record["decision"], record["candidate"], record["promoted"]) == ("promoted", CANDIDATE, PROMOTED)
    # The evidence: every canary device with its counts, read from the records the rules wrote.
    assert [(d["thing_name"], d["predictions"], d["raining"]) for d in record["evidence"]["canary"]] == [
        ("rainedge-c1", 60, 12), ("rainedge-c2", 60, 12)]
    # Synth now puts the fleet ring on the candidate.
    assert releases.ring_models(folder, project.model_zip).versions == (CANDIDATE, CANDIDATE)


@pytest.mark.parametrize("setup, reason", [
    ({"baked": timedelta(hours=1)}, "the bake window has 300 min left"),
    ({"canary_status": "FAILED"}, "rainedge-c1: canary deployment FAILED, not SUCCEEDED"),
    ({"canary_version": PROMOTED}, f"rainedge-c1: answers with model {PROMOTED}, not the candidate"),
    # An inverted model answers "ok" at the usual rate, about the wrong weather: rain 4 hours in 5.
    ({"canary_rain_every": 1}, "rainedge-c1: predicts rain 100% of the time, the fleet's devices 20% to 20%"),
])
def test_an_unhealthy_canary_is_refused_in_one_line_and_nothing_is_promoted(clients, fake_greengrass, project, capsys,
                                                                             setup, reason):
    fleet_account(clients, fake_greengrass, **setup)
    promoted_before = (project.project_root / releases.RELEASES / releases.PROMOTED_ZIP).read_bytes()
    assert run_promote(clients, project, OUTPUTS, echo=print, now=NOW) is False
    (line,) = capsys.readouterr().out.splitlines()
    assert line == f"promote: refused: {CANDIDATE} (fleet ring on {PROMOTED}): {reason}"
    assert (project.project_root / releases.RELEASES / releases.PROMOTED_ZIP).read_bytes() == promoted_before
    assert [(r["decision"], r["reason"]) for r in decisions(project)] == [("refused", reason)]


def test_an_alarm_in_alarm_refuses_the_promotion(clients, fake_greengrass, project):
    fleet_account(clients, fake_greengrass)
    clients.cloudwatch.put_metric_alarm(AlarmName="rainedge-silent", MetricName="rainedge-silent",
                                        Namespace="AWS/IoTFleetMetrics", Statistic="Maximum", Period=60,
                                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
    clients.cloudwatch.set_alarm_state(AlarmName="rainedge-silent", StateValue="ALARM", StateReason="test")
    decision = evaluate(clients, OUTPUTS, project, NOW)
    assert not decision.promote and decision.reason == "alarm rainedge-silent in ALARM: the fleet is not healthy"


def test_a_status_the_alarms_count_refuses_the_device(clients, fake_greengrass, project):
    fleet_account(clients, fake_greengrass)
    clients.iot_data.update_thing_shadow(thingName="rainedge-c2", shadowName="rain", payload=json.dumps(
        {"state": {"reported": {"status": "model_unavailable", "model_version": CANDIDATE}}}))
    decision = evaluate(clients, OUTPUTS, project, NOW)
    assert decision.reason == "rainedge-c2: in alarm (rain shadow status model_unavailable)"


def test_promote_refuses_a_local_candidate_that_is_not_the_deployed_one(clients, fake_greengrass, project):
    model_variant(project.model_zip, project.model_zip, "rain-00000000000000cc")
    with pytest.raises(LifecycleError, match="modelZip holds rain-00000000000000cc, but the canary ring runs"):
        run_promote(clients, project, OUTPUTS, now=NOW)


def test_rollback_puts_the_canary_ring_back_on_the_promoted_model(project, capsys):
    folder = project.project_root / releases.RELEASES
    assert releases.ring_models(folder, project.model_zip).versions == (PROMOTED, CANDIDATE)
    run_rollback(project, OUTPUTS, now=NOW)
    assert releases.ring_models(folder, project.model_zip).versions == (PROMOTED, PROMOTED)
    assert decisions(project)[-1]["decision"] == "rolled back"
    assert "puts the canary ring back on" in capsys.readouterr().out
    # A new candidate (another `make train`) goes to the canary ring again.
    model_variant(project.model_zip, project.model_zip, "rain-00000000000000cc")
    assert releases.ring_models(folder, project.model_zip).versions == (PROMOTED, "rain-00000000000000cc")


def test_the_first_deploy_records_the_first_release_once(tmp_path):
    source = PROJECT_ROOT / "build" / "model" / "rain_model.zip"
    model_variant(source, tmp_path / "build" / "model" / "rain_model.zip", CANDIDATE)
    project = AppNames(config=RainEdgeConfig(), project_root=tmp_path)
    first = parse_outputs({**EXAMPLE_OUTPUTS, "PromotedModelVersion": CANDIDATE, "CandidateModelVersion": CANDIDATE})
    record_first_release(project, first, now=NOW)
    record_first_release(project, first, now=NOW)
    assert [r["decision"] for r in decisions(project)] == ["promoted"]
    assert (tmp_path / releases.RELEASES / releases.PROMOTED_ZIP).read_bytes() == project.model_zip.read_bytes()


def deployed_stack(clients, promoted_version: str) -> None:
    """A RainEdge stack in moto's CloudFormation with the output the preflight reads."""
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {"PromotedModelVersion": {"Value": promoted_version}}}
    clients.cloudformation.create_stack(StackName="RainEdge", TemplateBody=json.dumps(template))


def test_a_deploy_may_not_move_the_fleet_ring_past_the_gate(clients, project):
    deployed_stack(clients, "rain-00000000000000dd")  # the fleet runs a model the local record never promoted
    (problem,) = check_release(clients, project.releases_dir, project.model_zip)
    assert problem.startswith(f"the fleet ring would move from rain-00000000000000dd to {PROMOTED}, which no gate passed")


def test_a_deploy_that_keeps_the_fleet_model_passes(clients, project):
    deployed_stack(clients, PROMOTED)
    assert check_release(clients, project.releases_dir, project.model_zip) == []


def test_a_deploy_that_moves_the_fleet_to_a_promoted_model_passes(clients, project):
    deployed_stack(clients, "rain-00000000000000dd")
    releases.record(project.project_root / releases.RELEASES, {"decision": "promoted", "candidate": PROMOTED})
    assert check_release(clients, project.releases_dir, project.model_zip) == []


def test_a_lost_release_record_cannot_put_the_candidate_on_the_fleet(clients, project):
    deployed_stack(clients, PROMOTED)
    (project.project_root / releases.RELEASES / releases.PROMOTED_ZIP).unlink()
    (problem,) = check_release(clients, project.releases_dir, project.model_zip)
    assert "holds no model: this deploy would put the candidate" in problem


def test_a_first_deploy_has_nothing_to_check(clients, project):
    assert check_release(clients, project.releases_dir, project.model_zip) == []


def test_a_damaged_decision_record_is_one_line(clients, project):
    deployed_stack(clients, PROMOTED)
    (project.project_root / releases.RELEASES / releases.DECISIONS).write_text("{not json\n")
    (problem,) = check_release(clients, project.releases_dir, project.model_zip)
    assert "decisions.jsonl" in problem and "\n" not in problem
