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
ARGS   ?=
SEEDS  ?= 0 1 2
RUNS   ?= runs
# Test processes (pytest-xdist): one per core, each test on one torch thread (tests/conftest.py); TEST_WORKERS=0
# runs the suite in this process (pdb, -x, reading one test's output).
TEST_WORKERS ?= auto
TEST_PROCS = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist worksteal)

# The pair name of a dataset name or alias, as `crgan` names the pair (crgan_lightning.app.stages.pair_name;
# a test checks that the two agree for every registered name): runs/$(PAIR)/<stage> is a stage's run folder.
define pair_names
$(foreach name,$(2),$(eval PAIR_NAME_$(name) := $(1)))
endef
$(call pair_names,market,market1501 market market-1501)
$(call pair_names,duke,dukemtmcreid duke dukemtmc dukemtmc-reid)
$(call pair_names,msmt,msmt17 msmt msmt17_v1 msmt17_v2)
$(call pair_names,cuhk03np,cuhk03np cuhk03 cuhk03-np)
$(call pair_names,synth_a,synth_a syntha)
$(call pair_names,synth_b,synth_b synthb)
$(call pair_names,synth_a_in_b,synth_a_in_b synthainb)
pair_name = $(or $(PAIR_NAME_$(1)),$(1))
PAIR = $(call pair_name,$(SRC))2$(call pair_name,$(TGT))

# A stage of the pair SRC->TGT: its shipped configs (crgan_lightning/configs: base/ pieces, the embedded
# recipe for the embedded pair, pairs/<PAIR>.yaml and pairs/<PAIR>/ when the pair has them) and its run folder
# RUNS/<PAIR>/<stage>, with the judge and translator of the same pair: `crgan configs --stage S` shows them.
stage_args = --stage $(1) --source $(SRC) --target $(TGT) --runs $(RUNS) --data.root=$(DATA_ROOT)
# The checkpoints a stage of the pair leaves, and that later stages read: make builds them when they are missing
# (with their own arguments: REID_ARGS for the judge, CRGAN_ARGS for the generator) and uses them when they exist.
JUDGE     = $(RUNS)/$(PAIR)/reid_direct/checkpoints/last.ckpt
GENERATOR = $(RUNS)/$(PAIR)/crgan/checkpoints/last.ckpt
REID_ARGS  ?=
CRGAN_ARGS ?=
# train-crgan needs the judge unless ARGS names one of its own (--model.init_args.judge=null or a file).
CRGAN_NEEDS = $(if $(findstring init_args.judge=,$(ARGS)),,$(JUDGE))
# train-reid: direct transfer, or CR-GAN streaming when CRGAN_CKPT names a CR-GAN checkpoint (CRGAN=1: the pair's
# own, $(GENERATOR), trained first when missing). TAUDL=1 adds TAUDL on the target's within-camera tracklets:
# reid_taudl (TAUDL alone, no source label), reid_crgan_taudl with CRGAN_CKPT, reid_spgan_taudl with SPGAN_CKPT
# (an SPGAN checkpoint of make train-spgan; TAUDL=1 only).
CRGAN_CKPT ?= $(if $(filter 1 yes true,$(CRGAN)),$(GENERATOR))
# CLUSTER=1: clustering on the target (reid_cluster), from the pair's direct-transfer run, or from the re-id
# checkpoint INIT_CKPT (e.g. the CR-GAN streaming run's last.ckpt).
TAUDL_ON = $(filter 1 yes true,$(TAUDL))
CLUSTER_ON = $(filter 1 yes true,$(CLUSTER))
REID_STAGE = $(if $(CLUSTER_ON),reid_cluster,$(REID_STAGE_NO_CLUSTER))
REID_STAGE_NO_CLUSTER = $(if $(TAUDL_ON),$(if $(SPGAN_CKPT),reid_spgan_taudl,$(if $(CRGAN_CKPT),reid_crgan_taudl,reid_taudl)),$(if $(CRGAN_CKPT),reid_crgan,reid_direct))
REID_TRANSLATOR = $(or $(SPGAN_CKPT),$(CRGAN_CKPT))
REID_EXTRA = $(if $(CLUSTER_ON),$(if $(INIT_CKPT),--model.init_args.init_checkpoint=$(INIT_CKPT)),$(if $(REID_TRANSLATOR),--rendering.init_args.translator=$(REID_TRANSLATOR)))
# The generator train-reid trains first when missing (not with SPGAN_CKPT, which the recipe refuses beside it).
REID_NEEDS = $(if $(SPGAN_CKPT),,$(filter $(GENERATOR),$(CRGAN_CKPT)))
# A prerequisite's run, and what to do when it fails.
prereq_fit = @echo "make: $(1) of $(PAIR) is missing: training it first ($(2)=\"$(3)\" are its arguments)"
prereq_fail = { echo "make: training $(1) of $(PAIR) failed; give its own arguments as $(2)=\"...\" (ARGS are the target's)"; exit 2; }

.PHONY: help install demo test test-fast lint synth summary bench train-crgan train-reid train-spgan compare evaluate sweep clean

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
	$(BIN)/python -m pytest -q -p no:cacheprovider $(TEST_PROCS) --durations=15

test-fast: install  ## the test suite without the slow end-to-end runs
	$(BIN)/python -m pytest -q -p no:cacheprovider $(TEST_PROCS) -m "not slow" --durations=10

lint: install  ## flake8 over the package, tests and benchmarks
	$(BIN)/flake8 src tests benchmarks

synth: install  ## write the embedded benchmark under DATA_ROOT (default: data)
	$(BIN)/crgan synth --out $(DATA_ROOT)

summary: install  ## print a dataset's statistics: make summary DATASET=market DATA_ROOT=/datasets
	$(BIN)/crgan summary --dataset $(DATASET) --root $(DATA_ROOT)

train-crgan: install $(CRGAN_NEEDS)  ## CR-GAN, judged by the pair's direct-transfer run (trained first when missing, with REID_ARGS): make train-crgan SRC=market TGT=duke [ARGS=...] [REID_ARGS=...]
	$(BIN)/crgan fit $(call stage_args,crgan) $(ARGS)

train-reid: install $(REID_NEEDS)  ## re-id: make train-reid SRC=market TGT=duke [ARGS=...]; CRGAN=1 (or CRGAN_CKPT=<a CR-GAN last.ckpt>) streams the pair's CR-GAN renderings (trained first when missing, with CRGAN_ARGS); TAUDL=1 adds TAUDL on the target tracklets (alone, CR-GAN+TAUDL with CRGAN_CKPT, SPGAN+TAUDL with SPGAN_CKPT=<make train-spgan last.ckpt>); CLUSTER=1 clusters the target, from the pair's direct run or INIT_CKPT=<re-id last.ckpt>
	@test -z "$(SPGAN_CKPT)" -o -z "$(CRGAN_CKPT)" || { echo "give CRGAN_CKPT or SPGAN_CKPT, not both"; exit 2; }
	@test -z "$(SPGAN_CKPT)" -o -n "$(TAUDL_ON)" || { echo "SPGAN_CKPT=$(SPGAN_CKPT) selects SPGAN+TAUDL: add TAUDL=1"; exit 2; }
	@test -z "$(CLUSTER_ON)" -o -z "$(TAUDL_ON)$(CRGAN_CKPT)$(SPGAN_CKPT)" || { echo "CLUSTER=1 starts from a re-id checkpoint: give INIT_CKPT (not TAUDL, CRGAN_CKPT or SPGAN_CKPT)"; exit 2; }
	$(BIN)/crgan fit $(call stage_args,$(REID_STAGE)) $(REID_EXTRA) $(ARGS)

# The judge and the generator of the pair, built only when their checkpoint is missing (an existing one is used,
# also one of a run stopped early: finish it with make train-reid / train-crgan ARGS="--ckpt_path last"). Precious:
# make never deletes an interrupted run's last.ckpt, the point it resumes from.
.PRECIOUS: $(JUDGE) $(GENERATOR)
$(JUDGE): | install
	$(call prereq_fit,the direct-transfer judge $@,REID_ARGS,$(REID_ARGS))
	$(BIN)/crgan fit $(call stage_args,reid_direct) $(REID_ARGS) || $(call prereq_fail,the direct-transfer judge,REID_ARGS)

$(GENERATOR): | install $(if $(findstring init_args.judge=,$(CRGAN_ARGS)),,$(JUDGE))
	$(call prereq_fit,the CR-GAN generator $@,CRGAN_ARGS,$(CRGAN_ARGS))
	$(BIN)/crgan fit $(call stage_args,crgan) $(CRGAN_ARGS) || $(call prereq_fail,the CR-GAN generator,CRGAN_ARGS)

train-spgan: install  ## SPGAN baseline: make train-spgan SRC=market TGT=duke [DATA_ROOT=...] [ARGS=...]
	$(BIN)/crgan fit $(call stage_args,spgan) $(ARGS)

compare: install  ## the paper's Tables 1 and 2 (3 seeds; trains every stage it needs under runs/compare): make compare SRC=market TGT=duke [SEEDS="0 1 2"] [ARGS=...]
	$(BIN)/crgan compare --source $(SRC) --target $(TGT) --root $(DATA_ROOT) --seeds $(SEEDS) $(ARGS)

evaluate: install  ## test a re-id checkpoint on the target: make evaluate SRC= TGT= CKPT=path/to.ckpt
	@test -n "$(CKPT)" || { echo "set CKPT=path/to/checkpoint.ckpt"; exit 2; }
	$(BIN)/crgan test $(call stage_args,reid_direct) --ckpt_path $(CKPT) --model.init_args.net.init_args.pretrained=false $(ARGS)

sweep: install  ## print the commands that start a W&B sweep (experiments/sweep.yaml) and its agents
	@echo "1. $(BIN)/wandb sweep experiments/sweep.yaml        # prints <entity>/<project>/<sweep id>"
	@echo "2. $(BIN)/wandb agent <entity>/<project>/<sweep id>  # one per GPU or machine; PATH must hold $(BIN)"

bench: install  ## run the benchmark scripts (they print measured figures and ratios)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:  ## remove caches and build artefacts (keeps .venv, data and runs)
	rm -rf build dist src/*.egg-info .pytest_cache
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
