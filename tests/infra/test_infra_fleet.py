"""Fleet provisioning by claim, checked on the synthesized template against AWS's rules."""
from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from infra_support import core_scope_problems, resources_of, things, worst_case_pseudo
from infra.config import MAX_CANARY_SERIALS_BYTES, ConfigError
from infra.fleet_hook.handler import RING_PARAMETER, admit, answer, decide, handler
from infra.iot_policy import MAX_DOCUMENT_CHARACTERS, allows_any, document_size
from infra.synthesized import Pseudo, SynthesizedStack, resolve

pytestmark = pytest.mark.slow

SERIAL = "10000000a1b2c3d4"
# AWS IoT quotas: "Maximum size of a fleet provisioning template | 10 KiB".
MAX_PROVISIONING_TEMPLATE_BYTES = 10 * 1024


def provisioned(stack: SynthesizedStack, serial: str, pseudo: Pseudo = Pseudo()):
    return stack.provisioned_thing({"SerialNumber": serial}, pseudo)


def test_the_template_is_enabled_and_asks_the_hook_first(template):
    (properties,) = [r["Properties"] for r in resources_of(template, "AWS::IoT::ProvisioningTemplate").values()]
    assert properties["Enabled"] is True and properties["TemplateName"] == "rainedge-fleet"
    hook_id = properties["PreProvisioningHook"]["TargetArn"]["Fn::GetAtt"][0]
    assert template["Resources"][hook_id]["Type"] == "AWS::Lambda::Function"
    # "Pre-provisioning hooks": the function must answer within 5 seconds; IoT invokes it.
    assert template["Resources"][hook_id]["Properties"]["Timeout"] == 5
    (permission,) = [r["Properties"] for r in resources_of(template, "AWS::Lambda::Permission").values()
                     if r["Properties"]["FunctionName"] == {"Fn::GetAtt": [hook_id, "Arn"]}]
    assert permission["Principal"] == "iot.amazonaws.com" and permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
    # "Pre-provisioning hooks" asks for source-arn *or* source-account and does not say which ARN AWS IoT
    # presents: a guessed SourceArn that is wrong would refuse every device.
    assert "SourceArn" not in permission


# The AWS managed policy AWSIoTThingsRegistration, version v3, as the AWS managed policy reference
# publishes it (docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSIoTThingsRegistration.html).
THINGS_REGISTRATION_V3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": ["*"], "Action": [
    "iot:AddThingToThingGroup", "iot:AttachPolicy", "iot:AttachPrincipalPolicy", "iot:AttachThingPrincipal",
    "iot:CreateCertificateFromCsr", "iot:CreatePolicy", "iot:CreateThing", "iot:DescribeCertificate",
    "iot:DescribeThing", "iot:DescribeThingGroup", "iot:DescribeThingType", "iot:DetachPolicy",
    "iot:DetachThingPrincipal", "iot:GetPolicy", "iot:ListAttachedPolicies", "iot:ListPolicyPrincipals",
    "iot:ListPrincipalPolicies", "iot:ListPrincipalThings", "iot:ListTargetsForPolicy",
    "iot:ListThingGroupsForThing", "iot:ListThingPrincipals", "iot:RegisterCertificate", "iot:RegisterThing",
    "iot:RemoveThingFromThingGroup", "iot:UpdateCertificate", "iot:UpdateThing", "iot:UpdateThingGroupsForThing",
    "iot:AddThingToBillingGroup", "iot:DescribeBillingGroup", "iot:RemoveThingFromBillingGroup"]}]}
# What carrying out the template's three resources takes (a thing in a group, an existing certificate
# activated and attached, a new policy attached to it); AWS does not list RegisterThing's calls.
TEMPLATE_CALLS = ("CreateThing", "DescribeThing", "UpdateThing", "AddThingToThingGroup", "DescribeThingGroup",
                  "ListThingGroupsForThing", "UpdateThingGroupsForThing", "AttachThingPrincipal",
                  "ListThingPrincipals", "DescribeCertificate", "UpdateCertificate", "CreatePolicy", "GetPolicy",
                  "AttachPolicy", "ListAttachedPolicies")


def iam_resources_of(action: str) -> list[str]:
    """ARNs of each resource type IAM's service authorization data (as cfn-lint ships it) gives for an
    IoT action, or "*" for an action without one."""
    from importlib.resources import files
    data = json.loads((files("cfnlint") / "data" / "AdditionalSpecs" / "Policies.json").read_text())["iot"]
    types = data["Actions"][action.lower()].get("Resources", [])
    return [data["Resources"][kind]["ARNFormats"][0].replace("${Partition}", "aws").replace(
        "${Region}", "us-east-1").replace("${Account}", "123456789012").replace(".*", "rainedge-x")
            for kind in types] or ["*"]


def test_the_provisioning_role_is_the_one_aws_documents_and_it_covers_every_call(template):
    (role_id, role), = [(k, r) for k, r in resources_of(template, "AWS::IAM::Role").items()
                        if "ProvisioningRole" in k]
    assert role["Properties"]["ManagedPolicyArns"] == [{"Fn::Join": ["", [
        "arn:", {"Ref": "AWS::Partition"}, ":iam::aws:policy/service-role/AWSIoTThingsRegistration"]]}]
    # No inline policy narrows or widens it.
    assert not [p for p in resources_of(template, "AWS::IAM::Policy").values()
                if {"Ref": role_id} in p["Properties"].get("Roles", [])]
    for call in TEMPLATE_CALLS:
        for resource in iam_resources_of(call):
            assert allows_any([THINGS_REGISTRATION_V3], f"iot:{call}", resource), (call, resource)


def test_a_hand_made_subset_on_things_cannot_attach_a_certificate():
    """The rule the test above relies on: AttachThingPrincipal acts on the certificate, and
    ListAttachedPolicies on no resource type, so grants on thing/ or cert/ ARNs miss them."""
    assert iam_resources_of("AttachThingPrincipal") == ["arn:aws:iot:us-east-1:123456789012:cert/rainedge-x"]
    assert iam_resources_of("ListAttachedPolicies") == ["*"]


def test_a_provisioned_device_is_a_core_of_the_group_with_a_listed_devices_scope(template):
    stack = SynthesizedStack(template)
    device = provisioned(stack, SERIAL)
    assert device.thing_name == f"rainedge-{SERIAL}"
    assert device.attributes == {"rainedge:app": "rainedge"}
    assert device.thing_groups == ("rainedge-cores",)  # the deployment's target: it reaches the device
    other = provisioned(stack, "10000000ffffffff").thing_name
    assert core_scope_problems([device.policy_document], device.thing_name, other, Pseudo()) == []
    assert core_scope_problems([device.policy_document], device.thing_name, "rainedge-core-1", Pseudo()) == []


def test_the_certificate_comes_from_the_devices_own_csr(template):
    _, body = SynthesizedStack(template).provisioning_template(Pseudo())
    (certificate,) = [r for r in body["Resources"].values() if r["Type"] == "AWS::IoT::Certificate"]
    # "Only certificate IDs can be used with a fleet provisioning template": the plugin's CSR
    # becomes the certificate through CreateCertificateFromCsr, whose id the template receives.
    assert certificate["Properties"]["CertificateId"] == {"Ref": "AWS::IoT::Certificate::Id"}
    # "Provisioning templates": a certificate resource's Status is ACTIVE or INACTIVE.
    assert certificate["Properties"]["Status"] in ("ACTIVE", "INACTIVE")
    assert "AWS::IoT::Certificate::Id" in body["Parameters"]


def test_sizes_fit_aws_quotas_at_worst_case_lengths(synth_variant):
    stack = SynthesizedStack(synth_variant(namePrefix="r" * 30, serialNumberPattern="[0-9a-f]{33}"))
    pseudo = worst_case_pseudo()
    serial = "f" * 33  # with the 30-character prefix and '-': the longest thing name, 64
    device = provisioned(stack, serial, pseudo)
    assert len(device.thing_name) == 64
    assert document_size(device.policy_document) <= MAX_DOCUMENT_CHARACTERS
    (properties,) = stack.of_type("AWS::IoT::ProvisioningTemplate").values()
    assert len(resolve(properties["TemplateBody"], pseudo).encode()) <= MAX_PROVISIONING_TEMPLATE_BYTES


def test_the_claim_may_only_provision_through_this_template(template):
    stack = SynthesizedStack(template)
    (claim,) = [p["PolicyDocument"] for p in stack.of_type("AWS::IoT::Policy").values()
                if p["PolicyName"] == "rainedge-claim-policy"]
    pseudo = Pseudo()
    document = resolve(claim, pseudo)
    prefix = f"arn:{pseudo.partition}:iot:{pseudo.region}:{pseudo.account}"
    csr = "$aws/certificates/create-from-csr/json"
    register = "$aws/provisioning-templates/rainedge-fleet/provision/json"
    allowed = [("iot:Connect", f"client/rainedge-claim-{SERIAL}"),
               ("iot:Publish", f"topic/{csr}"), ("iot:Publish", f"topic/{register}"),
               ("iot:Receive", f"topic/{csr}/accepted"), ("iot:Receive", f"topic/{register}/rejected"),
               ("iot:Subscribe", f"topicfilter/{csr}/accepted"), ("iot:Subscribe", f"topicfilter/{register}/accepted")]
    refused = [("iot:Connect", f"client/rainedge-{SERIAL}"),  # would cut a provisioned core's connection
               ("iot:Connect", "client/rainedge-core-1"),
               ("iot:Publish", "topic/$aws/certificates/create/json"),  # keys made in the cloud: not ours
               ("iot:Publish", "topic/$aws/provisioning-templates/other-template/provision/json"),
               ("iot:Publish", "topic/$aws/things/rainedge-core-1/shadow/name/rain/update"),
               ("iot:Subscribe", "topicfilter/$aws/things/rainedge-core-1/jobs/*"),
               ("iot:UpdateThingShadow", "thing/rainedge-core-1/rain"),
               ("iot:AssumeRoleWithCertificate", "rolealias/rainedge-tes-role-alias")]
    for action, resource in allowed:
        assert allows_any([document], action, f"{prefix}:{resource}"), (action, resource)
    for action, resource in refused:
        assert not allows_any([document], action, f"{prefix}:{resource}"), (action, resource)


def test_listed_devices_beyond_the_stack_limit_fail_at_synth_naming_the_largest_fleet_that_fits(synth_variant):
    with pytest.raises(ConfigError) as error:
        synth_variant(devices=json.dumps([f"pi-{i}" for i in range(100)]))
    message = str(error.value)
    assert message.startswith("devices: 100 listed devices make ") and "fleet provisioning" in message
    fits = int(message.split("at most ")[1].split()[0])
    assert len(synth_variant(devices=json.dumps([f"pi-{i}" for i in range(fits)]))["Resources"]) <= 500
    with pytest.raises(ConfigError, match=f"^devices: {fits + 1} listed devices"):
        synth_variant(devices=json.dumps([f"pi-{i}" for i in range(fits + 1)]))


def test_fleet_resources_do_not_grow_with_the_fleet(template, synth_variant):
    without = synth_variant(fleetProvisioning="false")
    three = synth_variant(devices=json.dumps(things(3)))
    three_without = synth_variant(devices=json.dumps(things(3)), fleetProvisioning="false")
    assert len(template["Resources"]) - len(without["Resources"]) == \
        len(three["Resources"]) - len(three_without["Resources"]) > 0
    assert not resources_of(without, "AWS::IoT::ProvisioningTemplate")
    assert "ClaimCertificateId" not in without["Outputs"]


# ---- the pre-provisioning hook ------------------------------------------------------------
@pytest.mark.parametrize("parameters, exists, allowed, reason", [
    ({"SerialNumber": SERIAL}, False, True, f"provisioning rainedge-{SERIAL}"),
    ({"SerialNumber": SERIAL}, True, False, "already exists"),
    ({"SerialNumber": SERIAL.upper()}, False, False, "does not match"),
    ({"SerialNumber": SERIAL + "0"}, False, False, "does not match"),
    ({"SerialNumber": "core-1"}, False, False, "does not match"),
    ({"SerialNumber": 12}, False, False, "does not match"),
    ({}, False, False, "does not match"),
    (None, False, False, "does not match"),
])
def test_the_hook_decides_from_the_serial_number(parameters, exists, allowed, reason):
    outcome = decide(parameters, "[0-9a-f]{16}", "rainedge", lambda name: exists)
    assert outcome[0] is allowed and reason in outcome[1]


def test_the_hook_refuses_names_aws_iot_or_the_app_cannot_use():
    assert decide({"SerialNumber": "a:b"}, ".+", "rainedge", lambda name: False)[0] is False
    assert decide({"SerialNumber": "a" * 60}, ".+", "rainedge", lambda name: False)[0] is False


CERTIFICATE_ID = "ab" * 32
OTHER_CERTIFICATE_ID = "cd" * 32
# Lambda quotas: "Environment variables | 4 KB, for all environment variables associated with the function, in aggregate".
MAX_ENVIRONMENT_BYTES = 4 * 1024


@pytest.fixture
def hook_account(template, monkeypatch):
    """A moto account with the ledger table as the template declares it, and the hook's synthesized settings."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    stack = SynthesizedStack(template)
    settings = stack.pre_provisioning_hook_settings(Pseudo(region="eu-west-1"))
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    (table,) = stack.of_type("AWS::DynamoDB::Table").values()
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(TableName=table["TableName"], KeySchema=table["KeySchema"],
                              AttributeDefinitions=table["AttributeDefinitions"], BillingMode="PAY_PER_REQUEST")
        yield SimpleNamespace(iot=boto3.client("iot"), dynamodb=dynamodb, table=table["TableName"], stack=stack)


def ledger_items(account) -> list[dict]:
    return account.dynamodb.scan(TableName=account.table, ConsistentRead=True)["Items"]


def register(serial: str, certificate_id: str = CERTIFICATE_ID) -> dict:
    return handler({"parameters": {"SerialNumber": serial}, "certificateId": certificate_id,
                    "claimCertificateId": "ef" * 32}, SimpleNamespace())


def test_the_hook_records_the_device_then_creates_the_policy_the_template_attaches(hook_account):
    assert register(SERIAL)["allowProvisioning"] is True
    thing = f"rainedge-{SERIAL}"
    device = provisioned(hook_account.stack, SERIAL, Pseudo(region="eu-west-1"))
    [item] = ledger_items(hook_account)
    assert item == {"thingName": {"S": thing}, "policyName": {"S": device.policy_name},
                    "certificateIds": {"SS": [CERTIFICATE_ID]}}
    policy = hook_account.iot.get_policy(policyName=device.policy_name)
    assert json.loads(policy["policyDocument"]) == device.policy_document
    # "If a Policy section is present, PolicyName or PolicyDocument, but not both, must be specified"
    # ("Provisioning templates", Policy resources): the template attaches the hook's policy by name.
    _, body = hook_account.stack.provisioning_template(Pseudo())
    (policy_resource,) = [r for r in body["Resources"].values() if r["Type"] == "AWS::IoT::Policy"]
    assert set(policy_resource["Properties"]) == {"PolicyName"}


def test_a_retried_registration_adds_its_certificate_to_the_same_record(hook_account):
    assert register(SERIAL)["allowProvisioning"] is True
    assert register(SERIAL, OTHER_CERTIFICATE_ID)["allowProvisioning"] is True  # the thing was never made
    [item] = ledger_items(hook_account)
    assert set(item["certificateIds"]["SS"]) == {CERTIFICATE_ID, OTHER_CERTIFICATE_ID}


def test_the_hook_puts_each_device_in_its_ring_whatever_the_device_sends(hook_account, monkeypatch):
    """The canary serials go to the canary group, every other device to the fleet's; a device that names a group
    itself gets the hook's answer, which overrides what it sent ("Pre-provisioning hooks": parameterOverrides)."""
    monkeypatch.setenv("CANARY_SERIALS", SERIAL)
    canary = register(SERIAL)
    other = handler({"parameters": {"SerialNumber": "20000000a1b2c3d4", RING_PARAMETER: "rainedge-canary"},
                     "certificateId": OTHER_CERTIFICATE_ID}, SimpleNamespace())
    assert canary == {"allowProvisioning": True, "parameterOverrides": {RING_PARAMETER: "rainedge-canary"}}
    assert other == {"allowProvisioning": True, "parameterOverrides": {RING_PARAMETER: "rainedge-cores"}}
    # The template puts the thing in the group the parameter names; without a value, in the fleet's.
    stack = hook_account.stack
    ring = stack.provisioned_thing({"SerialNumber": SERIAL, **canary["parameterOverrides"]}, Pseudo())
    assert ring.thing_groups == ("rainedge-canary",)
    assert provisioned(stack, SERIAL).thing_groups == ("rainedge-cores",)


def test_a_refused_device_gets_no_ring(hook_account):
    hook_account.iot.create_thing(thingName=f"rainedge-{SERIAL}")
    settings = hook_account.stack.pre_provisioning_hook_settings(Pseudo(region="eu-west-1"))
    response, reason = answer({"parameters": {"SerialNumber": SERIAL}, "certificateId": CERTIFICATE_ID}, settings,
                              hook_account.iot, hook_account.dynamodb)
    assert response == {"allowProvisioning": False} and "already exists" in reason


def test_the_hook_refuses_a_policy_name_it_did_not_record(hook_account):
    device = provisioned(hook_account.stack, SERIAL, Pseudo(region="eu-west-1"))
    hook_account.iot.create_policy(policyName=device.policy_name, policyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}))
    assert register(SERIAL) == {"allowProvisioning": False}
    assert ledger_items(hook_account) == []


@pytest.mark.parametrize("certificate_id", ["", "c", "ab" * 31, "zz" * 32, None, 7])
def test_the_hook_refuses_what_is_not_a_certificate_id_and_records_nothing(hook_account, certificate_id):
    assert register(SERIAL, certificate_id) == {"allowProvisioning": False}
    assert ledger_items(hook_account) == []


def test_the_hook_asks_aws_iot_whether_the_thing_exists(hook_account):
    hook_account.iot.create_thing(thingName=f"rainedge-{SERIAL}")
    assert register(SERIAL) == {"allowProvisioning": False}
    assert ledger_items(hook_account) == []


def test_the_hooks_environment_fits_lambdas_quota_at_worst_case_lengths(synth_variant):
    # As many serial numbers of the longest kind as canarySerials takes (MAX_CANARY_SERIALS_BYTES).
    serials = [f"{index:033x}" for index in range((MAX_CANARY_SERIALS_BYTES + 1) // 34)]
    stack = SynthesizedStack(synth_variant(namePrefix="r" * 30, serialNumberPattern="[0-9a-f]{33}",
                                           canarySerials=json.dumps(serials)))
    settings = stack.pre_provisioning_hook_settings(worst_case_pseudo())
    assert sum(len(name) + len(value.encode()) for name, value in settings.items()) <= MAX_ENVIRONMENT_BYTES


def test_the_hook_may_create_device_policies_only(template):
    stack = SynthesizedStack(template)
    statements = [statement for policy in stack.of_type("AWS::IAM::Policy").values()
                  for statement in policy["PolicyDocument"]["Statement"]
                  if "iot:CreatePolicy" in statement["Action"]]
    [statement] = statements
    assert resolve(statement["Resource"], Pseudo()) == "arn:aws:iot:us-east-1:123456789012:policy/rainedge-device-rainedge-*"


def test_a_policy_someone_else_makes_meanwhile_is_refused_and_left_unrecorded(hook_account, monkeypatch):
    iot = hook_account.iot
    create = iot.create_policy

    def raced(**params):
        create(policyName=params["policyName"], policyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}))
        return create(**params)
    monkeypatch.setattr(iot, "create_policy", raced)
    settings = hook_account.stack.pre_provisioning_hook_settings(Pseudo(region="eu-west-1"))
    event = {"parameters": {"SerialNumber": SERIAL}, "certificateId": CERTIFICATE_ID}

    allowed, reason = admit(event, settings, iot, hook_account.dynamodb)

    assert not allowed and "appeared" in reason
    assert ledger_items(hook_account) == []


def test_the_hook_may_read_and_write_only_the_ledgers_items(template):
    stack = SynthesizedStack(template)
    (table_id,) = stack.of_type("AWS::DynamoDB::Table")
    statements = [statement for policy in stack.of_type("AWS::IAM::Policy").values()
                  for statement in policy["PolicyDocument"]["Statement"]
                  if any(str(action).startswith("dynamodb:") for action in statement["Action"])]
    [statement] = statements
    assert sorted(statement["Action"]) == ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:UpdateItem"]
    assert statement["Resource"] == [{"Fn::GetAtt": [table_id, "Arn"]}]
