# The README's two commands: `make train MODEL=gan` and `make test`. Both create .venv on first use.
MODEL ?= gan
DATASET ?=
WORKDIR ?= runs/$(MODEL)
ARGS ?=
NAME ?=
QUICK ?=
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: train experiment classifier test test-slow venv clean-venv

venv: $(STAMP)

# Reinstalled whenever pyproject.toml changes. pip's own retries are cut so an offline machine fails in seconds.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --retries 1 --timeout 30 -e '.[dev]'
	@touch $@

train: $(STAMP)
	$(PY) -m genjax.main train --model $(MODEL) --workdir $(WORKDIR) $(if $(DATASET),--dataset $(DATASET)) $(ARGS)

# make experiment NAME=<name> [QUICK=1]: results.json and figures in runs/experiments/<name>/
experiment: $(STAMP)
	$(PY) -m genjax.main experiment --name $(NAME) $(if $(QUICK),--quick)

# make classifier [DATASET=mnist]: the CNN that experiments (and evaluation) use to count classes
classifier: $(STAMP)
	$(PY) -m genjax.main classifier $(if $(DATASET),--dataset $(DATASET))

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" -n auto --durations=10 tests

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow tests

clean-venv:
	rm -rf $(VENV)
