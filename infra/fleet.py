"""Fleet provisioning by claim: any number of Pis join without a stack change.

A device presents the shared claim certificate, sends its own CSR and its serial number; AWS IoT
asks the pre-provisioning hook, then runs the provisioning template: thing `<prefix>-<serial>` with
the app's attribute in the core thing group (so the deployment reaches it), a certificate from the
device's CSR (its private key never leaves it) and its own IoT policy with the same scope as a
listed device's, which the hook records in the ledger and creates (AWS IoT developer guide, "Provisioning devices that don't have device certificates
using fleet provisioning" / "Provisioning templates"; Greengrass V2 developer guide, "Set up AWS
IoT fleet provisioning for Greengrass core devices").
"""
from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.artifacts import helper_log_group
from infra.config import APP_TAG, FLEET_HOOK_SOURCE, RainEdgeConfig
from infra.core_policy import core_policy_document
from infra.device_keys import read_csr
from infra.fleet_hook.handler import RING_PARAMETER, SERIAL_PARAMETER, THING_SLOT
from infra.ledger import DeviceLedger
from infra.nag import MANAGED_LOGS_POLICY, acknowledge, acknowledge_wildcard_resources, nag_arn

HOOK_SOURCE = Path(__file__).resolve().parent.parent / FLEET_HOOK_SOURCE
CERTIFICATE_ID_PARAMETER = "AWS::IoT::Certificate::Id"
# arn:aws:iam::aws:policy/service-role/AWSIoTThingsRegistration (AWS managed policy reference).
THINGS_REGISTRATION_POLICY = "service-role/AWSIoTThingsRegistration"
# "Status: ACTIVE or INACTIVE" of an AWS::IoT::Certificate in a template ("Provisioning templates").
PROVISIONED_CERTIFICATE_STATUS = "ACTIVE"
# MQTT API of fleet provisioning with JSON payloads, which the Greengrass plugin uses (AWS IoT
# developer guide, "Device provisioning MQTT API": CreateCertificateFromCsr, RegisterThing).
CREATE_FROM_CSR = "$aws/certificates/create-from-csr/json"


def register_thing_topic(template_name: str) -> str:
    return f"$aws/provisioning-templates/{template_name}/provision/json"


class FleetProvisioning(Construct):
    """Claim certificate + claim policy, provisioning role, pre-provisioning hook and the template."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: RainEdgeConfig,
        secrets_dir: Path,
        thing_group_name: str,
        role_alias_arn: str,
        ledger: DeviceLedger,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.config = config
        self.template_name = config.provisioning_template_name

        def iot_arn(resource: str, name: str) -> str:
            return stack.format_arn(service="iot", resource=resource, resource_name=name)
        hook = self._hook(config, stack, ledger, stack.to_json_string(
            core_policy_document(iot_arn, THING_SLOT, role_alias_arn)))
        # The hook's resource policy names the account only: "Pre-provisioning hooks" asks for a source ARN
        # or account without saying which ARN AWS IoT presents, and a wrong guess refuses every device.
        hook.add_permission(
            "IotInvokes",
            principal=iam.ServicePrincipal("iot.amazonaws.com"),
            source_account=stack.account,
        )
        role = self._provisioning_role()
        body = provisioning_template_body(config, thing_group_name)
        self.template = iot.CfnProvisioningTemplate(
            self,
            "Template",
            template_name=self.template_name,
            description=f"Greengrass core devices of {config.name_prefix}, provisioned by claim",
            enabled=True,
            provisioning_role_arn=role.role_arn,
            template_body=stack.to_json_string(body),
            pre_provisioning_hook=iot.CfnProvisioningTemplate.ProvisioningHookProperty(
                target_arn=hook.function_arn, payload_version="2020-04-01"),
        )
        self.template.node.add_dependency(hook.permissions_node.find_child("IotInvokes"))
        self.claim_certificate = iot.CfnCertificate(
            self,
            "ClaimCertificate",
            certificate_signing_request=read_csr(secrets_dir, config.claim_name),
            status="ACTIVE",
        )
        claim_policy = iot.CfnPolicy(
            self,
            "ClaimPolicy",
            policy_name=config.claim_policy_name,
            policy_document=claim_policy_document(iot_arn, config, self.template_name),
        )
        attachment = iot.CfnPolicyPrincipalAttachment(
            self, "ClaimPolicyAttachment", policy_name=config.claim_policy_name,
            principal=self.claim_certificate.attr_arn)
        attachment.node.add_dependency(claim_policy)

    @property
    def outputs(self) -> dict[str, str]:
        """Stack outputs: what fleet-bundle, status and teardown need."""
        return {"ProvisioningTemplateName": self.template_name,
                "ClaimCertificateId": self.claim_certificate.attr_id,
                "ClaimPolicyName": self.config.claim_policy_name,
                "SerialNumberPattern": self.config.serial_number_pattern}

    def _hook(self, config: RainEdgeConfig, stack: Stack, ledger: DeviceLedger,
              device_policy_document: str) -> lambda_.Function:
        function = lambda_.Function(
            self,
            "PreProvisioningHook",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(HOOK_SOURCE), exclude=["__pycache__", "*.pyc"]),
            # AWS IoT waits 5 s for the answer ("Pre-provisioning hooks").
            timeout=Duration.seconds(5),
            environment={"SERIAL_NUMBER_PATTERN": config.serial_number_pattern, "NAME_PREFIX": config.name_prefix,
                         "LEDGER_TABLE": ledger.table.table_name, "DEVICE_POLICY_DOCUMENT": device_policy_document,
                         "FLEET_GROUP": config.thing_group_name, "CANARY_GROUP": config.canary_group_name,
                         "CANARY_SERIALS": ",".join(config.canary_serials)},
            log_group=helper_log_group(self, "PreProvisioningHookLogs"),
            description="rainedge fleet provisioning: refuse bad serial numbers and existing things, record the rest",
        )
        function.add_to_role_policy(iam.PolicyStatement(
            actions=["iot:DescribeThing"],
            resources=[stack.format_arn(service="iot", resource="thing", resource_name=f"{config.name_prefix}-*")],
        ))
        device_policies = config.device_policy_name(f"{config.name_prefix}-*")
        function.add_to_role_policy(iam.PolicyStatement(
            actions=["iot:GetPolicy", "iot:CreatePolicy"],
            resources=[stack.format_arn(service="iot", resource="policy", resource_name=device_policies)],
        ))
        ledger.table.grant(function, "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
        acknowledge(function, MANAGED_LOGS_POLICY,
                    "The hook writes its own logs through the AWS managed AWSLambdaBasicExecutionRole "
                    "(CloudWatch Logs only), into a log group the stack owns.")
        acknowledge_wildcard_resources(function, {
            f"{nag_arn(stack, 'iot')}:thing/{config.name_prefix}-*":
                "The hook checks whether the thing a serial number would create already exists; "
                "provisioned things are named <prefix>-<serial>.",
            f"{nag_arn(stack, 'iot')}:policy/{device_policies}":
                "The hook creates the policy of the device it admits, named after its thing <prefix>-<serial>."})
        return function

    def _provisioning_role(self) -> iam.Role:
        """The role AWS IoT assumes to carry out the template: the AWS managed policy
        AWSIoTThingsRegistration, which AWS's guides attach for this ("Set up AWS IoT fleet provisioning
        for Greengrass core devices", step "Create a fleet provisioning template": the provisioning role gets
        `arn:aws:iam::aws:policy/service-role/AWSIoTThingsRegistration`). AWS does not document which calls RegisterThing
        makes, so a hand-written subset is a guess that fails on a real account (the last one granted
        iot:AttachThingPrincipal on things, whose resource type is the certificate)."""
        role = iam.Role(
            self,
            "ProvisioningRole",
            assumed_by=iam.ServicePrincipal("iot.amazonaws.com"),
            description="rainedge fleet provisioning: create <prefix>-<serial> things, attach their certificate and policy",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(THINGS_REGISTRATION_POLICY)],
        )
        acknowledge(role, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{THINGS_REGISTRATION_POLICY}]",
                    "AWS's fleet-provisioning guide gives the provisioning role this managed policy; the calls "
                    "RegisterThing makes are not documented, so a narrower policy cannot be shown to cover them. "
                    "Only AWS IoT can assume the role, and only for this stack's template.")
        return role


def provisioning_template_body(config: RainEdgeConfig, thing_group_name: str) -> dict:
    """The provisioning template (AWS IoT developer guide, "Provisioning templates"): parameters
    SerialNumber and the certificate id; the thing `<prefix>-<serial>`, its certificate, and the
    device's policy by name, which the hook has recorded and created ("If you are using an existing
    AWS IoT policy, for the PolicyName property, enter the name of the policy")."""
    thing = {"Fn::Join": ["", [f"{config.name_prefix}-", {"Ref": SERIAL_PARAMETER}]]}
    return {
        # The ring's group is a parameter with a default, as in the guide's example ("ThingGroups" :
        # ["v1-lightbulbs", {"Ref" : "Location"}], Location "Default" : "WA"); the hook always overrides it.
        "Parameters": {SERIAL_PARAMETER: {"Type": "String"}, CERTIFICATE_ID_PARAMETER: {"Type": "String"},
                       RING_PARAMETER: {"Type": "String", "Default": thing_group_name}},
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {
                    "ThingName": thing,
                    "AttributePayload": {APP_TAG: config.name_prefix},
                    "ThingGroups": [{"Ref": RING_PARAMETER}],
                },
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": CERTIFICATE_ID_PARAMETER}, "Status": PROVISIONED_CERTIFICATE_STATUS},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": {"Fn::Join": [
                "", [config.device_policy_name(f"{config.name_prefix}-"), {"Ref": SERIAL_PARAMETER}]]}}},
        },
    }


def claim_policy_document(iot_arn, config: RainEdgeConfig, template_name: str) -> dict:
    """The claim certificate's policy: connect as `<prefix>-claim-<serial>` (the plugin's deviceId)
    and use only the fleet-provisioning MQTT API of this template."""
    apis = [CREATE_FROM_CSR, register_thing_topic(template_name)]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": iot_arn("client", f"{config.claim_name}-*")},
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": [iot_arn("topic", api) for api in apis]},
            {"Effect": "Allow", "Action": "iot:Receive", "Resource": [iot_arn("topic", f"{api}/*") for api in apis]},
            {"Effect": "Allow", "Action": "iot:Subscribe",
             "Resource": [iot_arn("topicfilter", f"{api}/*") for api in apis]},
        ],
    }
