"""Classification and calibration metrics shared by training (model card) and the evaluate CLI."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

CALIBRATION_BINS = 10
# scikit-learn is imported where it is used: the simulator takes confusion_counts from here, and its
# benchmark process must not carry scikit-learn's memory.


def confusion_counts(predicted: Iterable[Any], actual: Iterable[Any]) -> tuple[int, int, int, int]:
    """(rain predicted & observed, false alarms, missed rain, dry & dry)."""
    predicted = np.asarray(list(predicted), dtype=bool)
    actual = np.asarray(list(actual), dtype=bool)
    true_pos = int(np.sum(predicted & actual))
    false_pos = int(np.sum(predicted & ~actual))
    false_neg = int(np.sum(~predicted & actual))
    return true_pos, false_pos, false_neg, len(actual) - true_pos - false_pos - false_neg


def choose_threshold(rain: np.ndarray, probability: np.ndarray) -> float:
    """The probability cut-off that maximises F1 (chosen on validation data, never on test)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(rain, probability)
    # The last (precision, recall) pair has no threshold: it is the "predict nothing" end point.
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])


def reliability_bins(rain: np.ndarray, probability: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict]:
    """Equal-width probability bins: how many predictions fell in each, their mean, the rain rate.
    A probability of exactly 1 belongs to the last bin."""
    rain = np.asarray(rain, dtype=float)
    probability = np.asarray(probability, dtype=float)
    index = np.minimum((probability * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        rows.append({
            "lower": b / bins,
            "upper": (b + 1) / bins,
            "count": count,
            "mean_probability": float(probability[members].mean()) if count else None,
            "rain_rate": float(rain[members].mean()) if count else None,
        })
    return rows


def expected_calibration_error(rain: np.ndarray, probability: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Sum over equal-width bins of (share of predictions in the bin) x |mean probability - rain rate|."""
    rows = reliability_bins(rain, probability, bins)
    total = sum(row["count"] for row in rows)
    return float(sum(row["count"] / total * abs(row["mean_probability"] - row["rain_rate"])
                     for row in rows if row["count"])) if total else 0.0


def classification_metrics(rain: np.ndarray, probability: np.ndarray, threshold) -> dict:
    """Ranking metrics (threshold-free), calibration (Brier score, ECE over 10 bins), and the
    confusion-matrix metrics at `threshold` (one number, or one per row when several models scored).

    ROC-AUC and PR-AUC need both classes; with only one present they are reported as None.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    rain = np.asarray(rain).astype(int)
    probability = np.asarray(probability, dtype=float)
    predicted = probability >= threshold
    actual = rain == 1
    true_pos, false_pos, false_neg, _ = confusion_counts(predicted, actual)
    precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 0.0
    recall = true_pos / (true_pos + false_neg) if true_pos + false_neg else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    both_classes = 0 < actual.sum() < len(actual)
    return {
        "n": int(len(rain)),
        "positive_rate": float(actual.mean()) if len(rain) else 0.0,
        "roc_auc": float(roc_auc_score(rain, probability)) if both_classes else None,
        "pr_auc": float(average_precision_score(rain, probability)) if both_classes else None,
        "brier": float(np.mean((probability - actual) ** 2)) if len(rain) else None,
        "ece": expected_calibration_error(actual, probability) if len(rain) else None,
        "f1": float(f1),
        "accuracy": float(np.mean(predicted == actual)) if len(rain) else 0.0,
        "precision": float(precision),
        "recall": float(recall),
    }
