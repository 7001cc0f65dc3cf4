"""Read the synthesized RainEdge template (cdk.out) as Greengrass and AWS IoT would see it.

The simulator runs exactly this deployment (its Lambda components' environment, pinned flag and
event sources; the deployment's configuration merges; ShadowManager's sync; each core's IoT
policies), and the AWS-rule tests check it. No AWS or CDK import: plain JSON.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from infra.config import STACK_NAME
from infra.fleet_hook.handler import HOOK_SETTINGS, device_policy_document


class TemplateError(ValueError):
    """The template is missing, or lacks a piece the simulator needs; the message says which."""


@dataclass(frozen=True)
class Pseudo:
    """Values of CloudFormation's pseudo parameters for one (simulated) account and region."""

    partition: str = "aws"
    region: str = "us-east-1"
    account: str = "123456789012"

    def value(self, name: str) -> str:
        values = {"AWS::Partition": self.partition, "AWS::Region": self.region, "AWS::AccountId": self.account,
                  "AWS::URLSuffix": "amazonaws.com"}
        if name not in values:
            raise TemplateError(f"cannot resolve Ref {name} outside CloudFormation")
        return values[name]


def resolve(value: Any, pseudo: Pseudo, parameters: Mapping[str, str] | None = None) -> Any:
    """`value` with Fn::Join and Refs resolved: to `parameters` (a provisioning template's), else
    to pseudo parameters. That is all the policies and the provisioning template use."""
    if isinstance(value, list):
        return [resolve(item, pseudo, parameters) for item in value]
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            name = value["Ref"]
            return parameters[name] if parameters and name in parameters else pseudo.value(name)
        if set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return separator.join(str(resolve(part, pseudo, parameters)) for part in parts)
        return {key: resolve(item, pseudo, parameters) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class LambdaComponent:
    name: str
    version: str
    handler: str
    pinned: bool
    environment: dict[str, str]
    event_sources: tuple[tuple[str, str], ...]  # (topic, type)
    dependencies: dict[str, dict[str, str]]  # name -> {VersionRequirement, DependencyType}


@dataclass(frozen=True)
class DeployedVersion:
    version: str
    merge: dict[str, Any]  # the configuration merge, parsed
    posix_user: str | None


@dataclass(frozen=True)
class ProvisionedThing:
    thing_name: str
    attributes: dict[str, str]
    thing_groups: tuple[str, ...]
    policy_name: str
    policy_document: dict[str, Any]


class SynthesizedStack:
    def __init__(self, template: Mapping[str, Any]) -> None:
        self.template = template
        self.resources: Mapping[str, Mapping[str, Any]] = template["Resources"]

    @classmethod
    def load(cls, cdk_out: Path) -> "SynthesizedStack":
        path = Path(cdk_out) / f"{STACK_NAME}.template.json"
        try:
            return cls(json.loads(path.read_text()))
        except FileNotFoundError:
            raise TemplateError(f"no synthesized template at {path}: run `make synth` first") from None
        except ValueError as error:
            raise TemplateError(f"{path} is not a CloudFormation template: {error}") from None

    def of_type(self, resource_type: str) -> dict[str, Mapping[str, Any]]:
        return {key: value.get("Properties", {}) for key, value in self.resources.items()
                if value["Type"] == resource_type}

    # ---- Greengrass ------------------------------------------------------------------------
    def lambda_components(self, group: str | None = None) -> dict[str, LambdaComponent]:
        """The Lambda components the deployment to `group` runs (default: the fleet ring's), by name."""
        deployed = self.deployment(group)
        found = {}
        for properties in self.of_type("AWS::GreengrassV2::ComponentVersion").values():
            source = properties.get("LambdaFunction")
            spec = deployed.get(source["ComponentName"]) if source else None
            if spec is None or spec.version != source["ComponentVersion"]:
                continue
            parameters = source.get("ComponentLambdaParameters", {})
            found[source["ComponentName"]] = LambdaComponent(
                name=source["ComponentName"],
                version=source["ComponentVersion"],
                handler=self._handler_of(source["LambdaArn"]),
                pinned=parameters.get("Pinned", True),  # Greengrass's default (API reference)
                environment=dict(parameters.get("EnvironmentVariables", {})),
                event_sources=tuple((item["Topic"], item["Type"]) for item in parameters.get("EventSources", [])),
                dependencies={name: dict(requirement)
                              for name, requirement in source.get("ComponentDependencies", {}).items()},
            )
        return found

    def _handler_of(self, lambda_arn: Any) -> str:
        """The handler of the function whose published version `lambda_arn` refers to."""
        version_id = lambda_arn.get("Ref") if isinstance(lambda_arn, dict) else None
        version = self.resources.get(version_id or "", {})
        if version.get("Type") != "AWS::Lambda::Version":
            raise TemplateError(f"LambdaArn {lambda_arn} is not a published Lambda version "
                                "(Greengrass refuses aliases and $LATEST)")
        function_id = version["Properties"]["FunctionName"]["Ref"]
        return self.resources[function_id]["Properties"]["Handler"]

    @property
    def fleet_group(self) -> str:
        """The fleet ring's thing group, as the stack outputs name it."""
        return self.template["Outputs"]["ThingGroupName"]["Value"]

    def deployment(self, group: str | None = None) -> dict[str, DeployedVersion]:
        """The components of the deployment to thing group `group` (default: the fleet ring's)."""
        group = group or self.fleet_group
        targets = [properties for properties in self.of_type("AWS::GreengrassV2::Deployment").values()
                   if self._group_name(properties["TargetArn"]) == group]
        if len(targets) != 1:
            raise TemplateError(f"expected one Greengrass deployment to thing group {group}, found {len(targets)}")
        (properties,) = targets
        return {
            name: DeployedVersion(
                version=spec["ComponentVersion"],
                merge=json.loads(spec.get("ConfigurationUpdate", {}).get("Merge", "{}")),
                posix_user=spec.get("RunWith", {}).get("PosixUser"),
            )
            for name, spec in properties["Components"].items()
        }

    def _group_name(self, target_arn: Any) -> str | None:
        """The thing group a deployment's TargetArn (Fn::GetAtt of a thing group of the template) names."""
        logical = target_arn.get("Fn::GetAtt", [None])[0] if isinstance(target_arn, dict) else None
        return self.resources.get(logical, {}).get("Properties", {}).get("ThingGroupName")

    # ---- AWS IoT ---------------------------------------------------------------------------
    def thing_names(self) -> list[str]:
        return [properties["ThingName"] for properties in self.of_type("AWS::IoT::Thing").values()]

    def group_of_thing(self, thing_name: str) -> str:
        """The thing group a listed thing is added to (the stack's AddThingToThingGroup custom resources)."""
        for properties in self.of_type("Custom::AWS").values():
            call = properties.get("Create")
            call = json.loads(call) if isinstance(call, str) else {}
            if call.get("action") == "addThingToThingGroup" and call["parameters"]["thingName"] == thing_name:
                return call["parameters"]["thingGroupName"]
        raise TemplateError(f"thing {thing_name!r} is added to no thing group of the template")

    def policies_of_thing(self, thing_name: str, pseudo: Pseudo) -> dict[str, dict[str, Any]]:
        """Policy name -> resolved document, for every policy attached to a certificate of the thing."""
        certificates = {self._principal(p) for p in self.of_type("AWS::IoT::ThingPrincipalAttachment").values()
                        if p["ThingName"] == thing_name}
        names = {p["PolicyName"] for p in self.of_type("AWS::IoT::PolicyPrincipalAttachment").values()
                 if self._principal(p) in certificates}
        return {p["PolicyName"]: resolve(p["PolicyDocument"], pseudo)
                for p in self.of_type("AWS::IoT::Policy").values() if p["PolicyName"] in names}

    def topic_rules(self) -> dict[str, Mapping[str, Any]]:
        """The shadow-record rules (their action writes into a log group): rule name -> TopicRulePayload (Sql,
        AwsIotSqlVersion, Actions, ErrorAction, ...)."""
        return self._rules_acting("CloudwatchLogs")

    def lake_rules(self) -> dict[str, Mapping[str, Any]]:
        """The data lake's rules (their action puts into a Firehose stream), as topic_rules."""
        return self._rules_acting("Firehose")

    def _rules_acting(self, action: str) -> dict[str, Mapping[str, Any]]:
        return {p["RuleName"]: p["TopicRulePayload"] for p in self.of_type("AWS::IoT::TopicRule").values()
                if any(action in item for item in p["TopicRulePayload"]["Actions"])}

    def provisioning_template(self, pseudo: Pseudo) -> tuple[str, dict[str, Any]]:
        """(name, body) of the fleet provisioning template, body resolved for `pseudo`."""
        templates = self.of_type("AWS::IoT::ProvisioningTemplate")
        if len(templates) != 1:
            raise TemplateError(f"expected one fleet provisioning template, found {len(templates)} "
                                "(is fleetProvisioning off?)")
        (properties,) = templates.values()
        return properties["TemplateName"], json.loads(resolve(properties["TemplateBody"], pseudo))

    def pre_provisioning_hook_settings(self, pseudo: Pseudo) -> dict[str, str]:
        """The environment the provisioning template's hook function runs with (HOOK_SETTINGS), resolved."""
        (properties,) = self.of_type("AWS::IoT::ProvisioningTemplate").values() or [{}]
        target = properties.get("PreProvisioningHook", {}).get("TargetArn", {}).get("Fn::GetAtt", [""])[0]
        if target not in self.resources:
            raise TemplateError("the fleet provisioning template has no pre-provisioning hook function")
        variables = self.resources[target]["Properties"]["Environment"]["Variables"]

        def setting(value: Any) -> str:
            if isinstance(value, dict) and value.get("Ref") in self.resources:  # the ledger, named exactly
                return self.resources[value["Ref"]]["Properties"]["TableName"]
            return resolve(value, pseudo)
        return {name: setting(variables[name]) for name in HOOK_SETTINGS}

    def provisioned_thing(self, parameters: Mapping[str, str], pseudo: Pseudo) -> ProvisionedThing:
        """What the provisioning template attaches for `parameters` (what the device sent, with the hook's
        parameterOverrides applied): the thing, and the policy the hook creates for it under the name the
        template attaches."""
        _, body = self.provisioning_template(pseudo)
        resources = resolve(body["Resources"], pseudo, {"AWS::IoT::Certificate::Id": "<certificate>",
                                                        **template_parameters(body, parameters)})
        by_type = {resource["Type"]: resource["Properties"] for resource in resources.values()}
        thing = by_type["AWS::IoT::Thing"]
        document = device_policy_document(self.pre_provisioning_hook_settings(pseudo)["DEVICE_POLICY_DOCUMENT"],
                                          thing["ThingName"])
        return ProvisionedThing(thing_name=thing["ThingName"], attributes=thing.get("AttributePayload", {}),
                                thing_groups=tuple(thing.get("ThingGroups", ())),
                                policy_name=by_type["AWS::IoT::Policy"]["PolicyName"],
                                policy_document=json.loads(document))

    @staticmethod
    def _principal(attachment: Mapping[str, Any]) -> str:
        principal = attachment["Principal"]
        return principal["Fn::GetAtt"][0] if isinstance(principal, dict) else principal


def template_parameters(body: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """The parameters a provisioning template is resolved with: "The default value is used when the dictionary
    passed in with the template does not contain a value for the parameter" (developer guide, "Provisioning
    templates", Parameters section)."""
    defaults = {name: spec["Default"] for name, spec in body.get("Parameters", {}).items() if "Default" in spec}
    return {**defaults, **given}
