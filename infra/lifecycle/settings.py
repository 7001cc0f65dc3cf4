"""What the lifecycle tools need to know about the app: its validated config (from the CDK
context in cdk.json, through infra.config, the same object the stack is built from) and the
paths derived from it. Teardown takes the names of AWS resources from the stack's outputs, not from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra.config import RainEdgeConfig, read_cdk_context
from infra.device_keys import PRIVATE_KEY_FILE, device_dir
from infra.greengrass import NUCLEUS, PUBLIC_COMPONENT_VERSIONS
from infra.releases import RELEASES

DEFAULT_BOOTSTRAP_QUALIFIER = "hnb659fds"


@dataclass(frozen=True)
class AppNames:
    config: RainEdgeConfig
    project_root: Path
    bootstrap_qualifier: str = DEFAULT_BOOTSTRAP_QUALIFIER

    @property
    def secrets_dir(self) -> Path:
        return self.project_root / self.config.secrets_dir

    @property
    def releases_dir(self) -> Path:
        """The release record (infra/releases.py)."""
        return self.project_root / RELEASES

    @property
    def model_zip(self) -> Path:
        return self.project_root / self.config.model_zip

    @property
    def nucleus_version(self) -> str:
        """The installer must be the nucleus version the deployment pins, or the first
        deployment would replace the nucleus right after installation."""
        return PUBLIC_COMPONENT_VERSIONS[NUCLEUS]

    def private_key_path(self, thing_name: str) -> Path:
        return device_dir(self.secrets_dir, thing_name) / PRIVATE_KEY_FILE

    def bundle_dir(self, thing_name: str) -> Path:
        """Where device-setup writes a device's install bundle: next to its key, git-ignored."""
        return device_dir(self.secrets_dir, thing_name) / "greengrass-bundle"


def load_names(project_root: Path) -> AppNames:
    context = read_cdk_context(project_root)
    return AppNames(
        config=RainEdgeConfig.from_context(context),
        project_root=project_root,
        bootstrap_qualifier=context.get("@aws-cdk/core:bootstrapQualifier", DEFAULT_BOOTSTRAP_QUALIFIER),
    )
