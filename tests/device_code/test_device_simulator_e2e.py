"""End to end: the synthesized deployment's handlers, the real model, the simulated chip and a moto
cloud on 127.0.0.1."""
import json
import re
from datetime import timedelta

import pytest

from device_code.contracts import RAIN_SHADOW, READINGS_TOPIC, WEATHER_SHADOW, Reading, parse_timestamp, shadow_topic
from device_code.drift import shift_limit
from device_code.history import ReadingHistory
from device_code.model import load_model
from device_code.simulator.__main__ import main
from device_code.simulator.cloud import MotoCloud
from device_code.simulator.core import SimulatedCore
from device_code.simulator.replay import load_test_period, select_window
from device_code.simulator.simulation import EdgeSimulation, SimulationSettings
from infra.synthesized import SynthesizedStack

THING_NAME = "rainedge-core-1"  # the first core device of the default cdk.json


@pytest.fixture(scope="module")
def test_period():
    return load_test_period("JFK")


@pytest.fixture
def cloud():
    with MotoCloud() as running:
        running.create_thing(THING_NAME)
        yield running


@pytest.fixture
def core(synthesized):
    return SimulatedCore.listed(SynthesizedStack.load(synthesized[0]), THING_NAME)


def simulation(trained_model_dir, test_period, cloud, core, hours, step_seconds=0.1, altitude_m=None):
    window = select_window(test_period, None, hours)
    # A day of input age tolerates a test machine whose threads stall while others compile or train.
    settings = SimulationSettings(trained_model_dir / "rain_model", step_seconds=step_seconds,
                                  extra_environment={"MAX_INPUT_AGE_S": "86400"}, altitude_m=altitude_m)
    return EdgeSimulation(window, settings, core, cloud.client("iot-data"))


def as_the_device_predicts(model, steps):
    """Each step's prediction computed again as the inference function makes it: the weather shadow's
    reading with its sea-level pressure, and a reading history filled one reading at a time."""
    history, expected = ReadingHistory(None), []
    for step in steps:
        weather = step.weather
        reading = Reading(weather["temperature"], weather["humidity"], weather["sea_level_pressure"],
                          parse_timestamp(weather["sampled_at"]))
        history.add(reading, reading.sampled_at + timedelta(seconds=1))
        expected.append(model.predict(reading, history.series()))
    return expected


def test_predictions_reach_the_local_and_the_cloud_shadow(trained_model_dir, test_period, cloud, core):
    sim = simulation(trained_model_dir, test_period, cloud, core, hours=12)
    sim.start()
    try:
        assert sim.wait_for_predictions(12, timeout_s=30)
    finally:
        assert sim.stop() is True  # the synchroniser caught up
    model = load_model(trained_model_dir / "rain_model")
    for step, expected in zip(sim.steps, as_the_device_predicts(model, sim.steps)):
        reading, prediction = step.reading, step.prediction
        # The reading is the replayed hour as the BME680 driver measured it ...
        assert reading["temperature"] == pytest.approx(step.observation.temperature, abs=0.011)
        assert reading["humidity"] == pytest.approx(step.observation.humidity, abs=0.05)
        # The driver's integer compensation against the chip's float inversion: up to 0.08 hPa over Oct-Dec.
        assert reading["pressure"] == pytest.approx(step.observation.pressure, abs=0.1)
        assert step.weather["sea_level_pressure"] == pytest.approx(reading["pressure"], abs=0.01)  # at 0 m
        # ... and the prediction is the model's answer to exactly that reading (half a day: no trend yet).
        assert (prediction["probability"], prediction["model"]) == (round(expected.probability, 4), "instantaneous")
        assert (prediction["raining"], prediction["threshold"]) == (expected.raining, expected.threshold)
        assert (prediction["runtime"], prediction["model_version"]) == ("litert", model.metadata.version)
        assert prediction["input_sampled_at"] == reading["sampled_at"]
        assert 0 <= step.latency_s < 5
    local_rain = sim.local_reported(RAIN_SHADOW)
    assert local_rain["input_sampled_at"] == sim.steps[-1].reading["sampled_at"]
    for name in (WEATHER_SHADOW, RAIN_SHADOW):
        assert cloud.reported(THING_NAME, name) == sim.local_reported(name)


def test_a_cloud_outage_does_not_stop_the_edge_and_the_cloud_catches_up(trained_model_dir, test_period, cloud,
                                                                       core):
    sim = simulation(trained_model_dir, test_period, cloud, core, hours=24)
    readings, weather_states = [], []
    sim.greengrass.bus.tap(lambda topic, message, at: topic == READINGS_TOPIC
                           and readings.append(message["sampled_at"]))
    sim.greengrass.bus.tap(lambda topic, message, at: topic == shadow_topic(THING_NAME, WEATHER_SHADOW,
                                                                             "update/documents")
                           and weather_states.append(message["current"]["state"]["reported"]["sampled_at"]))
    sim.start()
    try:
        assert sim.wait_for_predictions(4, timeout_s=20)
        cloud.stop()
        before_outage = sim.predicted_steps()
        assert sim.wait_for_predictions(before_outage + 6, timeout_s=20)  # the edge goes on without the cloud
        assert sim.wait_for(lambda: sim.sync.failed_pushes > 0, timeout_s=10)
        cloud_during_outage = sim.sync.pushes
        cloud.start()
        assert sim.wait_for_predictions(24, timeout_s=30)
    finally:
        synced = sim.stop()
    assert synced and sim.sync.pushes > cloud_during_outage
    for name in (WEATHER_SHADOW, RAIN_SHADOW):
        assert cloud.reported(THING_NAME, name) == sim.local_reported(name)
    # No valid reading was lost locally: each one became a version of the weather shadow, in order.
    assert weather_states == readings and len(readings) >= 24


def test_demo_prints_progress_summary_and_writes_the_plot(trained_model_dir, synthesized, tmp_path, capsys):
    plot = tmp_path / "demo.png"
    exit_code = main(["--model", str(trained_model_dir), "--cdk-out", str(synthesized[0]), "--steps", "6",
                      "--step-seconds", "0.1", "--plot", str(plot)])
    out = capsys.readouterr().out
    assert exit_code == 0
    assert out.count("P(rain)") == 6 and out.count("(instantaneous)") == 6 and "latency" in out
    assert "station file: altitude 0 m (no stationAltitudes entry)" in out
    assert "predictions 6: trend model 0, instantaneous model 6" in out
    for predictor in ("rainedge (as shown)", "instantaneous model alone", "always dry"):
        assert re.search(rf"^  {re.escape(predictor)} +(-|\d\.\d{{3}}) +\d\.\d{{3}} +\d\.\d{{3}} +\d\.\d{{3}}", out,
                         re.MULTILINE)
    assert "calibration of the probabilities shown: mean " in out and "Brier score" in out
    assert "cloud shadow 'rain' equals local shadow: yes" in out
    # Six hours are fewer than the drift monitor's first day.
    assert re.search(r"^input drift: warming_up after 6 hours \(temperature shift [-+]\d", out, re.MULTILINE)
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "dashboard.png").read_bytes().startswith(b"\x89PNG")


def test_a_sensor_the_pi_heats_is_reported_drifting_once_a_day_of_readings_is_kept(trained_model_dir, synthesized,
                                                                                   tmp_path, capsys):
    """The chain from chip to summary: the same week read offline by model_training.drift_check first
    says drifting at its 34th reading; the device, through the chip's rounding, says it there too."""
    exit_code = main(["--model", str(trained_model_dir), "--cdk-out", str(synthesized[0]), "--steps", "40",
                      "--start", "2013-10-02T00:00", "--step-seconds", "0.1", "--sensor-warming", "15",
                      "--plot", str(tmp_path / "demo.png")])
    out = capsys.readouterr().out
    assert exit_code == 0 and "reads 15 °C above the air" in out
    verdict = re.search(r"^input drift: drifting after (\d+) hours \(temperature shift \+(\d+\.\d+) σ", out,
                        re.MULTILINE)
    assert verdict and int(verdict.group(1)) == 40 and float(verdict.group(2)) > shift_limit(40)
    first = int(re.search(r"^input drift: first reported drifting at reading (\d+)$", out, re.MULTILINE).group(1))
    assert 33 <= first <= 35  # a reading lost to a busy machine's thread delays moves it by one


def test_a_core_high_up_measures_station_pressure_and_predicts_as_at_sea_level(trained_model_dir, test_period, cloud,
                                                                             core):
    """The simulated station at 1500 m: the chip measures ~850 hPa, the shadow writer reduces it back, and
    every prediction (the instantaneous model's first, the trend model's once a day of history is kept)
    is the device's answer to the sea-level pressure. 0.25 s per hour keeps the accelerated clock's
    jitter well inside the trend model's 15-minute lag tolerance."""
    sim = simulation(trained_model_dir, test_period, cloud, core, hours=27, step_seconds=0.25, altitude_m=1500.0)
    sim.start()
    try:
        assert sim.wait_for_predictions(27, timeout_s=60)
    finally:
        sim.stop()
    model = load_model(trained_model_dir / "rain_model")
    for step, expected in zip(sim.steps, as_the_device_predicts(model, sim.steps)):
        weather = step.weather
        assert weather["pressure"] < 880 and (weather["altitude_m"], weather["altitude_source"]) == (1500,
                                                                                                   "station_file")
        assert weather["sea_level_pressure"] == pytest.approx(step.observation.pressure, abs=0.1)
        assert (step.prediction["probability"], step.prediction["model"]) == (round(expected.probability, 4),
                                                                              expected.model)
    models = [step.prediction["model"] for step in sim.steps]
    assert models[:24] == ["instantaneous"] * 24 and "trend" in models[24:]


@pytest.mark.parametrize("argv, message", [
    (["--steps", "1"], "--steps must be at least 2"),
    (["--step-seconds", "0"], "--step-seconds must be within"),
    (["--start", "yesterday"], "argument --start: 'yesterday' is no ISO-8601 time such as 2013-11-01T00:00"),
    (["--moto-port", "70000"], "--moto-port must be within [0, 65535]"),
    (["--sensor-warming", "-3"], "argument --sensor-warming: '-3' is not degrees Celsius from 0 to 40"),
    (["--sensor-warming", "nan"], "argument --sensor-warming: 'nan' is not degrees Celsius from 0 to 40"),
])
def test_demo_refuses_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_demo_explains_a_missing_model(tmp_path):
    with pytest.raises(SystemExit, match="run `make train`"):
        main(["--model", str(tmp_path)])


def test_window_options_are_validated(test_period):
    from datetime import datetime, timezone

    with pytest.raises(ValueError, match="after the test period"):
        select_window(test_period, datetime(2014, 6, 1, tzinfo=timezone.utc), 10)
    with pytest.raises(ValueError, match="smaller --steps"):
        select_window(test_period, datetime(2013, 12, 30, tzinfo=timezone.utc), 48)


@pytest.mark.parametrize("hours", [48, 96])
def test_the_default_window_is_the_one_whose_rain_rate_is_nearest_the_test_periods(test_period, hours):
    period_rate = sum(row.rain for row in test_period) / len(test_period)
    window = select_window(test_period, None, hours)
    rate = sum(row.rain for row in window) / hours
    starts = [i for i, row in enumerate(test_period[:len(test_period) - hours + 1]) if row.time.hour == 0]
    nearest = min(abs(sum(row.rain for row in test_period[i:i + hours]) / hours - period_rate) for i in starts)
    assert window[0].time.hour == 0 and abs(rate - period_rate) == nearest
    assert 0 < rate < 1 and window[0].time == min(test_period[i].time for i in starts if abs(
        sum(row.rain for row in test_period[i:i + hours]) / hours - period_rate) == nearest)


def test_every_ipc_call_is_granted_and_every_grant_is_used(trained_model_dir, test_period, cloud, core):
    """What the device code really does over IPC, against the synthesized accessControl after the
    nucleus interpolates {iot:thingName}: each call allowed, and no grant left unused."""
    sim = simulation(trained_model_dir, test_period, cloud, core, hours=6)
    sim.start()
    try:
        assert sim.wait_for_predictions(6, timeout_s=30)
    finally:
        sim.stop()
    assert core.refusals() == []
    used = {(call.component, call.service, call.operation, call.resource) for call in core.calls}
    granted = {(component, service, operation, resource)
               for component in core.components
               for service, policies in core.grants(component).items()
               for policy in policies for operation in policy["operations"] for resource in policy["resources"]}
    assert used == granted
    assert all(THING_NAME in resource for _, service, _, resource in used if service == "aws.greengrass.ShadowManager")


def broken_deployment(synthesized, tmp_path, change):
    """A copy of the synthesized cloud assembly with `change(template)` applied."""
    template = json.loads(json.dumps(synthesized[1]))
    change(template)
    (tmp_path / "RainEdge.template.json").write_text(json.dumps(template))
    return tmp_path


def lambda_component(template, suffix):
    return next(r["Properties"]["LambdaFunction"] for r in template["Resources"].values()
                if r["Type"] == "AWS::GreengrassV2::ComponentVersion"
                and r["Properties"].get("LambdaFunction", {}).get("ComponentName", "").endswith(suffix))


def edit_merge(template, component, edit):
    deployment = next(r for r in template["Resources"].values() if r["Type"] == "AWS::GreengrassV2::Deployment")
    update = deployment["Properties"]["Components"][component]["ConfigurationUpdate"]
    merge = json.loads(update["Merge"])
    edit(merge)
    update["Merge"] = json.dumps(merge)


def rename_sensor_grant(template):
    edit_merge(template, "com.rainedge.Sensor", lambda merge: merge["accessControl"]["aws.greengrass.ipc.pubsub"]
               ["com.rainedge.Sensor:1"].update(resources=["rainedge/reading"]))


def drop_documents_grant(template):
    edit_merge(template, "com.rainedge.Inference",
               lambda merge: merge["accessControl"]["aws.greengrass.ipc.pubsub"].clear())


def turn_interpolation_off(template):
    edit_merge(template, "aws.greengrass.Nucleus", lambda merge: merge.update(interpolateComponentConfiguration=False))


def rename_event_source(template):
    lambda_component(template, ".ShadowWriter")["ComponentLambdaParameters"]["EventSources"][0]["Topic"] = "rainedge/r"


def drop_rain_from_the_iot_policy(template):
    policy = next(r for r in template["Resources"].values() if r["Type"] == "AWS::IoT::Policy")
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        if "iot:UpdateThingShadow" in statement["Action"]:
            statement["Resource"] = [arn for arn in statement["Resource"] if not json.dumps(arn).endswith('/rain"]]}')]


@pytest.mark.parametrize("change, message", [
    (rename_sensor_grant, "IPC refused: com.rainedge.Sensor may not aws.greengrass#PublishToTopic on rainedge/readings"),
    (drop_documents_grant, "IPC refused: com.rainedge.Inference may not aws.greengrass#SubscribeToTopic on "
                           "$aws/things/rainedge-core-1/shadow/name/weather/update/documents"),
    (turn_interpolation_off, "IPC refused: com.rainedge.ShadowWriter may not aws.greengrass#GetThingShadow on "
                             "$aws/things/rainedge-core-1/shadow/name/weather"),
    (rename_event_source, "local topic 'rainedge/readings' reached no subscriber and no event source"),
    (drop_rain_from_the_iot_policy, "cloud shadow 'rain' NOT synced: the IoT policies of rainedge-core-1 "
                                    "(rainedge-device-rainedge-core-1) do not allow iot:GetThingShadow, "
                                    "iot:UpdateThingShadow, iot:DeleteThingShadow on "
                                    "arn:aws:iot:us-east-1:123456789012:thing/rainedge-core-1/rain"),
])
def test_the_demo_fails_naming_what_the_core_or_the_cloud_would_refuse(trained_model_dir, synthesized, tmp_path,
                                                                         capsys, change, message):
    cdk_out = broken_deployment(synthesized, tmp_path, change)
    exit_code = main(["--model", str(trained_model_dir), "--cdk-out", str(cdk_out), "--steps", "3",
                      "--step-seconds", "0.1", "--plot", str(tmp_path / "demo.png")])
    assert exit_code == 1
    assert message in capsys.readouterr().out


def add_wildcard_event_source(template):
    lambda_component(template, ".ShadowWriter")["ComponentLambdaParameters"]["EventSources"][0]["Topic"] = \
        "rainedge/+/readings"


def drop_a_sensor_variable(template):
    del lambda_component(template, ".Sensor")["ComponentLambdaParameters"]["EnvironmentVariables"]["SAMPLE_INTERVAL_S"]


@pytest.mark.parametrize("change, message", [
    (add_wildcard_event_source, "com.rainedge.ShadowWriter: PUB_SUB event source 'rainedge/+/readings' has an "
                                "MQTT wildcard"),
    (drop_a_sensor_variable, "cannot start: SAMPLE_INTERVAL_S is required"),
])
def test_the_demo_refuses_a_deployment_a_core_would_not_run(trained_model_dir, synthesized, tmp_path, change, message):
    cdk_out = broken_deployment(synthesized, tmp_path, change)
    with pytest.raises(SystemExit, match=re.escape(message)):
        main(["--model", str(trained_model_dir), "--cdk-out", str(cdk_out), "--steps", "3", "--step-seconds", "0.1"])


def test_the_demo_says_to_synthesise_first(trained_model_dir, tmp_path):
    with pytest.raises(SystemExit, match="run `make synth` first"):
        main(["--model", str(trained_model_dir), "--cdk-out", str(tmp_path)])


def test_a_simulated_fleet_provisions_each_core_and_syncs_every_shadow(trained_model_dir, synthesized, capsys):
    exit_code = main(["--model", str(trained_model_dir), "--cdk-out", str(synthesized[0]), "--devices", "4",
                      "--steps", "6", "--step-seconds", "0.1"])
    out = capsys.readouterr().out
    assert exit_code == 0, out
    lines = [line for line in out.splitlines() if line.startswith("rainedge-1")]
    assert [line.split()[0] for line in lines] == [f"rainedge-{0x1000000000000000 + i:016x}" for i in range(4)]
    assert [line.split()[1] for line in lines] == ["EWR", "JFK", "LGA", "EWR"]
    assert all("predictions 6/6" in line and "cloud shadows equal local: yes" in line for line in lines)
    assert "fleet of 4 provisioned cores: 24/24 hours predicted" in out


def test_a_fleet_core_the_hook_refuses_is_not_provisioned(synthesized, tmp_path):
    from device_code.simulator.core import DeploymentError
    stack = SynthesizedStack.load(synthesized[0])
    with pytest.raises(DeploymentError, match="refused by the pre-provisioning hook: .* already exists"):
        SimulatedCore.provisioned(stack, "1000000000000000", thing_exists=lambda name: True)
    with pytest.raises(DeploymentError, match="does not match"):
        SimulatedCore.provisioned(stack, "not-a-serial", thing_exists=lambda name: False)
    core = SimulatedCore.provisioned(stack, "1000000000000000", thing_exists=lambda name: False)
    assert core.thing_name == "rainedge-1000000000000000"
    assert core.cloud_refusal("weather") is None and core.cloud_refusal("rain") is None
