"""The promotion gate's rules, on plain evidence (infra/lifecycle/gate.py)."""
from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from infra.lifecycle.gate import DeviceEvidence, GateSettings, decide

SETTINGS = GateSettings(bake_s=6 * 3600, margin=0.05, rain_share_margin=0.2)
CANDIDATE, PROMOTED = "rain-00000000000000bb", "rain-00000000000000aa"


def device(name: str, version: str = CANDIDATE, **counts) -> DeviceEvidence:
    values = {"updates": 360, "predictions": 360, "raining": 36, **counts}
    return DeviceEvidence(thing_name=name, model_version=version, deployment_status="SUCCEEDED", **values)


# A dry site and a wet one: the fleet's devices predict rain 10 % and 50 % of the hours.
FLEET = [device("f-dry", PROMOTED), device("f-wet", PROMOTED, raining=180)]


def gate(canary, fleet=FLEET, baked_s=7 * 3600.0):
    return decide(candidate=CANDIDATE, promoted=PROMOTED, canary=canary, fleet=fleet, baked_s=baked_s,
                  settings=SETTINGS)


def test_healthy_canary_devices_at_any_site_the_fleet_covers_are_promoted():
    decision = gate([device("c-dry"), device("c-wet", raining=190)])
    assert decision.promote and decision.reason == "all 2 canary devices healthy after the bake window"
    assert decision.fleet_rain_shares == (0.1, 0.5)


def test_each_check_refuses_naming_the_first_device_that_fails_it():
    cases = {
        "c: canary deployment FAILED, not SUCCEEDED": replace(device("c"), deployment_status="FAILED"),
        "c: canary deployment not received, not SUCCEEDED": replace(device("c"), deployment_status=None),
        f"c: answers with model {PROMOTED}, not the candidate": device("c", PROMOTED),
        "c: in alarm (rain shadow status stale_input)": replace(device("c"), failing=("rain shadow status stale_input",)),
        "c: no rain shadow update in the bake window": device("c", updates=0, predictions=0, raining=0),
        "c: 50% of its updates are predictions, the fleet's 100%": device("c", predictions=180, raining=18),
        "c: 300 predictions in the bake window, the fleet's 360.0 a device": device("c", updates=300, predictions=300),
        "c: predicts rain 90% of the time, the fleet's devices 10% to 50%": device("c", raining=324),
    }
    for reason, canary in cases.items():
        decision = gate([device("a"), canary])
        assert (decision.promote, decision.reason) == (False, reason)


def test_nothing_is_promoted_before_the_bake_window_ends_or_without_a_canary():
    assert gate([device("c")], baked_s=3600).reason == "the bake window has 300 min left"
    assert gate([]).reason == "the canary ring has no device"
    same = decide(candidate=PROMOTED, promoted=PROMOTED, canary=[device("c", PROMOTED)], fleet=FLEET,
                  baked_s=1e9, settings=SETTINGS)
    assert same.reason == "the candidate is already the promoted model"


counts = st.integers(min_value=0, max_value=10_000)


@given(st.lists(st.tuples(counts, counts, counts), max_size=5), st.lists(st.tuples(counts, counts, counts), max_size=5),
       st.floats(min_value=0, max_value=1e7))
def test_the_gate_decides_on_any_evidence_in_one_line(canary, fleet, baked_s):
    def devices(rows, version):
        return [device(f"d{index}", version, updates=u, predictions=min(p, u), raining=min(r, p, u))
                for index, (u, p, r) in enumerate(rows)]
    decision = gate(devices(canary, CANDIDATE), devices(fleet, PROMOTED), baked_s)
    assert "\n" not in decision.line()
    assert not decision.promote or (canary and baked_s >= SETTINGS.bake_s)
