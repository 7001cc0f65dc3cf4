"""python -m infra.lifecycle preflight | device-setup [--ssh HOST] [--thing NAME] | fleet-bundle | status
| logs [--thing NAME] [--component NAME] [--since 1h] [--follow] | revoke-claim | promote | rollback
| adapt --thing NAME (--csv PATH [--out PATH] | --clear)
| dataset --thing NAME [--since DAY|TIME] [--labelled] [--out FILE.csv]
| destroy --cdk PATH | audit"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from infra import releases
from infra.config import ConfigError
from infra.lifecycle.adapt import run_adapt
from infra.fleet_hook.handler import claim_name
from infra.lifecycle.audit import audit, not_ours
from infra.lifecycle.aws import AwsClients, LifecycleError, require_region, session_from_environment
from infra.lifecycle.dataset import dataset_request, export_dataset
from infra.lifecycle.destroy import destroy, run_cdk
from infra.lifecycle.device_setup import run_device_setup
from infra.lifecycle.fleet_bundle import run_fleet_bundle
from infra.lifecycle.logs import app_devices, log_sources, parse_since, show_logs
from infra.lifecycle.outputs import StackOutputs
from infra.lifecycle.preflight import preflight
from infra.lifecycle.promote import record_first_release, run_promote, run_rollback
from infra.lifecycle.provisioned import deactivate_claim
from infra.lifecycle.scope import app_scope, find_app_stack
from infra.lifecycle.settings import AppNames, load_names
from infra.lifecycle.status import show_status

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Written by `cdk deploy --outputs-file` (Makefile) and by destroy before the stack goes.
OUTPUTS_FILE = Path("build") / "stack-outputs.json"
DEFAULT_CDK = "node_modules/.bin/cdk"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.lifecycle", description=__doc__)
    parser.add_argument("--project-root", type=Path, default=PROJECT_ROOT, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("preflight", help="check credentials, CDK bootstrap and the trained model")
    check.add_argument("--cdk", default=DEFAULT_CDK, help="the CDK CLI, named in the bootstrap hint")
    setup = commands.add_parser("device-setup", help="write each device's Greengrass install bundle")
    setup.add_argument("--thing", help="only this device (required with --ssh when there are several)")
    setup.add_argument("--ssh", metavar="HOST", help="also copy the bundle to HOST (user@pi) with scp")
    commands.add_parser("fleet-bundle", help="write the one install bundle with which Pis join by fleet provisioning")
    commands.add_parser("status", help="one table of every core device: status, deployment, last reading, rain")
    logs = commands.add_parser("logs", help="print the devices' log lines from CloudWatch Logs")
    logs.add_argument("--thing", help="only this device (default: every device of the app)")
    logs.add_argument("--component", help="a component of ComponentNames without its prefix (Sensor, Inference, ...) "
                                          "or system (default: all)")
    logs.add_argument("--since", default="1h", help="how far back: 30m, 1h, 2d ... (default 1h)")
    logs.add_argument("--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    commands.add_parser("revoke-claim", help="deactivate the fleet's claim certificate; nothing else changes")
    adapt = commands.add_parser("adapt", help="fit a station's adaptation of its ring's model and deliver it to it")
    adapt.add_argument("--thing", required=True, help="the device (one of `make status`)")
    adapt.add_argument("--csv", type=Path, help="the station's labelled CSV (make dataset, plus a rain column)")
    adapt.add_argument("--out", type=Path, help="where the adaptation JSON is kept (default build/adaptations/THING.json)")
    adapt.add_argument("--clear", action="store_true", help="remove the station's adaptation: the global model again")
    export = commands.add_parser("dataset", help="export a station's hourly series from the data lake as a CSV "
                                                 "(for evaluate and adapt)")
    export.add_argument("--thing", required=True, help="the station's thing name")
    export.add_argument("--since", help="a UTC day (2026-12-01) or time (2026-12-01T06:00:00Z); default: all")
    export.add_argument("--labelled", action="store_true", help="join the labels: hours with a `rain` only")
    export.add_argument("--out", help="the CSV to write (default build/dataset-THING.csv)")
    commands.add_parser("promote", help="promote the canary ring's candidate if it passes the gate; record the decision")
    commands.add_parser("rollback", help="record the candidate as rolled back: the canary ring returns to the promoted model")
    commands.add_parser("record-release", help=argparse.SUPPRESS)
    teardown = commands.add_parser("destroy", help="remove everything this app created, then audit")
    teardown.add_argument("--cdk", default=DEFAULT_CDK, help="the CDK CLI to run `destroy` with")
    commands.add_parser("audit", help="list anything of this app still in the account; exit 1 if any")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, clients: AwsClients | None = None) -> int:
    args = parse_args(argv)
    root = args.project_root
    try:
        clients = clients or AwsClients(session_from_environment())
        require_region(clients.region)
        names = load_names(root)
        if args.command == "preflight":
            problems = preflight(clients, names.releases_dir, names.model_zip, names.bootstrap_qualifier, args.cdk)
            for problem in problems:
                print(f"preflight: {problem}", file=sys.stderr)
            if not problems:
                print(f"preflight: ready to deploy to {clients.region}")
            return 1 if problems else 0
        if args.command == "dataset":
            request = dataset_request(args.thing, args.since, args.labelled, args.out, root)  # before any AWS call
            outputs = find_app_stack(clients, names, root / OUTPUTS_FILE).deployed()
            export_dataset(clients.athena, outputs.lake, request)
            return 0
        if args.command == "destroy":
            leftovers = destroy(clients, names, root / OUTPUTS_FILE, run_cdk(args.cdk, clients.region))
        else:
            app = find_app_stack(clients, names, root / OUTPUTS_FILE)
            if args.command == "device-setup":
                run_device_setup(clients, names, app.deployed(), thing_name=args.thing, ssh_host=args.ssh)
                return 0
            if args.command == "fleet-bundle":
                run_fleet_bundle(clients, names, app.deployed())
                return 0
            if args.command == "status":
                history = releases.decisions(names.releases_dir)
                show_status(clients, app.deployed(), last_decision=history[-1] if history else None)
                return 0
            if args.command == "promote":
                return 0 if run_promote(clients, names, app.deployed()) else 1
            if args.command == "rollback":
                run_rollback(names, app.deployed())
                return 0
            if args.command == "record-release":
                record_first_release(names, app.deployed())
                return 0
            if args.command == "logs":
                return run_logs(clients, app.known(), args)
            if args.command == "adapt":
                run_adapt(clients, names, app.deployed(), args.thing, args.csv, args.out, clear=args.clear)
                return 0
            if args.command == "revoke-claim":
                revoke_claim(clients, names, app.known())
                return 0
            if app.foreign:
                print(f"audit: {app.foreign}: not this app's, not counted", file=sys.stderr)
            scope = app_scope(clients, names, app, echo=print)
            leftovers = audit(clients, scope)
            for lookalike in not_ours(clients, scope):
                print(f"not ours, left: {lookalike}")
    except (ConfigError, LifecycleError, releases.ReleaseError) as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as error:
        # Every step is idempotent: after fixing the cause, the same command carries on.
        print(f"{args.command} stopped: {error}; fix the cause and run it again", file=sys.stderr)
        return 3
    for leftover in leftovers:
        print(f"still present: {leftover}", file=sys.stderr)
    print(f"{args.command}: {'nothing of this app is left' if not leftovers else f'{len(leftovers)} leftover(s)'}")
    return 1 if leftovers else 0


def run_logs(clients: AwsClients, outputs: StackOutputs, args: argparse.Namespace) -> int:
    since = parse_since(args.since)
    sources = log_sources(outputs, args.component)
    things = app_devices(clients, outputs, args.thing)
    if args.follow:
        print(f"logs: following {', '.join(source.group for source in sources)} (Ctrl-C stops)", file=sys.stderr)
    if not show_logs(clients, sources, things, since, follow=args.follow) and not args.follow:
        print(f"logs: no line in the last {args.since}; the log manager uploads every few minutes", file=sys.stderr)
    return 0


def revoke_claim(clients: AwsClients, names: AppNames, outputs: StackOutputs) -> None:
    if outputs.fleet is None:
        raise LifecycleError("the stack was deployed without fleet provisioning (fleetProvisioning false): "
                             "there is no claim certificate")
    print(f"revoke-claim: {deactivate_claim(clients, outputs)}")
    key_folder = names.private_key_path(claim_name(outputs.name_prefix)).parent.relative_to(names.project_root)
    print("Devices that already joined keep working: each has its own certificate. To let new Pis join again:\n"
          f"  rm -r {key_folder}      # the revoked claim's key\n"
          "  make keys                  # a new claim key and CSR\n"
          "  make deploy                # CloudFormation replaces the claim certificate (its CSR changed)\n"
          "  make fleet-bundle          # the new bundle; destroy every copy of the old one")


if __name__ == "__main__":
    sys.exit(main())
