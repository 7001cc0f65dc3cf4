"""Helpers for the tests that synthesise: real CDK synth (offline, CSRs in tmp dirs) and template readers.
(Plain module, not conftest, so test files can import it by a unique name.)"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

# jsii's Node-version banner is noise in test output (the CDK CLI pins its own Node).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import aws_cdk as cdk  # noqa: E402  (after the environment above)

from infra.app import build_app  # noqa: E402
from infra.config import RainEdgeConfig, read_cdk_context  # noqa: E402
from infra.device_keys import ensure_device_keys  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONTEXT = read_cdk_context(PROJECT_ROOT)


def synthesize(out_dir: Path, secrets_dir: Path, **overrides) -> dict:
    """Synthesise the app into `out_dir` with CSRs made in `secrets_dir`; return the
    RainEdge template. `overrides` are context keys (camelCase)."""
    context = {**DEFAULT_CONTEXT, **overrides}
    for thing in RainEdgeConfig.from_context(context).devices:
        ensure_device_keys(secrets_dir, thing)
    app = cdk.App(context=context, outdir=str(out_dir))
    build_app(app, project_root=PROJECT_ROOT, secrets_dir=secrets_dir)
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


def normalise(template: dict) -> dict:
    """Replace content-derived values (asset hashes, component versions, Lambda version
    logical ids) so a snapshot records structure, not the bytes of the model or code."""
    text = json.dumps(template, indent=1, sort_keys=True)
    # Each test session makes fresh device keys, hence fresh CSRs.
    text = _CSR.sub('"<csr>"', text)
    text = _SHA256.sub("<sha256>", text)
    text = _VERSION_LOGICAL_ID.sub(r"CurrentVersion\1<hash>", text)
    text = _COMPONENT_VERSION.sub("1.0.<content>", text)
    return json.loads(text)
