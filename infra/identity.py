"""Who the core devices are and what they may do: things, certificates, the IoT policy,
the thing group, and the token-exchange role behind the role alias."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_s3 as s3
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.artifacts import helper_log_group
from infra.config import APP_TAG, RainEdgeConfig
from infra.core_policy import core_policy_document
from infra.device_keys import read_csr
from infra.nag import acknowledge_wildcard_resources, nag_arn

@dataclass(frozen=True)
class CoreDevice:
    thing_name: str
    thing: iot.CfnThing
    certificate: iot.CfnCertificate
    policy_name: str


class DeviceIdentity(Construct):
    """Per listed device: thing, certificate (from its CSR) and its own IoT policy; the two rings' thing
    groups, each device in one of them; the token-exchange role + role alias every core uses."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: RainEdgeConfig,
        secrets_dir: Path,
        artifact_bucket: s3.IBucket,
        artifact_prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.token_exchange_role = self._token_exchange_role(config, artifact_bucket, artifact_prefix)
        self.role_alias = iot.CfnRoleAlias(
            self,
            "RoleAlias",
            role_alias=config.role_alias_name,
            role_arn=self.token_exchange_role.role_arn,
            credential_duration_seconds=3600,
        )
        self.role_alias_arn = stack.format_arn(
            service="iot", resource="rolealias", resource_name=config.role_alias_name
        )
        self.thing_group = iot.CfnThingGroup(
            self,
            "CoreGroup",
            thing_group_name=config.thing_group_name,
            thing_group_properties=iot.CfnThingGroup.ThingGroupPropertiesProperty(
                thing_group_description=f"Greengrass core devices of {config.name_prefix}",
            ),
        )
        self.thing_group_arn = self.thing_group.attr_arn
        self.canary_group = iot.CfnThingGroup(
            self,
            "CanaryGroup",
            thing_group_name=config.canary_group_name,
            thing_group_properties=iot.CfnThingGroup.ThingGroupPropertiesProperty(
                thing_group_description=f"Canary ring of {config.name_prefix}: core devices that run a candidate "
                                        "model before the fleet does",
            ),
        )
        self._groups = {config.thing_group_name: self.thing_group, config.canary_group_name: self.canary_group}
        self.membership_logs = helper_log_group(self, "GroupMembershipLogs")
        self.devices = [
            self._core_device(config, stack, secrets_dir, index, thing_name)
            for index, thing_name in enumerate(config.devices, start=1)
        ]

    def _core_device(
        self, config: RainEdgeConfig, stack: Stack, secrets_dir: Path, index: int, thing_name: str
    ) -> CoreDevice:
        scope = Construct(self, f"Device{index}")
        thing = iot.CfnThing(
            scope,
            "Thing",
            thing_name=thing_name,
            # Things take no tags; the attribute is how teardown recognises the app's things.
            attribute_payload=iot.CfnThing.AttributePayloadProperty(attributes={APP_TAG: config.name_prefix}),
        )
        certificate = iot.CfnCertificate(
            scope,
            "Certificate",
            certificate_signing_request=read_csr(secrets_dir, thing_name),
            status="ACTIVE",
        )
        policy_name = config.device_policy_name(thing_name)
        policy = iot.CfnPolicy(
            scope,
            "Policy",
            policy_name=policy_name,
            policy_document=core_policy_document(
                lambda resource, name: stack.format_arn(service="iot", resource=resource, resource_name=name),
                thing_name,
                self.role_alias_arn,
            ),
        )
        policy_attachment = iot.CfnPolicyPrincipalAttachment(
            scope, "PolicyAttachment", policy_name=policy_name, principal=certificate.attr_arn
        )
        policy_attachment.node.add_dependency(policy)
        thing_attachment = iot.CfnThingPrincipalAttachment(
            scope, "ThingAttachment", thing_name=thing_name, principal=certificate.attr_arn
        )
        thing_attachment.node.add_dependency(thing)
        self._add_to_group(scope, stack, thing, thing_name, config.ring_group(thing_name))
        return CoreDevice(thing_name=thing_name, thing=thing, certificate=certificate, policy_name=policy_name)

    def _add_to_group(
        self, scope: Construct, stack: Stack, thing: iot.CfnThing, thing_name: str, group_name: str
    ) -> None:
        # CloudFormation has no resource for thing-group membership; the SDK calls below are
        # the whole of it, and the delete call runs before the group and thing are deleted.
        membership = {"thingName": thing_name, "thingGroupName": group_name}
        thing_arn = stack.format_arn(service="iot", resource="thing", resource_name=thing_name)
        group_arn = stack.format_arn(service="iot", resource="thinggroup", resource_name=group_name)
        member = cr.AwsCustomResource(
            scope,
            "GroupMembership",
            on_create=cr.AwsSdkCall(
                service="Iot",
                action="addThingToThingGroup",
                parameters=membership,
                physical_resource_id=cr.PhysicalResourceId.of(f"{group_name}/{thing_name}"),
            ),
            on_delete=cr.AwsSdkCall(
                service="Iot", action="removeThingFromThingGroup", parameters=membership
            ),
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        actions=["iot:AddThingToThingGroup", "iot:RemoveThingFromThingGroup"],
                        resources=[thing_arn, group_arn],
                    )
                ]
            ),
            install_latest_aws_sdk=False,
            log_group=self.membership_logs,
        )
        member.node.add_dependency(thing, self._groups[group_name])

    def _token_exchange_role(
        self, config: RainEdgeConfig, bucket: s3.IBucket, artifact_prefix: str
    ) -> iam.Role:
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "TokenExchangeRole",
            role_name=config.token_exchange_role_name,
            assumed_by=iam.ServicePrincipal("credentials.iot.amazonaws.com"),
            description="Greengrass token-exchange role: read the artifacts, write device logs",
        )
        device_logs = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/greengrass/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        artifacts = bucket.arn_for_objects(f"{artifact_prefix}*")
        statements = [
            iam.PolicyStatement(sid="ReadArtifacts", actions=["s3:GetObject"], resources=[artifacts]),
            iam.PolicyStatement(
                sid="LocateArtifactBucket", actions=["s3:GetBucketLocation"], resources=[bucket.bucket_arn]
            ),
            iam.PolicyStatement(
                sid="DeviceLogs",
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[device_logs],
            ),
        ]
        policy = iam.Policy(self, "TokenExchangePolicy", statements=statements, roles=[role])
        acknowledge_wildcard_resources(policy, {
            f"<{stack.get_logical_id(bucket.node.default_child)}.Arn>/{artifact_prefix}*":
                "Devices read every artifact under the stack's artifact prefix; keys are "
                "content-hashed, so the set of objects is not known when the policy is written.",
            f"{nag_arn(stack, 'logs')}:log-group:/aws/greengrass/*":
                "Greengrass's log manager names its log groups /aws/greengrass/<type>/<region>/<component>; "
                "the policy is limited to that prefix.",
        })
        return role
