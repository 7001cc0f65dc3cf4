"""How a deployment rolls out over the fleet: the IoT job configuration of the synthesized deployment,
checked against the GreengrassV2 API reference's ranges, and the configuration that sets it."""
from __future__ import annotations

import pytest

from infra.config import RUNTIME_INSTALL_TIMEOUT_SECONDS, SELF_TEST_TIMEOUT_SECONDS, ConfigError, RainEdgeConfig
from infra_support import resources_of


def job_configuration(template) -> dict:
    """The IoT job configuration, which both rings' deployments share."""
    fleet, canary = [r["Properties"]["IotJobConfiguration"]
                     for r in resources_of(template, "AWS::GreengrassV2::Deployment").values()]
    assert fleet == canary
    return fleet


def decimals(value: float) -> int:
    text = repr(float(value))
    return 0 if text.endswith(".0") else len(text.split(".")[1])


def assert_follows_the_api_reference(job: dict) -> None:
    rollout = job["JobExecutionsRolloutConfig"]
    rate = rollout["ExponentialRate"]
    # IoTJobExponentialRolloutRate: baseRatePerMinute 1-1000; incrementFactor 1-5 (IoT Jobs'
    # ExponentialRolloutRate: 1.1-5, one digit after the point).
    assert 1 <= rate["BaseRatePerMinute"] <= 1000
    assert 1.1 <= rate["IncrementFactor"] <= 5 and decimals(rate["IncrementFactor"]) <= 1
    # IoTJobRateIncreaseCriteria: "Specify either numberOfNotifiedThings or numberOfSucceededThings", each >= 1.
    (criterion,) = rate["RateIncreaseCriteria"].items()
    assert criterion[0] in ("NumberOfNotifiedThings", "NumberOfSucceededThings") and criterion[1] >= 1
    # IoTJobExecutionsRolloutConfig: maximumPerMinute 1-1000; a base rate above it could never be reached.
    assert 1 <= rollout["MaximumPerMinute"] <= 1000 and rate["BaseRatePerMinute"] <= rollout["MaximumPerMinute"]
    # IoTJobAbortConfig: at least one criterion; IoTJobAbortCriteria: action CANCEL, failureType one of four,
    # thresholdPercentage at most 100 with two digits after the point, minNumberOfExecutedThings >= 1.
    criteria = job["AbortConfig"]["CriteriaList"]
    assert criteria
    for abort in criteria:
        assert abort["Action"] == "CANCEL" and abort["FailureType"] in ("FAILED", "REJECTED", "TIMED_OUT", "ALL")
        assert 0 < abort["ThresholdPercentage"] <= 100 and decimals(abort["ThresholdPercentage"]) <= 2
        assert abort["MinNumberOfExecutedThings"] >= 1
    # IoTJobTimeoutConfig: "The timeout interval must be between 1 minute and 7 days (10080 minutes)".
    assert 1 <= job["TimeoutConfig"]["InProgressTimeoutInMinutes"] <= 10080


def test_the_deployment_rolls_out_by_aws_rules_and_stops_on_failures(template):
    job = job_configuration(template)
    assert_follows_the_api_reference(job)
    # Any kind of failure counts, so a self-test that fails the deployment on the first devices cancels the rest.
    assert [abort["FailureType"] for abort in job["AbortConfig"]["CriteriaList"]] == ["ALL"]
    # A first deployment installs the device runtime (pip) for up to its Install timeout before anything runs.
    assert job["TimeoutConfig"]["InProgressTimeoutInMinutes"] * 60 > RUNTIME_INSTALL_TIMEOUT_SECONDS


def test_the_extremes_the_configuration_allows_still_follow_the_api_reference(synth_variant):
    for extreme in ({"rolloutBaseRatePerMinute": 1000, "rolloutMaximumPerMinute": 1000, "rolloutIncrementFactor": 5,
                     "abortThresholdPercentage": 100, "deploymentTimeoutMinutes": 10080},
                    {"rolloutBaseRatePerMinute": 1, "rolloutMaximumPerMinute": 1, "rolloutIncrementFactor": "1.1",
                     "abortThresholdPercentage": "0.01", "abortMinExecutedThings": 1,
                     "rolloutIncreaseAfterSucceeded": 1, "deploymentTimeoutMinutes": 37}):
        assert_follows_the_api_reference(job_configuration(synth_variant(**extreme)))


@pytest.mark.parametrize("key, value", [
    ("rolloutBaseRatePerMinute", 0), ("rolloutBaseRatePerMinute", 1001), ("rolloutMaximumPerMinute", 0),
    ("rolloutIncrementFactor", 1.0), ("rolloutIncrementFactor", 5.1), ("rolloutIncrementFactor", 1.25),
    ("rolloutIncrementFactor", "nan"), ("rolloutIncrementFactor", "inf"), ("rolloutIncrementFactor", True),
    ("rolloutIncrementFactor", "1e999"), ("rolloutIncrementFactor", [2]),
    ("abortThresholdPercentage", 0), ("abortThresholdPercentage", 100.5), ("abortThresholdPercentage", 10.001),
    ("abortMinExecutedThings", 0), ("rolloutIncreaseAfterSucceeded", 0), ("deploymentTimeoutMinutes", 10081),
])
def test_values_outside_the_api_ranges_fail_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=key) as refused:
        RainEdgeConfig.from_context({key: value})
    assert "\n" not in str(refused.value)


def test_a_base_rate_above_the_maximum_is_refused():
    with pytest.raises(ConfigError, match="rolloutBaseRatePerMinute .* must be at most rolloutMaximumPerMinute"):
        RainEdgeConfig.from_context({"rolloutBaseRatePerMinute": 60, "rolloutMaximumPerMinute": 50})


def test_a_timeout_a_first_install_could_outlast_is_refused():
    """A first deployment installs the runtime (up to its Install timeout), then the model's Startup self-test
    may run three times ("If the component enters the ERRORED state three times ... BROKEN") of 120 s each."""
    longest_s = RUNTIME_INSTALL_TIMEOUT_SECONDS + 3 * SELF_TEST_TIMEOUT_SECONDS
    with pytest.raises(ConfigError, match=f"deploymentTimeoutMinutes .* must be more than {longest_s // 60}"):
        RainEdgeConfig.from_context({"deploymentTimeoutMinutes": longest_s // 60})
    assert RainEdgeConfig.from_context({"deploymentTimeoutMinutes": longest_s // 60 + 1})
