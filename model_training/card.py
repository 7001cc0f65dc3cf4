"""The model card and its reliability diagram: rendered from metadata.json alone, so any artifact
can print its own card."""
from __future__ import annotations

from pathlib import Path

DIAGRAM_NAME = "reliability.png"  # written beside the card
_SPLITS = ("train", "validation", "test")
_METRIC_ROWS = ("roc_auc", "pr_auc", "brier", "ece", "f1", "precision", "recall", "accuracy", "threshold")
_ORDER = ("trend", "instantaneous")
_ROLES = {
    "trend": "the reading plus its changes over the last 1, 3 and 24 hours and its 3-hour range, "
             "from the device's own history; used whenever the history covers its window",
    "instantaneous": "the reading alone; used while the history does not cover the trend model's window "
                     "(first start, a long gap)",
}


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _models(metadata: dict) -> list[tuple[str, dict]]:
    return [(name, metadata["models"][name]) for name in _ORDER if name in metadata["models"]]


def _comparison(name: str, metrics: dict) -> str:
    network = metrics["network"]["test"]["pr_auc"]
    baseline = metrics["logistic_baseline"]["test"]["pr_auc"]
    if network > baseline:
        return f"The {name} network beats its logistic baseline on test PR-AUC ({network:.3f} vs {baseline:.3f})."
    return (f"The {name} network does NOT beat its logistic baseline on test PR-AUC ({network:.3f} vs "
            f"{baseline:.3f}); it is shipped because the device runs one kind of model, but the baseline is as good "
            "on this test period.")


def _model_section(name: str, model: dict, metadata: dict) -> str:
    metrics = model["metrics"]
    network, baseline = metrics["network"], metrics["logistic_baseline"]
    history = model["history"]
    needs = ("no history" if history is None else
             f"a history reaching {history['window_s'] / 3600:g} h back, with a reading within "
             f"{history['lag_tolerance_s'] / 60:g} min of each of {', '.join(f'{lag / 3600:g} h' for lag in history['lags_s'])} ago")
    metric_rows = "\n".join(
        f"| {row} | {_number(network['test'][row])} | {_number(baseline['test'][row])} | "
        f"{_number(network['validation'][row])} | {_number(baseline['validation'][row])} |"
        for row in _METRIC_ROWS
    )
    station_rows = "\n".join(
        f"| {station} | {values['n']} | {_number(values['roc_auc'])} | {_number(values['pr_auc'])} | "
        f"{_number(values['ece'])} |"
        for station, values in metrics["test_by_station"].items()
    )
    coverage = network["test"].get("coverage")
    scored = (f" It scored {coverage:.1%} of the test hours; the rest lacked history and fall to the instantaneous model."
              if coverage is not None else "")
    return f"""## The {name} model (signature `{model['signature']}`)

Role: {_ROLES[name]}. Needs {needs}.{scored}

Inputs ({len(model['inputs'])}): {', '.join(f'`{feature}`' for feature in model['inputs'])}.

Network: {' -> '.join(model['network']['layers'])}; {model['network']['loss']}; {model['network']['optimizer']};
{model['network']['epochs']} epochs; seed {model['network']['seed']}. Calibration slope {model['calibration']['slope']:.3f}
({model['calibration']['method']}). `raining = probability >= {model['threshold']:.4f}` (the threshold maximising
F1 on the validation month).

| metric | network, test (Oct-Dec) | logistic, test | network, validation (Sep) | logistic, validation |
|---|---|---|---|---|
{metric_rows}

{_comparison(name, metrics)}

Test by station (no station identity is an input; each airport is scored alone):

| station | hours | ROC-AUC | PR-AUC | ECE |
|---|---|---|---|---|
{station_rows}
"""


def render_card(metadata: dict) -> str:
    inputs = "\n".join(
        f"| `{name}` | {metadata['units'][name]} | {low:g} .. {high:g} |"
        for name in metadata["models"]["instantaneous"]["inputs"]  # the reading's quantities, in order
        for low, high in [metadata["valid_ranges"][name]]
    )
    splits = metadata["splits"]
    instantaneous = metadata["models"]["instantaneous"]["metrics"]["network"]
    split_rows = "\n".join(
        f"| {name} | {splits[name]['from'][:10]} .. {splits[name]['to'][:10]} | {splits[name]['rows']} | "
        f"{instantaneous[name]['positive_rate']:.1%} |"
        for name in _SPLITS
    )
    sections = "\n".join(_model_section(name, model, metadata) for name, model in _models(metadata))
    return f"""# Model card: rain models `{metadata['version']}`

Predict whether it is raining in the current hour from a BME680's readings. Two models, one
artifact: the device uses the trend model when its reading history covers the window and the
instantaneous model otherwise; the rain shadow says which one predicted.

## Readings (pressure reduced to sea level)

| quantity | unit | valid range (BME680) |
|---|---|---|
{inputs}

Output of each model: a calibrated rain probability in [0, 1] (of the hours given 0.3, about 30 %
are rainy): the last layer is sigmoid(slope * logit), the slope fitted on the validation month.

## Data

{metadata['training_data']}. Missing pressure is imputed (same hour at the other airports, then time
interpolation over at most 6 hours). Split by time, never at random:

| split | period (UTC) | rows | rainy hours |
|---|---|---|---|
{split_rows}

Training-data SHA-256: `{metadata['training_data_sha256']}`

{sections}
## Calibration on the test months

![reliability diagram]({DIAGRAM_NAME})

Brier score and expected calibration error (ECE, 10 equal-width bins) are in the tables above.

## Limits

Trained on one year of three New York airports within 30 km of each other at sea level; no station
identity and no calendar feature is an input, but other climates are untested. The trend model
needs the device's own history (persisted across restarts). A BME680 reads station pressure: the
device reduces it to sea level with its configured altitude before the models see it.

Created by {metadata['created_by']}.
"""


def render_reliability_diagram(metadata: dict, path: Path) -> None:
    """Predicted probability against observed rain rate per bin, on the test months, each model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (curve, counts) = plt.subplots(2, 1, figsize=(6, 7), height_ratios=(3, 1), sharex=True)
    curve.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for (name, model), marker in zip(_models(metadata), ("o", "s")):
        bins = [row for row in model["metrics"]["test_reliability"] if row["count"]]
        test = model["metrics"]["network"]["test"]
        curve.plot([row["mean_probability"] for row in bins], [row["rain_rate"] for row in bins], marker=marker,
                   label=f"{name} (ECE {test['ece']:.3f}, Brier {test['brier']:.3f})")
        counts.bar([(row["lower"] + row["upper"]) / 2 for row in bins], [row["count"] for row in bins],
                   width=0.09 if marker == "o" else 0.05, alpha=0.6, label=name)
    curve.set(ylabel="observed rain rate", xlim=(0, 1), ylim=(0, 1),
              title=f"Reliability on Oct-Dec 2013, {metadata['version']}")
    curve.legend(loc="upper left")
    counts.set(xlabel="predicted rain probability (10 bins)", ylabel="hours", yscale="log")
    counts.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)
