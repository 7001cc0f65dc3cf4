"""adapt: fit a station's own adaptation of the model its ring serves, and deliver it to that station only.

`make adapt THING=<name> CSV=<labelled.csv> [OUT=<file.json>]`:
1. THING must be one of the app's core devices by record: listed in the stack's outputs, or a provisioned
   device the ledger records (a thing someone else put into the app's thing groups is not the app's,
   infra/lifecycle/scope.py); its ring is the thing group it is in;
2. the model its ring serves (infra/releases.py): the canary ring runs the candidate (modelZip), the fleet
   ring the promoted model (releases/promoted/rain_model.zip; the candidate before the first promotion),
   and it must be the version the stack's outputs say that ring runs, or the fit would be for another model;
3. `python -m model_training adapt` fits it on the CSV (its exit 2, a refusal, passes its reason through);
4. the result is checked as the device will check it (device_code.adaptation.validate_adaptation);
5. it is written, as its JSON text (device_code/adaptation_shadow.py says why), into the desired state of the
   thing's `adaptation` shadow (IoT data plane UpdateThingShadow with shadowName). ShadowManager syncs it down to the device, which validates it again and
   reports what it holds in force (device_code/adaptation_shadow.py); `make status` shows that.
`make adapt THING=<name> CLEAR=1` sets the desired adaptation to null: the device returns to the global model.
No deployment: one shadow write reaches one device, whichever ring it is in.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from device_code.adaptation import MAX_ADAPTATION_BYTES, validate_adaptation
from device_code.adaptation_shadow import ADAPTATION_KEY, adaptation_text
from device_code.contracts import ADAPTATION_SHADOW
from device_code.files import InvalidJson, UnusableFile, read_json
from infra import releases
from infra.config import CLOUD_TO_DEVICE_DIRECTIONS
from infra.fleet_hook.handler import THING_NAME
from infra.lifecycle.aws import AwsClients, LifecycleError, call
from infra.lifecycle.ledger import ledger_table_name, read_ledger
from infra.lifecycle.outputs import StackOutputs
from infra.lifecycle.scope import group_members
from infra.lifecycle.settings import AppNames
from infra.model_artifact import ModelArtifactError, model_version

ADAPTATIONS_DIR = Path("build") / "adaptations"
# The fit's own exit status for "no adaptation worth delivering" or unusable input (model_training.cli).
FIT_REFUSED = 2


def ring_of(clients: AwsClients, outputs: StackOutputs, thing: str) -> str:
    """"canary" or "fleet" for a device of the app; LifecycleError for any other name."""
    if not THING_NAME.fullmatch(thing):
        raise LifecycleError(f"THING={thing!r} is not a thing name of this app (1-64 of a-z A-Z 0-9 _ -)")
    listed = thing in outputs.thing_names
    if not listed and thing not in read_ledger(clients, outputs.name_prefix,
                                               ledger_table_name(clients, outputs.name_prefix, outputs)).things:
        raise LifecycleError(f"THING={thing}: not a device of this app (neither listed in the stack nor recorded by "
                             "fleet provisioning); `make status` lists them")
    return "canary" if thing in group_members(clients, outputs.canary_group_name) else "fleet"


def served_model(names: AppNames, outputs: StackOutputs, ring: str) -> tuple[Path, str]:
    """The local zip of the model the ring serves, and its version, which must be what the stack runs there."""
    models = releases.ring_models(names.releases_dir, names.model_zip)
    model_zip = models.canary if ring == "canary" else models.fleet
    if not model_zip.is_file():
        raise LifecycleError(f"no model at {model_zip}: `make train` (or restore the release record) first")
    try:
        version = model_version(model_zip)
    except ModelArtifactError as error:
        raise LifecycleError(str(error)) from None
    deployed = outputs.candidate_model_version if ring == "canary" else outputs.promoted_model_version
    if version != deployed:
        raise LifecycleError(f"the {ring} ring runs {deployed}, but {model_zip} holds {version}: an adaptation is "
                             f"fitted for one model; `make deploy` first (or fit with the zip of {deployed})")
    return model_zip, version


def fit(project_root: Path, model: Path, csv: Path, out: Path) -> str:
    """Fit with `python -m model_training adapt` on `model` (a zip or its folder); its summary line.
    LifecycleError with the fit's reason when it refuses."""
    if not csv.is_file():
        raise LifecycleError(f"CSV={csv}: no such file; `make dataset THING=... LABELLED=1` exports a station's "
                             "labelled hours")
    # An argument list, no shell: a path is never parsed.
    # --opt=value: a path starting with '-' stays a path (argparse would read it as an option and exit 2, the
    # fit's own "refused").
    argv = [sys.executable, "-m", "model_training", "adapt", f"--model={model}", f"--csv={csv}", f"--out={out}"]
    done = subprocess.run(argv, cwd=project_root, capture_output=True, text=True, check=False)
    said = [line for line in (done.stderr or "").splitlines() if line.strip()]
    if done.returncode == FIT_REFUSED:
        raise LifecycleError(f"nothing delivered: {said[-1] if said else 'the fit refused without a reason'}")
    if done.returncode != 0:
        raise LifecycleError(f"the fit failed (exit {done.returncode}): {said[-1] if said else 'no message'}")
    return (done.stdout or "").strip()


def checked_adaptation(out: Path, version: str) -> dict:
    try:
        adaptation = read_json(out, MAX_ADAPTATION_BYTES)
    except (UnusableFile, InvalidJson) as problem:
        raise LifecycleError(f"the fit wrote no usable adaptation: {problem}") from None
    problem = validate_adaptation(adaptation, version)
    if problem:
        raise LifecycleError(f"the fitted adaptation would be rejected by the device: {problem}")
    return adaptation


def write_desired(iot_data: Any, thing: str, adaptation: dict | None) -> None:
    """Set the shadow's desired adaptation (None: remove it) with an IoT data plane client; the rest of the
    document is left as it is."""
    text = adaptation_text(adaptation) if adaptation is not None else None
    call(iot_data.update_thing_shadow, thingName=thing, shadowName=ADAPTATION_SHADOW,
         payload=json.dumps({"state": {"desired": {ADAPTATION_KEY: text}}}).encode())


def run_adapt(clients: AwsClients, names: AppNames, outputs: StackOutputs, thing: str, csv: Path | None,
              out: Path | None = None, clear: bool = False, echo: Callable[[str], None] = print) -> None:
    direction = names.config.shadow_sync_direction
    if direction not in CLOUD_TO_DEVICE_DIRECTIONS:
        raise LifecycleError(f"shadowSyncDirection is {direction}: no cloud-side shadow change reaches a device, so no "
                             f"adaptation would; deploy with one of {', '.join(CLOUD_TO_DEVICE_DIRECTIONS)} first")
    ring = ring_of(clients, outputs, thing)
    if clear:
        write_desired(clients.iot_data, thing, None)
        echo(f"adapt: {thing}: desired adaptation removed; the device returns to the global model at its next "
             "heartbeat after ShadowManager syncs it (`make status` shows it)")
        return
    if csv is None:
        raise LifecycleError("give CSV=<a labelled CSV of this station> (or CLEAR=1 to remove its adaptation)")
    model_zip, version = served_model(names, outputs, ring)
    out = out or names.project_root / ADAPTATIONS_DIR / f"{thing}.json"
    echo(f"adapt: {thing} ({ring} ring) serves {version}: fitting on {csv}")
    summary = fit(names.project_root, model_zip, csv, out)
    if summary:
        echo(summary)
    adaptation = checked_adaptation(out, version)
    write_desired(clients.iot_data, thing, adaptation)
    echo(f"adapt: {adaptation['id']} delivered to {thing} (its `{ADAPTATION_SHADOW}` shadow, desired); the device "
         "checks it and applies it at its next heartbeat after ShadowManager syncs it (`make status` shows it)")
