"""Two rings: the fleet ring runs the promoted model, the canary ring the candidate, each by its own deployment
to its own thing group, and no device is ever reached by both (infra/releases.py). Checked on real synths."""
from __future__ import annotations

import json
import re
from hashlib import sha256 as _sha256

import pytest

from infra import releases
from infra.config import ConfigError, RainEdgeConfig
from infra_support import PROJECT_ROOT, joined, model_variant, resources_of, synthesize

pytestmark = pytest.mark.slow

CANDIDATE_ZIP = PROJECT_ROOT / "build" / "model" / "rain_model.zip"
PROMOTED_VERSION = "rain-00000000000000aa"


def semver_in_range(version: str) -> bool:
    """Whether `version` meets the npm range >=1.0.0 <2.0.0 ("AWS IoT Greengrass uses NPM semantic version
    constraints")."""
    major, minor, patch = (int(part) for part in version.split("."))
    return (1, 0, 0) <= (major, minor, patch) < (2, 0, 0)


def sha256(data: bytes) -> str:
    return _sha256(data).hexdigest()


def deployments(template: dict) -> dict[str, dict]:
    """Deployment name -> its Components."""
    return {d["Properties"]["DeploymentName"]: d["Properties"]["Components"]
            for d in resources_of(template, "AWS::GreengrassV2::Deployment").values()}


def target_groups(template: dict) -> dict[str, str]:
    """Deployment name -> the ThingGroupName of the group it targets."""
    groups = {logical: group["Properties"]["ThingGroupName"]
              for logical, group in resources_of(template, "AWS::IoT::ThingGroup").items()}
    return {d["Properties"]["DeploymentName"]: groups[d["Properties"]["TargetArn"]["Fn::GetAtt"][0]]
            for d in resources_of(template, "AWS::GreengrassV2::Deployment").values()}


def component_versions(template: dict) -> dict[str, tuple[str, str, str]]:
    """Logical id -> (component name, version, recipe text or "") of every component version."""
    found = {}
    for logical, component in resources_of(template, "AWS::GreengrassV2::ComponentVersion").items():
        properties = component["Properties"]
        source = properties.get("LambdaFunction")
        if source:
            found[logical] = (source["ComponentName"], source["ComponentVersion"], "")
        else:
            text = joined(properties["InlineRecipe"])
            name, version = (re.search(rf'"{key}":"([^"]+)"', text).group(1)
                             for key in ("ComponentName", "ComponentVersion"))
            found[logical] = (name, version, text)
    return found


def recipe_of(template: dict, name: str, version: str) -> str:
    (text,) = [text for found_name, found_version, text in component_versions(template).values()
               if (found_name, found_version) == (name, version)]
    return text


@pytest.fixture(scope="module")
def promoted_release(tmp_path_factory):
    """A release folder whose promoted model is another model than build/model's."""
    folder = tmp_path_factory.mktemp("releases")
    model_variant(CANDIDATE_ZIP, folder / releases.PROMOTED_ZIP, PROMOTED_VERSION)
    return folder


@pytest.fixture(scope="module")
def two_models(promoted_release, tmp_path_factory, secrets_dir):
    out = tmp_path_factory.mktemp("rings")
    return synthesize(out / "cdk.out", secrets_dir, releases_dir=promoted_release,
                      devices=json.dumps(["pi-a", "pi-b"]), canaryDevices=json.dumps(["pi-b"]))


def test_each_ring_has_its_own_deployment_to_its_own_group(two_models):
    assert target_groups(two_models) == {"rainedge-deployment": "rainedge-cores",
                                         "rainedge-canary-deployment": "rainedge-canary"}


def test_no_listed_device_is_in_both_groups(two_models):
    members = [json.loads(r["Properties"]["Create"])["parameters"]
               for r in resources_of(two_models, "Custom::AWS").values() if "addThingToThingGroup" in r["Properties"]["Create"]]
    assert sorted((m["thingName"], m["thingGroupName"]) for m in members) == [
        ("pi-a", "rainedge-cores"), ("pi-b", "rainedge-canary")]


def test_the_fleet_runs_the_promoted_model_and_the_canary_the_candidate(two_models, promoted_release):
    promoted_zip = promoted_release / releases.PROMOTED_ZIP
    fleet, canary = (deployments(two_models)[name] for name in ("rainedge-deployment", "rainedge-canary-deployment"))
    model = "com.rainedge.RainModel"
    # Each ring's model component downloads its ring's zip, by its content hash.
    fleet_recipe = recipe_of(two_models, model, fleet[model]["ComponentVersion"])
    canary_recipe = recipe_of(two_models, model, canary[model]["ComponentVersion"])
    assert f"rain-model/{sha256(promoted_zip.read_bytes())}/" in fleet_recipe
    assert f"rain-model/{sha256(CANDIDATE_ZIP.read_bytes())}/" in canary_recipe
    outputs = two_models["Outputs"]
    assert outputs["PromotedModelVersion"]["Value"] == PROMOTED_VERSION
    assert outputs["CandidateModelVersion"]["Value"] == releases.model_version(CANDIDATE_ZIP)
    # The model is all that differs: the inference function reads it through the serving link and depends on it
    # SOFT, on any of our versions, so a new model changes neither its version nor restarts it.
    shared = set(fleet) - {model}
    assert {name: fleet[name]["ComponentVersion"] for name in shared} == \
        {name: canary[name]["ComponentVersion"] for name in shared}
    lambdas = [component["Properties"]["LambdaFunction"]
               for component in resources_of(two_models, "AWS::GreengrassV2::ComponentVersion").values()
               if "LambdaFunction" in component["Properties"]]
    (inference,) = [source for source in lambdas if source["ComponentName"] == "com.rainedge.Inference"]
    assert inference["ComponentDependencies"][model] == {"VersionRequirement": ">=1.0.0 <2.0.0", "DependencyType": "SOFT"}
    for version in (fleet[model]["ComponentVersion"], canary[model]["ComponentVersion"]):
        assert semver_in_range(version)


def test_a_rolled_back_candidate_runs_on_neither_ring(promoted_release, tmp_path, secrets_dir):
    folder = tmp_path / "releases"
    model_variant(CANDIDATE_ZIP, folder / releases.PROMOTED_ZIP, PROMOTED_VERSION)
    releases.record(folder, {"decision": releases.ROLLED_BACK, "candidate": releases.model_version(CANDIDATE_ZIP)})
    template = synthesize(tmp_path / "cdk.out", secrets_dir, releases_dir=folder)
    fleet, canary = (deployments(template)[name] for name in ("rainedge-deployment", "rainedge-canary-deployment"))
    assert fleet == canary
    assert template["Outputs"]["CandidateModelVersion"]["Value"] == PROMOTED_VERSION


def test_before_the_first_promotion_both_rings_run_the_candidate(template):
    fleet, canary = (deployments(template)[name] for name in ("rainedge-deployment", "rainedge-canary-deployment"))
    assert fleet == canary
    assert template["Outputs"]["PromotedModelVersion"] == template["Outputs"]["CandidateModelVersion"]


def test_a_model_component_version_belongs_to_one_logical_id_only(two_models, template):
    """CloudFormation creates a replacement before it deletes the old resource, and a Greengrass component version
    cannot be created twice: across synths, one (name, version) is never held by two logical ids."""
    holders: dict[tuple[str, str], set[str]] = {}
    for synth in (two_models, template):
        for logical, (name, version, _) in component_versions(synth).items():
            holders.setdefault((name, version), set()).add(logical)
    assert all(len(logicals) == 1 for logicals in holders.values()), holders


@pytest.mark.parametrize("context, message", [
    ({"canaryDevices": ["pi-x"]}, "canaryDevices names 'pi-x', which devices does not list"),
    ({"canarySerials": ["zz"]}, "canarySerials entry 'zz' can never join the fleet"),
    ({"canarySerials": ["1000000000000001"], "fleetProvisioning": False}, "fleetProvisioning is off"),
    ({"canarySerials": ["1000000000000001"] * 2}, "must not repeat"),
    ({"canarySerials": [f"{i:016x}" for i in range(61)]}, "at most 1024"),
    ({"bakeMinutes": -1}, "bakeMinutes must be an integer from 0 to 10080"),
    ({"promotionMargin": 1.5}, "promotionMargin must be a number from 0 to 1"),
])
def test_ring_configuration_is_refused_in_one_line(context, message):
    with pytest.raises(ConfigError, match=message):
        RainEdgeConfig.from_context(context)
