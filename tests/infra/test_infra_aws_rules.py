"""AWS's documented rules, checked on the synthesized template (each test cites the rule it checks).

These are the limits and semantics nothing offline enforces: CloudFormation, cfn-lint and cdk-nag
accept a template that AWS IoT or Greengrass would refuse or misread at deploy or run time.
"""
from __future__ import annotations

import json
import re

import pytest
import semantic_version

from device_code.contracts import SHADOW_NAMES
from device_code.functions import FUNCTIONS
from infra_support import core_scope_problems, things, worst_case_pseudo
from infra.config import MAX_SILENCE_SECONDS
from infra.greengrass import (DOCUMENTED_REQUIREMENTS, INTERPOLATION_MIN_NUCLEUS, LOG_MANAGER,
                              LOG_MANAGER_RECOMMENDED, LOG_MANAGER_UPLOADS_ACTIVE_FILE, NUCLEUS,
                              PUBLIC_COMPONENT_VERSIONS, SHADOW_MANAGER)
from infra.iot_policy import MAX_DOCUMENT_CHARACTERS, document_size
from infra.synthesized import Pseudo, SynthesizedStack

pytestmark = pytest.mark.slow

# CloudFormation resource schema of AWS::IoT::TopicRule: RuleName "pattern": "^[a-zA-Z0-9_]+$", 1-128.
TOPIC_RULE_NAME = re.compile(r"^[a-zA-Z0-9_]{1,128}$")
# CloudFormation quotas ("Understand CloudFormation quotas"): resources per template, and the largest
# template body CloudFormation accepts (from S3; cdk deploy uploads large templates there).
MAX_RESOURCES, MAX_TEMPLATE_BYTES = 500, 1_000_000


# The longest namePrefix (it names the role alias in every policy).
LONGEST_PREFIX = "r" * 30


@pytest.fixture(scope="module")
def fleet_of_50(synth_variant_module):
    return SynthesizedStack(synth_variant_module(devices=json.dumps(things(50)), namePrefix=LONGEST_PREFIX))


@pytest.fixture(scope="module")
def synth_variant_module(trained_model_dir, tmp_path_factory, secrets_dir):
    from infra_support import synthesize

    def run(**overrides) -> dict:
        return synthesize(tmp_path_factory.mktemp("cdk.out"), secrets_dir, **overrides)

    return run


@pytest.mark.parametrize("count", [1, 10, 50])
def test_every_iot_policy_fits_createpolicy_at_worst_case_arn_lengths(synth_variant_module, fleet_of_50, count):
    # CreatePolicy: "Maximum length of 2048, excluding whitespace."
    stack = fleet_of_50 if count == 50 else SynthesizedStack(
        synth_variant_module(devices=json.dumps(things(count)), namePrefix=LONGEST_PREFIX))
    pseudo = worst_case_pseudo()
    assert len(stack.thing_names()) == count
    for thing in stack.thing_names():
        (document,) = stack.policies_of_thing(thing, pseudo).values()
        assert LONGEST_PREFIX in json.dumps(document)
        assert document_size(document) <= MAX_DOCUMENT_CHARACTERS, thing


def test_each_core_may_sync_its_own_named_shadows_and_talk_only_as_itself(fleet_of_50):
    # "AWS IoT Core action resources": a named shadow is thing/<thing>/<shadow>, the classic one
    # thing/<thing>; the client ids and topics are those of AWS's minimal core-device policy.
    names = fleet_of_50.thing_names()
    for index, thing in enumerate(names):
        policies = fleet_of_50.policies_of_thing(thing, Pseudo()).values()
        assert core_scope_problems(policies, thing, names[(index + 1) % len(names)], Pseudo()) == [], thing


def test_no_pub_sub_event_source_has_an_mqtt_wildcard(template):
    # API reference, LambdaEventSource: PUB_SUB "doesn't support MQTT wildcards (+ and #)".
    components = SynthesizedStack(template).lambda_components().values()
    sources = [(topic, kind) for component in components for topic, kind in component.event_sources]
    assert sources, "the shadow writer has an event source"
    for topic, kind in sources:
        assert kind in ("PUB_SUB", "IOT_CORE")
        if kind == "PUB_SUB":
            assert "+" not in topic and "#" not in topic, topic


def test_every_component_dependency_resolves_within_the_deployment(template):
    stack = SynthesizedStack(template)
    deployed = {name: semantic_version.Version(spec.version) for name, spec in stack.deployment().items()}
    for component in stack.lambda_components().values():
        assert component.name in deployed
        for dependency, requirement in component.dependencies.items():
            assert dependency in deployed, f"{component.name} needs {dependency}, which is not deployed"
            # Greengrass version requirements are npm-style ranges (component recipe reference).
            assert semantic_version.NpmSpec(requirement["VersionRequirement"]).match(deployed[dependency])


def test_pinned_aws_components_meet_their_documented_requirements(template):
    deployed = SynthesizedStack(template).deployment()
    for name, version in PUBLIC_COMPONENT_VERSIONS.items():
        assert deployed[name].version == version
    for rule in DOCUMENTED_REQUIREMENTS:
        pinned = semantic_version.Version(PUBLIC_COMPONENT_VERSIONS[rule.dependency])
        assert semantic_version.NpmSpec(rule.version_range).match(pinned), rule


def test_thing_name_interpolation_is_on_wherever_access_control_uses_it(template):
    # Nucleus configuration interpolateComponentConfiguration: from 2.6.0, default false.
    deployed = SynthesizedStack(template).deployment()
    uses = [name for name, spec in deployed.items() if "{iot:thingName}" in json.dumps(spec.merge)]
    assert uses
    assert deployed[NUCLEUS].merge["interpolateComponentConfiguration"] is True
    assert semantic_version.Version(deployed[NUCLEUS].version) >= semantic_version.Version(INTERPOLATION_MIN_NUCLEUS)


def test_components_using_local_shadows_depend_on_shadow_manager(template):
    # "Interact with local shadows": include the shadow manager component as a dependency.
    components = {c.handler: c for c in SynthesizedStack(template).lambda_components().values()}
    for function in FUNCTIONS:
        dependencies = components[function.handler].dependencies
        assert (SHADOW_MANAGER in dependencies) == function.uses_local_shadows, function.name
        if function.uses_local_shadows:
            assert dependencies[SHADOW_MANAGER]["DependencyType"] == "HARD"


def test_the_sensor_runs_with_the_i2c_group_as_its_primary_group(template):
    # Create deployments, runWith posixUser "user:group"; it applies to non-containerized Lambda
    # components ("Configure the user that runs components"). The group need not be supplementary.
    stack = SynthesizedStack(template)
    by_handler = {c.handler: name for name, c in stack.lambda_components().items()}
    deployed = stack.deployment()
    for function in FUNCTIONS:
        user = deployed[by_handler[function.handler]].posix_user
        assert user == (f"ggc_user:{function.posix_group}" if function.posix_group else None)


def test_shadow_manager_syncs_exactly_the_named_shadows_and_not_the_classic_one(template):
    # Shadow manager configuration: synchronize.coreThing.classic defaults to true; named shadows are listed.
    core_thing = SynthesizedStack(template).deployment()[SHADOW_MANAGER].merge["synchronize"]["coreThing"]
    assert core_thing == {"classic": False, "namedShadows": list(SHADOW_NAMES)}


@pytest.mark.parametrize("which", ["default", "50 devices"])
def test_the_template_stays_within_cloudformation_quotas(template, fleet_of_50, which):
    chosen = template if which == "default" else fleet_of_50.template
    assert len(chosen["Resources"]) <= MAX_RESOURCES
    assert len(json.dumps(chosen).encode()) <= MAX_TEMPLATE_BYTES


def test_log_manager_uploads_the_active_log_file_and_is_a_recommended_version(template):
    # Log manager: <= 2.2.8 uploads rotated files only, >= 2.3.0 the active file; "We recommend
    # upgrading to Log Manager v2.3.5 or later."
    pinned = semantic_version.Version(SynthesizedStack(template).deployment()[LOG_MANAGER].version)
    assert pinned >= semantic_version.Version(LOG_MANAGER_UPLOADS_ACTIVE_FILE)
    assert pinned >= semantic_version.Version(LOG_MANAGER_RECOMMENDED)


# CreateFleetMetric (AWS IoT API reference): metricName 1-128 of [a-zA-Z0-9_\-\.]; indexName 1-128 of
# [a-zA-Z0-9:_-]; period "Range [60(1 min), 86400(1 day)] and must be multiple of 60"; AggregationType
# name Statistics | Percentiles | Cardinality, values 1-12 of [a-zA-Z0-9]+.
FLEET_METRIC_NAME = re.compile(r"[a-zA-Z0-9_\-.]{1,128}")
INDEX_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
AGGREGATION_VALUE = re.compile(r"[a-zA-Z0-9]{1,12}")
# "Query syntax": unsupported special characters; "If you don't specify an aggregation field,
# registry.version is used" ("Querying for aggregate data": a managed field).
UNSUPPORTED_QUERY_CHARACTERS = set("`@#%\\/';,")
# "Manage thing indexing": named shadow fields are shadow.name.<shadowName>.<section>.<field>.
NAMED_SHADOW_FIELD = re.compile(r"shadow\.name\.([A-Za-z0-9_-]+)\.reported\.")


@pytest.mark.parametrize("which", ["default", "50 devices"])
def test_fleet_metrics_fit_createfleetmetric_and_query_only_what_is_indexed(template, fleet_of_50, which):
    from infra.fleet_index import INDEXED_SHADOWS, MAX_QUERY_TERMS
    chosen = SynthesizedStack(template if which == "default" else fleet_of_50.template)
    metrics = list(chosen.of_type("AWS::IoT::FleetMetric").values())
    assert metrics
    (settings,) = chosen.of_type("Custom::FleetIndexing").values()
    indexed = settings["NamedShadowNames"]
    assert indexed == list(INDEXED_SHADOWS)
    for metric in metrics:
        assert FLEET_METRIC_NAME.fullmatch(metric["MetricName"]) and INDEX_NAME.fullmatch(metric["IndexName"])
        assert 60 <= metric["Period"] <= 86_400 and metric["Period"] % 60 == 0
        assert metric["AggregationType"]["Name"] in ("Statistics", "Percentiles", "Cardinality")
        assert all(AGGREGATION_VALUE.fullmatch(value) for value in metric["AggregationType"]["Values"])
        assert metric["AggregationField"] == "registry.version"
        query = metric["QueryString"]
        assert not set(query) & UNSUPPORTED_QUERY_CHARACTERS and query.count(":") <= MAX_QUERY_TERMS
        assert set(NAMED_SHADOW_FIELD.findall(query)) <= set(indexed), query


@pytest.mark.parametrize("which", ["default", "50 devices"])
def test_fleet_metric_alarms_fit_the_evaluation_window_cloudwatch_allows(template, fleet_of_50, which):
    # PutMetricAlarm Period: "For alarms with a period of less than one hour (3,600 seconds), the total
    # evaluation period can't be longer than one day (86,400 seconds)."
    chosen = SynthesizedStack(template if which == "default" else fleet_of_50.template)
    names = {m["MetricName"] for m in chosen.of_type("AWS::IoT::FleetMetric").values()}
    alarms = [a for a in chosen.of_type("AWS::CloudWatch::Alarm").values() if a.get("MetricName") in names]
    assert len(alarms) == 3
    for alarm in alarms:
        assert alarm["Period"] < 3600 and alarm["EvaluationPeriods"] * alarm["Period"] <= MAX_SILENCE_SECONDS


@pytest.mark.parametrize("which", ["default", "50 devices"])
def test_topic_rule_names_fit_the_resource_schema(template, fleet_of_50, which):
    chosen = SynthesizedStack(template if which == "default" else fleet_of_50.template)
    names = list(chosen.topic_rules())
    assert names and all(TOPIC_RULE_NAME.fullmatch(name) for name in names), names
