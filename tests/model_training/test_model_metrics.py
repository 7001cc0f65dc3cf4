"""Metric helpers on hand-computed examples."""
from __future__ import annotations

import numpy as np
import pytest

from model_training.metrics import choose_threshold, classification_metrics, expected_calibration_error, reliability_bins


def test_confusion_matrix_metrics_at_the_threshold():
    rain = np.array([1, 1, 0, 0, 0, 1])
    probability = np.array([0.9, 0.4, 0.6, 0.1, 0.2, 0.8])
    result = classification_metrics(rain, probability, threshold=0.5)
    # predicted rain: 0.9 (hit), 0.6 (false alarm), 0.8 (hit); missed: 0.4
    assert result["n"] == 6
    assert result["positive_rate"] == pytest.approx(0.5)
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["roc_auc"] == pytest.approx(8 / 9)  # one of nine positive/negative pairs misordered
    assert result["brier"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.01 + 0.04 + 0.04) / 6)


def test_a_probability_equal_to_the_threshold_counts_as_rain():
    result = classification_metrics(np.array([1, 0]), np.array([0.5, 0.2]), threshold=0.5)
    assert result["recall"] == 1.0


def test_ranking_metrics_are_none_when_only_one_class_is_present():
    result = classification_metrics(np.array([0, 0, 0]), np.array([0.1, 0.7, 0.2]), threshold=0.5)
    assert result["roc_auc"] is None and result["pr_auc"] is None
    assert result["precision"] == 0.0 and result["accuracy"] == pytest.approx(2 / 3)


def test_threshold_maximises_f1():
    rain = np.array([0, 0, 1, 0, 1, 1])
    probability = np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9])
    threshold = choose_threshold(rain, probability)
    assert threshold == pytest.approx(0.3)  # F1 6/7 (3 hits, 1 false alarm); 0.8 gives 0.8
    best = max(classification_metrics(rain, probability, t)["f1"] for t in probability)
    assert classification_metrics(rain, probability, threshold)["f1"] == pytest.approx(best)


def test_thresholds_may_differ_per_row_when_two_models_scored():
    result = classification_metrics(np.array([1, 1]), np.array([0.4, 0.4]), threshold=np.array([0.3, 0.5]))
    assert result["recall"] == 0.5


def test_reliability_bins_are_ten_equal_width_bins_and_one_belongs_to_the_last():
    rain = np.array([0, 1, 0, 0, 1, 1])
    probability = np.array([0.05, 0.08, 0.31, 0.39, 0.95, 1.0])
    bins = reliability_bins(rain, probability)
    assert [(b["lower"], b["upper"]) for b in bins][:2] == [(0.0, 0.1), (0.1, 0.2)] and len(bins) == 10
    assert [b["count"] for b in bins] == [2, 0, 0, 2, 0, 0, 0, 0, 0, 2]
    assert bins[0]["mean_probability"] == pytest.approx(0.065) and bins[0]["rain_rate"] == 0.5
    assert bins[1]["mean_probability"] is None and bins[1]["rain_rate"] is None
    assert bins[9]["rain_rate"] == 1.0


def test_expected_calibration_error_weights_each_bin_by_its_share():
    rain = np.array([0, 1, 0, 0, 1, 1])
    probability = np.array([0.05, 0.08, 0.31, 0.39, 0.95, 1.0])
    # bins: [0,.1) |0.065-0.5|, [.3,.4) |0.35-0|, [.9,1] |0.975-1|; each holds 2 of 6 predictions
    expected = (abs(0.065 - 0.5) + abs(0.35 - 0.0) + abs(0.975 - 1.0)) * 2 / 6
    assert expected_calibration_error(rain, probability) == pytest.approx(expected)
    assert classification_metrics(rain, probability, 0.5)["ece"] == pytest.approx(expected)


def test_a_perfectly_calibrated_forecast_has_zero_ece():
    rain = np.array([1] * 3 + [0] * 7 + [1] * 7 + [0] * 3)
    probability = np.array([0.3] * 10 + [0.7] * 10)
    assert expected_calibration_error(rain, probability) == pytest.approx(0.0)
