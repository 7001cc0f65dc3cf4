"""Build the rainedge CDK app: configuration from context, the RainEdge stack, cdk-nag."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from infra.artifacts import AssetError, refuse_private_keys_in_assets
from infra.config import STACK_NAME, ConfigError, RainEdgeConfig
from infra.device_keys import DeviceKeyError
from infra.releases import RELEASES, ReleaseError
from infra.stack import RainEdgeStack

PROJECT_ROOT = Path(__file__).resolve().parent.parent


# CloudFormation quotas ("Understand CloudFormation quotas"): resources per template.
MAX_RESOURCES = 500


def _resources(scope: Construct) -> int:
    return sum(isinstance(child, cdk.CfnResource) for child in scope.node.find_all())


def check_stack_size(stack: RainEdgeStack) -> None:
    """Refuse at synth a list of devices CloudFormation would refuse, naming the largest that fits."""
    total = _resources(stack)
    if total <= MAX_RESOURCES:
        return
    devices = stack.identity.devices
    per_device = _resources(devices[0].thing.node.scope)
    fits = (MAX_RESOURCES - (total - per_device * len(devices))) // per_device
    raise ConfigError(
        f"devices: {len(devices)} listed devices make {total} resources, more than the {MAX_RESOURCES} "
        f"CloudFormation allows in one stack; at most {fits} listed devices fit: list fewer and let the "
        "others join by fleet provisioning (make fleet-bundle)"
    )


def build_app(app: cdk.App, project_root: Path = PROJECT_ROOT, secrets_dir: Path | None = None,
              releases_dir: Path | None = None) -> RainEdgeStack:
    """Add the RainEdge stack and the cdk-nag AwsSolutions checks to `app`."""
    config = RainEdgeConfig.from_context(app.node.get_all_context())
    stack = RainEdgeStack(
        app,
        STACK_NAME,
        config=config,
        project_root=project_root,
        secrets_dir=secrets_dir or project_root / config.secrets_dir,
        releases_dir=releases_dir or project_root / RELEASES,
        # Region/account from the environment; without them the template is environment-agnostic.
        env=cdk.Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
        ),
    )
    check_stack_size(stack)
    refuse_private_keys_in_assets(stack)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


def main() -> int:
    app = cdk.App()
    try:
        build_app(app)
    except (ConfigError, DeviceKeyError, AssetError, ReleaseError) as error:
        print(f"rainedge: {error}", file=sys.stderr)
        return 1
    app.synth()
    return 0

