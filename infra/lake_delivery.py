"""How Firehose lays out the lake (infra/datalake.py deploys it): where each table's records and failures go, how
long it buffers, what the rule action appends. Plain data, no CDK: the cost estimate (infra/cost.py) and the tests
use it too.
"""
from __future__ import annotations

from infra import lake

# Records Firehose could not convert or partition, by table and error type, outside every table's location.
ERRORS_PREFIX = "lake-errors"
# The longest buffering Firehose allows ("BufferingHints": IntervalInSeconds 0-900) and the largest buffer
# (SizeInMBs 1-128), which is also the default with format conversion or dynamic partitioning; either feature
# needs at least 64 MiB (the CDK's Firehose module enforces the same bound, DataFormatConversionBufferingSizeTooSmall).
# A station writes a few KB per quarter of an hour: fewer, larger objects, which is what Firehose and S3 bill by.
BUFFER_SECONDS, BUFFER_MIB = 900, 128
# With dynamic partitioning "end-to-end delay of a batch of records might be 1.5 times of the configured
# buffering hint time" ("Buffer data for dynamic partitioning"): the oldest record a healthy stream holds.
HEALTHY_DELAY_SECONDS = int(1.5 * BUFFER_SECONDS)
# The rule action's separator: one of '\n', '\t', '\r\n', ',' (AWS::IoT::TopicRule FirehoseAction Separator).
RECORD_SEPARATOR = "\n"


def fed_tables() -> tuple[lake.LakeTable, ...]:
    """The tables a rule fills, each through its own Firehose stream."""
    return tuple(table for table in lake.TABLES if table.rule is not None)


def delivery_prefix(table: lake.LakeTable) -> str:
    """Where Firehose writes a table's objects: <prefix>/day=<arrival day, UTC>/thing=<thing>/. The timestamp
    namespace takes Java DateTimeFormatter patterns and is the approximate arrival time of the object's oldest
    record, in UTC ("Custom prefixes for Amazon S3 objects"); the thing comes from the record's own key
    (dynamic partitioning, partitionKeyFromQuery)."""
    return f"{table.prefix}/{lake.DAY}=!{{timestamp:yyyy-MM-dd}}/{lake.THING}=!{{partitionKeyFromQuery:{lake.THING}}}/"


def error_folder(table: lake.LakeTable) -> str:
    """Where a table's failed records go: error_prefix's fixed part."""
    return f"{ERRORS_PREFIX}/{table.prefix}/"


def error_prefix(table: lake.LakeTable) -> str:
    """"If you specify an expression for ErrorOutputPrefix, you must include at least one instance of
    !{firehose:error-output-type}" ("Custom prefixes for Amazon S3 objects", Semantic rules): <error folder>/<error
    type>/<arrival day, UTC>/."""
    return f"{error_folder(table)}!{{firehose:error-output-type}}/!{{timestamp:yyyy-MM-dd}}/"


def partition_query() -> str:
    """The JQ query of the MetadataExtraction processor: every partitionKeyFromQuery key of the prefix, read from
    the record ("Partitioning keys with inline parsing")."""
    return f"{{{lake.THING}: .{lake.THING}}}"
