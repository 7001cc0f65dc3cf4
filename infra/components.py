"""Greengrass components: the three Lambda components, the model component and the
device-runtime component that installs the device-side Python packages."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, FileSystem, RemovalPolicy, Stack
from aws_cdk import aws_greengrassv2 as gg
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import greengrass as ggv
from infra.artifacts import ArtifactStore, stage_device_bundle
from infra.config import RainEdgeConfig
from infra.nag import acknowledge

LINUX = [gg.CfnComponentVersion.ComponentPlatformProperty(name="Linux", attributes={"os": "linux"})]


@dataclass(frozen=True)
class DeployedComponent:
    name: str
    version: str
    resource: gg.CfnComponentVersion
    configuration: dict | None = None


@dataclass(frozen=True)
class LambdaSpec:
    """One device function: what the Lambda runs and how Greengrass runs it."""

    suffix: str  # component name suffix
    function: str  # function name suffix
    handler: str
    pinned: bool
    environment: dict[str, str]
    access_control: dict
    event_topics: tuple[str, ...] = ()
    # Besides the device runtime, which every function needs.
    dependencies: tuple[DeployedComponent, ...] = ()


def device_requirements(project_root: Path) -> list[str]:
    """The `device` extra of pyproject.toml: one place pins what runs on the Pi."""
    pyproject = tomllib.loads((project_root / "pyproject.toml").read_text())
    return list(pyproject["project"]["optional-dependencies"]["device"])


class DeviceComponents(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: RainEdgeConfig,
        project_root: Path,
        artifacts: ArtifactStore,
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.runtime = self._device_runtime(device_requirements(project_root))
        self.model = self._rain_model(artifacts)
        bundle = stage_device_bundle(project_root)
        self.code_fingerprint = FileSystem.fingerprint(str(bundle))
        self.code = lambda_.Code.from_asset(str(bundle))
        # The functions never run in the cloud (reserved concurrency 0): Lambda is only the
        # packaging Greengrass imports. Their role therefore grants nothing.
        self.function_role = iam.Role(
            self,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Placeholder execution role of the device functions; grants no permissions",
        )
        self.lambdas = [self._lambda_component(spec) for spec in self._lambda_specs()]

    @property
    def all(self) -> list[DeployedComponent]:
        return [self.runtime, self.model, *self.lambdas]

    # ---- specs --------------------------------------------------------------------------
    def _lambda_specs(self) -> list[LambdaSpec]:
        config = self.config
        common = {
            "LOG_LEVEL": config.log_level,
            # The device-runtime component's virtual environment (see _device_runtime).
            "PYTHONPATH": self.site_packages,
        }
        sensor = config.component_name("Sensor")
        writer = config.component_name("ShadowWriter")
        inference = config.component_name("Inference")
        model_dir = (
            f"{config.greengrass_root}/packages/artifacts-unarchived/"
            f"{self.model.name}/{self.model.version}/{Path(config.model_zip).stem}"
        )
        return [
            LambdaSpec(
                suffix="Sensor",
                function="sensor",
                handler="device_code.sensor.handler",
                pinned=True,
                environment={
                    **common,
                    "SAMPLE_INTERVAL_S": str(config.sample_interval_seconds),
                    "I2C_BUS": str(config.i2c_bus),
                    "I2C_ADDRESS": hex(config.i2c_address),
                },
                access_control=ggv.access_control(
                    sensor,
                    pubsub=[("Publish BME680 readings", [ggv.PUBLISH], [ggv.readings_topic()])],
                ),
            ),
            LambdaSpec(
                suffix="ShadowWriter",
                function="shadow-writer",
                handler="device_code.shadow_writer.handler",
                pinned=False,
                environment={
                    **common,
                    "CPU_TEMP_COMPENSATION": "on" if config.cpu_temp_compensation else "off",
                    "CPU_TEMP_PATH": "/sys/class/thermal/thermal_zone0/temp",
                },
                access_control=ggv.access_control(
                    writer,
                    shadow=[
                        (
                            "Read and write the weather shadow",
                            [ggv.GET_SHADOW, ggv.UPDATE_SHADOW],
                            [ggv.shadow_resource("weather")],
                        )
                    ],
                ),
                # Lambda event sources take no {iot:thingName}; locally only this core's
                # sensor publishes, so '+' matches exactly its readings topic.
                event_topics=(ggv.readings_topic("+"),),
            ),
            LambdaSpec(
                suffix="Inference",
                function="inference",
                handler="device_code.inference.handler",
                pinned=True,
                environment={
                    **common,
                    "MODEL_DIR": model_dir,
                    "INFERENCE_INTERVAL_S": str(config.inference_interval_seconds),
                    "MAX_INPUT_AGE_S": str(config.max_input_age_seconds),
                },
                access_control=ggv.access_control(
                    inference,
                    shadow=[
                        ("Read the latest reading", [ggv.GET_SHADOW], [ggv.shadow_resource("weather")]),
                        (
                            "Read and write the prediction",
                            [ggv.GET_SHADOW, ggv.UPDATE_SHADOW],
                            [ggv.shadow_resource("rain")],
                        ),
                    ],
                    pubsub=[
                        (
                            "Hear every update of the weather shadow",
                            [ggv.SUBSCRIBE],
                            [ggv.shadow_documents_topic("weather")],
                        )
                    ],
                ),
                dependencies=(self.model,),
            ),
        ]

    @property
    def site_packages(self) -> str:
        return (
            f"{self.config.greengrass_root}/work/{self.config.component_name('DeviceRuntime')}"
            f"/venv/lib/{self.config.python_executable}/site-packages"
        )

    # ---- components ---------------------------------------------------------------------
    def _lambda_component(self, spec: LambdaSpec) -> DeployedComponent:
        config = self.config
        function = lambda_.Function(
            self,
            f"{spec.suffix}Function",
            function_name=config.function_name(spec.function),
            runtime=lambda_.Runtime(config.lambda_runtime, lambda_.RuntimeFamily.PYTHON),
            handler=spec.handler,
            code=self.code,
            role=self.function_role,
            reserved_concurrent_executions=0,
            timeout=Duration.seconds(30),
            description=f"rainedge device function ({spec.function}); runs on Greengrass, not in Lambda",
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
        )
        acknowledge(
            function,
            "AwsSolutions-L1",
            "The runtime must match the Python of the Raspberry Pi (context key lambdaRuntime), "
            "not the newest cloud runtime: the function runs on the device.",
        )
        dependencies = [self.runtime, *spec.dependencies]
        parameters = {
            "pinned": spec.pinned,
            "environment": spec.environment,
            "event_topics": list(spec.event_topics),
            "dependencies": {dependency.name: dependency.version for dependency in dependencies},
            "runtime": config.lambda_runtime,
            "handler": spec.handler,
            "code": self.code_fingerprint,
        }
        name = config.component_name(spec.suffix)
        version = ggv.content_version(name, parameters)
        lambda_parameters = gg.CfnComponentVersion.LambdaExecutionParametersProperty(
            pinned=spec.pinned,
            environment_variables=spec.environment,
            event_sources=[
                gg.CfnComponentVersion.LambdaEventSourceProperty(topic=topic, type="PUB_SUB")
                for topic in spec.event_topics
            ]
            or None,
            timeout_in_seconds=30,
            status_timeout_in_seconds=60,
            # Not pinned: one instance at a time, so shadow writes never race.
            max_instances_count=None if spec.pinned else 1,
            max_idle_time_in_seconds=None if spec.pinned else 60,
            input_payload_encoding_type="json",
            linux_process_params=gg.CfnComponentVersion.LambdaLinuxProcessParamsProperty(
                # The sensor needs /dev/i2c-*; the run-as user (ggc_user) joins group i2c.
                isolation_mode="NoContainer",
            ),
        )
        resource = gg.CfnComponentVersion(
            self,
            f"{spec.suffix}Component",
            lambda_function=gg.CfnComponentVersion.LambdaFunctionRecipeSourceProperty(
                lambda_arn=function.current_version.function_arn,
                component_name=name,
                component_version=version,
                component_platforms=LINUX,
                component_dependencies={
                    dependency.name: gg.CfnComponentVersion.ComponentDependencyRequirementProperty(
                        version_requirement=f"={dependency.version}", dependency_type="HARD"
                    )
                    for dependency in dependencies
                },
                component_lambda_parameters=lambda_parameters,
            ),
        )
        resource.node.add_dependency(*(dependency.resource for dependency in dependencies))
        return DeployedComponent(name, version, resource, {"accessControl": spec.access_control})

    def _recipe_component(self, suffix: str, description: str, manifest: dict, content: object) -> DeployedComponent:
        name = self.config.component_name(suffix)
        version = ggv.content_version(name, content)
        recipe = {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": name,
            "ComponentVersion": version,
            "ComponentDescription": description,
            "ComponentPublisher": self.config.name_prefix,
            "Manifests": [{"Platform": {"os": "linux"}, **manifest}],
        }
        resource = gg.CfnComponentVersion(
            self, f"{suffix}Component", inline_recipe=Stack.of(self).to_json_string(recipe)
        )
        return DeployedComponent(name, version, resource)

    def _rain_model(self, artifacts: ArtifactStore) -> DeployedComponent:
        component = self._recipe_component(
            "RainModel",
            "The rain model (SavedModel + TFLite + metadata), unarchived on the device",
            {
                "Artifacts": [
                    {
                        "Uri": artifacts.model_uri,
                        "Unarchive": "ZIP",
                        # The inference function reads it; a model is no secret.
                        "Permission": {"Read": "ALL", "Execute": "NONE"},
                    }
                ]
            },
            content={"model_sha256": artifacts.model_sha256, "key": artifacts.model_key},
        )
        # Greengrass reads the artifact when the component version is created.
        component.resource.node.add_dependency(artifacts.model_upload)
        return component

    def _device_runtime(self, requirements: list[str]) -> DeployedComponent:
        python = self.config.python_executable
        venv = "{work:path}/venv"
        packages = " ".join(f"'{requirement}'" for requirement in requirements)
        script = (
            f"{python} -m venv {venv} && "
            f"{venv}/bin/python -m pip install --disable-pip-version-check --no-input {packages}"
        )
        return self._recipe_component(
            "DeviceRuntime",
            f"Installs the device-side Python packages into a {python} virtual environment",
            {"Lifecycle": {"Install": {"Script": script, "Timeout": 1800, "RequiresPrivilege": False}}},
            content={"script": script},
        )
