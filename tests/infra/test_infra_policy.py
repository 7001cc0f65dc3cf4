"""Policy gates on the synthesised cloud assembly: cdk-nag, cfn-lint, no key material."""
from __future__ import annotations

import json

import pytest
from cfnlint.api import ManualArgs, lint_file

from infra.device_keys import PRIVATE_KEY_FILE

pytestmark = pytest.mark.slow

# Documented cfn-lint ignores (README "infra"):
#   W3005 "dependency already enforced by GetAtt": CDK's own constructs (Lambda functions
#   and their roles, BucketDeployment, AwsCustomResource) emit DependsOn next to a GetAtt.
CFN_LINT_IGNORES = ["W3005"]
LINT_REGIONS = ["us-east-1", "eu-west-1", "eu-central-1"]


def test_cdk_nag_has_no_unacknowledged_finding_and_every_acknowledgment_has_a_reason(synthesized):
    out_dir, _ = synthesized
    report = json.loads((out_dir / "validation-report.json").read_text())
    (nag,) = [r for r in report["pluginReports"] if r["pluginName"] == "AwsSolutions"]
    assert nag["violations"] == []
    assert nag["conclusion"] == "success"
    acknowledged = nag["suppressedViolations"]
    assert acknowledged, "the report lists acknowledged findings (proves the checks ran)"
    for finding in acknowledged:
        assert len(finding["reason"]) > 30, finding["ruleName"]


def test_cfn_lint_is_clean_on_every_template(synthesized):
    out_dir, _ = synthesized
    templates = sorted(out_dir.glob("*.template.json"))
    assert templates
    for template in templates:
        matches = lint_file(template, config=ManualArgs(regions=LINT_REGIONS, ignore_checks=CFN_LINT_IGNORES))
        assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == [], template.name


def test_no_private_key_material_anywhere_in_the_cloud_assembly(synthesized, secrets_dir):
    out_dir, _ = synthesized
    key_pem = (secrets_dir / "rainedge-core-1" / PRIVATE_KEY_FILE).read_text()
    key_body = "".join(line for line in key_pem.splitlines() if "-----" not in line)
    files = [path for path in out_dir.rglob("*") if path.is_file()]
    assert any(path.suffix == ".json" for path in files)
    for path in files:
        data = path.read_bytes()
        assert b"PRIVATE KEY" not in data, path
        assert key_body[:40].encode() not in data, path


def test_cdk_nag_is_clean_when_the_environment_is_known(synth_variant, monkeypatch, tmp_path):
    # The CDK CLI sets these from the user's AWS profile; finding ids then hold literals.
    monkeypatch.setenv("CDK_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "123456789012")
    template = synth_variant()
    assert "eu-west-1" in json.dumps(template)
    (report,) = tmp_path.glob("cdk.out.*/validation-report.json")
    (nag,) = json.loads(report.read_text())["pluginReports"]
    assert nag["violations"] == []
