"""End to end: the real handlers, the real model, the simulated chip and a moto cloud on 127.0.0.1."""
import pytest

from device_code.contracts import RAIN_SHADOW, WEATHER_SHADOW, readings_topic, shadow_topic
from device_code.model import load_model
from device_code.simulator.__main__ import main
from device_code.simulator.cloud import MotoCloud
from device_code.simulator.replay import load_test_period, select_window
from device_code.simulator.simulation import THING_NAME, EdgeSimulation, SimulationSettings


@pytest.fixture(scope="module")
def test_period():
    return load_test_period("JFK")


@pytest.fixture
def cloud():
    with MotoCloud() as running:
        running.create_thing(THING_NAME)
        yield running


def simulation(trained_model_dir, test_period, cloud, hours):
    window = select_window(test_period, None, hours)
    # A day of input age tolerates a test machine whose threads stall while others compile or train.
    settings = SimulationSettings(trained_model_dir / "rain_model", step_seconds=0.1,
                                  extra_environment={"MAX_INPUT_AGE_S": "86400"})
    return EdgeSimulation(window, settings, cloud.client("iot-data"))


def test_predictions_reach_the_local_and_the_cloud_shadow(trained_model_dir, test_period, cloud):
    sim = simulation(trained_model_dir, test_period, cloud, hours=12)
    sim.start()
    try:
        assert sim.wait_for_predictions(12, timeout_s=30)
    finally:
        assert sim.stop() is True  # the synchroniser caught up
    model = load_model(trained_model_dir / "rain_model")
    for step in sim.steps:
        reading, prediction = step.reading, step.prediction
        # The reading is the replayed hour as the BME680 driver measured it ...
        assert reading["temperature"] == pytest.approx(step.observation.temperature, abs=0.011)
        assert reading["humidity"] == pytest.approx(step.observation.humidity, abs=0.05)
        assert reading["pressure"] == pytest.approx(step.observation.pressure, abs=0.05)
        # ... and the prediction is the model's answer to exactly that reading.
        expected = model.probability(reading["temperature"], reading["humidity"], reading["pressure"])
        assert prediction["probability"] == round(expected, 4)
        assert prediction["raining"] == (expected >= model.metadata.threshold)
        assert (prediction["runtime"], prediction["model_version"]) == ("litert", model.metadata.version)
        assert prediction["input_sampled_at"] == reading["sampled_at"]
        assert 0 <= step.latency_s < 5
    local_rain = sim.local_reported(RAIN_SHADOW)
    assert local_rain["input_sampled_at"] == sim.steps[-1].reading["sampled_at"]
    for name in (WEATHER_SHADOW, RAIN_SHADOW):
        assert cloud.reported(THING_NAME, name) == sim.local_reported(name)


def test_a_cloud_outage_does_not_stop_the_edge_and_the_cloud_catches_up(trained_model_dir, test_period, cloud):
    sim = simulation(trained_model_dir, test_period, cloud, hours=24)
    readings, weather_states = [], []
    sim.greengrass.bus.tap(lambda topic, message, at: topic == readings_topic(THING_NAME)
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


def test_demo_prints_progress_summary_and_writes_the_plot(trained_model_dir, tmp_path, capsys):
    plot = tmp_path / "demo.png"
    exit_code = main(["--model", str(trained_model_dir), "--steps", "6", "--step-seconds", "0.1",
                      "--plot", str(plot)])
    out = capsys.readouterr().out
    assert exit_code == 0
    assert out.count("P(rain)") == 6 and "accuracy" in out and "latency" in out
    assert "cloud shadow 'rain' equals local shadow: yes" in out
    assert plot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("argv, message", [
    (["--steps", "1"], "--steps must be at least 2"),
    (["--step-seconds", "0"], "--step-seconds must be within"),
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
    window = select_window(test_period, None, 48)
    assert any(row.rain for row in window) and not all(row.rain for row in window)
