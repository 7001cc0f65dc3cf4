# rainedge — every entry point a user (and CI) runs.
# Each target sets up what it needs (virtualenv, Python packages, the CDK CLI) and is
# idempotent: set-up is skipped when the pinned inputs have not changed.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV     := .venv
PY       := $(VENV)/bin/python
CDK      := node_modules/.bin/cdk
MODEL    := build/model/rain_model.zip
# Stamps: re-install only when the pins change.
PY_STAMP  := $(VENV)/.installed
CDK_STAMP := node_modules/.installed

export CDK_DISABLE_VERSION_CHECK := 1
# The machine's Node 20 works with this jsii; its end-of-life banner would bury the synth output.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONDONTWRITEBYTECODE := 1
# TensorFlow's oneDNN notice adds nothing here.
export TF_ENABLE_ONEDNN_OPTS := 0

.PHONY: help setup keys demo test train bench synth deploy promote rollback rollout device-setup fleet-bundle status logs revoke-claim destroy cost clean adapt dataset

help:
	@echo "make demo          train if needed, synthesise the stack, run the edge functions in the simulator, then adapt one station"
	@echo "make test          run every test (offline)"
	@echo "make train         train the rain model into build/model/ (skipped when up to date)"
	@echo "make bench         print the benchmark tables (also written to build/bench-model.json and build/bench-edge.json)"
	@echo "make rollout       simulate a model release over 200 devices on virtual time: broken, inverted and good candidates"
	@echo "make synth         synthesise the CloudFormation templates into cdk.out/ (offline)"
	@echo "make deploy        deploy to the AWS account in your environment"
	@echo "make promote       after the bake window, move the canary ring's model to the fleet if every canary device is healthy"
	@echo "make rollback      put the canary ring back on the promoted model"
	@echo "make device-setup  write the install bundle for each device from the stack outputs"
	@echo "make fleet-bundle  write the one bundle with which any number of Pis join by fleet provisioning"
	@echo "make status        one table of every core device: status, deployment, last reading, rain"
	@echo "make logs          device logs from CloudWatch [THING=name] [COMPONENT=Sensor|...|system] [SINCE=1h] [FOLLOW=1]"
	@echo "make revoke-claim  deactivate the fleet's claim certificate (a leaked bundle), nothing else"
	@echo "make adapt         fit THING's own adaptation on CSV=labelled.csv [OUT=file.json] and deliver it; CLEAR=1 removes it"
	@echo "make dataset       THING's hourly series from the data lake as a CSV [SINCE=2026-12-01] [LABELLED=1: with rain] [OUT=file.csv]"
	@echo "make destroy       remove everything this app created, then audit that nothing is left"
	@echo "make cost          estimated monthly AWS cost per device and for DEVICES=N devices"

$(PY_STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

$(CDK_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(PY_STAMP) $(CDK_STAMP)

# The model is rebuilt only when the training code changes, including the device code it shares
# (the sensor contract, the feature definitions, the model contract) and the device code the
# artifact ships for its on-device self-test (model_training.golden.shipped_device_modules).
$(MODEL): $(wildcard model_training/*.py) device_code/__init__.py device_code/contracts.py device_code/drift.py \
		device_code/features.py device_code/files.py device_code/model.py device_code/sea_level.py \
		device_code/selftest.py | $(PY_STAMP)
	$(PY) -m model_training train --out build/model

train: $(MODEL)

# Key + CSR per device, created locally when absent (the private key never leaves .secrets/).
keys: $(PY_STAMP)
	$(PY) -m infra.device_keys ensure

synth: setup $(MODEL) keys
	$(CDK) synth --quiet

demo: synth
	$(PY) -m device_code.simulator
	$(PY) -m device_code.simulator --adapt-demo

test: setup $(MODEL)
	$(PY) -m pytest

# Three candidates through canary, bake, gate and fleet on a simulated clock (a 6 h bake takes seconds).
rollout: setup $(MODEL)
	$(PY) -m device_code.simulator.rollout --devices 200 --bake-hours 6 --json build/rollout.json

bench: setup $(MODEL)
	$(PY) -m model_training.bench --model build/model --json build/bench-model.json
	$(PY) -m device_code.simulator.bench --model build/model --json build/bench-edge.json
	$(PY) -m model_training.drift_check --model build/model --json build/bench-drift.json
	$(PY) -m model_training.adapt_bench --model build/model --json build/bench-adapt.json

deploy: setup $(MODEL) keys
	$(PY) -m infra.lifecycle preflight
	$(CDK) deploy --require-approval never --outputs-file build/stack-outputs.json
	$(PY) -m infra.lifecycle record-release

# The gate: the canary ring's candidate goes to the fleet ring only when it passes; the decision is recorded.
promote: setup $(MODEL) keys
	$(PY) -m infra.lifecycle promote
	$(MAKE) --no-print-directory deploy

rollback: setup $(MODEL) keys
	$(PY) -m infra.lifecycle rollback
	$(MAKE) --no-print-directory deploy

device-setup: $(PY_STAMP)
	$(PY) -m infra.lifecycle device-setup $(if $(SSH),--ssh $(SSH))

fleet-bundle: $(PY_STAMP)
	$(PY) -m infra.lifecycle fleet-bundle

status: $(PY_STAMP)
	$(PY) -m infra.lifecycle status

# The values reach the command through the environment, so the shell never parses them.
export THING COMPONENT SINCE FOLLOW
logs: $(PY_STAMP)
	$(PY) -m infra.lifecycle logs $(if $(THING),--thing "$$THING") $(if $(COMPONENT),--component "$$COMPONENT") \
		$(if $(SINCE),--since "$$SINCE") $(if $(FOLLOW),--follow)

revoke-claim: $(PY_STAMP)
	$(PY) -m infra.lifecycle revoke-claim

# Through the environment as well (THING is exported above).
export CSV OUT CLEAR
adapt: $(PY_STAMP)
	$(if $(filter-out 1,$(CLEAR)),$(error CLEAR=$(CLEAR): use CLEAR=1 to remove THING's adaptation, or leave it out))
	$(PY) -m infra.lifecycle adapt --thing="$$THING" $(if $(CLEAR),--clear,$(if $(CSV),--csv="$$CSV")) $(if $(OUT),--out="$$OUT")

# THING, SINCE and OUT go through the environment too; `--opt=value` keeps a value starting with '-' a value.
DATASET_USAGE := make dataset THING=<name> [SINCE=2026-12-01] [LABELLED=1] [OUT=build/dataset-<name>.csv]
export LABELLED
dataset: $(PY_STAMP)
	$(if $(THING),,$(error $(DATASET_USAGE): THING names the station))
	$(if $(filter-out 1,$(LABELLED)),$(error LABELLED=$(LABELLED): use LABELLED=1 to join the labels or leave it out))
	$(PY) -m infra.lifecycle dataset --thing="$$THING" $(if $(SINCE),--since="$$SINCE") $(if $(LABELLED),--labelled) \
		$(if $(OUT),--out="$$OUT")

# cdk destroy synthesises the app first, which needs the model and each device CSR.
destroy: setup $(MODEL) keys
	$(PY) -m infra.lifecycle destroy --cdk $(CDK)

cost: $(PY_STAMP)
	$(PY) -m infra.cost $(if $(DEVICES),--devices $(DEVICES))

clean:
	rm -rf build cdk.out
