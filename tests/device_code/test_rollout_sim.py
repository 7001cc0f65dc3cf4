"""The rollout simulator (device_code.simulator.rollout): a small fleet through the three releases, each outcome
checked against the rules of the IoT job and the gate, recomputed here from the per-device records."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from device_code.simulator import rollout
from device_code.simulator.rollout import (BROKEN, CANCELED, FAILED, FAILED_ROLLBACK_COMPLETE, FAILURES, GOOD, INVERTED,
                                           SUCCEEDED, Candidates, Release, RolloutSettings, SelfTests)
from infra.config import SERVING_LINK

DEVICES, CANARY = 15, 8  # enough canary devices that the abort leaves some of them never notified
# The product's bake window (cdk.json bakeMinutes). A short one may not tell an inverted model from wet weather:
# over the first hour of this run a fleet device predicts rain 82% of the time, and the range check's upper
# bound (highest fleet share + rainShareMargin) is then above every share.
SETTINGS = RolloutSettings(devices=DEVICES, canary=CANARY, bake_s=rollout.project_config().bake_minutes * 60.0)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory, trained_model_dir) -> Candidates:
    return Candidates.written(trained_model_dir / "rain_model", tmp_path_factory.mktemp("candidates"))


@pytest.fixture(scope="session")
def self_tests() -> SelfTests:
    return SelfTests()


@pytest.fixture(scope="session")
def config():
    return rollout.project_config()


@pytest.fixture(scope="session")
def released(artifacts, self_tests, config):
    """scenario -> its executed Release (runs once per session, in the order asked for)."""
    done: dict[str, Release] = {}

    def run(scenario: str, settings: RolloutSettings = SETTINGS) -> Release:
        key = (scenario, settings)
        if key not in done:
            release = Release(scenario=scenario, artifacts=artifacts, settings=settings, config=config,
                              self_tests=self_tests)
            release.execute()
            done[key] = release
        return done[key]
    return run


def test_the_inverted_candidate_is_refused_by_the_rain_share_check_and_never_reaches_the_fleet(released, config):
    release = released(INVERTED)
    decision = release.run.decision
    canary_names = [device.thing_name for device in release.ring(config.canary_group_name)]
    assert not decision.promote
    assert decision.reason.split(":")[0] in canary_names
    assert "predicts rain" in decision.reason
    # One decision, every canary device against the range of every fleet device's share, widened by the margin.
    assert [text for _, text in release.run.timeline if "gate" in text] == [f"gate: {decision.line()}"]
    low, high = decision.fleet_rain_shares
    refused = next(device for device in decision.canary if device.thing_name == decision.reason.split(":")[0])
    assert not low - config.rain_share_margin <= refused.raining / refused.predictions <= high + config.rain_share_margin
    # It passed its own self-test: every canary device ran it until the rollback.
    assert release.run.jobs["canary"].count(SUCCEEDED) == CANARY
    fleet = release.ring(config.thing_group_name)
    assert all(update.model_version == release.promoted.version for device in fleet for update in device.updates)
    assert all(device.running == release.promoted for device in release.devices)


def test_a_candidate_failing_its_self_test_is_rolled_back_and_aborts_the_canary_job(released, config):
    release = released(BROKEN)
    job = release.run.jobs["canary"]
    executions = list(job.executions.values())
    received = [execution for execution in executions if execution.started_s is not None]
    assert received and all(execution.status == FAILED and execution.detail == FAILED_ROLLBACK_COMPLETE
                            for execution in received)
    # The abort rule, from the executions' own times: the first report at which at least
    # abort_min_executed_things devices had received it and the failed share reached the threshold.
    expected_abort = None
    for report_s in sorted(execution.finished_s for execution in received):
        executed = sum(execution.started_s <= report_s for execution in received)
        failed = sum(execution.finished_s <= report_s and execution.status in FAILURES for execution in received)
        if (executed >= config.abort_min_executed_things
                and 100 * failed / executed >= config.abort_threshold_percentage):
            expected_abort = report_s
            break
    assert expected_abort is not None and job.cancelled_s == expected_abort
    assert all(execution.notified_s <= job.cancelled_s for execution in executions if execution.notified_s)
    never = [execution for execution in executions if execution.started_s is None]
    assert never and all(execution.status == CANCELED for execution in never)
    decision = release.run.decision
    assert not decision.promote and decision.reason.split(":")[0] == received[0].thing_name
    assert f"not {SUCCEEDED}" in decision.reason
    # `rollback`: the canary ring's deployment back to the promoted model, applied everywhere.
    assert release.run.jobs["rollback"].count(SUCCEEDED) == CANARY
    assert all(device.running == release.promoted for device in release.devices)
    assert all(update.model_version == release.promoted.version
               for device in release.ring(config.thing_group_name) for update in device.updates)


def test_the_good_candidate_is_promoted_and_reaches_every_fleet_device(released, config):
    release = released(GOOD)
    assert release.run.decision.promote
    fleet = release.ring(config.thing_group_name)
    job = release.run.jobs["fleet"]
    assert job.count(SUCCEEDED) == len(fleet) and job.cancelled_s is None
    assert all(device.updates[-1].model_version == release.candidate.version for device in fleet)


@pytest.mark.parametrize("scenario", [INVERTED, BROKEN, GOOD])
def test_no_minute_notifies_more_devices_than_the_rollout_rate_allows(released, config, scenario):
    release = released(scenario)
    for job in release.run.jobs.values():
        executions = list(job.executions.values())
        for minute in range(int(max(e.notified_s for e in executions if e.notified_s) - job.created_s) // 60 + 1):
            start_s = job.created_s + 60 * minute
            succeeded = sum(e.status == SUCCEEDED and e.finished_s <= start_s for e in executions)
            allowed = min(config.rollout_maximum_per_minute,
                          int(config.rollout_base_rate_per_minute
                              * config.rollout_increment_factor ** (succeeded // config.rollout_increase_after_succeeded)))
            notified = sum(e.notified_s is not None and start_s <= e.notified_s < start_s + 60 for e in executions)
            assert notified <= allowed, (job.name, minute)


@pytest.mark.parametrize("scenario", [INVERTED, BROKEN, GOOD])
def test_no_device_of_any_ring_waits_longer_than_one_reading_for_a_prediction(released, config, scenario):
    """The serving link: a model deployment never stops inference (SOFT dependency), the old model serves until
    the link moves, so every device of every ring, updated, rolled back or untouched, answers every reading."""
    release = released(scenario)
    end_s = release.loop.now_s
    for device in release.devices:
        assert device.prediction_gap(end_s) <= config.sample_interval_seconds, device.thing_name
    assert all(ring.within_interval and ring.max_gap_s <= config.sample_interval_seconds
               for ring in release.run.rings)


@pytest.mark.parametrize("scenario", [INVERTED, BROKEN, GOOD])
def test_a_moved_serving_link_is_served_from_the_next_heartbeat_and_names_what_the_nucleus_runs(released, config,
                                                                                                scenario):
    release = released(scenario)
    for device in release.devices:
        # A real symbolic link in the device's own work folder, naming the artifact of the version it runs.
        assert device.link.is_symlink() and device.link.name == SERVING_LINK
        assert Path(os.path.realpath(device.link)) == device.running.folder.resolve()
        assert device.serving() == device.running.version
        for delay in device.takeovers():
            assert 0 <= delay <= config.inference_interval_seconds, device.thing_name
        # Before its first move the device answered with the promoted model only.
        first_move_s = device.link_moves[0][0] if device.link_moves else float("inf")
        assert {update.model_version for update in device.updates
                if update.prediction and update.at_s < first_move_s} == {release.promoted.version}
    moved = {device.thing_name for device in release.devices if device.link_moves}
    canary = {device.thing_name for device in release.ring(config.canary_group_name)}
    expected = {INVERTED: canary, BROKEN: set(), GOOD: {device.thing_name for device in release.devices}}[scenario]
    assert moved == expected


def test_the_failed_candidate_s_canary_devices_answer_with_the_promoted_model_throughout(released, config):
    release = released(BROKEN)
    for device in release.ring(config.canary_group_name):
        assert device.updates and all(update.prediction and update.model_version == release.promoted.version
                                      for update in device.updates), device.thing_name


def test_stepping_every_heartbeat_changes_no_rain_shadow_update(artifacts, self_tests, config):
    """Only the heartbeat ticks after a link move are stepped; every other tick must write nothing."""
    settings = RolloutSettings(devices=6, canary=3, bake_s=1800.0)
    runs = [Release(scenario=GOOD, artifacts=artifacts, settings=replace(settings, every_heartbeat=every),
                    config=config, self_tests=self_tests) for every in (False, True)]
    for run in runs:
        run.execute()
    stepped, every = runs
    assert sum(device.heartbeats for device in every.devices) > 20 * sum(device.heartbeats for device in stepped.devices)
    assert all(device.link_moves for device in stepped.devices)
    assert [device.updates for device in stepped.devices] == [device.updates for device in every.devices]


def test_the_same_seed_gives_the_same_run(released, artifacts, self_tests, config):
    again = Release(scenario=INVERTED, artifacts=artifacts, settings=SETTINGS, config=config, self_tests=self_tests)
    again.execute()
    first = released(INVERTED)
    assert again.run.timeline == first.run.timeline
    assert again.run.decision == first.run.decision
    assert [device.updates for device in again.devices] == [device.updates for device in first.devices]


def test_a_device_behaves_the_same_in_a_larger_fleet(released):
    small, large = released(INVERTED), released(INVERTED, RolloutSettings(devices=DEVICES + 6, canary=CANARY,
                                                                          bake_s=SETTINGS.bake_s))
    updates = {device.thing_name: device.updates for device in large.devices}
    assert all(device.updates == updates[device.thing_name] for device in small.devices)
    assert [entry for entry in small.run.timeline if "gate" not in entry[1] and "fleet" not in entry[1]] == \
        [entry for entry in large.run.timeline if "gate" not in entry[1] and "fleet" not in entry[1]]
