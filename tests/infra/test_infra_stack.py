"""Fine-grained assertions on the synthesised RainEdge template."""
from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template

from infra_support import flatten, joined, resources_of
from infra.artifacts import ModelArtifactError
from infra.device_keys import DeviceKeyError
from infra.greengrass import PUBLIC_COMPONENT_VERSIONS

pytestmark = pytest.mark.slow

OUTPUT_KEYS = {
    "ThingNames", "ThingGroupName", "RoleAliasName", "TokenExchangeRoleName", "ArtifactBucketName",
    "Region", "DeploymentId", "ComponentNames", "FunctionNames", "NamePrefix", "ComponentPrefix", "Devices",
}


def components_by_name(template: dict) -> dict[str, dict]:
    """component name -> properties (recipe parsed) of every ComponentVersion."""
    found = {}
    for resource in resources_of(template, "AWS::GreengrassV2::ComponentVersion").values():
        properties = resource["Properties"]
        if "LambdaFunction" in properties:
            found[properties["LambdaFunction"]["ComponentName"]] = properties["LambdaFunction"]
        else:
            text = joined(properties["InlineRecipe"])
            found[json.loads(text)["ComponentName"]] = json.loads(text)
    return found


def deployment_of(template: dict, name: str = "rainedge-deployment") -> dict:
    """The fleet ring's deployment, or the one named `name`."""
    (deployment,) = [deployment for deployment in resources_of(template, "AWS::GreengrassV2::Deployment").values()
                     if deployment["Properties"]["DeploymentName"] == name]
    return deployment["Properties"]


def merge_of(template: dict, component: str) -> dict:
    return json.loads(deployment_of(template)["Components"][component]["ConfigurationUpdate"]["Merge"])


def test_identity_resources_for_one_core(template):
    assertions = Template.from_json(template)
    assertions.has_resource_properties(
        "AWS::IoT::Thing",
        {"ThingName": "rainedge-core-1", "AttributePayload": {"Attributes": {"rainedge:app": "rainedge"}}},
    )
    assertions.has_resource_properties("AWS::IoT::ThingGroup", {"ThingGroupName": "rainedge-cores"})
    assertions.has_resource_properties(
        "AWS::IoT::Certificate",
        {"CertificateSigningRequest": Match.string_like_regexp("BEGIN CERTIFICATE REQUEST"), "Status": "ACTIVE"},
    )
    assertions.resource_count_is("AWS::IoT::PolicyPrincipalAttachment", 2)  # the device's and the fleet claim's
    assertions.resource_count_is("AWS::IoT::ThingPrincipalAttachment", 1)
    assertions.has_resource_properties("AWS::IoT::Policy", {"PolicyName": "rainedge-device-rainedge-core-1"})
    assertions.has_resource_properties("AWS::IoT::RoleAlias", {"RoleAlias": "rainedge-tes-role-alias"})
    assertions.has_resource_properties(
        "AWS::IAM::Role",
        {
            "RoleName": "rainedge-tes-role",
            "AssumeRolePolicyDocument": {
                "Statement": [Match.object_like({"Principal": {"Service": "credentials.iot.amazonaws.com"}})]
            },
        },
    )
    # Group membership has no CloudFormation type: an SDK-call custom resource adds it.
    (membership,) = resources_of(template, "Custom::AWS").values()
    assert "addThingToThingGroup" in flatten(membership) and "removeThingFromThingGroup" in flatten(membership)


def test_iot_policy_names_the_things_and_never_star_for_mqtt(template):
    (policy,) = [p for p in resources_of(template, "AWS::IoT::Policy").values()
                 if p["Properties"]["PolicyName"] == "rainedge-device-rainedge-core-1"]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    mqtt = {"iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive"}
    seen = set()
    for statement in statements:
        actions = {statement["Action"]} if isinstance(statement["Action"], str) else set(statement["Action"])
        if actions & mqtt:
            seen |= actions & mqtt
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for resource in resources:
                text = flatten(resource)
                assert resource != "*" and "rainedge-core-1" in text, statement
    assert seen == mqtt
    shadow = next(s for s in statements if "iot:UpdateThingShadow" in s["Action"])
    assert {"iot:GetThingShadow", "iot:DeleteThingShadow"} <= set(shadow["Action"])
    assert [joined(resource).rsplit(":", 1)[1] for resource in shadow["Resource"]] == [
        "thing/rainedge-core-1/weather", "thing/rainedge-core-1/rain", "thing/rainedge-core-1/adaptation"]
    assume = next(s for s in statements if s["Action"] == "iot:AssumeRoleWithCertificate")
    assert ":rolealias/rainedge-tes-role-alias" in flatten(assume["Resource"])


def test_token_exchange_role_reads_only_the_artifact_prefix(template):
    policies = [
        p for p in resources_of(template, "AWS::IAM::Policy").values()
        if "IdentityTokenExchangeRole" in flatten(p["Properties"]["Roles"])
    ]
    (policy,) = policies
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert statements["ReadArtifacts"]["Action"] == "s3:GetObject"
    assert flatten(statements["ReadArtifacts"]["Resource"]).endswith('"/artifacts/*"]]}')
    assert statements["LocateArtifactBucket"]["Action"] == "s3:GetBucketLocation"
    assert ":log-group:/aws/greengrass/*" in flatten(statements["DeviceLogs"]["Resource"])
    for statement in statements.values():
        assert statement["Resource"] != "*"
        assert not any(action.endswith("*") for action in [statement["Action"]] if isinstance(action, str))


def test_no_greengrass_v1_types(template):
    assert not [r for r in template["Resources"].values() if r["Type"].startswith("AWS::Greengrass::")]


def test_lambda_functions_are_versioned_and_never_run_in_the_cloud(template):
    functions = {
        f["Properties"]["FunctionName"]: f["Properties"]
        for f in resources_of(template, "AWS::Lambda::Function").values()
        if "FunctionName" in f["Properties"]
    }
    assert set(functions) == {"rainedge-sensor", "rainedge-shadow-writer", "rainedge-inference"}
    for name, function in functions.items():
        assert function["Runtime"] == "python3.11"
        assert function["ReservedConcurrentExecutions"] == 0
        assert function["Handler"] == f"device_code.{name.removeprefix('rainedge-').replace('-', '_')}.handler"
    assert len(resources_of(template, "AWS::Lambda::Version")) == 3


def test_lambda_components_pinned_event_source_and_environment(template):
    components = components_by_name(template)
    sensor, writer, inference = (components[f"com.rainedge.{n}"] for n in ("Sensor", "ShadowWriter", "Inference"))
    for component in (sensor, writer, inference):
        parameters = component["ComponentLambdaParameters"]
        assert parameters["LinuxProcessParams"] == {"IsolationMode": "NoContainer"}
        assert "Ref" in component["LambdaArn"]  # a published version, not $LATEST or an alias
        assert "CurrentVersion" in component["LambdaArn"]["Ref"]
        assert component["ComponentDependencies"]["com.rainedge.DeviceRuntime"]["DependencyType"] == "HARD"
    assert sensor["ComponentLambdaParameters"]["Pinned"] is True
    assert inference["ComponentLambdaParameters"]["Pinned"] is True
    assert writer["ComponentLambdaParameters"]["Pinned"] is False
    assert writer["ComponentLambdaParameters"]["EventSources"] == [{"Topic": "rainedge/readings", "Type": "PUB_SUB"}]
    assert "EventSources" not in sensor["ComponentLambdaParameters"]
    env = {name: c["ComponentLambdaParameters"]["EnvironmentVariables"] for name, c in components.items() if "LambdaArn" in c}
    assert {"SAMPLE_INTERVAL_S": "60", "I2C_BUS": "1", "I2C_ADDRESS": "0x76", "LOG_LEVEL": "INFO"}.items() <= env["com.rainedge.Sensor"].items()
    assert env["com.rainedge.ShadowWriter"]["CPU_TEMP_COMPENSATION"] == "off"
    # The model component's serving link, in its work folder (<root>/work/<component name>, NucleusPaths.workPath).
    assert env["com.rainedge.Inference"]["MODEL_DIR"] == "/greengrass/v2/work/com.rainedge.RainModel/serving"
    assert {"INFERENCE_INTERVAL_S": "10", "MAX_INPUT_AGE_S": "300"}.items() <= env["com.rainedge.Inference"].items()
    # The nucleus makes <root>/work/<component name> the component's own folder (NucleusPaths.workPath).
    assert env["com.rainedge.Inference"]["HISTORY_FILE"] == "/greengrass/v2/work/com.rainedge.Inference/reading_history.json"
    assert env["com.rainedge.ShadowWriter"]["STATION_FILE"] == "/greengrass/v2/rainedge/station.json"
    assert inference["ComponentDependencies"]["com.rainedge.RainModel"] == {"VersionRequirement": ">=1.0.0 <2.0.0",
                                                                             "DependencyType": "SOFT"}


def test_model_and_runtime_components(template, project_root):
    components = components_by_name(template)
    (artifact,) = components["com.rainedge.RainModel"]["Manifests"][0]["Artifacts"]
    assert artifact["Unarchive"] == "ZIP"
    assert artifact["Uri"].startswith("s3://<token>/artifacts/rain-model/") and artifact["Uri"].endswith("/rain_model.zip")
    script = components["com.rainedge.DeviceRuntime"]["Manifests"][0]["Lifecycle"]["Install"]["Script"]
    for package in ("awsiotsdk==", "bme680==", "smbus2==", "ai-edge-litert==", "numpy=="):
        assert package in script
    assert script.startswith("python3.11 -m venv {work:path}/venv")


def test_the_runtime_installs_once_per_set_of_pins(template):
    """Install "also runs ... each time the software launches" unless Skipif holds; "exists <file>" skips
    it when the file exists (component recipe reference). The file is the last thing the script makes,
    after pip succeeded, and its name changes with the pins."""
    from infra.components import install_stamp
    install = components_by_name(template)["com.rainedge.DeviceRuntime"]["Manifests"][0]["Lifecycle"]["Install"]
    check, stamp = install["Skipif"].split(" ")
    assert check == "exists" and stamp.startswith("{work:path}/venv/.installed-")
    assert install["Script"].endswith(f"&& touch {stamp}")
    assert install_stamp("python3.11", ["numpy==2.1.0"]) != install_stamp("python3.11", ["numpy==2.1.1"])
    assert install_stamp("python3.11", ["numpy==2.1.0"]) != install_stamp("python3.13", ["numpy==2.1.0"])


def test_deployment_targets_the_group_with_pinned_public_components(template):
    deployment = deployment_of(template)
    assert deployment["DeploymentName"] == "rainedge-deployment"
    assert deployment["TargetArn"] == {"Fn::GetAtt": [next(iter(resources_of(template, "AWS::IoT::ThingGroup"))), "Arn"]}
    versions = {name: spec["ComponentVersion"] for name, spec in deployment["Components"].items()}
    assert PUBLIC_COMPONENT_VERSIONS.items() <= versions.items()
    ours = components_by_name(template)
    assert {name: c["ComponentVersion"] for name, c in ours.items()}.items() <= versions.items()
    assert merge_of(template, "aws.greengrass.Nucleus") == {"interpolateComponentConfiguration": True}


def test_shadow_manager_synchronises_weather_rain_and_adaptation(template):
    sync = merge_of(template, "aws.greengrass.ShadowManager")["synchronize"]
    assert sync["coreThing"] == {"classic": False, "namedShadows": ["weather", "rain", "adaptation"]}
    assert sync["direction"] == "betweenDeviceAndCloud"


def test_ipc_access_control_is_built_from_the_device_function_declarations(template):
    # What each function really does over IPC is checked against these grants by the end-to-end
    # run (tests/device_code/test_device_simulator_e2e.py); here: the stack wires the declarations.
    from device_code.functions import FUNCTIONS

    components = {c["LambdaFunction"]["LambdaArn"]["Ref"]: c["LambdaFunction"]["ComponentName"]
                  for c in (r["Properties"] for r in resources_of(template, "AWS::GreengrassV2::ComponentVersion").values())
                  if "LambdaFunction" in c}
    by_handler = {template["Resources"][template["Resources"][version]["Properties"]["FunctionName"]["Ref"]]
                  ["Properties"]["Handler"]: name for version, name in components.items()}
    for function in FUNCTIONS:
        control = merge_of(template, by_handler[function.handler])["accessControl"]
        granted = sorted((service, policy["policyDescription"], tuple(policy["operations"]), tuple(policy["resources"]))
                         for service, policies in control.items() for policy in policies.values())
        declared = sorted((g.service, g.description, g.operations, g.resources) for g in function.grants)
        assert granted == declared, function.name


def test_outputs_are_the_contract_and_hold_no_secrets(template):
    outputs = template["Outputs"]
    assert OUTPUT_KEYS <= set(outputs)
    assert outputs["ThingNames"]["Value"] == "rainedge-core-1"
    assert outputs["ComponentNames"]["Value"].split(",") == [
        "com.rainedge.DeviceRuntime", "com.rainedge.RainModel", "com.rainedge.Sensor",
        "com.rainedge.ShadowWriter", "com.rainedge.Inference",
    ]
    assert outputs["FunctionNames"]["Value"] == "rainedge-sensor,rainedge-shadow-writer,rainedge-inference"
    assert (outputs["NamePrefix"]["Value"], outputs["ComponentPrefix"]["Value"]) == ("rainedge", "com.rainedge")
    assert json.loads(joined(outputs["Devices"]["Value"])) == [
        {"thingName": "rainedge-core-1", "certificateId": "<token>", "policyName": "rainedge-device-rainedge-core-1"}
    ]
    assert "PRIVATE KEY" not in flatten(outputs) and "CERTIFICATE" not in flatten(outputs)


def test_bucket_is_private_deleted_with_the_stack_and_tagged(template):
    assertions = Template.from_json(template)
    assertions.has_resource(
        "AWS::S3::Bucket",
        {
            "DeletionPolicy": "Delete",
            "Properties": Match.object_like(
                {
                    "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True}),
                    "Tags": Match.array_with([{"Key": "rainedge:app", "Value": "rainedge"}]),
                }
            ),
        },
    )
    # No auto-delete helper: the model upload removes its own objects when the stack goes.
    assertions.resource_count_is("Custom::S3AutoDeleteObjects", 0)
    assertions.has_resource_properties("Custom::CDKBucketDeployment", {"RetainOnDelete": False, "Prune": False})


def test_cdk_helper_functions_log_into_groups_the_stack_owns(template):
    groups = resources_of(template, "AWS::Logs::LogGroup")
    assert groups and all(group["DeletionPolicy"] == "Delete" for group in groups.values())
    helpers = [f["Properties"] for f in resources_of(template, "AWS::Lambda::Function").values()
               if "FunctionName" not in f["Properties"]]
    assert helpers
    for helper in helpers:
        assert helper["LoggingConfig"]["LogGroup"]["Ref"] in groups


def test_fleet_config_change_and_sync_direction(synth_variant, template):
    fleet = synth_variant(devices=["pi-a", "pi-b"], sampleIntervalSeconds=30, shadowSyncDirection="deviceToCloud",
                          fleetProvisioning="false")
    assert len(resources_of(fleet, "AWS::IoT::Thing")) == 2
    assert len(resources_of(fleet, "AWS::IoT::Certificate")) == 2
    assert len(resources_of(fleet, "AWS::IoT::Policy")) == 2
    assert len(resources_of(fleet, "Custom::AWS")) == 2
    assert len(resources_of(fleet, "AWS::GreengrassV2::Deployment")) == 2  # one per ring
    assert fleet["Outputs"]["ThingNames"]["Value"] == "pi-a,pi-b"
    assert merge_of(fleet, "aws.greengrass.ShadowManager")["synchronize"]["direction"] == "deviceToCloud"
    # Versions follow content: the sensor's configuration changed, the model did not.
    before, after = components_by_name(template), components_by_name(fleet)
    assert after["com.rainedge.Sensor"]["ComponentVersion"] != before["com.rainedge.Sensor"]["ComponentVersion"]
    assert after["com.rainedge.RainModel"]["ComponentVersion"] == before["com.rainedge.RainModel"]["ComponentVersion"]
    assert after["com.rainedge.DeviceRuntime"]["ComponentVersion"] == before["com.rainedge.DeviceRuntime"]["ComponentVersion"]


def test_missing_model_says_how_to_train(synth_variant):
    with pytest.raises(ModelArtifactError, match="make train"):
        synth_variant(modelZip="build/no-such-model/rain_model.zip")


def test_missing_csr_fails_synth_saying_make_keys(trained_model_dir, tmp_path):
    import aws_cdk as cdk

    from infra_support import DEFAULT_CONTEXT, PROJECT_ROOT
    from infra.app import build_app

    app = cdk.App(context=DEFAULT_CONTEXT, outdir=str(tmp_path / "out"))
    with pytest.raises(DeviceKeyError, match="make keys"):
        build_app(app, project_root=PROJECT_ROOT, secrets_dir=tmp_path / "empty")
