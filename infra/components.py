"""Greengrass components: one Lambda component per device function, the model component and the
device-runtime component that installs the device-side Python packages."""
from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, FileSystem, RemovalPolicy, Stack
from aws_cdk import aws_greengrassv2 as gg
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from device_code import config as env
from device_code import selftest
from device_code.functions import FUNCTIONS, INFERENCE, DeviceFunction
from infra import greengrass as ggv
from infra.artifacts import ModelRelease, stage_device_bundle
from infra.config import (DEFAULT_POSIX_USER, MODEL_COMPONENT, RUNTIME_COMPONENT, RUNTIME_INSTALL_TIMEOUT_SECONDS,
                          SELF_TEST_TIMEOUT_SECONDS, SERVING_LINK, RainEdgeConfig)
from infra.nag import acknowledge

LINUX = [gg.CfnComponentVersion.ComponentPlatformProperty(name="Linux", attributes={"os": "linux"})]
# The Raspberry Pi's SoC temperature (the story's CPU heat compensation reads it).
CPU_THERMAL_ZONE = "/sys/class/thermal/thermal_zone0/temp"
# The inference function's reading history, in its component's work folder: the nucleus creates
# <root>/work/<component name> (named by the component, not its version) owned by the user the
# component runs as, mode 0700 (aws-greengrass-nucleus: NucleusPaths.workPath,
# Permissions.setServiceWorkPathPermission, GenericExternalService.updateComponentPathOwner).
HISTORY_FILE_NAME = "reading_history.json"
# The device runtime's virtual environment, in that component's work folder.
RUNTIME_VENV = "venv"


def _exactly(version: str) -> dict[str, str]:
    return {"VersionRequirement": f"={version}", "DependencyType": "HARD"}


# Every version of ours is 1.0.<n> (infra/greengrass.content_version); npm semver ranges ("AWS IoT Greengrass
# uses NPM semantic version constraints", developer guide, Deploy components).
ANY_MODEL_VERSION = {"VersionRequirement": ">=1.0.0 <2.0.0", "DependencyType": "SOFT"}


@dataclass(frozen=True)
class DeployedComponent:
    name: str
    version: str
    resource: gg.CfnComponentVersion
    configuration: dict | None = None
    # The deployment's runWith posixUser for this component ("user:group"), when not the default.
    posix_user: str | None = None


def install_stamp(python: str, requirements: list[str]) -> str:
    """The file name that says "this interpreter has these pins installed"."""
    digest = hashlib.sha256("\n".join([python, *requirements]).encode()).hexdigest()[:16]
    return f".installed-{digest}"


def device_requirements(project_root: Path) -> list[str]:
    """The `device` extra of pyproject.toml: one place pins what runs on the Pi."""
    pyproject = tomllib.loads((project_root / "pyproject.toml").read_text())
    return list(pyproject["project"]["optional-dependencies"]["device"])


class DeviceComponents(Construct):
    """The Lambda component of every device function (device_code.functions), the model and the
    device runtime they run on: one model component per distinct model the rings run; every other component is
    one version for both rings."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: RainEdgeConfig,
        project_root: Path,
        models: list[ModelRelease],  # distinct
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.runtime = self._device_runtime(device_requirements(project_root))
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
        self.functions = {function.name: self._lambda_function(function) for function in FUNCTIONS}
        self._models = {release.sha256: self._rain_model(release) for release in models}
        environment = self._environment_values()
        self.lambdas = [self._lambda_component(function, environment) for function in FUNCTIONS]

    def ring(self, release: ModelRelease) -> list[DeployedComponent]:
        """What a ring whose model is `release` deploys: the model is all that differs between rings."""
        return [self.runtime, self._models[release.sha256], *self.lambdas]

    @property
    def all(self) -> list[DeployedComponent]:
        """Every component version the stack makes."""
        return [self.runtime, *self._models.values(), *self.lambdas]

    @property
    def logged_names(self) -> list[str]:
        """The components that run code, hence write a log (the model component only holds an artifact)."""
        return [component.name for component in (self.runtime, *self.lambdas)]

    def _environment_values(self) -> dict[str, str]:
        """The value of every variable a device function reads (names: device_code.config)."""
        config = self.config
        return {
            env.LOG_LEVEL: config.log_level,
            env.SAMPLE_INTERVAL_S: str(config.sample_interval_seconds),
            env.I2C_BUS: str(config.i2c_bus),
            env.I2C_ADDRESS: hex(config.i2c_address),
            env.CPU_TEMP_COMPENSATION: "on" if config.cpu_temp_compensation else "off",
            env.CPU_TEMP_PATH: CPU_THERMAL_ZONE,
            env.STATION_FILE: config.station_file,
            env.HISTORY_FILE: f"{self._work_folder(INFERENCE.component)}/{HISTORY_FILE_NAME}",
            env.INFERENCE_INTERVAL_S: str(config.inference_interval_seconds),
            env.MAX_INPUT_AGE_S: str(config.max_input_age_seconds),
            # The model the model component's self-test passed last, whichever version that is (see _rain_model).
            env.MODEL_DIR: f"{self._work_folder(MODEL_COMPONENT)}/{SERVING_LINK}",
        }

    def _work_folder(self, suffix: str) -> str:
        """The work folder the nucleus gives a component: <root>/work/<component name>."""
        return f"{self.config.greengrass_root}/work/{self.config.component_name(suffix)}"

    @property
    def site_packages(self) -> str:
        venv = f"{self._work_folder(RUNTIME_COMPONENT)}/{RUNTIME_VENV}"
        return f"{venv}/lib/{self.config.python_executable}/site-packages"

    # ---- components ---------------------------------------------------------------------
    def _lambda_function(self, function: DeviceFunction) -> lambda_.Function:
        config = self.config
        lambda_function = lambda_.Function(
            self,
            f"{function.component}Function",
            function_name=config.function_name(function.name),
            runtime=lambda_.Runtime(config.lambda_runtime, lambda_.RuntimeFamily.PYTHON),
            handler=function.handler,
            code=self.code,
            role=self.function_role,
            reserved_concurrent_executions=0,
            timeout=Duration.seconds(30),
            description=f"rainedge device function ({function.name}); runs on Greengrass, not in Lambda",
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
        )
        acknowledge(
            lambda_function,
            "AwsSolutions-L1",
            "The runtime must match the Python of the Raspberry Pi (context key lambdaRuntime), "
            "not the newest cloud runtime: the function runs on the device.",
        )
        return lambda_function

    def _lambda_component(self, function: DeviceFunction, values: dict[str, str]) -> DeployedComponent:
        config = self.config
        # The device-runtime component's virtual environment holds the device packages.
        environment = {**{name: values[name] for name in function.environment}, "PYTHONPATH": self.site_packages}
        dependencies = {self.runtime.name: _exactly(self.runtime.version)}
        depends_on = [self.runtime.resource]
        if function.needs_model:
            # SOFT and any of our versions: the function reads the model through the serving link, so a new
            # model neither changes this component's version nor restarts it ("SOFT – The component doesn't
            # restart if the dependency changes state", component recipe reference, ComponentDependencies).
            dependencies[config.component_name(MODEL_COMPONENT)] = dict(ANY_MODEL_VERSION)
            depends_on.extend(model.resource for model in self._models.values())
        if function.uses_local_shadows:
            dependencies[ggv.SHADOW_MANAGER] = dict(ggv.SHADOW_MANAGER_DEPENDENCY)
        name = config.component_name(function.component)
        version = ggv.content_version(name, {
            "pinned": function.pinned,
            "environment": environment,
            "event_source": function.event_source,
            "dependencies": dependencies,
            "runtime": config.lambda_runtime,
            "handler": function.handler,
            "code": self.code_fingerprint,
        })
        lambda_parameters = gg.CfnComponentVersion.LambdaExecutionParametersProperty(
            pinned=function.pinned,
            environment_variables=environment,
            event_sources=[gg.CfnComponentVersion.LambdaEventSourceProperty(topic=function.event_source,
                                                                             type="PUB_SUB")]
            if function.event_source
            else None,
            timeout_in_seconds=30,
            status_timeout_in_seconds=60,
            # Not pinned: one instance at a time, so shadow writes never race.
            max_instances_count=None if function.pinned else 1,
            max_idle_time_in_seconds=None if function.pinned else 60,
            input_payload_encoding_type="json",
            linux_process_params=gg.CfnComponentVersion.LambdaLinuxProcessParamsProperty(
                # No container: the sensor opens /dev/i2c-* directly, as its run-as user.
                isolation_mode="NoContainer",
            ),
        )
        resource = gg.CfnComponentVersion(
            self,
            f"{function.component}Component",
            lambda_function=gg.CfnComponentVersion.LambdaFunctionRecipeSourceProperty(
                lambda_arn=self.functions[function.name].current_version.function_arn,
                component_name=name,
                component_version=version,
                component_platforms=LINUX,
                component_dependencies={
                    dependency: gg.CfnComponentVersion.ComponentDependencyRequirementProperty(
                        version_requirement=requirement["VersionRequirement"],
                        dependency_type=requirement["DependencyType"],
                    )
                    for dependency, requirement in dependencies.items()
                },
                component_lambda_parameters=lambda_parameters,
            ),
        )
        resource.node.add_dependency(*depends_on)
        return DeployedComponent(
            name,
            version,
            resource,
            {"accessControl": ggv.access_control(name, function.grants)},
            posix_user=f"{DEFAULT_POSIX_USER}:{function.posix_group}" if function.posix_group else None,
        )

    def _recipe_component(self, suffix: str, description: str, manifest: dict, content: object,
                          dependencies: dict | None = None, construct_id: str | None = None) -> DeployedComponent:
        """`content`: what the version is derived from; it must cover every part of the recipe that changes."""
        name = self.config.component_name(suffix)
        construct_id = construct_id or f"{suffix}Component"
        version = ggv.content_version(name, content)
        recipe = {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": name,
            "ComponentVersion": version,
            "ComponentDescription": description,
            "ComponentPublisher": self.config.name_prefix,
            **({"ComponentDependencies": dependencies} if dependencies else {}),
            "Manifests": [{"Platform": {"os": "linux"}, **manifest}],
        }
        resource = gg.CfnComponentVersion(self, construct_id, inline_recipe=Stack.of(self).to_json_string(recipe))
        return DeployedComponent(name, version, resource)

    def _self_test_step(self, release: ModelRelease) -> dict:
        """The model component's Startup step: the artifact's own self-test (device_code.selftest), run
        with the device runtime's python, which on a pass (and only then) points the serving link at this
        artifact. The inference function serves whatever the link names and reloads when it changes, so while
        a candidate downloads and tests the previous model keeps answering, and a candidate that fails is never
        served: no gap in predictions because of an update.

        Startup, not Install: the nucleus runs Install as soon as the component is NEW, without waiting for
        its dependencies (aws-greengrass-nucleus Lifecycle.handleCurrentStateNew; only INSTALLED -> STARTING
        waits, in waitForDependencyReady), so on a first deployment the venv would not exist yet. Startup
        runs once the HARD dependency on the runtime is ready and "must exit successfully ... before
        dependent components can start"; "the deployment's status is IN_PROGRESS until all components'
        startup scripts exit" (component recipe reference, Lifecycle > Startup). A non-zero exit makes the
        component ERRORED; "If the component enters the ERRORED state three times without a successful
        run, the component becomes BROKEN" (developer guide, component lifecycle), a BROKEN component fails
        the deployment (nucleus DeploymentConfigMerger: "Service %s in broken state after deployment") and
        the deployment's failureHandlingPolicy ROLLBACK "rolls back that core device to its previous
        configuration" (developer guide, Create deployments). Startup runs whenever the component starts:
        a new version (every new model zip), a nucleus start, and a restart of the runtime it depends on.
        """
        artifact = f"{{artifacts:decompressedPath}}/{release.folder}"
        # {<dependency>:work:path}: "The work path ... for a component on which this component depends ...
        # You can specify only direct dependencies" (component recipe reference, Recipe variables).
        python = f"{{{self.runtime.name}:work:path}}/{RUNTIME_VENV}/bin/python"
        return {
            # -s -P: no user site-packages, not the current folder (the work folder, $PWD) on sys.path;
            # not -I, which also ignores PYTHONPATH.
            "Script": f"{python} -s -P -m {selftest.__name__} {artifact} --serve {{work:path}}/{SERVING_LINK}",
            # The device code the self-test runs is the artifact's own (model_training.golden); Setenv is
            # "The dictionary of environment variables to provide to the script".
            "Setenv": {"PYTHONPATH": f"{artifact}/{selftest.CODE_FOLDER}"},
            # "The maximum amount of time in seconds that the script can run before the AWS IoT Greengrass
            # Core software terminates the process."
            "Timeout": SELF_TEST_TIMEOUT_SECONDS,
            # As the component's user, the default one that owns the runtime's work folder too, and its own work
            # folder (mode 0700), which the inference function, running as that user as well, reads through.
            "RequiresPrivilege": False,
        }

    def _rain_model(self, release: ModelRelease) -> DeployedComponent:
        lifecycle = {"Startup": self._self_test_step(release)}
        # HARD: "The component restarts if the dependency changes state" (component recipe reference,
        # ComponentDependencies): a reinstalled runtime runs the self-test again.
        dependencies = {self.runtime.name: _exactly(self.runtime.version)}
        # One resource per model content, and its logical id in the version: when the rings swap models,
        # CloudFormation creates a version before it deletes the one it replaces, and Greengrass versions are
        # immutable, so no two logical ids may ever hold one version.
        construct_id = f"{MODEL_COMPONENT}{release.sha256[:12]}Component"
        component = self._recipe_component(
            MODEL_COMPONENT,
            "The rain model (SavedModel + TFLite + metadata), self-tested, unarchived on the device",
            {
                "Artifacts": [
                    {
                        "Uri": release.uri,
                        "Unarchive": "ZIP",
                        # The inference function reads it; a model is no secret.
                        "Permission": {"Read": "ALL", "Execute": "NONE"},
                    }
                ],
                "Lifecycle": lifecycle,
            },
            content={"model_sha256": release.sha256, "key": release.key, "lifecycle": lifecycle,
                     "dependencies": dependencies, "resource": construct_id},
            dependencies=dependencies,
            construct_id=construct_id,
        )
        # Greengrass reads the artifact when the component version is created; the runtime version the
        # recipe names is created first, as for the Lambda components.
        component.resource.node.add_dependency(release.upload, self.runtime.resource)
        return component

    def _device_runtime(self, requirements: list[str]) -> DeployedComponent:
        python = self.config.python_executable
        venv = f"{{work:path}}/{RUNTIME_VENV}"
        packages = " ".join(f"'{requirement}'" for requirement in requirements)
        stamp = f"{venv}/{install_stamp(python, requirements)}"
        # Install "also runs ... each time the software launches" unless its Skipif holds ("exists <file>":
        # component recipe reference, Lifecycle > Install > Skipif). The stamp, named by the pins, is
        # written only after pip succeeded: a Pi that boots offline starts from what it has, and new pins
        # install again.
        script = (
            f"{python} -m venv {venv} && "
            f"{venv}/bin/python -m pip install --disable-pip-version-check --no-input {packages} && "
            f"touch {stamp}"
        )
        return self._recipe_component(
            RUNTIME_COMPONENT,
            f"Installs the device-side Python packages into a {python} virtual environment",
            {"Lifecycle": {"Install": {"Script": script, "Skipif": f"exists {stamp}",
                                       "Timeout": RUNTIME_INSTALL_TIMEOUT_SECONDS,
                                       "RequiresPrivilege": False}}},
            content={"script": script},
        )
