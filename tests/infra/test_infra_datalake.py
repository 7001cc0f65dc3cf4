"""The data lake as synthesized (infra/datalake.py), checked against AWS's documented rules, each test citing
the rule; and the rule -> Firehose -> S3 path run against moto as far as moto implements it."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import boto3
import pytest
from infra_support import joined, resources_of
from moto import mock_aws

from device_code.contracts import RAIN_SHADOW, WEATHER_SHADOW, shadow_topic
from infra import datalake, lake, lake_delivery
from infra import shadow_records as sr
from infra.config import ConfigError, RainEdgeConfig
from infra.iot_sql import TopicRule
from infra.lifecycle.outputs import LAKE_KEYS, parse_outputs
from infra.synthesized import SynthesizedStack

CONFIG = RainEdgeConfig()
FED = [table for table in lake.TABLES if table.rule is not None]
NOW_MS = int(datetime(2026, 12, 7, 11, 40, tzinfo=timezone.utc).timestamp() * 1000)
LONGEST_THING = "x" * 64  # a thing name of the longest length IoT allows


@pytest.fixture(scope="module")
def variant(trained_model_dir, tmp_path_factory, secrets_dir):
    """Another prefix (with '-', which Glue names may not hold) and another retention, in one synth."""
    from infra_support import synthesize
    return synthesize(tmp_path_factory.mktemp("cdk.out"), secrets_dir, namePrefix="wx-lab-2", lakeRetentionDays=30)


def of_type(template, resource_type) -> dict[str, dict]:
    return {key: value["Properties"] for key, value in resources_of(template, resource_type).items()}


def streams(template) -> dict[str, dict]:
    """Delivery stream name -> its ExtendedS3DestinationConfiguration."""
    return {props["DeliveryStreamName"]: props["ExtendedS3DestinationConfiguration"]
            for props in of_type(template, "AWS::KinesisFirehose::DeliveryStream").values()}


def stream_of(template, table, config=CONFIG) -> dict:
    return streams(template)[config.lake_stream_name(table.name)]


def glue_tables(template) -> dict[str, dict]:
    return {props["TableInput"]["Name"]: props for props in of_type(template, "AWS::Glue::Table").values()}


def policy_statements(template, role_logical_id) -> list[dict]:
    return [statement for props in of_type(template, "AWS::IAM::Policy").values()
            if {"Ref": role_logical_id} in props["Roles"] for statement in props["PolicyDocument"]["Statement"]]


def listed(value) -> list:
    return value if isinstance(value, list) else [value]


def bucket_logical_id(template) -> str:
    return template["Outputs"]["LakeBucketName"]["Value"]["Ref"]


# ---- Firehose ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_buffering_respects_the_bounds_of_format_conversion_and_dynamic_partitioning(template):
    # "BufferingHints": SizeInMBs 1-128, IntervalInSeconds 0-900; with data format conversion or dynamic
    # partitioning the buffer is at least 64 MiB (the CDK's Firehose module refuses less:
    # DataFormatConversionBufferingSizeTooSmall), and "Zero buffering feature is not available for dynamic
    # partitioning" ("Buffer data for dynamic partitioning").
    for table in FED:
        destination = stream_of(template, table)
        assert destination["DataFormatConversionConfiguration"]["Enabled"] is True
        assert destination["DynamicPartitioningConfiguration"]["Enabled"] is True
        hints = destination["BufferingHints"]
        assert 64 <= hints["SizeInMBs"] <= 128 and 0 < hints["IntervalInSeconds"] <= 900


@pytest.mark.slow
def test_format_conversion_reads_json_writes_parquet_against_the_tables_schema_uncompressed_by_s3(template):
    # "Record format conversion requirements": a deserializer, a schema (a Glue table), a serializer; "Amazon S3
    # compression gets disabled when you enable format conversion" ("Enable record format conversion").
    tables = glue_tables(template)
    for table in FED:
        destination = stream_of(template, table)
        conversion = destination["DataFormatConversionConfiguration"]
        assert conversion["InputFormatConfiguration"]["Deserializer"] == {"OpenXJsonSerDe": {}}
        assert "ParquetSerDe" in conversion["OutputFormatConfiguration"]["Serializer"]
        schema = conversion["SchemaConfiguration"]
        assert (schema["DatabaseName"], schema["TableName"]) == (CONFIG.lake_database_name, table.name)
        assert table.name in tables and schema["VersionId"] == "LATEST"
        assert schema["RoleARN"] == destination["RoleARN"]
        assert destination["CompressionFormat"] == "UNCOMPRESSED"


def expressions(prefix: str) -> list[tuple[str, str]]:
    return re.findall(r"!\{([A-Za-z]+):([^}]*)\}", prefix)


@pytest.mark.slow
def test_the_prefixes_follow_firehoses_semantic_rules(template):
    # "Custom prefixes for Amazon S3 objects", Semantic rules: an ErrorOutputPrefix with expressions holds
    # !{firehose:error-output-type}, which Prefix may not; "!{" only opens a !{namespace:value} expression;
    # neither is longer than 512 characters after evaluation. Namespaces: firehose, timestamp,
    # partitionKeyFromQuery, partitionKeyFromLambda; timestamp takes Java DateTimeFormatter patterns.
    for table in FED:
        destination = stream_of(template, table)
        prefix, errors = destination["Prefix"], destination["ErrorOutputPrefix"]
        assert ("firehose", "error-output-type") in expressions(errors)
        assert "error-output-type" not in prefix
        for text in (prefix, errors):
            assert text.count("!{") == len(expressions(text))
            assert {namespace for namespace, _ in expressions(text)} <= {"firehose", "timestamp", "partitionKeyFromQuery"}
            assert all(re.fullmatch(r"[yMdH-]+", value) for namespace, value in expressions(text)
                       if namespace == "timestamp")
            evaluated = re.sub(r"!\{[^}]*\}", LONGEST_THING, text)  # every expression at its longest
            assert len(evaluated) <= 512


@pytest.mark.slow
def test_every_partition_key_of_the_prefix_is_extracted_by_the_jq_query(template):
    # "Partitioning keys with inline parsing": each !{partitionKeyFromQuery:key} names a key of the
    # MetadataExtraction processor's JQ query (JsonParsingEngine JQ-1.6).
    for table in FED:
        destination = stream_of(template, table)
        (processor,) = destination["ProcessingConfiguration"]["Processors"]
        assert processor["Type"] == "MetadataExtraction"
        parameters = {item["ParameterName"]: item["ParameterValue"] for item in processor["Parameters"]}
        assert parameters["JsonParsingEngine"] == "JQ-1.6"
        query = re.fullmatch(r"\{(.*)\}", parameters["MetadataExtractionQuery"]).group(1)
        extracted = dict(part.strip().split(": ") for part in query.split(","))
        used = {value for namespace, value in expressions(destination["Prefix"]) if namespace == "partitionKeyFromQuery"}
        assert used and used <= set(extracted)
        # Each key reads the record member of its own name, which the rule writes.
        assert all(extracted[key] == f".{key}" and key == table.rule.thing_key for key in used)


@pytest.mark.slow
def test_firehose_writes_where_athena_projects_the_partitions(template):
    # The Firehose prefix, evaluated for one thing and day, is the key prefix Athena's storage.location.template
    # gives for the same partition values ("Use partition projection with Amazon Athena"), under the same bucket.
    tables = glue_tables(template)
    for table in FED:
        destination = stream_of(template, table)
        firehose_key = (destination["Prefix"].replace("!{timestamp:yyyy-MM-dd}", "2026-12-07")
                        .replace(f"!{{partitionKeyFromQuery:{lake.THING}}}", "pi-1"))
        location = joined(tables[table.name]["TableInput"]["Parameters"]["storage.location.template"])
        athena_key = location.replace("${day}", "2026-12-07").replace("${thing}", "pi-1")
        assert athena_key == f"s3://<token>/{firehose_key}"
        assert destination["BucketARN"] == {"Fn::GetAtt": [bucket_logical_id(template), "Arn"]}
        # Failed records land outside every table's location.
        assert not any(destination["ErrorOutputPrefix"].startswith(f"{other.prefix}/") for other in lake.TABLES)


@pytest.mark.slow
def test_streams_are_direct_put_encrypted_and_named_as_firehose_allows(template, variant):
    # CreateDeliveryStream: DeliveryStreamName 1-64 of [a-zA-Z0-9_.-]; Direct PUT is the IoT rule action's
    # source; DeliveryStreamEncryptionConfigurationInput KeyType AWS_OWNED_CMK or CUSTOMER_MANAGED_CMK.
    for chosen, config in ((template, CONFIG), (variant, RainEdgeConfig(name_prefix="wx-lab-2"))):
        found = of_type(chosen, "AWS::KinesisFirehose::DeliveryStream")
        assert sorted(props["DeliveryStreamName"] for props in found.values()) == sorted(
            config.lake_stream_name(table.name) for table in FED)
        for props in found.values():
            assert re.fullmatch(r"[a-zA-Z0-9_.-]{1,64}", props["DeliveryStreamName"])
            assert props["DeliveryStreamType"] == "DirectPut"
            assert props["DeliveryStreamEncryptionConfigurationInput"]["KeyType"] in ("AWS_OWNED_CMK",
                                                                                      "CUSTOMER_MANAGED_CMK")


@pytest.mark.slow
def test_the_delivery_role_has_exactly_the_documented_actions_on_the_lakes_own_resources(template):
    # "Controlling access with Amazon Data Firehose": the S3 destination's six actions, Glue's GetTable,
    # GetTableVersion and GetTableVersions for format conversion, logs:PutLogEvents for error logging; the
    # trust policy lets firehose.amazonaws.com assume the role with the account as sts:ExternalId.
    bucket = bucket_logical_id(template)
    for table in FED:
        destination = stream_of(template, table)
        role = destination["RoleARN"]["Fn::GetAtt"][0]
        (trust,) = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "firehose.amazonaws.com"}
        assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "AWS::AccountId"}}}
        statements = policy_statements(template, role)
        actions = sorted(action for statement in statements for action in listed(statement["Action"]))
        assert actions == sorted([*datalake.FIREHOSE_S3_ACTIONS, *datalake.FIREHOSE_GLUE_ACTIONS, "logs:PutLogEvents"])
        assert sorted(datalake.FIREHOSE_S3_ACTIONS) == ["s3:AbortMultipartUpload", "s3:GetBucketLocation",
                                                        "s3:GetObject", "s3:ListBucket", "s3:ListBucketMultipartUploads",
                                                        "s3:PutObject"]
        resources = [joined(resource) if isinstance(resource, dict) and "Fn::Join" in resource else resource
                     for statement in statements for resource in listed(statement["Resource"])]
        assert "*" not in resources
        s3_resources = [resource for statement in statements if "s3:PutObject" in statement["Action"]
                        for resource in listed(statement["Resource"])]
        assert s3_resources[0] == {"Fn::GetAtt": [bucket, "Arn"]}
        assert [joined(item) for item in s3_resources[1:]] == [
            f"<token>/{table.prefix}/*", f"<token>/{lake_delivery.ERRORS_PREFIX}/{table.prefix}/*"]
        glue = "arn:<token>:glue:<token>:<token>"
        assert [resource for resource in resources if isinstance(resource, str) and ":glue:" in resource] == [
            f"{glue}:catalog", f"{glue}:database/{CONFIG.lake_database_name}",
            f"{glue}:table/{CONFIG.lake_database_name}/{table.name}"]


# ---- the rules ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_each_fed_table_has_its_rule_named_as_iot_allows_with_the_contracts_sql(template, variant):
    # CreateTopicRule ruleName: 1-128 of [a-zA-Z0-9_]; SQL version 2016-03-23 (infra/shadow_records.py).
    for chosen, config in ((template, CONFIG), (variant, RainEdgeConfig(name_prefix="wx-lab-2"))):
        rules = SynthesizedStack(chosen).lake_rules()
        assert list(rules) == [config.topic_rule_name(table.rule.purpose) for table in FED]
        for name, table in zip(rules, FED):
            assert re.fullmatch(r"[a-zA-Z0-9_]{1,128}", name)
            assert rules[name]["Sql"] == table.rule.sql()
            assert (rules[name]["AwsIotSqlVersion"], rules[name]["RuleDisabled"]) == (sr.SQL_VERSION, False)


@pytest.mark.slow
def test_a_rule_puts_into_its_own_stream_with_a_role_for_that_stream_only_and_reports_errors(template):
    # "Firehose" rule action: a role AWS IoT assumes "to perform the firehose:PutRecord operation" (batchMode
    # off); Separator one of '\n', '\t', '\r\n', ','; "Error handling (error action)".
    rules = SynthesizedStack(template).lake_rules()
    shadow_error = next(iter(SynthesizedStack(template).topic_rules().values()))["ErrorAction"]
    stream_ids = {props["DeliveryStreamName"]: key
                  for key, props in of_type(template, "AWS::KinesisFirehose::DeliveryStream").items()}
    for name, table in zip(rules, FED):
        (action,) = rules[name]["Actions"]
        put = action["Firehose"]
        stream = stream_ids[CONFIG.lake_stream_name(table.name)]
        assert put["DeliveryStreamName"] == {"Ref": stream}
        assert put["Separator"] in ("\n", "\t", "\r\n", ",") and put["BatchMode"] is False
        assert rules[name]["ErrorAction"] == shadow_error
        role = put["RoleArn"]["Fn::GetAtt"][0]
        (trust,) = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "iot.amazonaws.com"}
        (statement,) = policy_statements(template, role)
        assert listed(statement["Action"]) == ["firehose:PutRecord"]
        assert listed(statement["Resource"]) == [{"Fn::GetAtt": [stream, "Arn"]}]


def complete_documents() -> list[tuple[str, dict]]:
    reading = {"temperature": 11.5, "humidity": 93.0, "pressure": 1004.2, "sea_level_pressure": 1010.1,
               "sampled_at": "2026-12-07T11:38:12.123Z"}
    prediction = {"raining": False, "probability": 0.12, "threshold": 0.5, "model": "trend",
                  "model_version": "rain-0123456789abcdef", "adaptation": "a-0123456789abcdef",
                  "input_sampled_at": "2026-12-07T11:38:12.123Z", "predicted_at": "2026-12-07T11:38:13.000Z"}
    return [(shadow_topic("pi-1", shadow, "update/documents"), {"current": {"state": {"reported": reported}}})
            for shadow, reported in ((WEATHER_SHADOW, reading), (RAIN_SHADOW, prediction))]


@pytest.mark.slow
def test_the_synthesized_rules_records_are_the_tables_columns_and_the_thing_partition(template):
    # Firehose converts each record against its Glue table and takes `thing` for the prefix; the rule's record
    # keys must be the table's columns plus the partition key, nothing else.
    rules = SynthesizedStack(template).lake_rules()
    tables = glue_tables(template)
    for (topic, document), (name, payload), table in zip(complete_documents(), rules.items(), FED):
        record = TopicRule(payload["Sql"]).evaluate(topic, document, NOW_MS)
        columns = [column["Name"] for column in tables[table.name]["TableInput"]["StorageDescriptor"]["Columns"]]
        assert set(record) == {*columns, lake.THING} and record[lake.THING] == "pi-1"


# ---- Glue and Athena --------------------------------------------------------------------------------
@pytest.mark.slow
def test_glue_names_are_what_athena_reads(template, variant):
    # "Name databases, tables, and columns" (Athena): lower case, 1-255 bytes; and a CloudFormation database without
    # a name gets one Athena cannot use, so the name is given. Athena reads '_' but not '-' without quoting.
    for chosen, config in ((template, CONFIG), (variant, RainEdgeConfig(name_prefix="wx-lab-2"))):
        (database,) = of_type(chosen, "AWS::Glue::Database").values()
        name = database["DatabaseInput"]["Name"]
        assert name == config.lake_database_name and re.fullmatch(r"[a-z][a-z0-9_]{0,254}", name)
        for table in of_type(chosen, "AWS::Glue::Table").values():
            assert table["DatabaseName"] == name
            inputs = table["TableInput"]
            names = [inputs["Name"], *(column["Name"] for column in inputs["StorageDescriptor"]["Columns"]),
                     *(column["Name"] for column in inputs["PartitionKeys"])]
            assert all(re.fullmatch(r"[a-z][a-z0-9_]{0,254}", item) for item in names), names
    assert RainEdgeConfig(name_prefix="wx-lab-2").lake_database_name == "wx_lab_2_lake"


@pytest.mark.slow
def test_each_table_is_the_contract_with_partition_projection(template):
    # "Use partition projection with Amazon Athena" / "Supported types for partition projection": projection.enabled;
    # a date column needs type, range and format (yyyy-MM-dd, as Firehose writes it); an injected column's value
    # comes from the query; storage.location.template holds every partition column as ${column}.
    tables = glue_tables(template)
    assert sorted(tables) == sorted(table.name for table in lake.TABLES)
    for table in lake.TABLES:
        inputs = tables[table.name]["TableInput"]
        descriptor, parameters = inputs["StorageDescriptor"], inputs["Parameters"]
        assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == list(table.columns)
        assert [(c["Name"], c["Type"]) for c in inputs["PartitionKeys"]] == [(key, "string") for key in table.partitions]
        assert inputs["TableType"] == "EXTERNAL_TABLE" and parameters["projection.enabled"] == "true"
        assert parameters[f"projection.{lake.THING}.type"] == "injected"
        template_text = joined(parameters["storage.location.template"])
        assert all(f"${{{key}}}" in template_text for key in table.partitions)
        assert joined(descriptor["Location"]) == f"s3://<token>/{table.prefix}/"
        if lake.DAY in table.partitions:
            assert parameters[f"projection.{lake.DAY}.type"] == "date"
            assert parameters[f"projection.{lake.DAY}.format"] == "yyyy-MM-dd"
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2},NOW", parameters[f"projection.{lake.DAY}.range"])
        serde = descriptor["SerdeInfo"]["SerializationLibrary"]
        if table.csv:  # "Lazy Simple SerDe": the header row is skipped by skip.header.line.count
            assert serde == "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
            assert parameters["skip.header.line.count"] == "1"
        else:  # "Parquet SerDe"
            assert serde == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"


@pytest.mark.slow
def test_the_workgroup_enforces_encrypted_results_in_the_lake_and_a_scan_cutoff(template):
    # AWS::Athena::WorkGroup: Name [a-zA-Z0-9._-]{1,128}; RecursiveDeleteOption deletes the workgroup with its named
    # queries; EnforceWorkGroupConfiguration overrides client-side settings; EncryptionOption SSE_S3 | SSE_KMS |
    # CSE_KMS; BytesScannedCutoffPerQuery at least 10,000,000 bytes.
    (workgroup,) = of_type(template, "AWS::Athena::WorkGroup").values()
    assert workgroup["Name"] == CONFIG.lake_workgroup_name and re.fullmatch(r"[a-zA-Z0-9._-]{1,128}", workgroup["Name"])
    assert workgroup["RecursiveDeleteOption"] is True
    configuration = workgroup["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["BytesScannedCutoffPerQuery"] >= 10_000_000
    results = configuration["ResultConfiguration"]
    assert results["EncryptionConfiguration"]["EncryptionOption"] == "SSE_S3"
    assert joined(results["OutputLocation"]) == f"s3://<token>/{lake.QUERY_RESULTS_PREFIX}/"
    assert results["OutputLocation"]["Fn::Join"][1][1] == {"Ref": bucket_logical_id(template)}


@pytest.mark.slow
def test_one_named_query_per_contract_query_in_the_lake_database_and_workgroup(template):
    # AWS::Athena::NamedQuery: Name 1-128 characters, Database, QueryString, WorkGroup.
    (workgroup,) = resources_of(template, "AWS::Athena::WorkGroup")
    found = {props["Name"]: props for props in of_type(template, "AWS::Athena::NamedQuery").values()}
    assert sorted(found) == sorted(CONFIG.lake_query_name(query.name) for query in lake.QUERIES)
    for query in lake.QUERIES:
        props = found[CONFIG.lake_query_name(query.name)]
        assert 1 <= len(props["Name"]) <= 128
        assert (props["Database"], props["QueryString"]) == (CONFIG.lake_database_name, query.sql)
        assert props["WorkGroup"] == {"Ref": workgroup}


# ---- the bucket and the outputs --------------------------------------------------------------------
@pytest.mark.slow
def test_the_bucket_is_private_encrypted_ssl_only_retained_and_expires_what_firehose_writes(template, variant):
    # S3 lifecycle: Expiration days a positive integer; a rule scoped by Prefix. Retained so that teardown, not
    # CloudFormation, empties it (infra/datalake.py says why).
    for chosen, days in ((template, CONFIG.lake_retention_days), (variant, 30)):
        bucket = chosen["Resources"][bucket_logical_id(chosen)]
        assert bucket["DeletionPolicy"] == "Retain"
        props = bucket["Properties"]
        assert all(props["PublicAccessBlockConfiguration"].values())
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "AES256"}
        expiry = {rule.get("Prefix"): rule.get("ExpirationInDays") for rule in props["LifecycleConfiguration"]["Rules"]}
        assert {f"{table.prefix}/": days for table in FED}.items() <= expiry.items()
        assert expiry[f"{lake_delivery.ERRORS_PREFIX}/"] == days
        assert expiry[f"{lake.QUERY_RESULTS_PREFIX}/"] == datalake.QUERY_RESULTS_DAYS
        assert f"{lake.LABELS.prefix}/" not in expiry  # the user's labels stay
    policies = [p for p in of_type(template, "AWS::S3::BucketPolicy").values()
                if p["Bucket"] == {"Ref": bucket_logical_id(template)}]
    (policy,) = policies
    assert any(statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for statement in policy["PolicyDocument"]["Statement"])


@pytest.mark.slow
@pytest.mark.slow
def test_each_stream_has_the_delivery_delay_alarm_firehose_recommends(template):
    # "Add CloudWatch alarms for when the following metrics exceed the buffering limit (a maximum of 15 minutes):
    # DeliveryToS3.DataFreshness" ("Implement best practices with CloudWatch Alarms"); with dynamic partitioning
    # "end-to-end delay ... might be 1.5 times of the configured buffering hint time" ("Buffer data for dynamic
    # partitioning"), so a healthy stream reaches 1.5 times its interval and the alarm waits past that.
    alarms = {props["Dimensions"][0]["Value"]: props for props in of_type(template, "AWS::CloudWatch::Alarm").values()
              if props.get("MetricName") == "DeliveryToS3.DataFreshness"}
    assert set(alarms) == set(streams(template))
    topic = next(iter(resources_of(template, "AWS::SNS::Topic")))
    for name, alarm in alarms.items():
        interval = streams(template)[name]["BufferingHints"]["IntervalInSeconds"]
        assert (alarm["Namespace"], alarm["Dimensions"]) == ("AWS/Firehose", [{"Name": "DeliveryStreamName", "Value": name}])
        assert alarm["Statistic"] == "Maximum" and alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["Threshold"] == 1.5 * interval and alarm["Threshold"] > 900
        # No records, no metric: a quiet lake is the device-silent alarm's business, not a late delivery.
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": topic}]


def test_the_outputs_are_the_lake_contract(template):
    outputs = {key: value["Value"] for key, value in template["Outputs"].items()}
    assert set(LAKE_KEYS) <= set(outputs)
    assert outputs["LakeDeliveryStreamNames"] == ",".join(CONFIG.lake_stream_name(table.name) for table in FED)
    assert outputs["LakeTopicRuleNames"] == ",".join(CONFIG.topic_rule_name(table.rule.purpose) for table in FED)
    resolved = {key: (value if isinstance(value, str) else "resolved") for key, value in outputs.items()}
    lake_outputs = parse_outputs({**resolved, "Devices": "[]"}).lake
    assert lake_outputs.database_name == CONFIG.lake_database_name
    assert lake_outputs.delivery_stream_names == tuple(CONFIG.lake_stream_name(table.name) for table in FED)


@pytest.mark.parametrize("days, allowed", [("365", True), (1, True), (3650, True), (0, False), (3651, False),
                                           ("a year", False), (True, False)])
def test_lake_retention_days_is_a_positive_whole_number_of_days(days, allowed):
    # S3 lifecycle Expiration Days: a positive integer; the app's bound is ten years.
    if allowed:
        assert RainEdgeConfig.from_context({"lakeRetentionDays": days}).lake_retention_days == int(days)
    else:
        with pytest.raises(ConfigError, match="lakeRetentionDays must be an integer from 1 to 3650"):
            RainEdgeConfig.from_context({"lakeRetentionDays": days})


# ---- rule -> Firehose -> S3, against moto --------------------------------------------------------------
def physical(value, names: dict[str, str], arns: dict[str, str]):
    """The template's Ref/GetAtt of the lake's resources as moto named them; pseudo parameters as moto's."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return {"AWS::AccountId": "123456789012", "AWS::Region": "eu-west-1"}.get(value["Ref"]) or names[value["Ref"]]
        if set(value) == {"Fn::GetAtt"}:
            return arns[value["Fn::GetAtt"][0]]
        return {key: physical(item, names, arns) for key, item in value.items()}
    if isinstance(value, list):
        return [physical(item, names, arns) for item in value]
    return value


@pytest.mark.slow
def test_a_shadow_update_reaches_the_lake_bucket_through_the_synthesized_rule_and_stream(template, monkeypatch):
    """As far as moto goes. moto's IoT does not run rules on publish, so the synthesized rule's SQL runs in
    infra/iot_sql.py on the shadow's update/documents message, and its output is put into a moto Firehose stream
    made from the synthesized stream's own properties, with the separator the rule action adds. moto's Firehose
    delivers each PutRecord to the S3 destination at once, as it came: it implements neither the Parquet
    conversion, nor dynamic partitioning (the prefix's !{...} expressions stay as written, and moto adds its own
    yyyy/MM/dd/HH/), nor buffering; those are checked above against AWS's rules instead."""
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(key, value)
    stack = SynthesizedStack(template)
    (name, payload), table = next(iter(stack.lake_rules().items())), FED[0]
    stream_id = payload["Actions"][0]["Firehose"]["DeliveryStreamName"]["Ref"]
    stream = template["Resources"][stream_id]["Properties"]
    with mock_aws():
        session = boto3.session.Session(region_name="eu-west-1")
        s3, iam, firehose = (session.client(service) for service in ("s3", "iam", "firehose"))
        bucket = "rainedge-lake-test"
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        role_id = stream["ExtendedS3DestinationConfiguration"]["RoleARN"]["Fn::GetAtt"][0]
        role_arn = iam.create_role(RoleName="delivery", AssumeRolePolicyDocument=json.dumps(
            template["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]))["Role"]["Arn"]
        names = {bucket_logical_id(template): bucket,
                 **{key: f"group-{key}" for key in resources_of(template, "AWS::Logs::LogGroup")},
                 **{key: f"stream-{key}" for key in resources_of(template, "AWS::Logs::LogStream")}}
        arns = {bucket_logical_id(template): f"arn:aws:s3:::{bucket}", role_id: role_arn}
        firehose.create_delivery_stream(**physical({key: stream[key] for key in (
            "DeliveryStreamName", "DeliveryStreamType", "DeliveryStreamEncryptionConfigurationInput",
            "ExtendedS3DestinationConfiguration")}, names, arns))
        described = firehose.describe_delivery_stream(DeliveryStreamName=stream["DeliveryStreamName"])
        (destination,) = described["DeliveryStreamDescription"]["Destinations"]
        assert destination["ExtendedS3DestinationDescription"]["DataFormatConversionConfiguration"]["Enabled"] is True

        topic, document = complete_documents()[0]
        record = TopicRule(payload["Sql"]).evaluate(topic, document, NOW_MS)
        data = json.dumps(record).encode() + payload["Actions"][0]["Firehose"]["Separator"].encode()
        firehose.put_record(DeliveryStreamName=stream["DeliveryStreamName"], Record={"Data": data})

        (item,) = s3.list_objects_v2(Bucket=bucket)["Contents"]
        assert item["Key"].startswith(stream["ExtendedS3DestinationConfiguration"]["Prefix"])
        assert json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()) == record
        assert record[lake.THING] == "pi-1" and record["sampled_at"] == "2026-12-07T11:38:12.123Z"
    assert name == CONFIG.topic_rule_name(table.rule.purpose)
