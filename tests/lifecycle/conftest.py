"""A moto account holding what the RainEdge stack deploys, plus a Stubber for GreengrassV2
(moto has no GreengrassV2). `FakeCloudFormation` plays CloudFormation's part: it creates the
template's resources and deletes them the way CloudFormation would, failing where it would."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto import mock_aws

from device_code.functions import FUNCTIONS
from infra.config import APP_TAG, STACK_NAME
from infra.device_keys import ensure_device_keys, read_csr
from infra.lifecycle.aws import AwsClients
from infra.lifecycle.settings import AppNames, load_names

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
# The stack's components (infra.components), for the ComponentNames output.
COMPONENT_SUFFIXES = ("Sensor", "ShadowWriter", "Inference", "RainModel", "DeviceRuntime")


def sign_csr(csr_pem: bytes) -> str:
    """What AWS IoT does with the stack's CSR: a certificate for the CSR's own public key.
    (moto's create_certificate_from_csr makes up a new key, so it cannot stand in here.)"""
    csr = x509.load_pem_x509_csr(csr_pem)
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test IoT CA")])
    now = datetime.now(timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(issuer)
                   .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
                   .sign(issuer_key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials only: nothing here may reach a real account."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def session(aws_env: None):
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


class GreengrassStub:
    """Queues GreengrassV2 answers in the order the code under test must ask for them."""

    def __init__(self, session: boto3.session.Session) -> None:
        self.client = session.client("greengrassv2", region_name=REGION)
        self.stubber = Stubber(self.client)
        self.stubber.activate()

    def answer(self, operation: str, response: dict[str, Any], params: dict[str, Any] | None = None) -> None:
        self.stubber.add_response(operation, response, params)

    def fail(self, operation: str, code: str, params: dict[str, Any] | None = None, status: int = 400) -> None:
        self.stubber.add_client_error(operation, service_error_code=code, service_message=code,
                                      http_status_code=status, expected_params=params)

    def gone(self, operation: str, params: dict[str, Any] | None = None) -> None:
        self.fail(operation, "ResourceNotFoundException", params, 404)

    def no_deployments_or_components(self) -> None:
        self.answer("list_deployments", {"deployments": []}, {"historyFilter": "ALL"})
        self.answer("list_components", {"components": []}, {"scope": "PRIVATE"})

    def clean_audit(self, things: Sequence[str]) -> None:
        for thing in things:
            self.gone("get_core_device", {"coreDeviceThingName": thing})
        self.answer("list_components", {"components": []}, {"scope": "PRIVATE"})
        self.answer("list_deployments", {"deployments": []}, {"historyFilter": "ALL"})


@pytest.fixture
def greengrass(session: boto3.session.Session):
    stub = GreengrassStub(session)
    yield stub
    stub.stubber.assert_no_pending_responses()


@pytest.fixture
def clients(session: boto3.session.Session, greengrass: GreengrassStub) -> AwsClients:
    return AwsClients(session, overrides={"greengrassv2": greengrass.client})


@pytest.fixture
def names(tmp_path: Path, project_root: Path) -> AppNames:
    """The app's names, read from a copy of the real cdk.json in a scratch project root."""
    shutil.copy(project_root / "cdk.json", tmp_path / "cdk.json")
    return load_names(tmp_path)


@dataclass
class FakeCloudFormation:
    """Creates the RainEdge template's resources in moto and deletes them like CloudFormation."""

    clients: AwsClients
    names: AppNames
    certificates: dict[str, dict[str, str]] = field(default_factory=dict)
    bucket: str = "rainedge-artifactsbucket-0123abcd"
    calls: list[list[str]] = field(default_factory=list)

    @property
    def devices(self) -> tuple[str, ...]:
        return self.names.config.devices

    def deploy(self) -> dict[str, str]:
        iot, config = self.clients.iot, self.names.config
        role_arn = self.clients.iam.create_role(
            RoleName=config.token_exchange_role_name,
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "credentials.iot.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
        iot.create_role_alias(roleAlias=config.role_alias_name, roleArn=role_arn)
        iot.create_thing_group(thingGroupName=config.thing_group_name)
        for thing in self.devices:
            ensure_device_keys(self.names.secrets_dir, thing)
            csr = read_csr(self.names.secrets_dir, thing).encode()
            cert = iot.register_certificate_without_ca(certificatePem=sign_csr(csr), status="ACTIVE")
            self.certificates[thing] = {"id": cert["certificateId"], "arn": cert["certificateArn"]}
            iot.create_thing(thingName=thing, attributePayload={"attributes": {APP_TAG: config.name_prefix}})
            iot.create_policy(policyName=config.device_policy_name(thing), policyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}))
            iot.attach_policy(policyName=config.device_policy_name(thing), target=cert["certificateArn"])
            iot.attach_thing_principal(thingName=thing, principal=cert["certificateArn"])
            iot.add_thing_to_thing_group(thingGroupName=config.thing_group_name, thingName=thing)
        bucket = self.bucket
        self.clients.s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.clients.s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [
            {"Key": APP_TAG, "Value": config.name_prefix}]})
        self.clients.s3.put_object(Bucket=bucket, Key="models/rain_model-abc.zip", Body=b"model")
        outputs = {
            "ThingNames": ",".join(self.devices),
            "ThingGroupName": config.thing_group_name,
            "RoleAliasName": config.role_alias_name,
            "TokenExchangeRoleName": config.token_exchange_role_name,
            "ArtifactBucketName": bucket,
            "Region": REGION,
            "DeploymentId": "11111111-2222-3333-4444-555555555555",
            "ComponentNames": ",".join(config.component_name(suffix) for suffix in COMPONENT_SUFFIXES),
            "FunctionNames": ",".join(config.function_name(function.name) for function in FUNCTIONS),
            "NamePrefix": config.name_prefix,
            "ComponentPrefix": config.component_prefix,
            "Devices": json.dumps([{"thingName": thing, "certificateId": self.certificates[thing]["id"],
                                    "policyName": config.device_policy_name(thing)} for thing in self.devices]),
        }
        template = {
            "Resources": {"Marker": {"Type": "AWS::SSM::Parameter",
                                     "Properties": {"Type": "String", "Value": "x", "Name": "/rainedge/marker"}}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
        self.clients.cloudformation.create_stack(StackName=STACK_NAME, TemplateBody=json.dumps(template))
        return outputs

    def cdk(self, args: Sequence[str]) -> int:
        """Stands in for `cdk destroy --force RainEdge`: exit 1 when a delete fails, as CloudFormation's would."""
        self.calls.append(list(args))
        assert list(args) == ["destroy", "--force", STACK_NAME]
        try:
            self._delete_resources()
        except ClientError:
            return 1
        self.clients.cloudformation.delete_stack(StackName=STACK_NAME)
        return 0

    def _delete_resources(self) -> None:
        iot, config = self.clients.iot, self.names.config
        for thing in self.devices:
            iot.remove_thing_from_thing_group(thingGroupName=config.thing_group_name, thingName=thing)
        iot.delete_thing_group(thingGroupName=config.thing_group_name)
        for thing, cert in self.certificates.items():
            iot.detach_thing_principal(thingName=thing, principal=cert["arn"])
            iot.detach_policy(policyName=config.device_policy_name(thing), target=cert["arn"])
            iot.update_certificate(certificateId=cert["id"], newStatus="INACTIVE")
            iot.delete_certificate(certificateId=cert["id"])
            iot.delete_thing(thingName=thing)
            iot.delete_policy(policyName=config.device_policy_name(thing))
        iot.delete_role_alias(roleAlias=config.role_alias_name)
        self.clients.iam.delete_role(RoleName=config.token_exchange_role_name)
        for item in self.clients.s3.list_objects_v2(Bucket=self.bucket).get("Contents", []):
            self.clients.s3.delete_object(Bucket=self.bucket, Key=item["Key"])
        self.clients.s3.delete_bucket(Bucket=self.bucket)


@pytest.fixture
def cloudformation(clients: AwsClients, names: AppNames) -> FakeCloudFormation:
    return FakeCloudFormation(clients, names)


@pytest.fixture
def deployed(cloudformation: FakeCloudFormation) -> FakeCloudFormation:
    cloudformation.deploy()
    return cloudformation
