# entropyctl: `make demo` on a fresh machine installs and runs the main job; `make test` checks it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# CPU build of torch: pinned so pip takes the local CPU wheel instead of several GB of CUDA packages.
TORCH_SPEC ?= torch==2.13.0

.PHONY: help install lock demo test test-slow bench stress smoke lint clean

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
	$(LOCK_VENV)/bin/python -m pip install -q -e ".[test]"
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

test-slow: install ## minutes-long lab checks: GRPO collapses, Clip-Cov keeps entropy and format spread
	$(BIN)/pytest -q -m slow

bench: install ## benchmarks, JSON results in bench-results/
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
