# Every target sets up the virtual environment first if it is missing or older than
# pyproject.toml, so on a fresh clone `make test` and `make reproduce` are the only commands.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

PRESET ?= quick
PROFILE ?= local

.PHONY: test lint bench reproduce figures

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

test: $(INSTALLED)
	$(PY) -m pytest

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .

bench: $(INSTALLED)
	$(PY) -m benchmarks.optimizer_step
	$(PY) -m benchmarks.train_step

# The study: experiments (skipping what is done), then every figure, table and REPORT.md.
# PRESET=paper PROFILE=<slurm profile> submits the paper-scale sweeps instead.
reproduce: $(INSTALLED)
	$(PY) -m lightsam reproduce --preset $(PRESET) --profile $(PROFILE)
	$(MAKE) figures

# Regenerate figures, tables, REPORT.md and the README's results from runs/; never trains.
figures: $(INSTALLED)
	$(PY) -m lightsam figures --readme README.md
