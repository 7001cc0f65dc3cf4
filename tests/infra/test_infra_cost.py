"""The cost estimate against fixed inputs, each expectation computed by hand from PRICES."""
from __future__ import annotations

import pytest

from infra import cost
from infra.config import RainEdgeConfig

MONTH_S = 730 * 3600  # 2,628,000 s


def line(lines, price):
    (found,) = [item for item in lines if item.price == price]
    return found


def test_real_time_sync_at_one_reading_a_minute():
    lines = cost.usage(RainEdgeConfig(), device_log_mb=0, model_bytes=0)
    updates = MONTH_S / 60  # 43,800 per shadow
    assert updates == 43_800
    assert line(lines, "iot_connectivity").usd() == pytest.approx(43_800 * 0.08e-6)            # $0.003504
    assert line(lines, "iot_shadow_operation").usd() == pytest.approx(2 * 43_800 * 1.25e-6)    # $0.1095
    assert line(lines, "iot_message").usd() == pytest.approx(2 * 43_800 * 1e-6)                # $0.0876
    assert line(lines, "iot_rule_triggered").usd() == pytest.approx(3 * 43_800 * 0.15e-6)      # $0.01971
    assert line(lines, "iot_rule_action").usd() == pytest.approx(3 * 43_800 * 0.15e-6)
    # Only the rain shadow is indexed; its document is under 1 KB: one metered update each, plus 60
    # connectivity changes.
    assert line(lines, "index_update").quantity == 43_800 + 60
    assert line(lines, "index_update").usd() == pytest.approx(43_860 * 2.25e-6)                # $0.0987
    (metrics,) = [item for item in lines if item.price == "cw_metric"]
    assert (metrics.quantity, metrics.fleet_wide) == (7, True)  # the fleet metrics, whatever the fleet size
    sizes = cost.record_bytes(RainEdgeConfig())
    assert 50 < sizes["weather_readings"] < 1024 and 50 < sizes["rain_predictions"] < 1024
    ingested_gb = 43_800 * (sizes["weather_readings"] + sizes["rain_predictions"]) / 1024 ** 3
    assert line(lines, "cw_logs_ingest").usd() == pytest.approx(ingested_gb * 0.50)
    window_gb = 180 * (sizes["weather_readings"] + sizes["rain_predictions"]) * 4 * 730 / 1024 ** 3
    # dashboard, the deployment alarm, three fleet-metric alarms, two lake-delay alarms, 7 fleet metrics and
    # their queries.
    fixed = 3.00 + 0.10 + 3 * 0.10 + 2 * 0.10 + 7 * 0.30 + 7 * 43_800 * 0.05e-4
    by_hand = (0.16 + 0.003504 + 0.1095 + 0.0876 + 2 * 0.01971 + 43_860 * 2.25e-6 + 1 * 0.0004e-3
               + ingested_gb * (0.50 + 0.03) + window_gb * 0.005 + 1 * 0.05e-4 + fixed)
    assert cost.total(lines, 1) == pytest.approx(by_hand)


def test_the_fleet_index_design_meets_its_goal_and_the_previous_one_does_not():
    """The goal: at most $0.60 per device-month at 1,000 devices and $0.55 at 10,000 (a reading a minute,
    real-time sync); the previous design's per-device custom metrics were most of its $2.8."""
    config = RainEdgeConfig()
    for devices, goal in ((1_000, 0.60), (10_000, 0.55)):
        assert cost.total(cost.usage(config, 30.0, 0), devices) / devices <= goal
    previous = cost.usage(config, 30.0, 0, cost.DESIGNS[1])
    assert line(previous, "cw_metric").quantity == 8  # 7 metrics + 1 status per device
    assert cost.total(previous, 1_000) / 1_000 > 2.5


def test_periodic_sync_divides_the_cloud_updates_by_the_delay():
    periodic = RainEdgeConfig(shadow_sync_strategy="periodic", shadow_sync_delay_seconds=600)
    lines = cost.usage(periodic, device_log_mb=0, model_bytes=0)
    assert cost.cloud_updates_per_shadow(periodic) == 4_380
    assert line(lines, "iot_shadow_operation").usd() == pytest.approx(2 * 4_380 * 1.25e-6)    # $0.01095
    assert cost.total(lines, 1) < cost.total(cost.usage(RainEdgeConfig(), 0, 0), 1)
    # A delay shorter than the sample interval cannot sync more often than readings arrive.
    assert cost.cloud_updates_per_shadow(RainEdgeConfig(shadow_sync_strategy="periodic",
                                                        shadow_sync_delay_seconds=10)) == 43_800


def test_nothing_reaches_the_cloud_with_cloud_to_device_sync():
    config = RainEdgeConfig(shadow_sync_direction="cloudToDevice")
    assert line(cost.usage(config, 0, 0), "iot_shadow_operation").usd() == 0


def test_metrics_beyond_ten_thousand_are_cheaper_and_fleet_wide_lines_are_counted_once():
    lines = cost.usage(RainEdgeConfig(), device_log_mb=0, model_bytes=0)
    assert cost.tiered_metrics_usd(2_000 * 8) == pytest.approx(10_000 * 0.30 + 6_000 * 0.10)
    assert line(lines, "cw_dashboard").usd(500) == 3.00
    assert line(lines, "greengrass_core").usd(500) == pytest.approx(80.0)


def test_device_logs_and_the_model_are_priced_from_their_size():
    lines = cost.usage(RainEdgeConfig(), device_log_mb=1024, model_bytes=1024 ** 3)
    assert line(lines, "s3_storage").usd() == pytest.approx(0.023)
    assert line(lines, "cw_logs_ingest").quantity == pytest.approx(
        1 + line(cost.usage(RainEdgeConfig(), 0, 0), "cw_logs_ingest").quantity)


def test_every_price_says_where_and_when_and_a_missing_one_says_so():
    for key, price in cost.PRICES.items():
        assert price.per and price.region and price.as_of and price.source, key
        assert (price.usd is None) == ("not found" in price.source), key


def test_the_report_shows_both_sync_strategies_and_what_is_not_priced(capsys):
    assert cost.main(["--devices", "3", "--device-log-mb", "0"]) == 0
    out = capsys.readouterr().out
    assert "3 devices" in out and "with periodic sync every 300 s instead" in out
    assert "previous design (custom metrics per device), same settings" in out
    assert "not priced (price not found): Alarms on Metrics Insights queries" in out


@pytest.mark.parametrize("argv, message", [
    (["-c", "sampleIntervalSeconds=0"], "sampleIntervalSeconds must be an integer from 1 to 86400"),
    (["-c", "shadowSyncStrategy=hourly"], "shadowSyncStrategy must be one of realTime, periodic"),
])
def test_a_bad_setting_is_one_line_naming_the_key(argv, message, capsys):
    assert cost.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_context_override_without_a_value_is_refused():
    with pytest.raises(SystemExit) as exit_:
        cost.main(["-c", "novalue"])
    assert exit_.value.code == 2


@pytest.mark.parametrize("argv, says", [
    (["--device-log-mb", "nan"], "--device-log-mb must be a finite number"),
    (["--device-log-mb", "inf"], "--device-log-mb must be a finite number"),
    (["--device-log-mb", "-1"], "--device-log-mb must be a finite number"),
    (["--device-log-mb", "1e308"], "--device-log-mb must be a finite number"),
    (["--devices", "0"], "--devices must be a whole number from 1 to"),
    (["--devices", "-5"], "--devices must be a whole number from 1 to"),
    (["--devices", "1" + "0" * 30], "--devices must be a whole number from 1 to"),
    (["-c", "serialNumberPattern=a{4294967296}"], "serialNumberPattern "),
])
def test_a_number_that_would_print_nonsense_is_one_line(argv, says, capsys):
    assert cost.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and says in captured.err and captured.err.count("\n") == 1, captured.err
    assert "$nan" not in captured.err and "$inf" not in captured.err


# ---- the data lake ------------------------------------------------------------------------------
@pytest.mark.parametrize("record_bytes, billed", [
    # Firehose Direct PUT: "a 3 KB record is billed as 5 KB, a 12 KB record as 15 KB" (pricing page).
    (3 * 1024, 5 * 1024), (12 * 1024, 15 * 1024), (1, 5 * 1024), (5 * 1024, 5 * 1024), (5 * 1024 + 1, 10 * 1024),
])
def test_a_firehose_record_is_billed_in_5_kb_increments(record_bytes, billed):
    assert cost.firehose_billed_bytes(record_bytes) == billed


def test_the_lake_at_one_reading_a_minute():
    lines = cost.lake_usage(RainEdgeConfig())
    sizes = cost.lake_record_bytes(RainEdgeConfig())
    assert set(sizes) == {"readings", "predictions"} and all(50 < size < 5 * 1024 for size in sizes.values())
    records = 2 * 43_800  # a record per cloud update of each shadow
    assert line(lines, "iot_rule_triggered").usd() == pytest.approx(records * 0.15e-6)  # $0.01314
    assert line(lines, "iot_rule_action").usd() == pytest.approx(records * 0.15e-6)
    # Every record is under 5 KB: each is billed as 5 KB, for ingestion and conversion alike.
    assert line(lines, "firehose_ingest").quantity == pytest.approx(records * 5 * 1024 / 1024 ** 3)  # 0.418 GB
    assert line(lines, "firehose_conversion").quantity == line(lines, "firehose_ingest").quantity
    # One object per table and 900 s buffer (a station writes every minute): 2 x 2,628,000 / 900 = 5,840.
    assert line(lines, "firehose_partitioning_objects").quantity == 5_840
    assert line(lines, "s3_put").usd() == pytest.approx(5_840 * 0.005e-3)  # $0.0292
    # A year of one station's readings as JSON is over the 10 MB Athena minimum: billed as scanned.
    readings_year = 43_800 * sizes["readings"] * 365 / (730 / 24)
    assert readings_year > 10 * 1024 ** 2
    assert line(lines, "athena_scanned").usd() == pytest.approx(readings_year / 1024 ** 4 * 5.00)


def test_a_station_writing_less_often_than_the_buffer_makes_an_object_per_update():
    hourly = RainEdgeConfig(shadow_sync_strategy="periodic", shadow_sync_delay_seconds=3600)
    lines = cost.lake_usage(hourly)
    assert line(lines, "firehose_partitioning_objects").quantity == 2 * 730  # one update an hour per shadow


def test_a_short_retention_bills_athenas_10_mb_minimum():
    lines = cost.lake_usage(RainEdgeConfig(lake_retention_days=1))
    assert line(lines, "athena_scanned").quantity == pytest.approx(10 * 1024 ** 2 / 1024 ** 4)
    assert line(lines, "s3_storage").quantity < line(cost.lake_usage(RainEdgeConfig()), "s3_storage").quantity / 300


def test_the_report_prices_the_lake_and_says_which_firehose_meters_are_not_priced(capsys):
    assert cost.main(["--devices", "3", "--device-log-mb", "0"]) == 0
    out = capsys.readouterr().out
    assert "the data lake (infra/datalake.py):" in out and "S3 PUT of each delivered object" in out
    (missing,) = [row for row in out.splitlines() if row.startswith("not priced")]
    assert "Firehose Direct PUT ingestion" in missing and "Firehose format conversion" in missing
