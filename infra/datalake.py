"""The fleet's data lake in the stack: a bucket, the Glue tables Athena reads with partition projection, one
Firehose stream per rule-fed table (JSON -> Parquet, partitioned by arrival day and thing), the IoT rules that
feed them, and an Athena workgroup holding the named queries. What goes in and the queries are infra/lake.py's.

The bucket outlives the stack (RemovalPolicy.RETAIN): Firehose may deliver a buffered object after any
emptying step and before CloudFormation's delete, which would then fail on a bucket that is not empty.
Teardown (infra/lifecycle/destroy.py) empties and deletes it by its exact name once the stack, and with it
every writer, is gone.
"""
from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import lake
from infra.config import RainEdgeConfig
from infra.lake_delivery import (BUFFER_MIB, BUFFER_SECONDS, ERRORS_PREFIX, RECORD_SEPARATOR, delivery_prefix,
                                 error_prefix, fed_tables, partition_query)
from infra.monitoring import shadow_topic_rule
from infra.nag import acknowledge

# Query results are read once, by `make dataset`, right after the query.
QUERY_RESULTS_DAYS = 7
# Firehose uploads objects in parts; a part upload that never completes is removed after a day.
INCOMPLETE_UPLOAD_DAYS = 1
# How long Firehose retries a delivery to S3 before writing the records under the error prefix
# ("RetryOptions" DurationInSeconds 0-7200; 300 is its default).
RETRY_SECONDS = 300
# A station's year of Parquet readings is tens of MB: a query scanning a GiB is a mistake, not a dataset.
BYTES_SCANNED_CUTOFF = 1 << 30
# Athena engine version 3 is Trino, the dialect infra/lake.py's queries are written in.
ATHENA_ENGINE = "Athena engine version 3"
# Glue storage descriptors: Athena's "Parquet SerDe" and "Lazy Simple SerDe for CSV, TSV, and custom-delimited files".
PARQUET = dict(
    input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    serde_info=glue.CfnTable.SerdeInfoProperty(
        serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"),
)
CSV = dict(
    input_format="org.apache.hadoop.mapred.TextInputFormat",
    output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
    serde_info=glue.CfnTable.SerdeInfoProperty(
        serialization_library="org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
        parameters={"field.delim": ","}),
)
# "Grant Firehose access to an Amazon S3 destination" (Controlling access with Amazon Data Firehose).
FIREHOSE_S3_ACTIONS = ("s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket",
                       "s3:ListBucketMultipartUploads", "s3:PutObject")
# "Grant Firehose access to AWS Glue for data format conversion" (same page).
FIREHOSE_GLUE_ACTIONS = ("glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions")
# The same page, for CloudWatch error logging.
FIREHOSE_LOGS_ACTIONS = ("logs:PutLogEvents",)
# The Firehose rule action needs "an IAM role that AWS IoT can assume to perform the firehose:PutRecord
# operation" (AWS IoT developer guide, "Firehose"); PutRecordBatch only serves batchMode, which is off.
IOT_FIREHOSE_ACTIONS = ("firehose:PutRecord",)


def _title(name: str) -> str:
    return name.title().replace("_", "")


class DataLake(Construct):
    """The lake's bucket, catalog, delivery streams, rules and workgroup (infra/lake.py's contract)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: RainEdgeConfig,
                 rule_error_action: iot.CfnTopicRule.ActionProperty) -> None:
        """`rule_error_action`: where the rules report a failed action (Monitoring.rule_error_action)."""
        super().__init__(scope, construct_id)
        self.config = config
        stack = Stack.of(self)
        self.bucket = self._bucket()
        self.database = glue.CfnDatabase(
            self, "Database", catalog_id=stack.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=config.lake_database_name,
                description="rainedge: the fleet's readings, predictions and labels (infra/lake.py)"))
        self.tables = {table.name: self._table(table) for table in lake.TABLES}
        self.delivery_logs = logs.LogGroup(self, "DeliveryLogs",
                                           log_group_name=config.monitoring_log_group_name("lake-delivery"),
                                           retention=logs.RetentionDays.ONE_MONTH,
                                           removal_policy=RemovalPolicy.DESTROY)
        fed = fed_tables()
        self.streams = {table.name: self._stream(table) for table in fed}
        self.rules = [self._rule(table, rule_error_action) for table in fed]
        self.workgroup = self._workgroup()
        self.queries = [self._named_query(query) for query in lake.QUERIES]

    # ---- storage ----------------------------------------------------------------------------
    def _bucket(self) -> s3.Bucket:
        expire = Duration.days(self.config.lake_retention_days)
        bucket = s3.Bucket(
            self, "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=False,
            removal_policy=RemovalPolicy.RETAIN,  # teardown empties and deletes it (module docstring)
            lifecycle_rules=[
                # What Firehose writes expires after lakeRetentionDays; labels are the user's and stay.
                *(s3.LifecycleRule(id=f"expire-{table.name}", prefix=f"{table.prefix}/", expiration=expire)
                  for table in fed_tables()),
                s3.LifecycleRule(id="expire-errors", prefix=f"{ERRORS_PREFIX}/", expiration=expire),
                s3.LifecycleRule(id="expire-query-results", prefix=f"{lake.QUERY_RESULTS_PREFIX}/",
                                 expiration=Duration.days(QUERY_RESULTS_DAYS)),
                s3.LifecycleRule(id="abort-incomplete-uploads",
                                 abort_incomplete_multipart_upload_after=Duration.days(INCOMPLETE_UPLOAD_DAYS)),
            ],
        )
        acknowledge(bucket, "AwsSolutions-S1",
                    "The lake holds sensor readings and predictions written by the stack's Firehose roles and read "
                    "through the stack's Athena workgroup; an access-log bucket would outlive the stack and bill a "
                    "request per lake request.")
        return bucket

    def _location(self, table: lake.LakeTable) -> str:
        return f"s3://{self.bucket.bucket_name}/{table.prefix}/"

    def _table(self, table: lake.LakeTable) -> glue.CfnTable:
        """Partition projection ("Use partition projection with Amazon Athena"): `day` a date in the prefix's
        format, `thing` injected (a query names its station), the prefix given by storage.location.template."""
        template = self._location(table) + "".join(f"{key}=${{{key}}}/" for key in table.partitions)
        # `day`'s range: "Supported types for partition projection", date type.
        projection = {"projection.enabled": "true", "storage.location.template": template}
        if lake.DAY in table.partitions:
            projection |= {f"projection.{lake.DAY}.type": "date", f"projection.{lake.DAY}.format": "yyyy-MM-dd",
                           f"projection.{lake.DAY}.range": f"{lake.FIRST_DAY},NOW",
                           f"projection.{lake.DAY}.interval": "1", f"projection.{lake.DAY}.interval.unit": "DAYS"}
        projection[f"projection.{lake.THING}.type"] = "injected"
        # LazySimpleSerDe reads the labels' header row as data unless told to skip it.
        extra = {"classification": "csv", "skip.header.line.count": "1"} if table.csv else {"classification": "parquet"}
        resource = glue.CfnTable(
            self, f"Table{_title(table.name)}",
            catalog_id=Stack.of(self).account,
            database_name=self.config.lake_database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=table.name,
                table_type="EXTERNAL_TABLE",
                parameters={**projection, **extra},
                partition_keys=[glue.CfnTable.ColumnProperty(name=key, type="string") for key in table.partitions],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=self._location(table),
                    columns=[glue.CfnTable.ColumnProperty(name=name, type=kind) for name, kind in table.columns],
                    **(CSV if table.csv else PARQUET),
                ),
            ),
        )
        resource.node.add_dependency(self.database)
        return resource

    # ---- delivery ----------------------------------------------------------------------------
    def _delivery_role(self, table: lake.LakeTable, log_stream: logs.LogStream) -> iam.Role:
        stack = Stack.of(self)
        # "Allow Firehose to assume an IAM role": the trust policy names the account as sts:ExternalId.
        role = iam.Role(self, f"DeliveryRole{_title(table.name)}",
                        assumed_by=iam.ServicePrincipal("firehose.amazonaws.com",
                                                        conditions={"StringEquals": {"sts:ExternalId": stack.account}}),
                        description=f"Firehose writes the {table.name} table of the lake as Parquet")
        bucket = self.bucket.bucket_arn
        role.add_to_policy(iam.PolicyStatement(actions=list(FIREHOSE_S3_ACTIONS), resources=[
            bucket, f"{bucket}/{table.prefix}/*", f"{bucket}/{ERRORS_PREFIX}/{table.prefix}/*"]))
        # Glue ARNs: catalog, database and table ("Specifying AWS Glue resource ARNs").
        glue_arn = f"arn:{stack.partition}:glue:{stack.region}:{stack.account}"
        database = self.config.lake_database_name
        role.add_to_policy(iam.PolicyStatement(actions=list(FIREHOSE_GLUE_ACTIONS), resources=[
            f"{glue_arn}:catalog", f"{glue_arn}:database/{database}", f"{glue_arn}:table/{database}/{table.name}"]))
        role.add_to_policy(iam.PolicyStatement(actions=list(FIREHOSE_LOGS_ACTIONS), resources=[
            f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:"
            f"{self.delivery_logs.log_group_name}:log-stream:{log_stream.log_stream_name}"]))
        acknowledge(role, f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(self.bucket.node.default_child)}"
                          f".Arn>/{table.prefix}/*]",
                    "Firehose names each object it delivers (stream, version, time, random id) under the table's "
                    "prefix: the objects cannot be listed in advance; the prefix is the table's own.")
        acknowledge(role, f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(self.bucket.node.default_child)}"
                          f".Arn>/{ERRORS_PREFIX}/{table.prefix}/*]",
                    "Records Firehose cannot convert or partition go under the table's own error prefix, in objects "
                    "Firehose names itself.")
        return role

    def _stream(self, table: lake.LakeTable) -> firehose.CfnDeliveryStream:
        stack = Stack.of(self)
        title = _title(table.name)
        log_stream = logs.LogStream(self, f"DeliveryLog{title}", log_group=self.delivery_logs,
                                    log_stream_name=table.name, removal_policy=RemovalPolicy.DESTROY)
        role = self._delivery_role(table, log_stream)
        cfn = firehose.CfnDeliveryStream
        stream = cfn(
            self, f"Stream{title}",
            delivery_stream_name=self.config.lake_stream_name(table.name),
            delivery_stream_type="DirectPut",
            # Server-side encryption of the stream's buffer with a key Firehose owns (no KMS charge).
            delivery_stream_encryption_configuration_input=cfn.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="AWS_OWNED_CMK"),
            extended_s3_destination_configuration=cfn.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=self.bucket.bucket_arn,
                role_arn=role.role_arn,
                prefix=delivery_prefix(table),
                error_output_prefix=error_prefix(table),
                buffering_hints=cfn.BufferingHintsProperty(interval_in_seconds=BUFFER_SECONDS, size_in_m_bs=BUFFER_MIB),
                # "Amazon S3 compression gets disabled when you enable format conversion"; Parquet's own
                # Snappy compression applies ("Enable record format conversion").
                compression_format="UNCOMPRESSED",
                cloud_watch_logging_options=cfn.CloudWatchLoggingOptionsProperty(
                    enabled=True, log_group_name=self.delivery_logs.log_group_name,
                    log_stream_name=log_stream.log_stream_name),
                data_format_conversion_configuration=cfn.DataFormatConversionConfigurationProperty(
                    enabled=True,
                    input_format_configuration=cfn.InputFormatConfigurationProperty(
                        deserializer=cfn.DeserializerProperty(open_x_json_ser_de=cfn.OpenXJsonSerDeProperty())),
                    output_format_configuration=cfn.OutputFormatConfigurationProperty(
                        serializer=cfn.SerializerProperty(parquet_ser_de=cfn.ParquetSerDeProperty(compression="SNAPPY"))),
                    schema_configuration=cfn.SchemaConfigurationProperty(
                        catalog_id=stack.account, database_name=self.config.lake_database_name,
                        table_name=table.name, region=stack.region, role_arn=role.role_arn, version_id="LATEST"),
                ),
                dynamic_partitioning_configuration=cfn.DynamicPartitioningConfigurationProperty(
                    enabled=True, retry_options=cfn.RetryOptionsProperty(duration_in_seconds=RETRY_SECONDS)),
                processing_configuration=cfn.ProcessingConfigurationProperty(enabled=True, processors=[
                    cfn.ProcessorProperty(type="MetadataExtraction", parameters=[
                        cfn.ProcessorParameterProperty(parameter_name="MetadataExtractionQuery",
                                                       parameter_value=partition_query()),
                        cfn.ProcessorParameterProperty(parameter_name="JsonParsingEngine", parameter_value="JQ-1.6"),
                    ])]),
            ),
        )
        # The role's policy must be in place before Firehose checks the bucket and the table.
        stream.node.add_dependency(role)
        stream.node.add_dependency(self.tables[table.name])
        return stream

    def _rule(self, table: lake.LakeTable, error_action: iot.CfnTopicRule.ActionProperty) -> iot.CfnTopicRule:
        stream = self.streams[table.name]
        role = iam.Role(self, f"RuleRole{_title(table.name)}", assumed_by=iam.ServicePrincipal("iot.amazonaws.com"),
                        description=f"The AWS IoT rule of the lake's {table.name} puts records into its Firehose stream")
        role.add_to_policy(iam.PolicyStatement(actions=list(IOT_FIREHOSE_ACTIONS), resources=[stream.attr_arn]))
        action = iot.CfnTopicRule.ActionProperty(firehose=iot.CfnTopicRule.FirehoseActionProperty(
            delivery_stream_name=stream.ref, role_arn=role.role_arn, separator=RECORD_SEPARATOR, batch_mode=False))
        return shadow_topic_rule(self, table.rule, config=self.config, role=role, action=action,
                                 error_action=error_action,
                                 description=f"One {table.name} record of the data lake per update of the "
                                             f"{table.rule.shadow} shadow")

    # ---- queries ----------------------------------------------------------------------------
    def _workgroup(self) -> athena.CfnWorkGroup:
        cfn = athena.CfnWorkGroup
        return cfn(
            self, "WorkGroup",
            name=self.config.lake_workgroup_name,
            description="rainedge: the data lake's queries (make dataset)",
            state="ENABLED",
            # "The option to delete a workgroup and its contents even if the workgroup contains any named queries"
            # (AWS::Athena::WorkGroup RecursiveDeleteOption): the stack's delete takes the named queries with it.
            recursive_delete_option=True,
            work_group_configuration=cfn.WorkGroupConfigurationProperty(
                # Workgroup settings override client-side settings (EnforceWorkGroupConfiguration).
                enforce_work_group_configuration=True,
                bytes_scanned_cutoff_per_query=BYTES_SCANNED_CUTOFF,
                engine_version=cfn.EngineVersionProperty(selected_engine_version=ATHENA_ENGINE),
                result_configuration=cfn.ResultConfigurationProperty(
                    output_location=f"s3://{self.bucket.bucket_name}/{lake.QUERY_RESULTS_PREFIX}/",
                    encryption_configuration=cfn.EncryptionConfigurationProperty(encryption_option="SSE_S3")),
            ),
        )

    def _named_query(self, query: lake.LakeQuery) -> athena.CfnNamedQuery:
        named = athena.CfnNamedQuery(self, f"Query{_title(query.name.replace('-', '_'))}",
                                     name=self.config.lake_query_name(query.name), description=query.description,
                                     database=self.config.lake_database_name, query_string=query.sql,
                                     work_group=self.workgroup.ref)
        named.node.add_dependency(self.database)
        return named

    @property
    def outputs(self) -> dict[str, str]:
        """Stack outputs: infra/lifecycle/outputs.LAKE_KEYS, every name teardown and `make dataset` need."""
        return {
            "LakeBucketName": self.bucket.bucket_name,
            "LakeDatabaseName": self.config.lake_database_name,
            "LakeWorkGroupName": self.workgroup.ref,
            "LakeDeliveryStreamNames": ",".join(self.config.lake_stream_name(name) for name in self.streams),
            "LakeTopicRuleNames": ",".join(self.config.topic_rule_name(table.rule.purpose)
                                           for table in fed_tables()),
        }
