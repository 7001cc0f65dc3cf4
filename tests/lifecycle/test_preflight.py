"""deploy pre-checks: missing credentials, region, bootstrap or model each get a clear message."""
from __future__ import annotations

import zipfile
from pathlib import Path

import boto3
import pytest

from infra.lifecycle.__main__ import main
from infra.lifecycle.aws import AwsClients
from infra.lifecycle.preflight import check_model

from .conftest import ACCOUNT, REGION

BOOTSTRAP_PARAMETER = "/cdk-bootstrap/hnb659fds/version"


def write_model(path: Path, members=("saved_model/saved_model.pb", "model.tflite", "metadata.json")) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for member in members:
            archive.writestr(member, b"x")


def run_preflight(names, clients) -> int:
    return main(["--project-root", str(names.project_root), "preflight"], clients=clients)


def test_ready_account_passes(names, clients, capsys):
    clients.ssm.put_parameter(Name=BOOTSTRAP_PARAMETER, Value="28", Type="String")
    write_model(names.model_zip)
    assert run_preflight(names, clients) == 0
    assert f"ready to deploy to {REGION}" in capsys.readouterr().out


def test_missing_credentials(names, tmp_path, monkeypatch, capsys):
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                     "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                     "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup
    write_model(names.model_zip)
    clients = AwsClients(boto3.session.Session(region_name=REGION))

    assert run_preflight(names, clients) == 1
    assert "no AWS credentials found: run `aws configure`" in capsys.readouterr().err


def test_missing_region(names, aws_env, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    clients = AwsClients(boto3.session.Session())
    assert run_preflight(names, clients) == 2
    assert "no AWS region: set AWS_REGION" in capsys.readouterr().err


def test_missing_bootstrap_names_the_command(names, clients, capsys):
    write_model(names.model_zip)
    assert run_preflight(names, clients) == 1
    err = capsys.readouterr().err
    assert f"account {ACCOUNT} is not CDK-bootstrapped in {REGION}" in err
    assert f"node_modules/.bin/cdk bootstrap aws://{ACCOUNT}/{REGION}" in err


def test_outdated_bootstrap(names, clients, capsys):
    clients.ssm.put_parameter(Name=BOOTSTRAP_PARAMETER, Value="4", Type="String")
    write_model(names.model_zip)
    assert run_preflight(names, clients) == 1
    assert "is version 4, older than 6" in capsys.readouterr().err


def test_missing_model_says_make_train(names, clients, capsys):
    clients.ssm.put_parameter(Name=BOOTSTRAP_PARAMETER, Value="28", Type="String")
    assert run_preflight(names, clients) == 1
    assert f"no trained model at {names.model_zip}: run `make train`" in capsys.readouterr().err


@pytest.mark.parametrize("members, expected", [
    (("saved_model/saved_model.pb", "metadata.json"), "lacks model.tflite"),
    (("model.tflite", "metadata.json"), "lacks saved_model"),
])
def test_incomplete_model_archive(tmp_path, members, expected):
    model = tmp_path / "rain_model.zip"
    write_model(model, members)
    assert expected in check_model(model)[0]


def test_model_that_is_not_a_zip(tmp_path):
    model = tmp_path / "rain_model.zip"
    model.write_text("not a zip")
    assert "is not a readable zip" in check_model(model)[0]


def test_bad_context_value_is_named(names, clients, capsys):
    cdk_json = names.project_root / "cdk.json"
    cdk_json.write_text(cdk_json.read_text().replace('"namePrefix": "rainedge"', '"namePrefix": "Rain Edge"'))
    assert run_preflight(names, clients) == 2
    assert "namePrefix" in capsys.readouterr().err
