"""The simulator's adaptation demo (`make demo`'s second run): a biased station adapted through the cloud shadow,
ShadowManager and the deployment's own inference function, scored before and after; and its failures, named."""
from __future__ import annotations

import json
import re

import pytest

from device_code.contracts import ADAPTATION_SHADOW
from device_code.simulator.__main__ import main

from test_device_simulator_e2e import broken_deployment, edit_merge

pytestmark = pytest.mark.slow

ROW = re.compile(r"^  (global model|adapted)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$")


def run(trained_model_dir, cdk_out) -> int:
    return main(["--model", str(trained_model_dir), "--cdk-out", str(cdk_out), "--adapt-demo"])


def test_the_adapted_station_applies_its_adaptation_and_scores_no_worse(trained_model_dir, synthesized, capsys):
    assert run(trained_model_dir, synthesized[0]) == 0
    out = capsys.readouterr().out
    rows = {match[1]: [float(value) for value in match.groups()[1:]] for match in map(ROW.match, out.splitlines())
            if match}
    assert set(rows) == {"global model", "adapted"}
    assert rows["adapted"][0] <= rows["global model"][0]  # log loss, on the 70 % the fit never saw
    [delivered] = re.findall(r"make adapt: adaptation (sha256:[0-9a-f]{16})", out)
    assert "the device's own check says: applied" in out
    assert f"`make status` shows ADAPTATION {delivered[:15]}" in out
    assert f"rain shadow `adaptation` over those hours: ['{delivered}']" in out


def no_sync_down(template):
    edit_merge(template, "aws.greengrass.ShadowManager",
               lambda merge: merge["synchronize"].update(direction="deviceToCloud"))


def drop_adaptation_grant(template):
    def edit(merge):
        policies = merge["accessControl"]["aws.greengrass.ShadowManager"]
        for name in [name for name, policy in policies.items()
                     if any(resource.endswith(f"/{ADAPTATION_SHADOW}") for resource in policy["resources"])]:
            del policies[name]
    edit_merge(template, "com.rainedge.Inference", edit)


def drop_adaptation_from_the_iot_policy(template):
    policy = next(r for r in template["Resources"].values() if r["Type"] == "AWS::IoT::Policy")
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        if "iot:UpdateThingShadow" in statement["Action"]:
            statement["Resource"] = [r for r in statement["Resource"] if not json.dumps(r).endswith('/adaptation"]]}')]


@pytest.mark.parametrize("change, message", [
    (no_sync_down, "ShadowManager does not bring the 'adaptation' shadow down"),
    (drop_adaptation_grant, "IPC refused: com.rainedge.Inference may not aws.greengrass#GetThingShadow on "
                            "$aws/things/rainedge-core-1/shadow/name/adaptation"),
    (drop_adaptation_from_the_iot_policy, "the cloud refused ShadowManager"),
])
def test_the_demo_fails_naming_what_would_keep_the_adaptation_from_the_device(trained_model_dir, synthesized,
                                                                              tmp_path, capsys, change, message):
    assert run(trained_model_dir, broken_deployment(synthesized, tmp_path, change)) == 1
    assert message in capsys.readouterr().out
