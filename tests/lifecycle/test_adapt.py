"""make adapt: fit a station's adaptation of its ring's model and deliver it in that thing's `adaptation` shadow,
against moto's IoT data plane (named shadows) and the deployed stack's real outputs; the fit is the real
`python -m model_training adapt` on a station's labelled hours."""
from __future__ import annotations

import json
import shutil

import pytest

from device_code.adaptation import validate_adaptation
from device_code.adaptation_shadow import APPLIED, NONE, choose, parse_adaptation_text
from infra import releases
from infra.lifecycle.__main__ import main
from infra_support import PROJECT_ROOT, model_variant
from model_training.adapt_bench import ADAPTATION_SHARE, airport_hours
from model_training.data import load_observations, split_by_time

from .conftest import THING

SOURCE_ZIP = PROJECT_ROOT / "build" / "model" / "rain_model.zip"


@pytest.fixture(scope="module")
def station_hours():
    """JFK's Oct-Dec hours with the synthetic bias of the adaptation benchmark (a warm box, a wrong altitude)."""
    return airport_hours(split_by_time(load_observations())[2], "JFK", biased=True)


@pytest.fixture
def project(names):
    """The scratch project with the model `make train` wrote, as modelZip."""
    names.model_zip.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SOURCE_ZIP, names.model_zip)
    return names


@pytest.fixture
def labelled_csv(tmp_path, station_hours):
    path = tmp_path / "jfk-labelled.csv"
    station_hours.iloc[:int(round(len(station_hours) * ADAPTATION_SHARE))].to_csv(path, index=False)
    return path


def adapt(project, *args: str) -> int:
    return main(["--project-root", str(project.project_root), "adapt", *args])


def cloud_document(clients, thing: str) -> dict | None:
    try:
        response = clients.iot_data.get_thing_shadow(thingName=thing, shadowName="adaptation")
    except clients.iot_data.exceptions.ResourceNotFoundException:
        return None
    return json.loads(response["payload"].read())


def test_the_fitted_adaptation_reaches_the_things_shadow_and_the_device_accepts_it(clients, project, deployed,
                                                                                  labelled_csv, capsys):
    assert adapt(project, "--thing", THING, "--csv", str(labelled_csv)) == 0
    out = capsys.readouterr().out
    version = deployed.outputs["PromotedModelVersion"]
    kept = json.loads((project.project_root / "build" / "adaptations" / f"{THING}.json").read_text())
    assert f"{THING} (fleet ring) serves {version}" in out and f"{kept['id']} delivered to {THING}" in out
    document = cloud_document(clients, THING)
    offered, problem = parse_adaptation_text(document["state"]["desired"]["adaptation"])
    assert problem is None and offered == kept and validate_adaptation(offered, version) is None
    # What ShadowManager brings down is what the inference function takes.
    choice = choose(document, version, None)
    assert (choice.status, choice.in_force_id) == (APPLIED, kept["id"])


def test_clear_removes_the_adaptation_and_the_device_returns_to_the_global_model(clients, project, deployed,
                                                                                 labelled_csv, capsys):
    assert adapt(project, "--thing", THING, "--csv", str(labelled_csv)) == 0
    assert adapt(project, "--thing", THING, "--clear") == 0
    document = cloud_document(clients, THING)
    assert "adaptation" not in document["state"].get("desired", {})
    assert choose(document, deployed.outputs["PromotedModelVersion"], None).status == NONE
    assert "desired adaptation removed" in capsys.readouterr().out


def test_a_refused_fit_passes_its_reason_through_and_delivers_nothing(clients, project, deployed, tmp_path,
                                                                      station_hours, capsys):
    tiny = tmp_path / "few.csv"
    station_hours.iloc[:150].to_csv(tiny, index=False)
    assert adapt(project, "--thing", THING, "--csv", str(tiny)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("adapt: nothing delivered: ") and "too few rows" in err[0]
    assert cloud_document(clients, THING) is None


@pytest.mark.parametrize("thing, said", [
    ("rainedge-core-9", "not a device of this app"),
    ("../../etc/passwd", "is not a thing name"),
    ("a b", "is not a thing name"),
    ("", "is not a thing name"),
])
def test_only_a_device_of_the_app_can_be_adapted(clients, project, deployed, labelled_csv, capsys, thing, said):
    clients.iot.create_thing(thingName="rainedge-core-9")  # a thing of the account, not of the app
    assert adapt(project, "--thing", thing, "--csv", str(labelled_csv)) == 2
    assert said in capsys.readouterr().err
    assert cloud_document(clients, "rainedge-core-9") is None


def test_a_thing_someone_put_into_the_apps_thing_group_is_not_the_apps(clients, project, deployed, labelled_csv,
                                                                         capsys):
    """Group membership is no record (infra/lifecycle/scope.py): only listed and ledger-recorded devices are the app's."""
    clients.iot.create_thing(thingName="rainedge-intruder")
    clients.iot.add_thing_to_thing_group(thingGroupName=deployed.outputs["CanaryGroupName"], thingName="rainedge-intruder")
    assert adapt(project, "--thing", "rainedge-intruder", "--csv", str(labelled_csv)) == 2
    assert "not a device of this app" in capsys.readouterr().err
    assert cloud_document(clients, "rainedge-intruder") is None


def test_without_a_csv_or_with_a_missing_one_it_says_what_to_give(clients, project, deployed, tmp_path, capsys):
    assert adapt(project, "--thing", THING) == 2
    assert "give CSV=" in capsys.readouterr().err
    assert adapt(project, "--thing", THING, "--csv", str(tmp_path / "none.csv")) == 2
    assert "no such file" in capsys.readouterr().err and cloud_document(clients, THING) is None


def test_with_shadows_synced_only_up_no_adaptation_is_written(clients, project, deployed, labelled_csv, capsys):
    """ShadowManager's `direction` deviceToCloud never brings a cloud-side change down: a delivery would wait forever."""
    cdk_json = project.project_root / "cdk.json"
    document = json.loads(cdk_json.read_text())
    document["context"]["shadowSyncDirection"] = "deviceToCloud"
    cdk_json.write_text(json.dumps(document))
    assert adapt(project, "--thing", THING, "--csv", str(labelled_csv)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "shadowSyncDirection is deviceToCloud" in line and "betweenDeviceAndCloud, cloudToDevice" in line
    assert cloud_document(clients, THING) is None


def test_the_canary_ring_is_adapted_to_the_candidate_and_a_ring_whose_model_is_not_here_is_refused(
        clients, project, deployed, labelled_csv, capsys):
    # A promoted model that is not the one the stack's outputs say the fleet ring runs.
    model_variant(SOURCE_ZIP, project.releases_dir / releases.PROMOTED_ZIP, "rain-00000000000000aa")
    assert adapt(project, "--thing", THING, "--csv", str(labelled_csv)) == 2
    assert "the fleet ring runs" in capsys.readouterr().err and cloud_document(clients, THING) is None
    # A provisioned device (the ledger records it) in the canary ring's group.
    canary = deployed.provision("10000000c0ffee01").thing_name
    clients.iot.add_thing_to_thing_group(thingGroupName=deployed.outputs["CanaryGroupName"], thingName=canary)
    assert adapt(project, "--thing", canary, "--csv", str(labelled_csv)) == 0
    assert "(canary ring)" in capsys.readouterr().out
    offered, _ = parse_adaptation_text(cloud_document(clients, canary)["state"]["desired"]["adaptation"])
    assert offered["model_version"] == deployed.outputs["CandidateModelVersion"]


def test_a_model_zip_that_is_not_the_artifact_is_refused_in_one_line(clients, project, deployed, labelled_csv,
                                                                      capsys):
    project.model_zip.write_bytes(b"not a zip")
    assert adapt(project, "--thing", THING, "--csv", str(labelled_csv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run `make train`" in err[0] and cloud_document(clients, THING) is None
