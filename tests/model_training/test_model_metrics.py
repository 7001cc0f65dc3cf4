"""Metric helpers on hand-computed examples."""
from __future__ import annotations

import numpy as np
import pytest

from model_training.metrics import choose_threshold, classification_metrics


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
    assert result["threshold"] == 0.5


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
