"""The model card: rendered from metadata.json alone, so any artifact can print its own card."""
from __future__ import annotations

_SPLITS = ("train", "validation", "test")
_METRIC_ROWS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "threshold")


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _comparison(metrics: dict) -> str:
    network = metrics["network"]["test"]["pr_auc"]
    baseline = metrics["logistic_baseline"]["test"]["pr_auc"]
    if network > baseline:
        return (
            f"The network beats the logistic baseline on test PR-AUC ({network:.3f} vs {baseline:.3f}): "
            "its hidden layers can carve out the 'near-saturated and low pressure' region, which a "
            "single linear boundary only approximates."
        )
    return (
        f"The network does NOT beat the logistic baseline on test PR-AUC ({network:.3f} vs {baseline:.3f}). "
        "With only three instantaneous inputs most of the signal is near-linear (humidity, pressure); "
        "the network is still shipped because it is the one artifact the device runs, but the baseline "
        "is as good on this test period."
    )


def render_card(metadata: dict) -> str:
    metrics = metadata["metrics"]
    network, baseline = metrics["network"], metrics["logistic_baseline"]
    splits = metrics["splits"]
    inputs = "\n".join(
        f"| `{name}` | {metadata['units'][name]} | {low:g} .. {high:g} |"
        for name in metadata["feature_order"]
        for low, high in [metadata["valid_ranges"][name]]
    )
    split_rows = "\n".join(
        f"| {name} | {part['from'][:10]} .. {part['to'][:10]} | {part['rows']} | "
        f"{network[name]['positive_rate']:.1%} |"
        for name, part in ((name, splits[name]) for name in _SPLITS)
    )
    metric_rows = "\n".join(
        f"| {row} | {_number(network['test'][row])} | {_number(baseline['test'][row])} | "
        f"{_number(network['validation'][row])} | {_number(baseline['validation'][row])} |"
        for row in _METRIC_ROWS
    )
    training = metadata["training"]
    layers = " -> ".join(training["network"]["layers"])
    return f"""# Model card: rain model `{metadata['version']}`

Predicts whether it is raining in the current hour from one BME680 reading.

## Inputs (serving signature `{metadata['signature']['name']}`, output `{metadata['signature']['output']}`)

| input | unit | valid range (BME680) |
|---|---|---|
{inputs}

Output: rain probability in [0, 1]; `raining = probability >= {metadata['threshold']:.4f}` (the threshold
maximising F1 on the validation month).

## Data

{training['data']}. Missing pressure is imputed (same hour at the other airports, then time
interpolation over at most 6 hours). Split by time, never at random:

| split | period (UTC) | rows | rainy hours |
|---|---|---|---|
{split_rows}

Training-data SHA-256: `{metadata['training_data_sha256']}`

## Network

{layers}; binary cross-entropy with balanced class weights; {training['network']['optimizer']};
{training['network']['epochs']} epochs; seed {training['network']['seed']}.

## Results (each model at its own validation-chosen threshold)

| metric | network, test (Oct-Dec) | logistic, test | network, validation (Sep) | logistic, validation |
|---|---|---|---|---|
{metric_rows}

{_comparison(metrics)}

## Limits

Trained on one year of three New York airports at sea level; it sees only instantaneous
temperature, humidity and pressure (no trend, no wind), so it detects rain that is happening
rather than forecasting it. The training pressure is sea-level pressure at airports near sea level;
a BME680 reads station pressure, so a station at altitude must correct its reading to sea level.

Created by {metadata['created_by']}.
"""
