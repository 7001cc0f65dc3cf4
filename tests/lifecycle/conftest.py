"""A moto account holding what the RainEdge stack deploys, plus GreengrassV2 (which moto lacks): an
in-memory stand-in for teardown and audit, or a Stubber where a test pins the exact calls (status). `FakeCloudFormation` plays CloudFormation's part for the real
synthesised template: it creates each resource of the template in moto, in dependency order,
with the stack tags CDK puts in the cloud assembly, and deletes them in reverse the way
CloudFormation would, failing where it would."""
from __future__ import annotations

import io
import json
import re
import shutil
import socket
import uuid
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import boto3
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto import mock_aws

from infra.config import STACK_NAME
from infra.fleet_hook.handler import SERIAL_PARAMETER, answer, thing_name
from infra.index_settings import handler as index_settings
from infra.lifecycle.aws import AwsClients
from infra.lifecycle.settings import AppNames, load_names
from infra.synthesized import Pseudo, SynthesizedStack, resolve, template_parameters
from infra_support import synthesize

REGION = "eu-west-1"
OTHER_REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


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


# ---- the synthesised app ----------------------------------------------------------------------
@dataclass(frozen=True)
class SynthesizedApp:
    """The RainEdge template and stack tags of one configuration, and the keys its CSRs came from."""

    template: dict[str, Any]
    stack_tags: dict[str, str]
    secrets_dir: Path


def stack_tags(out_dir: Path) -> dict[str, str]:
    """The tags `cdk deploy` puts on the stack: CDK writes them into the cloud assembly's manifest."""
    manifest = json.loads((out_dir / "manifest.json").read_text())
    return manifest["artifacts"][STACK_NAME]["properties"]["tags"]


@pytest.fixture(scope="session")
def app_default(synthesized, secrets_dir) -> SynthesizedApp:
    """The app as cdk.json configures it."""
    out_dir, template = synthesized
    return SynthesizedApp(template, stack_tags(out_dir), secrets_dir)


@pytest.fixture(scope="session")
def app_wx(trained_model_dir, tmp_path_factory) -> SynthesizedApp:
    """The app deployed with `-c namePrefix=wx -c componentPrefix=com.wx`."""
    folder = tmp_path_factory.mktemp("app-wx")
    template = synthesize(folder / "cdk.out", folder / "secrets", namePrefix="wx", componentPrefix="com.wx")
    return SynthesizedApp(template, stack_tags(folder / "cdk.out"), folder / "secrets")


# ---- the account ------------------------------------------------------------------------------
@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials only: nothing here may reach a real account."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_REGION", raising=False)
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

    def components_deleted(self, listed: Sequence[str], ours: dict[str, str]) -> None:
        """list_components finds `listed`; each of `ours` (name -> version) has its version deleted."""
        self.answer("list_components", {"components": [{"arn": component_arn(name), "componentName": name}
                                                       for name in listed]}, {"scope": "PRIVATE"})
        for name, version in ours.items():
            versions = [{"componentName": name, "componentVersion": version, "arn": component_arn(name, version)}]
            self.answer("list_component_versions", {"componentVersions": versions}, {"arn": component_arn(name)})
            self.answer("delete_component", {}, {"arn": component_arn(name, version)})

    def clean_audit(self, things: Sequence[str], with_outputs: bool = True) -> None:
        for thing in things:
            self.gone("get_core_device", {"coreDeviceThingName": thing})
        if with_outputs:
            self.answer("list_components", {"components": []}, {"scope": "PRIVATE"})
            self.answer("list_deployments", {"deployments": []}, {"historyFilter": "ALL"})


@pytest.fixture
def greengrass(session: boto3.session.Session):
    stub = GreengrassStub(session)
    yield stub
    stub.stubber.assert_no_pending_responses()


def _not_found(operation: str, what: str) -> ClientError:
    return ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": f"{what} not found"},
                        "ResponseMetadata": {"HTTPStatusCode": 404}}, operation)


class FakeGreengrassV2:
    """GreengrassV2 in memory, as far as teardown and audit use it: core-device records, deployments and
    component versions, answering with the service's error codes (API reference: DeleteDeployment needs a
    cancelled deployment, "To delete an active deployment, you must first cancel it")."""

    def __init__(self) -> None:
        self.core_devices: set[str] = set()
        self.deployments: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, tuple[str, str]] = {}  # version ARN -> (component name, version)
        self.effective: dict[str, list[dict[str, Any]]] = {}  # core device -> its effective deployments
        self.still_cancelling = 0  # how many DeleteDeployment calls after a cancel answer ConflictException

    def get_core_device(self, coreDeviceThingName: str) -> dict[str, Any]:
        if coreDeviceThingName not in self.core_devices:
            raise _not_found("GetCoreDevice", coreDeviceThingName)
        return {"coreDeviceThingName": coreDeviceThingName, "status": "HEALTHY"}

    def delete_core_device(self, coreDeviceThingName: str) -> dict[str, Any]:
        self.get_core_device(coreDeviceThingName)
        self.core_devices.discard(coreDeviceThingName)
        return {}

    def add_deployment(self, deployment_id: str, name: str, target_arn: str, status: str = "ACTIVE",
                       created: datetime = datetime(2026, 11, 26, tzinfo=timezone.utc)) -> None:
        self.deployments[deployment_id] = {"deploymentId": deployment_id, "deploymentName": name,
                                           "targetArn": target_arn, "deploymentStatus": status, "revisionId": "1",
                                           "creationTimestamp": created, "isLatestForTarget": True}

    def get_deployment(self, deploymentId: str) -> dict[str, Any]:
        if deploymentId not in self.deployments:
            raise _not_found("GetDeployment", deploymentId)
        return dict(self.deployments[deploymentId])

    def list_effective_deployments(self, coreDeviceThingName: str, **_: Any) -> dict[str, Any]:
        return {"effectiveDeployments": [dict(item) for item in self.effective.get(coreDeviceThingName, [])]}

    def list_deployments(self, historyFilter: str = "LATEST_ONLY", **_: Any) -> dict[str, Any]:
        return {"deployments": [dict(item) for item in self.deployments.values()]}

    def cancel_deployment(self, deploymentId: str) -> dict[str, Any]:
        if deploymentId not in self.deployments:
            raise _not_found("CancelDeployment", deploymentId)
        self.deployments[deploymentId]["deploymentStatus"] = "CANCELED"
        return {}

    def delete_deployment(self, deploymentId: str) -> dict[str, Any]:
        deployment = self.deployments.get(deploymentId)
        if deployment is None:
            raise _not_found("DeleteDeployment", deploymentId)
        if deployment["deploymentStatus"] == "ACTIVE" or self.still_cancelling:
            self.still_cancelling = max(0, self.still_cancelling - 1)
            raise ClientError({"Error": {"Code": "ConflictException", "Message": "cancel the deployment first"},
                               "ResponseMetadata": {"HTTPStatusCode": 409}}, "DeleteDeployment")
        del self.deployments[deploymentId]
        return {}

    def add_component(self, name: str, version: str) -> str:
        self.versions[component_arn(name, version)] = (name, version)
        return component_arn(name, version)

    def list_components(self, scope: str = "PRIVATE", **_: Any) -> dict[str, Any]:
        names = dict.fromkeys(name for name, _ in self.versions.values())
        return {"components": [{"arn": component_arn(name), "componentName": name} for name in names]}

    def list_component_versions(self, arn: str, **_: Any) -> dict[str, Any]:
        return {"componentVersions": [{"componentName": name, "componentVersion": version, "arn": version_arn}
                                      for version_arn, (name, version) in self.versions.items()
                                      if component_arn(name) == arn]}

    def describe_component(self, arn: str) -> dict[str, Any]:
        if arn not in self.versions:
            raise _not_found("DescribeComponent", arn)
        name, version = self.versions[arn]
        return {"arn": arn, "componentName": name, "componentVersion": version}

    def delete_component(self, arn: str) -> dict[str, Any]:
        self.describe_component(arn)
        del self.versions[arn]
        return {}


class FakeAthena:
    """Athena in memory, as far as the stack's workgroup and named queries use it: moto serves Athena's
    JSON protocol, but botocore now speaks rest-json to Athena, which moto answers "Not yet implemented".
    Answers follow the API reference: every account has the workgroup "primary"; a workgroup holding named
    queries is deleted only with RecursiveDeleteOption; what does not exist is an InvalidRequestException."""

    def __init__(self) -> None:
        self.work_groups: dict[str, dict[str, Any]] = {"primary": {"Name": "primary"}}
        self.named_queries: dict[str, dict[str, Any]] = {}

    @staticmethod
    def _invalid(operation: str, message: str) -> ClientError:
        return ClientError({"Error": {"Code": "InvalidRequestException", "Message": message},
                            "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)

    def create_work_group(self, Name: str, **settings: Any) -> dict[str, Any]:
        if Name in self.work_groups:
            raise self._invalid("CreateWorkGroup", f"WorkGroup {Name} is already created")
        self.work_groups[Name] = {"Name": Name, **settings}
        return {}

    def list_work_groups(self, **_: Any) -> dict[str, Any]:
        return {"WorkGroups": [{"Name": name, "State": "ENABLED"} for name in self.work_groups]}

    def delete_work_group(self, WorkGroup: str, RecursiveDeleteOption: bool = False) -> dict[str, Any]:
        if WorkGroup not in self.work_groups:
            raise self._invalid("DeleteWorkGroup", f"WorkGroup {WorkGroup} is not found.")
        held = [key for key, query in self.named_queries.items() if query["WorkGroup"] == WorkGroup]
        if held and not RecursiveDeleteOption:
            raise self._invalid("DeleteWorkGroup", f"WorkGroup {WorkGroup} is not empty")
        for key in held:
            del self.named_queries[key]
        del self.work_groups[WorkGroup]
        return {}

    def create_named_query(self, WorkGroup: str = "primary", **query: Any) -> dict[str, Any]:
        if WorkGroup not in self.work_groups:
            raise self._invalid("CreateNamedQuery", f"WorkGroup {WorkGroup} is not found.")
        query_id = str(uuid.uuid4())
        self.named_queries[query_id] = {"WorkGroup": WorkGroup, **query}
        return {"NamedQueryId": query_id}

    def delete_named_query(self, NamedQueryId: str) -> dict[str, Any]:
        if self.named_queries.pop(NamedQueryId, None) is None:
            raise self._invalid("DeleteNamedQuery", f"NamedQuery {NamedQueryId} is not found.")
        return {}


@pytest.fixture
def fake_greengrass() -> FakeGreengrassV2:
    return FakeGreengrassV2()


@pytest.fixture
def fake_athena() -> FakeAthena:
    return FakeAthena()


@pytest.fixture
def clients(request: pytest.FixtureRequest, session: boto3.session.Session,
            fake_greengrass: FakeGreengrassV2, fake_athena: FakeAthena) -> AwsClients:
    """The account's clients; GreengrassV2 is the Stubber when the test asks for `greengrass`, else the stand-in;
    Athena is the stand-in."""
    if "greengrass" in request.fixturenames:
        return AwsClients(session, overrides={"greengrassv2": request.getfixturevalue("greengrass").client,
                                              "athena": fake_athena})
    return AwsClients(session, overrides={"greengrassv2": fake_greengrass, "athena": fake_athena})


@dataclass
class Faults:
    """Errors to answer instead of calling AWS: the next calls of an operation, or the n-th call of all."""

    planned: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (service, operation) -> codes
    at_call: int | None = None  # index into `calls` of the one call that fails with `code`
    code: str = "AccessDeniedException"
    calls: list[tuple[str, str]] = field(default_factory=list)

    def check(self, service: str, operation: str) -> None:
        self.calls.append((service, operation))
        codes = self.planned.get((service, operation))
        code = codes.pop(0) if codes else (self.code if len(self.calls) - 1 == self.at_call else None)
        if code is not None:
            status = 429 if "Throttl" in code else 409 if "Conflict" in code else 403
            raise ClientError({"Error": {"Code": code, "Message": f"injected {code}"},
                               "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


class _FaultyClient:
    def __init__(self, service: str, client: Any, faults: Faults) -> None:
        self._service, self._client, self._faults = service, client, faults

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name in ("exceptions", "meta") or not callable(attribute):
            return attribute

        def call(**params: Any) -> Any:
            self._faults.check(self._service, name)
            return attribute(**params)
        return call


@dataclass
class FaultyClients:
    """AwsClients whose every call goes through `faults` first (the code under test sees the same interface)."""

    inner: AwsClients
    faults: Faults = field(default_factory=Faults)

    @property
    def region(self) -> str:
        return self.inner.region

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _FaultyClient(name, getattr(self.inner, name), self.faults)


def project_for(app: SynthesizedApp, root: Path, project_root: Path, **context: Any) -> AppNames:
    """A scratch project root: the real cdk.json (with `context` changes) and the app's device keys."""
    cdk_json = json.loads((project_root / "cdk.json").read_text())
    cdk_json["context"].update(context)
    root.mkdir(parents=True, exist_ok=True)
    (root / "cdk.json").write_text(json.dumps(cdk_json))
    names = load_names(root)
    shutil.copytree(app.secrets_dir, names.secrets_dir, dirs_exist_ok=True)
    return names


@pytest.fixture
def names(tmp_path: Path, project_root: Path, app_default: SynthesizedApp) -> AppNames:
    """The app's names, read from a copy of the real cdk.json in a scratch project root."""
    return project_for(app_default, tmp_path, project_root)


# ---- CloudFormation's part --------------------------------------------------------------------
PSEUDO_PARAMETERS = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                     "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": STACK_NAME}
_SUB = re.compile(r"\$\{([^}]+)\}")


@dataclass
class Physical:
    """What Ref and Fn::GetAtt give for a created resource."""

    ref: str
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeCloudFormation:
    """Creates the RainEdge template's resources in moto and deletes them like CloudFormation."""

    clients: AwsClients
    app: SynthesizedApp
    greengrass: FakeGreengrassV2
    physical: dict[str, Physical] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # creation order; deletes run in reverse
    outputs: dict[str, str] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)
    retained: set[str] = field(default_factory=set)  # logical ids a delete leaves, as with DeletionPolicy Retain

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.app.template["Resources"]

    def deploy(self) -> dict[str, str]:
        self.order = list(TopologicalSorter({logical: _dependencies(resource)
                                             for logical, resource in self.resources.items()}).static_order())
        for logical in self.order:
            resource = self.resources[logical]
            handler = HANDLERS.get(resource["Type"])
            assert handler, f"the stand-in CloudFormation does not model {resource['Type']} ({logical})"
            self.physical[logical] = handler.create(self, logical, self.resolve(resource.get("Properties", {})))
        self.outputs = {key: self.resolve(output["Value"]) for key, output in self.app.template["Outputs"].items()}
        create_stack(self.clients.cloudformation, self.outputs, self.app.stack_tags)
        return self.outputs

    def device_certificate(self) -> Physical:
        """The certificate of the listed device, as the Devices output names it."""
        [device] = json.loads(self.outputs["Devices"])
        [physical] = [item for item in self.physical.values() if item.ref == device["certificateId"]]
        return physical

    def provision(self, serial: str, certificate_id: str | None = None) -> "ProvisionedDevice":
        """What AWS IoT does when a Pi presents the claim with its serial number and its own CSR:
        CreateCertificateFromCsr makes the certificate, the pre-provisioning hook decides and records
        (its real code, with the settings of the deployed template), then the resources of the deployed
        provisioning template are made. moto has no provisioning templates, so this is CloudFormation's
        stand-in's job. `certificate_id` reuses a certificate (a registration retried with it)."""
        stack = SynthesizedStack(self.app.template)
        settings = stack.pre_provisioning_hook_settings(Pseudo(region=REGION, account=ACCOUNT))
        iot = self.clients.iot
        if certificate_id is None:
            csr = device_csr(ec.generate_private_key(ec.SECP256R1()), thing_name(settings["NAME_PREFIX"], serial))
            certificate_id = iot.register_certificate_without_ca(
                certificatePem=sign_csr(csr), status="INACTIVE")["certificateId"]
        certificate_arn = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"][
            "certificateArn"]
        sent = {SERIAL_PARAMETER: serial}
        response, reason = answer({"parameters": sent, "certificateId": certificate_id}, settings, iot,
                                  self.clients.dynamodb)
        if not response["allowProvisioning"]:
            raise ValueError(f"the pre-provisioning hook refuses: {reason}")
        [properties] = stack.of_type("AWS::IoT::ProvisioningTemplate").values()
        body = json.loads(self.resolve(properties["TemplateBody"]))
        parameters = {**template_parameters(body, {**sent, **response["parameterOverrides"]}),
                      "AWS::IoT::Certificate::Id": certificate_id}
        made = {resource["Type"]: resource["Properties"]
                for resource in resolve(body["Resources"], Pseudo(region=REGION, account=ACCOUNT), parameters).values()}
        thing = made["AWS::IoT::Thing"]
        iot.create_thing(thingName=thing["ThingName"], attributePayload={"attributes": thing["AttributePayload"]})
        for group in thing["ThingGroups"]:
            iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing["ThingName"])
        iot.update_certificate(certificateId=certificate_id, newStatus=made["AWS::IoT::Certificate"]["Status"])
        policy_name = made["AWS::IoT::Policy"]["PolicyName"]
        iot.attach_policy(policyName=policy_name, target=certificate_arn)
        iot.attach_thing_principal(thingName=thing["ThingName"], principal=certificate_arn)
        return ProvisionedDevice(thing["ThingName"], certificate_id, certificate_arn, policy_name)

    def cdk(self, args: Sequence[str]) -> int:
        """Stands in for `cdk destroy --force RainEdge`: exit 1 when a delete fails, as CloudFormation's would."""
        self.calls.append(list(args))
        assert list(args) == ["destroy", "--force", STACK_NAME]
        for logical in reversed(self.order):
            retain = self.resources[logical].get("DeletionPolicy") == "Retain" or logical in self.retained
            if logical in self.physical and not retain:
                resource = self.resources[logical]
                try:
                    HANDLERS[resource["Type"]].delete(self, self.resolve(resource.get("Properties", {})),
                                                      self.physical[logical])
                except ClientError:
                    return 1
                del self.physical[logical]
        self.clients.cloudformation.delete_stack(StackName=STACK_NAME)
        return 0

    def resolve(self, value: Any) -> Any:
        """The template's intrinsic functions, over the created resources."""
        if isinstance(value, dict) and len(value) == 1:
            [(function, argument)] = value.items()
            if function == "Ref":
                return PSEUDO_PARAMETERS.get(argument) or self.physical[argument].ref
            if function == "Fn::GetAtt":
                return self.physical[argument[0]].attrs[argument[1]]
            if function == "Fn::Join":
                return argument[0].join(self.resolve(part) for part in argument[1])
            if function == "Fn::Sub":
                return _SUB.sub(lambda match: self.resolve(_sub_reference(match.group(1))), argument)
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value



@dataclass(frozen=True)
class ProvisionedDevice:
    thing_name: str
    certificate_id: str
    certificate_arn: str
    policy_name: str


def device_csr(key: ec.EllipticCurvePrivateKey, common_name: str) -> bytes:
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def exists(describe: Callable[..., Any], **params: Any) -> bool:
    """Whether a describe call finds what it asks about (any error counts as not found)."""
    try:
        describe(**params)
    except ClientError:
        return False
    return True


def component_arn(name: str, version: str | None = None) -> str:
    arn = f"arn:aws:greengrass:{REGION}:{ACCOUNT}:components:{name}"
    return f"{arn}:versions:{version}" if version else arn


def _sub_reference(name: str) -> dict[str, Any]:
    return {"Fn::GetAtt": name.split(".", 1)} if "." in name else {"Ref": name}


def _dependencies(resource: dict[str, Any]) -> set[str]:
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "Ref" in value and not value["Ref"].startswith("AWS::"):
                found.add(value["Ref"])
            if "Fn::GetAtt" in value:
                found.add(value["Fn::GetAtt"][0])
            if "Fn::Sub" in value:
                found.update(name.split(".")[0] for name in _SUB.findall(value["Fn::Sub"]) if "::" not in name)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(resource.get("Properties", {}))
    depends_on = resource.get("DependsOn", [])
    return found | set([depends_on] if isinstance(depends_on, str) else depends_on)


def generated_name(logical: str, lower: bool = False) -> str:
    """CloudFormation's name for a resource the template does not name: stack-logicalId-random."""
    name = f"{STACK_NAME}-{logical[:38]}-{uuid.uuid4().hex[:12].upper()}"
    return name.lower() if lower else name


def _tag_list(properties: dict[str, Any]) -> list[dict[str, str]]:
    return properties.get("Tags", [])


def _function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return None\n")
    return buffer.getvalue()


@dataclass(frozen=True)
class Handler:
    create: Callable[[FakeCloudFormation, str, dict[str, Any]], Physical]
    delete: Callable[[FakeCloudFormation, dict[str, Any], Physical], Any] = lambda cfn, props, physical: None


def _create_role(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    name = props.get("RoleName") or generated_name(logical)
    role = cfn.clients.iam.create_role(RoleName=name, Tags=_tag_list(props),
                                       AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))["Role"]
    return Physical(name, {"Arn": role["Arn"]})


def _create_bucket(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    name = props.get("BucketName") or generated_name(logical, lower=True)
    cfn.clients.s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    if _tag_list(props):
        cfn.clients.s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tag_list(props)})
    return Physical(name, {"Arn": f"arn:aws:s3:::{name}"})


def _upload_model(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    for key in props["SourceObjectKeys"]:
        cfn.clients.s3.put_object(Bucket=props["DestinationBucketName"],
                                  Key=f"{props['DestinationBucketKeyPrefix']}{key}", Body=b"model")
    return Physical(logical)


def _remove_model(cfn: FakeCloudFormation, props: dict[str, Any], physical: Physical) -> None:
    """BucketDeployment with RetainOnDelete false deletes what it put under its destination prefix."""
    if not props["RetainOnDelete"]:
        s3, bucket = cfn.clients.s3, props["DestinationBucketName"]
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=props["DestinationBucketKeyPrefix"]).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])


def _create_function(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    name = props.get("FunctionName") or generated_name(logical)
    function = cfn.clients.lambda_.create_function(
        FunctionName=name, Runtime=props["Runtime"], Role=props["Role"], Handler=props["Handler"],
        Code={"ZipFile": _function_zip()}, Tags={tag["Key"]: tag["Value"] for tag in _tag_list(props)})
    return Physical(name, {"Arn": function["FunctionArn"]})


def _create_log_group(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    name = props.get("LogGroupName") or generated_name(logical)
    cfn.clients.logs.create_log_group(logGroupName=name, tags={tag["Key"]: tag["Value"] for tag in _tag_list(props)})
    return Physical(name, {"Arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"})


def _create_thing(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    attributes = props.get("AttributePayload", {}).get("Attributes", {})
    thing = cfn.clients.iot.create_thing(thingName=props["ThingName"], attributePayload={"attributes": attributes})
    return Physical(thing["thingName"], {"Arn": thing["thingArn"], "Id": thing["thingId"]})


def _create_certificate(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    certificate = cfn.clients.iot.register_certificate_without_ca(
        certificatePem=sign_csr(props["CertificateSigningRequest"].encode()), status=props["Status"])
    return Physical(certificate["certificateId"], {"Id": certificate["certificateId"],
                                                   "Arn": certificate["certificateArn"]})


def _delete_certificate(cfn: FakeCloudFormation, props: dict[str, Any], physical: Physical) -> None:
    cfn.clients.iot.update_certificate(certificateId=physical.ref, newStatus="INACTIVE")
    cfn.clients.iot.delete_certificate(certificateId=physical.ref)


def _create_policy(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    policy = cfn.clients.iot.create_policy(policyName=props["PolicyName"],
                                           policyDocument=json.dumps(props["PolicyDocument"]))
    return Physical(policy["policyName"], {"Arn": policy["policyArn"], "Id": policy["policyName"]})


def _create_thing_group(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    group = cfn.clients.iot.create_thing_group(
        thingGroupName=props["ThingGroupName"], tags=_tag_list(props),
        thingGroupProperties={"thingGroupDescription": props["ThingGroupProperties"]["ThingGroupDescription"]})
    return Physical(group["thingGroupName"], {"Arn": group["thingGroupArn"], "Id": group["thingGroupId"]})


def _create_role_alias(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    alias = cfn.clients.iot.create_role_alias(roleAlias=props["RoleAlias"], roleArn=props["RoleArn"],
                                              credentialDurationSeconds=props["CredentialDurationSeconds"])
    return Physical(alias["roleAlias"], {"RoleAliasArn": alias["roleAliasArn"]})


def _sdk_call(cfn: FakeCloudFormation, call_json: str | None) -> None:
    """What CDK's AwsCustomResource Lambda does with its Create/Delete call."""
    if call_json:
        sdk_call = json.loads(call_json)
        client = getattr(cfn.clients, xform_name(sdk_call["service"]))
        getattr(client, xform_name(sdk_call["action"]))(**sdk_call["parameters"])


def _create_component(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    if "InlineRecipe" in props:
        recipe = json.loads(props["InlineRecipe"])
        name, version = recipe["ComponentName"], recipe["ComponentVersion"]
    else:
        name, version = props["LambdaFunction"]["ComponentName"], props["LambdaFunction"]["ComponentVersion"]
    arn = cfn.greengrass.add_component(name, version)
    return Physical(arn, {"Arn": arn, "ComponentName": name, "ComponentVersion": version})


def _attach_policy(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    cfn.clients.iot.attach_policy(policyName=props["PolicyName"], target=props["Principal"])
    return Physical(logical)


def _attach_thing(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    cfn.clients.iot.attach_thing_principal(thingName=props["ThingName"], principal=props["Principal"])
    return Physical(logical)


def _create_deployment(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    deployment_id = str(uuid.uuid4())
    cfn.greengrass.add_deployment(deployment_id, props["DeploymentName"], props["TargetArn"])
    return Physical(deployment_id, {"DeploymentId": deployment_id})


def _delete_deployment(cfn: FakeCloudFormation, props: dict[str, Any], physical: Physical) -> None:
    cfn.greengrass.cancel_deployment(deploymentId=physical.ref)
    cfn.greengrass.delete_deployment(deploymentId=physical.ref)


def _create_table(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    table = cfn.clients.dynamodb.create_table(
        TableName=props["TableName"], KeySchema=props["KeySchema"], AttributeDefinitions=props["AttributeDefinitions"],
        BillingMode=props["BillingMode"], Tags=_tag_list(props))["TableDescription"]
    return Physical(props["TableName"], {"Arn": table["TableArn"]})


def _only_recorded(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    """Resources no lifecycle command looks at (inline IAM policies, bucket policies, layers, Lambda
    permissions) or that moto does not implement (provisioning templates, fleet metrics)."""
    return Physical(f"{logical}-physical-id")


def _create_topic(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    arn = cfn.clients.sns.create_topic(Name=props["TopicName"], Tags=_tag_list(props))["TopicArn"]
    return Physical(arn, {"TopicArn": arn, "TopicName": props["TopicName"]})


def _rule_action(action: dict[str, Any]) -> dict[str, Any]:
    """A template's rule action as CreateTopicRule takes it (the actions the stack uses)."""
    if "Firehose" in action:
        firehose = action["Firehose"]
        return {"firehose": {"deliveryStreamName": firehose["DeliveryStreamName"], "roleArn": firehose["RoleArn"],
                             "separator": firehose["Separator"], "batchMode": firehose["BatchMode"]}}
    logs = action["CloudwatchLogs"]
    return {"cloudwatchLogs": {"logGroupName": logs["LogGroupName"], "roleArn": logs["RoleArn"]}}


def _create_topic_rule(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    payload = props["TopicRulePayload"]
    cfn.clients.iot.create_topic_rule(ruleName=props["RuleName"], topicRulePayload={
        "sql": payload["Sql"], "awsIotSqlVersion": payload["AwsIotSqlVersion"], "ruleDisabled": payload["RuleDisabled"],
        "actions": [_rule_action(action) for action in payload["Actions"]],
        "errorAction": _rule_action(payload["ErrorAction"])})
    return Physical(props["RuleName"], {"Arn": f"arn:aws:iot:{REGION}:{ACCOUNT}:rule/{props['RuleName']}"})


def _create_glue_table(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    cfn.clients.glue.create_table(DatabaseName=props["DatabaseName"], TableInput=props["TableInput"])
    return Physical(props["TableInput"]["Name"])


def _create_delivery_stream(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    """The stream as CreateDeliveryStream takes it: the template's properties share the API's names."""
    arn = cfn.clients.firehose.create_delivery_stream(**{
        key: props[key] for key in ("DeliveryStreamName", "DeliveryStreamType", "ExtendedS3DestinationConfiguration",
                                    "DeliveryStreamEncryptionConfigurationInput", "Tags")})["DeliveryStreamARN"]
    return Physical(props["DeliveryStreamName"], {"Arn": arn})


def _create_work_group(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    cfn.clients.athena.create_work_group(Name=props["Name"], Description=props["Description"],
                                         Configuration=props["WorkGroupConfiguration"], Tags=_tag_list(props))
    return Physical(props["Name"])


def _create_named_query(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    query_id = cfn.clients.athena.create_named_query(**{key: props[key] for key in (
        "Name", "Description", "Database", "QueryString", "WorkGroup")})["NamedQueryId"]
    return Physical(query_id)


def _delete_work_group(cfn: FakeCloudFormation, props: dict[str, Any], physical: Physical) -> None:
    cfn.clients.athena.delete_work_group(WorkGroup=physical.ref,
                                         RecursiveDeleteOption=bool(props.get("RecursiveDeleteOption")))


def _create_event_rule(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    arn = cfn.clients.events.put_rule(Name=props["Name"], EventPattern=json.dumps(props["EventPattern"]),
                                      State=props["State"], Tags=_tag_list(props))["RuleArn"]
    cfn.clients.events.put_targets(Rule=props["Name"], Targets=[{"Id": target["Id"], "Arn": target["Arn"]}
                                                                 for target in props["Targets"]])
    return Physical(props["Name"], {"Arn": arn})


def _delete_event_rule(cfn: FakeCloudFormation, props: dict[str, Any], physical: Physical) -> None:
    cfn.clients.events.remove_targets(Rule=physical.ref, Ids=[target["Id"] for target in props["Targets"]])
    cfn.clients.events.delete_rule(Name=physical.ref)


def _create_alarm(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    settings = {key: props[key] for key in ("AlarmName", "ComparisonOperator", "EvaluationPeriods", "Threshold",
                                            "AlarmActions", "OKActions", "TreatMissingData", "Tags") if key in props}
    if "Metrics" in props:
        settings["Metrics"] = [{key: query[key] for key in ("Id", "Expression", "MetricStat", "Label", "Period",
                                                            "ReturnData") if key in query}
                               for query in props["Metrics"]]
    else:
        settings.update({key: props[key] for key in ("Namespace", "MetricName", "Dimensions", "Statistic", "Period")})
    cfn.clients.cloudwatch.put_metric_alarm(**settings)
    return Physical(props["AlarmName"], {"Arn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{props['AlarmName']}"})


def _fleet_indexing(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    """The stack's indexing settings handler itself, on moto's account-wide indexing configuration."""
    answer = index_settings.on_event({"RequestType": "Create", "ResourceProperties": props}, cfn.clients.iot)
    return Physical(answer["PhysicalResourceId"])


def _lambda_version(cfn: FakeCloudFormation, logical: str, props: dict[str, Any]) -> Physical:
    return Physical(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{props['FunctionName']}:1", {"Version": "1"})


HANDLERS: dict[str, Handler] = {
    "AWS::IAM::Role": Handler(_create_role, lambda cfn, props, p: cfn.clients.iam.delete_role(RoleName=p.ref)),
    "AWS::IAM::Policy": Handler(_only_recorded),
    "AWS::S3::Bucket": Handler(_create_bucket, lambda cfn, props, p: cfn.clients.s3.delete_bucket(Bucket=p.ref)),
    "AWS::S3::BucketPolicy": Handler(_only_recorded),
    "Custom::CDKBucketDeployment": Handler(_upload_model, _remove_model),
    "AWS::Lambda::LayerVersion": Handler(_only_recorded),
    "AWS::Lambda::Permission": Handler(_only_recorded),
    "AWS::Lambda::Function": Handler(_create_function,
                                     lambda cfn, props, p: cfn.clients.lambda_.delete_function(FunctionName=p.ref)),
    "AWS::Lambda::Version": Handler(_lambda_version),
    "AWS::Logs::LogGroup": Handler(_create_log_group,
                                   lambda cfn, props, p: cfn.clients.logs.delete_log_group(logGroupName=p.ref)),
    "AWS::IoT::Thing": Handler(_create_thing, lambda cfn, props, p: cfn.clients.iot.delete_thing(thingName=p.ref)),
    "AWS::IoT::Certificate": Handler(_create_certificate, _delete_certificate),
    "AWS::IoT::Policy": Handler(_create_policy, lambda cfn, props, p: cfn.clients.iot.delete_policy(policyName=p.ref)),
    "AWS::IoT::PolicyPrincipalAttachment": Handler(_attach_policy, lambda cfn, props, p: cfn.clients.iot.detach_policy(
        policyName=props["PolicyName"], target=props["Principal"])),
    "AWS::IoT::ThingPrincipalAttachment": Handler(
        _attach_thing, lambda cfn, props, p: cfn.clients.iot.detach_thing_principal(
            thingName=props["ThingName"], principal=props["Principal"])),
    "AWS::IoT::ThingGroup": Handler(_create_thing_group,
                                    lambda cfn, props, p: cfn.clients.iot.delete_thing_group(thingGroupName=p.ref)),
    "AWS::IoT::RoleAlias": Handler(_create_role_alias,
                                   lambda cfn, props, p: cfn.clients.iot.delete_role_alias(roleAlias=p.ref)),
    "AWS::IoT::ProvisioningTemplate": Handler(_only_recorded),
    "AWS::IoT::FleetMetric": Handler(_only_recorded),
    "Custom::FleetIndexing": Handler(_fleet_indexing, lambda cfn, props, p: index_settings.on_event(
        {"RequestType": "Delete", "ResourceProperties": props, "PhysicalResourceId": p.ref}, cfn.clients.iot)),
    "Custom::AWS": Handler(lambda cfn, logical, props: _sdk_call(cfn, props.get("Create")) or Physical(logical),
                           lambda cfn, props, p: _sdk_call(cfn, props.get("Delete"))),
    "AWS::GreengrassV2::ComponentVersion": Handler(
        _create_component, lambda cfn, props, p: cfn.greengrass.delete_component(arn=p.ref)),
    "AWS::GreengrassV2::Deployment": Handler(_create_deployment, _delete_deployment),
    "AWS::DynamoDB::Table": Handler(_create_table, lambda cfn, props, p: cfn.clients.dynamodb.delete_table(
        TableName=p.ref)),
    "AWS::SNS::Topic": Handler(_create_topic, lambda cfn, props, p: cfn.clients.sns.delete_topic(TopicArn=p.ref)),
    "AWS::SNS::TopicPolicy": Handler(_only_recorded),
    "AWS::IoT::TopicRule": Handler(_create_topic_rule,
                                   lambda cfn, props, p: cfn.clients.iot.delete_topic_rule(ruleName=p.ref)),
    "AWS::Events::Rule": Handler(_create_event_rule, _delete_event_rule),
    "AWS::Logs::LogStream": Handler(
        lambda cfn, logical, props: cfn.clients.logs.create_log_stream(
            logGroupName=props["LogGroupName"], logStreamName=props["LogStreamName"]) and Physical(props["LogStreamName"]),
        lambda cfn, props, p: cfn.clients.logs.delete_log_stream(logGroupName=props["LogGroupName"], logStreamName=p.ref)),
    "AWS::Glue::Database": Handler(
        lambda cfn, logical, props: cfn.clients.glue.create_database(DatabaseInput=props["DatabaseInput"]) and Physical(
            props["DatabaseInput"]["Name"]),
        lambda cfn, props, p: cfn.clients.glue.delete_database(Name=p.ref)),
    "AWS::Glue::Table": Handler(_create_glue_table, lambda cfn, props, p: cfn.clients.glue.delete_table(
        DatabaseName=props["DatabaseName"], Name=p.ref)),
    "AWS::KinesisFirehose::DeliveryStream": Handler(
        _create_delivery_stream, lambda cfn, props, p: cfn.clients.firehose.delete_delivery_stream(
            DeliveryStreamName=p.ref)),
    "AWS::Athena::WorkGroup": Handler(_create_work_group, _delete_work_group),
    "AWS::Athena::NamedQuery": Handler(_create_named_query, lambda cfn, props, p: cfn.clients.athena.delete_named_query(
        NamedQueryId=p.ref)),
    "AWS::CloudWatch::Alarm": Handler(_create_alarm,
                                      lambda cfn, props, p: cfn.clients.cloudwatch.delete_alarms(AlarmNames=[p.ref])),
    "AWS::CloudWatch::Dashboard": Handler(
        lambda cfn, logical, props: cfn.clients.cloudwatch.put_dashboard(
            DashboardName=props["DashboardName"], DashboardBody=props["DashboardBody"]) and Physical(
            props["DashboardName"]),
        lambda cfn, props, p: cfn.clients.cloudwatch.delete_dashboards(DashboardNames=[p.ref])),
}


@pytest.fixture
def cloudformation(clients: AwsClients, app_default: SynthesizedApp,
                   fake_greengrass: FakeGreengrassV2) -> FakeCloudFormation:
    return FakeCloudFormation(clients, app_default, fake_greengrass)


@pytest.fixture
def deployed(cloudformation: FakeCloudFormation) -> FakeCloudFormation:
    cloudformation.deploy()
    return cloudformation


# ---- helpers shared by the lifecycle tests ---------------------------------------------------
THING = "rainedge-core-1"  # the device of cdk.json
# Outputs following the PLAN.md contract, of a two-device deployment.
EXAMPLE_OUTPUTS = {
    "NamePrefix": "rainedge", "ComponentPrefix": "com.rainedge",
    "ThingNames": "core-a,core-b", "ThingGroupName": "rainedge-cores", "RoleAliasName": "rainedge-tes-role-alias",
    "TokenExchangeRoleName": "rainedge-tes-role", "ArtifactBucketName": "bucket-1", "Region": REGION,
    "DeploymentId": "d-1", "ComponentNames": "com.rainedge.Sensor,com.rainedge.Inference",
    "ComponentVersionArns": f"{component_arn('com.rainedge.Sensor', '1.0.0')},{component_arn('com.rainedge.Inference', '1.0.0')}",
    "FunctionNames": "rainedge-sensor,rainedge-inference",
    "CanaryGroupName": "rainedge-canary", "CanaryDeploymentId": "dep-canary",
    "PromotedModelVersion": "rain-00000000000000aa", "CandidateModelVersion": "rain-00000000000000bb",
    "Devices": json.dumps([{"thingName": "core-a", "certificateId": "c-a", "policyName": "rainedge-device-core-a"},
                           {"thingName": "core-b", "certificateId": "c-b", "policyName": "rainedge-device-core-b"}]),
}


def put_shadow(iot_data: Any, thing: str, shadow: str) -> None:
    iot_data.update_thing_shadow(thingName=thing, shadowName=shadow, payload=json.dumps(
        {"state": {"reported": {"temperature": 21.5}}}).encode())


def shadow_exists(iot_data: Any, thing: str, shadow: str) -> bool:
    try:
        iot_data.get_thing_shadow(thingName=thing, shadowName=shadow)
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ResourceNotFoundException"
        return False
    return True


def create_stack(cloudformation: Any, outputs: dict[str, str], tags: dict[str, str]) -> None:
    """The stack record: a stack named RainEdge with these outputs and tags (its resources, if any,
    are FakeCloudFormation's to make)."""
    template = {"Resources": {"Marker": {"Type": "AWS::SSM::Parameter",
                                         "Properties": {"Type": "String", "Value": "x", "Name": "/marker"}}},
                "Outputs": {key: {"Value": value} for key, value in outputs.items()}}
    cloudformation.create_stack(StackName=STACK_NAME, TemplateBody=json.dumps(template),
                                Tags=[{"Key": key, "Value": value} for key, value in tags.items()])


def write_fake_cdk(folder: Path, record: Path) -> Path:
    """A CDK CLI that records its arguments and region, and deletes nothing."""
    script = folder / "fake-cdk"
    script.write_text(f'#!/bin/sh\necho "$AWS_REGION $@" > {record}\n')
    script.chmod(0o755)
    return script


@contextmanager
def unreadable_file(path: Path) -> Iterator[Path]:
    """A path that exists but cannot be read, even by root: a Unix socket (open() fails with ENXIO)."""
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        yield path
