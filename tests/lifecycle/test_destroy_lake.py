"""Teardown of the data lake (infra/datalake.py) against moto: CloudFormation retains the lake bucket, destroy
empties it (every version) and deletes it by the exact name in the outputs, only while it carries the app's
tag; the audit names every lake resource still there; a re-run after a failure finishes the job."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from infra.config import APP_TAG
from infra.lifecycle.__main__ import OUTPUTS_FILE
from infra.lifecycle.audit import audit
from infra.lifecycle.destroy import S3_BATCH, destroy
from infra.lifecycle.outputs import save
from infra.lifecycle.scope import app_scope, find_app_stack

from .conftest import FaultyClients, Faults, exists

# What Firehose, the user and Athena leave in the lake (object keys as infra/datalake.py lays them out).
LAKE_OBJECTS = ("readings/day=2026-12-07/thing=rainedge-core-1/rainedge-lake-readings-1-2026-12-07-11-40-00-a.parquet",
                "predictions/day=2026-12-07/thing=rainedge-core-1/rainedge-lake-predictions-1-2026-12-07-11-40-00-b",
                "lake-errors/readings/format-conversion-failed/2026-12-07/rainedge-lake-readings-1-c",
                "labels/thing=rainedge-core-1/labels.csv", "athena-results/0b0c.csv")


@pytest.fixture
def lake(deployed):
    """The deployed stack's lake outputs, with objects in its bucket."""
    outputs = deployed.outputs
    for key in LAKE_OBJECTS:
        deployed.clients.s3.put_object(Bucket=outputs["LakeBucketName"], Key=key, Body=b"x")
    return outputs


def bucket_exists(clients, bucket: str) -> bool:
    return exists(clients.s3.get_bucket_location, Bucket=bucket)


def lake_left(clients, outputs) -> list[str]:
    """Every lake resource the outputs name that is still there, looked up directly (not by the audit)."""
    found = []
    if bucket_exists(clients, outputs["LakeBucketName"]):
        found.append("bucket")
    if outputs["LakeDatabaseName"] in {db["Name"] for db in clients.glue.get_databases()["DatabaseList"]}:
        found.append("database")
    if outputs["LakeWorkGroupName"] in {wg["Name"] for wg in clients.athena.list_work_groups()["WorkGroups"]}:
        found.append("workgroup")
    found += [f"stream {name}" for name in outputs["LakeDeliveryStreamNames"].split(",")
              if name in clients.firehose.list_delivery_streams()["DeliveryStreamNames"]]
    rules = {rule["ruleName"] for rule in clients.iot.list_topic_rules()["rules"]}
    found += [f"rule {name}" for name in outputs["LakeTopicRuleNames"].split(",") if name in rules]
    return found


def scope_of(clients, names, state_file):
    return app_scope(clients, names, find_app_stack(clients, names, state_file), echo=lambda _: None)


def test_the_stand_in_cloudformation_retains_the_lake_bucket_as_the_template_says(clients, lake, deployed):
    """Guards the tests below: CloudFormation's delete leaves the bucket, full, and removes the rest."""
    assert deployed.cdk(["destroy", "--force", "RainEdge"]) == 0
    assert lake_left(clients, lake) == ["bucket"]
    assert clients.s3.list_objects_v2(Bucket=lake["LakeBucketName"])["KeyCount"] == len(LAKE_OBJECTS)


def test_destroy_empties_and_deletes_the_lake_and_the_audit_finds_nothing(clients, names, lake, deployed, tmp_path):
    messages: list[str] = []
    assert lake_left(clients, lake) == ["bucket", "database", "workgroup", *(
        f"stream {name}" for name in lake["LakeDeliveryStreamNames"].split(",")), *(
        f"rule {name}" for name in lake["LakeTopicRuleNames"].split(","))]

    assert destroy(clients, names, tmp_path / OUTPUTS_FILE, deployed.cdk, echo=messages.append) == []

    assert lake_left(clients, lake) == []
    assert f"deleted the lake bucket {lake['LakeBucketName']} ({len(LAKE_OBJECTS)} objects and versions)" in messages


def test_a_versioned_lake_bucket_loses_every_version_and_delete_marker(clients, names, lake, deployed, tmp_path):
    s3, bucket = clients.s3, lake["LakeBucketName"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key=LAKE_OBJECTS[0], Body=b"second version")
    s3.delete_object(Bucket=bucket, Key=LAKE_OBJECTS[1])  # a delete marker over the only version
    listed = s3.list_object_versions(Bucket=bucket)
    assert len(listed["Versions"]) == len(LAKE_OBJECTS) + 1 and len(listed["DeleteMarkers"]) == 1

    assert destroy(clients, names, tmp_path / OUTPUTS_FILE, deployed.cdk, echo=lambda _: None) == []
    assert not bucket_exists(clients, bucket)


def test_more_objects_than_one_delete_takes_are_deleted_in_passes(clients, names, lake, deployed, tmp_path):
    # DeleteObjects takes at most 1,000 keys per request (Amazon S3 API reference).
    for index in range(S3_BATCH + 1 - len(LAKE_OBJECTS)):
        clients.s3.put_object(Bucket=lake["LakeBucketName"], Key=f"readings/day=2026-12-08/thing=pi/{index}", Body=b"")
    faults = Faults()
    assert destroy(FaultyClients(clients, faults), names, tmp_path / OUTPUTS_FILE, deployed.cdk,
                   echo=lambda _: None) == []
    assert faults.calls.count(("s3", "delete_objects")) == 2
    assert not bucket_exists(clients, lake["LakeBucketName"])


@pytest.mark.parametrize("operation", ["delete_objects", "delete_bucket", "list_object_versions"])
def test_a_rerun_after_a_failure_finishes_the_lake(clients, names, lake, deployed, tmp_path, operation):
    state = tmp_path / OUTPUTS_FILE
    faulty = FaultyClients(clients, Faults(planned={("s3", operation): ["AccessDenied"]}))
    with pytest.raises(ClientError, match="AccessDenied"):
        destroy(faulty, names, state, deployed.cdk, echo=lambda _: None)
    # The stack is gone, the bucket is not: the audit says so, by its exact name.
    assert f"lake bucket: {lake['LakeBucketName']}" in {str(item) for item in audit(clients, scope_of(clients, names, state))}

    assert destroy(clients, names, state, deployed.cdk, echo=lambda _: None) == []
    assert lake_left(clients, lake) == [] and not state.exists()


def test_a_lake_bucket_already_gone_is_done(clients, names, lake, deployed, tmp_path):
    deployed.cdk(["destroy", "--force", "RainEdge"])
    s3, bucket = clients.s3, lake["LakeBucketName"]
    for key in LAKE_OBJECTS:
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)
    messages: list[str] = []
    assert destroy(clients, names, tmp_path / OUTPUTS_FILE, deployed.cdk, echo=messages.append) == []
    assert not any("lake bucket" in message for message in messages)


@pytest.mark.parametrize("tags", [[{"Key": APP_TAG, "Value": "someone-else"}], []])
def test_a_bucket_of_the_outputs_name_without_the_apps_tag_keeps_its_data(clients, names, lake, deployed, tmp_path,
                                                                          tags):
    """The outputs' name alone does not let destroy delete a bucket's data: the app's tag must be on it too
    (another value, or no tags at all, which S3 answers with NoSuchTagSet)."""
    bucket = lake["LakeBucketName"]
    if tags:
        clients.s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
    else:
        clients.s3.delete_bucket_tagging(Bucket=bucket)
    deployed.cdk(["destroy", "--force", "RainEdge"])
    state = tmp_path / OUTPUTS_FILE
    save(lake, state)  # what an earlier, interrupted destroy saved
    assert "lake bucket" not in {item.kind for item in audit(clients, scope_of(clients, names, state))}
    messages: list[str] = []

    assert destroy(clients, names, state, deployed.cdk, echo=messages.append) == []

    assert clients.s3.list_objects_v2(Bucket=bucket)["KeyCount"] == len(LAKE_OBJECTS)
    assert lake_left(clients, lake) == ["bucket"]
    assert any(message.startswith(f"not ours, left: bucket {bucket} (the outputs' lake bucket, but it lacks")
               for message in messages)
