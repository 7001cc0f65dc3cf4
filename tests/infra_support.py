"""Helpers for the tests that synthesise: real CDK synth (offline, CSRs in tmp dirs) and template readers.
(Plain module, not conftest, so test files can import it by a unique name.)"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import botocore

# jsii's Node-version banner is noise in test output (the CDK CLI pins its own Node).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import aws_cdk as cdk  # noqa: E402  (after the environment above)

from infra.app import build_app  # noqa: E402
from infra.config import RainEdgeConfig, read_cdk_context  # noqa: E402
from infra.device_keys import ensure_device_keys, key_owners  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONTEXT = read_cdk_context(PROJECT_ROOT)


def synthesize(out_dir: Path, secrets_dir: Path, releases_dir: Path | None = None, **overrides) -> dict:
    """Synthesise the app into `out_dir` with CSRs made in `secrets_dir` and the release record of `releases_dir`
    (default: none, a first release, whatever the project's own releases/ holds); return the RainEdge template.
    `overrides` are context keys (camelCase)."""
    context = {**DEFAULT_CONTEXT, **overrides}
    for owner in key_owners(RainEdgeConfig.from_context(context)):
        ensure_device_keys(secrets_dir, owner)
    app = cdk.App(context=context, outdir=str(out_dir))
    build_app(app, project_root=PROJECT_ROOT, secrets_dir=secrets_dir, releases_dir=releases_dir or out_dir / "no-releases")
    app.synth()
    return json.loads((out_dir / "RainEdge.template.json").read_text())


def resources_of(template: dict, resource_type: str) -> dict[str, dict]:
    return {key: value for key, value in template["Resources"].items() if value["Type"] == resource_type}


def flatten(value) -> str:
    """A template fragment as text (for scanning resolved ARNs written as Fn::Join)."""
    return json.dumps(value, sort_keys=True)


def joined(value) -> str:
    """A string or an Fn::Join of strings and tokens, with each token shown as <token>."""
    if isinstance(value, str):
        return value
    return "".join(part if isinstance(part, str) else "<token>" for part in value["Fn::Join"][1])


_COMPONENT_VERSION = re.compile(r"\b1\.0\.\d+\b")
_CSR = re.compile(r'"-----BEGIN CERTIFICATE REQUEST-----[^"]*-----END CERTIFICATE REQUEST-----\\n"')
_SHA256 = re.compile(r"\b[0-9a-f]{64}\b")
_VERSION_LOGICAL_ID = re.compile(r"CurrentVersion([0-9A-F]{8})[0-9a-f]{32}")
# The model's upload and component are named by the zip's SHA-256 (infra/artifacts.py, infra/components.py), and
# CDK's logical id ends in a hash of that path.
_MODEL_LOGICAL_ID = re.compile(r"(ModelUpload|RainModel)[0-9a-f]{12}([A-Za-z0-9]*?)[0-9A-F]{8}\b")
# The tag BucketDeployment puts on the bucket ends in a hash of the upload's construct path (named by the SHA-256).
_UPLOAD_TAG = re.compile(r"(aws-cdk:cr-owned:[^\"]*:)[0-9a-f]{8}\b")


def normalise(template: dict) -> dict:
    """Replace content-derived values (asset hashes, component versions, Lambda version
    logical ids) so a snapshot records structure, not the bytes of the model or code."""
    text = json.dumps(template, indent=1, sort_keys=True)
    # Each test session makes fresh device keys, hence fresh CSRs.
    text = _CSR.sub('"<csr>"', text)
    text = _SHA256.sub("<sha256>", text)
    text = _VERSION_LOGICAL_ID.sub(r"CurrentVersion\1<hash>", text)
    text = _MODEL_LOGICAL_ID.sub(r"\1<digest>\2<hash>", text)
    text = _UPLOAD_TAG.sub(r"\1<hash>", text)
    text = _COMPONENT_VERSION.sub("1.0.<content>", text)
    return json.loads(text)


SHADOW_SYNC_ACTIONS = ("iot:GetThingShadow", "iot:UpdateThingShadow", "iot:DeleteThingShadow")


def core_scope_problems(policies, thing: str, other: str, pseudo) -> list[str]:
    """What a core's IoT policies allow beyond, or lack within, the scope AWS's rules give a core
    device `thing` (compared with another core `other`); empty when the scope is right."""
    from device_code.contracts import SHADOW_NAMES
    from infra.iot_policy import allows_any

    prefix = f"arn:{pseudo.partition}:iot:{pseudo.region}:{pseudo.account}"
    must = [(action, f"{prefix}:thing/{thing}/{shadow}") for action in SHADOW_SYNC_ACTIONS for shadow in SHADOW_NAMES]
    # The nucleus' client ids: <thing>, then <thing>#2, #3 ... per 50 subscriptions (minimal core policy page).
    must += [("iot:Connect", f"{prefix}:client/{client}") for client in (thing, f"{thing}#2", f"{thing}#13")]
    own = f"$aws/things/{thing}"
    must += [("iot:Publish", f"{prefix}:topic/{own}/{topic}") for topic in (
        "greengrass/health/json", "greengrassv2/health/json", "jobs/notify-namespace-aws-gg-deployment",
        "shadow/name/AWSManagedGreengrassV2Deployment/update")]
    must += [("iot:Subscribe", f"{prefix}:topicfilter/{own}/shadow/name/weather/update/accepted")]
    must_not = [(action, f"{prefix}:thing/{other}/{shadow}") for action in SHADOW_SYNC_ACTIONS for shadow in SHADOW_NAMES]
    must_not += [(action, f"{prefix}:thing/{thing}{suffix}") for action in SHADOW_SYNC_ACTIONS
                 for suffix in ("", "/AWSManagedGreengrassV2Deployment")]  # classic shadow: not synced
    must_not += [("iot:Connect", f"{prefix}:client/{client}") for client in (other, f"{thing}0", f"{other}#2")]
    must_not += [("iot:Publish", f"{prefix}:topic/$aws/things/{other}/jobs/x"),
                 ("iot:Subscribe", f"{prefix}:topicfilter/$aws/things/{other}/jobs/x")]
    policies = list(policies)
    return ([f"denies {action} on {resource}" for action, resource in must if not allows_any(policies, action, resource)]
            + [f"allows {action} on {resource}" for action, resource in must_not if allows_any(policies, action, resource)])


def worst_case_pseudo():
    """The longest partition and region names AWS has (botocore's endpoint data), a 12-digit account."""
    with open(os.path.join(os.path.dirname(botocore.__file__), "data", "endpoints.json")) as handle:
        partitions = json.load(handle)["partitions"]
    partition = max((p["partition"] for p in partitions), key=len)
    region = max((region for p in partitions for region in p["regions"]), key=len)
    from infra.synthesized import Pseudo

    return Pseudo(partition=partition, region=region, account="123456789012")


def things(count: int) -> list[str]:
    """`count` thing names of the longest length synth accepts (64), alike but for their end."""
    return [f"{index:04d}".rjust(64, "x") for index in range(count)]


def service_may(document: dict, *, service: str, action: str, resource: str, context: dict[str, str]) -> bool:
    """A resource-based policy's decision for a request by an AWS service principal, for the elements
    topic policies use (IAM User Guide, "Policy evaluation logic" and "IAM JSON policy elements:
    Condition operators"): Allow/Deny, Principal Service or AWS "*", Action and Resource globs, and the
    condition operators ArnEquals/ArnLike/StringEquals/Bool over `context`; a missing key fails the
    condition (no ...IfExists here); an explicit Deny wins; what nothing allows is denied."""
    from infra.iot_policy import matches

    def listed(value) -> list:
        return [value] if isinstance(value, (str, bool)) else list(value)

    def principal_matches(principal) -> bool:
        if principal == "*" or principal == {"AWS": "*"}:
            return True
        return service in listed(principal.get("Service", []))

    operators = {"ArnEquals": lambda want, got: want == got, "ArnLike": matches,
                 "StringEquals": lambda want, got: want == got,
                 "Bool": lambda want, got: str(want).lower() == str(got).lower()}

    def conditions_hold(conditions: dict) -> bool:
        for operator, keys in conditions.items():
            for key, wanted in keys.items():
                if key not in context or not any(operators[operator](want, context[key]) for want in listed(wanted)):
                    return False
        return True

    effects = [statement["Effect"] for statement in listed(document["Statement"])
               if principal_matches(statement["Principal"])
               and any(matches(glob.lower(), action.lower()) for glob in listed(statement["Action"]))
               and any(matches(glob, resource) for glob in listed(statement["Resource"]))
               and conditions_hold(statement.get("Condition", {}))]
    return "Allow" in effects and "Deny" not in effects


def model_variant(source_zip: Path, out_zip: Path, version: str) -> Path:
    """A copy of a model zip whose metadata.json says `version`: another model as far as synth can tell."""
    import zipfile
    with zipfile.ZipFile(source_zip) as source:
        members = [(info, source.read(info)) for info in source.infolist()]
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out_zip, "w") as target:
        for info, data in members:
            if info.filename == "metadata.json":
                data = json.dumps({**json.loads(data), "version": version}).encode()
            target.writestr(info, data)
    return out_zip
