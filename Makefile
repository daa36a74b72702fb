# crgan-lightning: every target sets up its own virtualenv first (`make install`), so
# `make demo` and `make test` work on a fresh clone.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA_ROOT ?= data
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.DEFAULT_GOAL := help
SRC    ?= synth_a
TGT    ?= synth_b
PAIR   := $(SRC)2$(TGT)
ARGS   ?=

.PHONY: help install demo test test-fast lint synth summary bench train-crgan train-reid evaluate sweep clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH_PINS) -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the package with pinned torch (quick when nothing changed)

demo: install  ## the main job: embedded benchmark, CR-GAN, re-id direct vs with CR-GAN, one table
	$(BIN)/crgan synth --out $(DATA_ROOT) --quiet
	$(BIN)/crgan demo --root $(DATA_ROOT) --out runs/demo $(ARGS)

test: install  ## the whole test suite, slow end-to-end runs included
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: install  ## the test suite without the slow end-to-end runs
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow"

lint: install  ## flake8 over the package, tests and benchmarks
	$(BIN)/flake8 src tests benchmarks

synth: install  ## write the embedded benchmark under DATA_ROOT (default: data)
	$(BIN)/crgan synth --out $(DATA_ROOT)

summary: install  ## print a dataset's statistics: make summary DATASET=market DATA_ROOT=/datasets
	$(BIN)/crgan summary --dataset $(DATASET) --root $(DATA_ROOT)

train-crgan: install  ## CR-GAN: make train-crgan SRC=market TGT=duke [DATA_ROOT=...] [ARGS="--trainer.max_steps=300"]
	@test -f experiments/$(PAIR)/crgan.yaml || { echo "no config experiments/$(PAIR)/crgan.yaml; pairs: $$(ls experiments)"; exit 2; }
	$(BIN)/crgan fit --config experiments/$(PAIR)/crgan.yaml --data.root $(DATA_ROOT) $(ARGS)

train-reid: install  ## re-id direct transfer: make train-reid SRC=market TGT=duke [DATA_ROOT=...] [ARGS="--trainer.max_epochs=5"]
	@test -f experiments/$(PAIR)/reid_direct.yaml || { echo "no config experiments/$(PAIR)/reid_direct.yaml; pairs: $$(ls experiments)"; exit 2; }
	$(BIN)/crgan fit --config experiments/$(PAIR)/reid_direct.yaml --data.root $(DATA_ROOT) $(ARGS)

evaluate: install  ## test a re-id checkpoint on the target: make evaluate SRC= TGT= CKPT=path/to.ckpt
	@test -n "$(CKPT)" || { echo "set CKPT=path/to/checkpoint.ckpt"; exit 2; }
	$(BIN)/crgan test --config experiments/$(PAIR)/reid_direct.yaml --data.root $(DATA_ROOT) --ckpt_path $(CKPT) --model.init_args.pretrained=false $(ARGS)

sweep: install  ## print the commands that start a W&B sweep (experiments/sweep.yaml) and its agents
	@echo "1. $(BIN)/wandb sweep experiments/sweep.yaml        # prints <entity>/<project>/<sweep id>"
	@echo "2. $(BIN)/wandb agent <entity>/<project>/<sweep id>  # one per GPU or machine; PATH must hold $(BIN)"

bench: install  ## run the benchmark scripts (they print measured figures and ratios)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:  ## remove caches and build artefacts (keeps .venv, data and runs)
	rm -rf build dist src/*.egg-info .pytest_cache
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
