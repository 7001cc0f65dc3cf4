"""`python -m infra.cost [--devices N] [--device-log-mb MB] [-c key=value ...]` (also `make cost`):
the estimated monthly AWS cost of the deployed app per device and for N devices, from the configuration
in cdk.json (sample interval, shadow sync, the rules, the fleet index, the log groups, the model in S3, the data
lake),
beside the figure of the previous design (eight custom CloudWatch metrics per device) at the same size.

Every price is in PRICES, with the region and date it was read for and where. No free tier is applied.
A price that could not be found says so and is left out of the totals (listed under "not priced").
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, replace
from typing import Any
from pathlib import Path

from device_code.contracts import RAIN_SHADOW, WEATHER_SHADOW, shadow_topic
from infra import fleet_index as fx
from infra import lake
from infra import lake_delivery
from infra import shadow_records as sr
from infra.config import ConfigError, RainEdgeConfig, read_cdk_context
from infra.iot_sql import TopicRule

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOURS_PER_MONTH = 730
# The flags' bounds, which keep every figure finite: up to a million devices, each uploading up to a
# terabyte of logs a month.
MAX_DEVICES, MAX_DEVICE_LOG_MB = 1_000_000, 1_000_000.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
GB = 1024 ** 3


@dataclass(frozen=True)
class Price:
    usd: float | None  # None: not found
    per: str
    region: str
    as_of: str
    source: str


# ---- the one price table --------------------------------------------------------------------------
PRICES: dict[str, Price] = {
    "greengrass_core": Price(0.16, "active core device-month (1 to 10,000 devices)", "US East (N. Virginia)",
                             "2026-10-07", "aws.amazon.com/greengrass/pricing (its pricing example; transcribed in "
                             "api-evangelist/amazon-iot-greengrass)"),
    "iot_connectivity": Price(0.08 / 1e6, "connection-minute", "Europe (Ireland)", "2026-09-20",
                              "aws.amazon.com/iot-core/pricing (its pricing example; transcribed in "
                              "api-evangelist/amazon-iot-core)"),
    "iot_message": Price(1.00 / 1e6, "message of up to 5 KB (first billion)", "Europe (Ireland)", "2026-09-20",
                         "aws.amazon.com/iot-core/pricing (its pricing example)"),
    "iot_shadow_operation": Price(1.25 / 1e6, "Device Shadow operation per 1 KB", "Canada (Central)", "2026-09-20",
                                  "aws.amazon.com/iot-core/pricing (as transcribed in api-evangelist/amazon-iot-core)"),
    "iot_rule_triggered": Price(0.15 / 1e6, "rule triggered (per 5 KB)", "US East", "2026 (third-party)",
                                "not read on an AWS page; public cost write-ups agree on $0.15 per million"),
    "iot_rule_action": Price(0.15 / 1e6, "action executed (at least one per rule triggered)", "US East",
                             "2026 (third-party)",
                             "not read on an AWS page; public cost write-ups agree on $0.15 per million"),
    "cw_metric": Price(0.30, "custom metric-month (first 10,000; $0.10 for the next 240,000)", "US East",
                       "2026-05-05", "aws.amazon.com/cloudwatch/pricing (transcribed in api-evangelist/cloudwatch; "
                       "same tiers on the 2022 Japanese page, nishinoshake/aws-rough#37)"),
    "cw_metric_next_tier": Price(0.10, "custom metric-month (metrics 10,001 to 250,000)", "US East", "2026-05-05",
                                 "as cw_metric"),
    "cw_logs_ingest": Price(0.50, "GB ingested (standard log class)", "US East", "2026-06-13",
                            "factualminds.com, 'Amazon CloudWatch Pricing' (third-party)"),
    "cw_logs_storage": Price(0.03, "GB-month archived", "US East", "2026-05-05",
                             "api-evangelist/cloudwatch (third-party transcription)"),
    "cw_alarm_metric": Price(0.10, "standard-resolution alarm metric-month", "US East", "2026",
                             "c3x.dev and api-evangelist/cloudwatch (third-party)"),
    "cw_insights_alarm": Price(None, "Metrics Insights alarm", "-", "-",
                               "not found: the CloudWatch free tier excludes alarms that use a Metrics Insights query; "
                               "their price was not on the pages reached"),
    "index_update": Price(2.25 / 1e6, "fleet-index update, metered per 1 KB", "US East", "2026-09-20",
                          "aws.amazon.com/iot-device-management/pricing (its pricing example; transcribed in "
                          "api-evangelist/amazon-iot-device-management)"),
    "index_query": Price(0.05 / 1e4, "fleet-index query (search or aggregation)", "US East", "2026-09-20",
                         "aws.amazon.com/iot-device-management/pricing (its pricing example; transcribed in "
                         "api-evangelist/amazon-iot-device-management)"),
    "cw_logs_insights": Price(0.005, "GB scanned by Logs Insights", "US East", "2026-06-13",
                              "factualminds.com and c3x.dev, 'Amazon CloudWatch Pricing' (third-party)"),
    "cw_dashboard": Price(3.00, "dashboard-month (the first 3 are free)", "US East", "2026-06-13",
                          "factualminds.com (third-party); same on the 2022 Japanese page"),
    "sns_email": Price(2.00 / 1e5, "e-mail notification (first 1,000 free)", "US East", "2026-06-13",
                       "factualminds.com, 'Amazon SNS Pricing' (third-party)"),
    "eventbridge_aws_event": Price(0.0, "event from an AWS service", "all", "2026",
                                   "aws.amazon.com/cloudwatch/pricing free tier: 'All events except custom events "
                                   "are included'"),
    "s3_storage": Price(0.023, "GB-month, S3 Standard (first 50 TB)", "US East (N. Virginia)", "2024-2025",
                        "third-party S3 pricing guides (devnotes.tech, deepeshsoni.com)"),
    "s3_get": Price(0.0004 / 1000, "GET request", "US East (N. Virginia)", "2024-2025", "devnotes.tech (third-party)"),
    "dynamodb_storage": Price(0.25, "GB-month of table storage (after the first 25 GB)", "US East", "2026",
                              "aws.amazon.com/dynamodb/pricing ('prices start from $0.25 per GB-month')"),
    "dynamodb_pitr": Price(None, "GB-month of point-in-time recovery", "-", "-",
                           "not found: the DynamoDB pricing pages reached do not state the continuous-backup price"),
    # The data lake (infra/datalake.py). The Firehose pricing page (aws.amazon.com/kinesis/data-firehose/pricing,
    # stored copies in German, Russian and Japanese, read 2026-12-07) gives the meters but no figure survives in
    # them: Direct PUT ingestion "per GB ingested in 5 KB increments (a 3 KB record is billed as 5 KB, a 12 KB
    # record as 15 KB)"; format conversion "per GB based on GBs ingested in 5 KB increments"; dynamic
    # partitioning "per GB delivered to S3, per object, and optionally per JQ processing hour".
    "firehose_ingest": Price(None, "GB ingested by Direct PUT, each record rounded up to 5 KB", "-", "-",
                             "not found: the Firehose pricing pages reached state the 5 KB rounding, not the price"),
    "firehose_conversion": Price(None, "GB converted to Parquet (ingested GB, 5 KB increments)", "-", "-",
                                 "not found: the Firehose pricing pages reached state the meter, not the price"),
    "firehose_partitioning_gb": Price(None, "GB delivered to S3 by dynamic partitioning", "-", "-",
                                      "not found: the Firehose pricing pages reached state the meter, not the price"),
    "firehose_partitioning_objects": Price(None, "object delivered to S3 by dynamic partitioning", "-", "-",
                                           "not found: the Firehose pricing pages reached state the meter, not the "
                                           "price"),
    "firehose_jq_hour": Price(None, "hour of JQ processing (dynamic partitioning's inline parsing)", "-", "-",
                              "not found: the Firehose pricing pages reached state the meter, not the price"),
    "s3_put": Price(0.005 / 1000, "PUT, COPY, POST or LIST request (S3 Standard)", "US East", "2026",
                    "c3x.dev, 'S3 request fees explained' (third-party)"),
    "athena_scanned": Price(5.00, "TB scanned, rounded up to the MB, 10 MB minimum per query", "US East", "2020-10-15",
                            "athena.guide, 'Athena Basics: Pricing Model', and rcpedia.stanford.edu (third-party)"),
}

# Per-device custom metrics: one series per metric with the ThingName dimension only, plus one per
# (device, status) that occurs in the month; a healthy device reports `no_input` once at start-up.
STATUSES_PER_DEVICE = 1
# Representative shadow documents, as the device functions write them (tests check the shapes).
WEATHER_REPORTED = {"temperature": 11.5, "humidity": 93.0, "pressure": 1004.2,
                    "sampled_at": "2013-11-05T11:59:00.000Z", "temperature_compensation": "off"}
RAIN_REPORTED = {"raining": True, "probability": 0.9312, "threshold": 0.4871, "model": "trend",
                 "model_version": "rain-90f2449aa4ebaab4", "runtime": "litert",
                 "input_sampled_at": "2013-11-05T11:59:00.000Z", "predicted_at": "2013-11-05T12:00:00.000Z",
                 "status": None, "detail": None, "checked_at": None,
                 "drift": {"verdict": "ok", "hours": 168, "inputs": {
                     name: {"shift": -0.42, "outside": 0.012} for name in ("temperature", "humidity", "pressure")}}}
# The ledger item of one provisioned device (infra/ledger.py): its thing, policy and one certificate id.
LEDGER_ITEM_BYTES = 300
# Connectivity index updates: each connect and each disconnect is one (a reconnect a day assumed).
CONNECTIVITY_UPDATES = 2 * 30
# Dashboard use: one view an hour of its four Logs Insights widgets over the default 3 hours, and
# `make status` 100 times a month (one SearchIndex page per 100 devices).
DASHBOARD_VIEWS = HOURS_PER_MONTH
RECORD_WIDGETS = 4
DASHBOARD_WINDOW_S = 3 * 3600
STATUS_RUNS = 100
DESIGNS = ("fleet index", "per-device metrics")


# Firehose bills Direct PUT records in 5 KB increments (PRICES["firehose_ingest"]); Athena at least 10 MB a query.
FIREHOSE_INCREMENT_BYTES = 5 * 1024
ATHENA_MINIMUM_BYTES = 10 * 1024 ** 2
TB = 1024 ** 4
# The lake's representative documents: the weather shadow with its sea-level pressure, the rain shadow with an
# adaptation in force (device_code writes both).
LAKE_DOCUMENTS = {WEATHER_SHADOW: {**WEATHER_REPORTED, "sea_level_pressure": 1010.1},
                  RAIN_SHADOW: {**RAIN_REPORTED, "adaptation": "a-90f2449aa4ebaab4"}}
# `make dataset` once a month per station: one query over the station's readings in the lake.
DATASET_EXPORTS = 1


@dataclass(frozen=True)
class Line:
    item: str
    quantity: float  # per device, or per fleet when fleet_wide
    price: str
    fleet_wide: bool = False

    def usd(self, devices: int = 1) -> float | None:
        price = PRICES[self.price].usd
        if price is None:
            return None
        return self.quantity * price * (1 if self.fleet_wide else devices)


def cloud_updates_per_shadow(config: RainEdgeConfig) -> float:
    """How often each synced shadow is written in the cloud per month."""
    if config.shadow_sync_direction == "cloudToDevice":
        return 0.0
    return SECONDS_PER_MONTH / config.cloud_update_interval_seconds


def rule_record(config: RainEdgeConfig, rule: sr.ShadowRule, reported: dict) -> Any:
    """The record the rule's own SQL makes of a shadow update holding `reported` (None: it makes none)."""
    document = {"current": {"state": {"reported": reported}}}
    return TopicRule(rule.sql()).evaluate(shadow_topic(config.devices[0], rule.shadow, "update/documents"), document,
                                          1_700_000_000_000)


def record_bytes(config: RainEdgeConfig) -> dict[str, int]:
    """The size of the record each rule writes, from the rule's own SQL on a representative document."""
    documents = {WEATHER_SHADOW: WEATHER_REPORTED, RAIN_SHADOW: RAIN_REPORTED}
    records = {rule.purpose: rule_record(config, rule, documents[rule.shadow]) for rule in sr.SHADOW_RULES}
    return {purpose: sr.record_bytes(record) if record is not None else 0 for purpose, record in records.items()}


def _operations(reported: dict) -> int:
    """Device Shadow operations, and fleet-index updates ("Index updates are metered in 1 KB
    increments"), are metered per 1 KB of the document."""
    return math.ceil(len(json.dumps({"state": {"reported": reported}}).encode()) / 1024)


def usage(config: RainEdgeConfig, device_log_mb: float, model_bytes: int, design: str = DESIGNS[0]) -> list[Line]:
    """The month's line items of one design: DESIGNS[0] is what the stack deploys, DESIGNS[1] the
    previous one (per-device custom metrics, two Metrics Insights alarms), for comparison."""
    updates = cloud_updates_per_shadow(config)
    sizes = record_bytes(config)
    # Every rule whose FROM matches a shadow's documents topic is triggered by each update of it: one
    # weather rule, two rain rules (only one of them writes a record).
    triggered = sum(updates for _ in sr.SHADOW_RULES)
    # A rain update is either a prediction or a status: one record; a weather update one record.
    record_bytes_month = updates * (sizes[sr.WEATHER_READINGS.purpose] + sizes[sr.RAIN_PREDICTIONS.purpose])
    logs_gb = (record_bytes_month + device_log_mb * 1024 ** 2) / GB
    common = [
        Line("Greengrass core device", 1, "greengrass_core"),
        Line("IoT connectivity, always on (minutes)", HOURS_PER_MONTH * 60, "iot_connectivity"),
        Line("Shadow sync: UpdateThingShadow operations", updates * (_operations(WEATHER_REPORTED) +
                                                                      _operations(RAIN_REPORTED)), "iot_shadow_operation"),
        # ShadowManager subscribes to update/accepted of each synced shadow (aws-facts section 5).
        Line("Shadow sync: update/accepted messages to the core", updates * 2, "iot_message"),
        Line("IoT rules triggered (one weather, two rain rules)", triggered, "iot_rule_triggered"),
        Line("IoT rule actions (CloudWatch Logs)", triggered, "iot_rule_action"),
        Line(f"CloudWatch Logs ingestion (shadow records + {device_log_mb:g} MB device logs)", logs_gb,
             "cw_logs_ingest"),
        # Device log groups have no retention: this is what each month adds to the stored total.
        Line("CloudWatch Logs storage added per month (uncompressed)", logs_gb, "cw_logs_storage"),
        Line("Dashboard", 1, "cw_dashboard", fleet_wide=True),
        Line("Alarm on EventBridge's failed-deployment count", 1, "cw_alarm_metric", fleet_wide=True),
        Line("Greengrass deployment events (EventBridge)", 0, "eventbridge_aws_event", fleet_wide=True),
        Line("Model artifact in S3 (GB-month)", model_bytes / GB, "s3_storage", fleet_wide=True),
        Line("Model downloads (one GET per device and deployment)", 1, "s3_get"),
        *([Line("Ledger item in DynamoDB (GB-month; its one write happens when the device joins)",
                LEDGER_ITEM_BYTES / GB, "dynamodb_storage"),
           Line("Ledger point-in-time recovery (GB-month)", LEDGER_ITEM_BYTES / GB, "dynamodb_pitr")]
          if config.fleet_provisioning else []),
    ]
    if design == DESIGNS[1]:
        # Temperature, Humidity, Pressure, Probability, Threshold, Raining, ModelFault by ThingName.
        metrics_per_device = 7
        return common + [
            Line(f"CloudWatch metrics ({metrics_per_device} + {STATUSES_PER_DEVICE} status per device)",
                 metrics_per_device + STATUSES_PER_DEVICE, "cw_metric"),
            Line("Alarms on Metrics Insights queries (silence, model fault)", 2, "cw_insights_alarm", fleet_wide=True),
        ]
    fleet_metrics = len(fx.fleet_queries(("rain-0000000000000000", "rain-0000000000000001")))
    window_records = DASHBOARD_WINDOW_S / config.cloud_update_interval_seconds * (
        sizes[sr.WEATHER_READINGS.purpose] + sizes[sr.RAIN_PREDICTIONS.purpose])
    return common + [
        # Only the rain shadow is indexed (infra/fleet_index.py): each of its updates, by the KB.
        Line("Fleet index: rain shadow updates (per KB) and connectivity changes",
             updates * _operations(RAIN_REPORTED) + CONNECTIVITY_UPDATES, "index_update"),
        # A fleet metric is a CloudWatch metric, and each emission runs an aggregation query.
        Line(f"Fleet metrics: {fleet_metrics} CloudWatch metrics", fleet_metrics, "cw_metric", fleet_wide=True),
        Line(f"Fleet metrics: one aggregation query each per {fx.PERIOD_S} s",
             fleet_metrics * SECONDS_PER_MONTH / fx.PERIOD_S, "index_query", fleet_wide=True),
        Line("Alarms on fleet metrics (silent, model fault, drifting)", 3, "cw_alarm_metric", fleet_wide=True),
        Line("Alarms on the lake's delivery delay (one per Firehose stream)", len(lake_delivery.fed_tables()),
             "cw_alarm_metric", fleet_wide=True),
        Line(f"Logs Insights: {RECORD_WIDGETS} dashboard widgets, a view an hour (GB scanned)",
             window_records * RECORD_WIDGETS * DASHBOARD_VIEWS / GB, "cw_logs_insights"),
        Line(f"make status: SearchIndex, {STATUS_RUNS} runs (one page per 100 devices)", STATUS_RUNS / 100,
             "index_query"),
    ]


def firehose_billed_bytes(record_bytes: int) -> int:
    """What Firehose bills for one Direct PUT record: its size rounded up to the next 5 KB."""
    return max(1, math.ceil(record_bytes / FIREHOSE_INCREMENT_BYTES)) * FIREHOSE_INCREMENT_BYTES


def lake_record_bytes(config: RainEdgeConfig) -> dict[str, int]:
    """The bytes each lake rule puts into its stream for a representative document: the record the rule's own SQL
    makes, and the separator the rule action appends."""
    records = {table.name: rule_record(config, table.rule, LAKE_DOCUMENTS[table.rule.shadow])
               for table in lake_delivery.fed_tables()}
    return {name: sr.record_bytes(record) + len(lake_delivery.RECORD_SEPARATOR) if record is not None else 0
            for name, record in records.items()}


def lake_usage(config: RainEdgeConfig) -> list[Line]:
    """The data lake's month per device: every cloud update of a shadow is one record into its table's stream (a
    rain update counted as a prediction, the upper bound). Firehose delivers one object per partition (a day and
    a thing) each buffer interval that had data; stored bytes and bytes scanned are counted as the JSON records
    (an upper bound: Parquet with Snappy is smaller)."""
    updates = cloud_updates_per_shadow(config)
    sizes = lake_record_bytes(config)
    tables = len(sizes)
    billed_gb = updates * sum(firehose_billed_bytes(size) for size in sizes.values()) / GB
    json_gb = updates * sum(sizes.values()) / GB
    objects = tables * min(updates, SECONDS_PER_MONTH / lake_delivery.BUFFER_SECONDS)
    retained_months = config.lake_retention_days / (HOURS_PER_MONTH / 24)
    readings_bytes = updates * sizes[lake.READINGS.name] * retained_months
    return [
        Line(f"IoT rules triggered ({tables} lake rules)", tables * updates, "iot_rule_triggered"),
        Line("IoT rule actions (Firehose)", tables * updates, "iot_rule_action"),
        Line("Firehose Direct PUT ingestion (GB, records rounded up to 5 KB)", billed_gb, "firehose_ingest"),
        Line("Firehose format conversion to Parquet (GB, 5 KB increments)", billed_gb, "firehose_conversion"),
        Line("Firehose dynamic partitioning (GB delivered)", json_gb, "firehose_partitioning_gb"),
        Line(f"Firehose dynamic partitioning (objects, one per {lake_delivery.BUFFER_SECONDS} s and table)", objects,
             "firehose_partitioning_objects"),
        Line("Firehose JQ processing (hours; not estimated: it is the JQ time the records take)", 0,
             "firehose_jq_hour"),
        Line("S3 PUT of each delivered object", objects, "s3_put"),
        Line(f"S3 storage at steady state ({config.lake_retention_days} days kept, GB-month)",
             json_gb * retained_months, "s3_storage"),
        Line(f"Athena: {DATASET_EXPORTS} dataset export a month over the station's readings (TB scanned)",
             DATASET_EXPORTS * max(readings_bytes, ATHENA_MINIMUM_BYTES) / TB, "athena_scanned"),
    ]


def tiered_metrics_usd(metrics: float) -> float:
    """CloudWatch custom metrics: the first 10,000 at one price, the next 240,000 at another."""
    first = min(metrics, 10_000)
    return first * PRICES["cw_metric"].usd + (metrics - first) * PRICES["cw_metric_next_tier"].usd


def metric_count(lines: list[Line], devices: int) -> float:
    return sum(line.quantity * (1 if line.fleet_wide else devices) for line in lines if line.price == "cw_metric")


def total(lines: list[Line], devices: int) -> float:
    others = sum(line.usd(devices) or 0.0 for line in lines if line.price != "cw_metric")
    return others + tiered_metrics_usd(metric_count(lines, devices))


def alternative(config: RainEdgeConfig) -> RainEdgeConfig:
    """The other sync strategy, to show what it changes."""
    if config.shadow_sync_strategy == "periodic":
        return replace(config, shadow_sync_strategy="realTime")
    return replace(config, shadow_sync_strategy="periodic",
                   shadow_sync_delay_seconds=max(config.shadow_sync_delay_seconds, config.sample_interval_seconds))


def describe(config: RainEdgeConfig) -> str:
    if config.shadow_sync_strategy == "periodic":
        return f"periodic sync every {config.shadow_sync_delay_seconds} s"
    return "real-time sync"


def report(config: RainEdgeConfig, devices: int, device_log_mb: float, model_bytes: int) -> list[str]:
    lake_lines = lake_usage(config)
    lines = usage(config, device_log_mb, model_bytes) + lake_lines
    rows = [f"rainedge: estimated monthly AWS cost ({HOURS_PER_MONTH} h), no free tier; prices: infra/cost.py PRICES",
            f"a reading every {config.sample_interval_seconds} s, {describe(config)}, "
            f"{cloud_updates_per_shadow(config):,.0f} cloud updates per shadow and device",
            "", f"{'item':<66}{'per device':>12}{f'{devices} devices':>14}"]
    for line in lines:
        if line is lake_lines[0]:
            rows.append("the data lake (infra/datalake.py):")
        per_device, fleet = line.usd(1), line.usd(devices)
        if line.price == "cw_metric":
            each = 1 if line.fleet_wide else devices
            per_device, fleet = tiered_metrics_usd(line.quantity), tiered_metrics_usd(line.quantity * each)
        if per_device is None:
            continue
        per_device_text = "(fleet)" if line.fleet_wide else f"${per_device:,.4f}"
        rows.append(f"{line.item:<66}{per_device_text:>12}{f'${fleet:,.2f}':>14}")
    fleet_total = total(lines, devices)
    rows += ["", f"{'total':<66}{f'${total(lines, 1):,.2f}':>12}{f'${fleet_total:,.2f}':>14}",
             f"{'per device in a fleet of ' + str(devices):<66}{'':>12}{f'${fleet_total / devices:,.2f}':>14}"]
    other = alternative(config)
    other_lines = usage(other, device_log_mb, model_bytes) + lake_usage(other)
    rows.append(f"{'with ' + describe(other) + ' instead':<66}{f'${total(other_lines, 1):,.2f}':>12}"
                f"{f'${total(other_lines, devices):,.2f}':>14}")
    previous = usage(config, device_log_mb, model_bytes, DESIGNS[1]) + lake_lines  # the same lake in both designs
    rows.append(f"{'previous design (custom metrics per device), same settings':<66}"
                f"{f'${total(previous, 1):,.2f}':>12}{f'${total(previous, devices):,.2f}':>14}")
    rows.append(f"{'  per device in a fleet of ' + str(devices):<66}{'':>12}"
                f"{f'${total(previous, devices) / devices:,.2f}':>14}")
    missing = sorted({line.item for line in lines + previous if line.usd() is None})
    if missing:
        rows.append("not priced (price not found): " + "; ".join(missing))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=None, help="fleet size (default: the configured devices)")
    parser.add_argument("--device-log-mb", type=float, default=30.0,
                        help="device log volume LogManager uploads per device and month (an assumption: measure "
                             "yours with `sudo du -sh /greengrass/v2/logs`; default 30)")
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                        help="override a cdk.json context key, as with cdk synth")
    args = parser.parse_args(argv)
    try:
        overrides = dict(item.split("=", 1) for item in args.context)
    except ValueError:
        parser.error("-c takes KEY=VALUE")
    try:
        config = RainEdgeConfig.from_context({**read_cdk_context(PROJECT_ROOT), **overrides})
    except ConfigError as error:
        print(f"rainedge cost: {error}", file=sys.stderr)
        return 2
    devices = len(config.devices) if args.devices is None else args.devices
    problem = None
    if not 1 <= devices <= MAX_DEVICES:
        problem = f"--devices must be a whole number from 1 to {MAX_DEVICES:,}; got {devices}"
    elif not 0 <= args.device_log_mb <= MAX_DEVICE_LOG_MB:  # nan fails every comparison
        problem = (f"--device-log-mb must be a finite number of megabytes from 0 to {MAX_DEVICE_LOG_MB:,.0f}; "
                   f"got {args.device_log_mb}")
    if problem is not None:
        print(f"rainedge cost: {problem}", file=sys.stderr)
        return 2
    model = PROJECT_ROOT / config.model_zip
    for row in report(config, devices, args.device_log_mb, model.stat().st_size if model.is_file() else 0):
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
