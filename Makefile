# Every target sets up the virtual environment first if it is missing or older than
# pyproject.toml, so on a fresh clone `make test` and `make reproduce` are the only commands.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

PRESET ?= quick
PROFILE ?= local
CALIBRATION ?=

.PHONY: test lint bench reproduce figures

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[study,dev]'
	touch $@

test: $(INSTALLED)
	$(PY) -m pytest

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .

bench: $(INSTALLED)
	PYTHON=$(PY) bash benchmarks/cpu.sh benchmarks/results/cpu.json
	$(PY) -m benchmarks.readme README.md benchmarks/results/cpu.json

# The study: experiments (skipping what is done), then every figure, table and REPORT.md.
# PRESET=paper PROFILE=<slurm profile> submits the paper-scale sweeps instead (rerun it as their
# rungs and stages finish). `make reproduce PRESET=paper PROFILE=<profile> --dry-run` (make's own
# -n) prints each sweep's runs and cost and runs nothing: under -n make runs only `+` lines.
# CALIBRATION=runs/calibration.json prices it from `lightsam calibrate`'s measurements.
DRY_RUN = $(if $(findstring n,$(firstword -$(MAKEFLAGS))),--dry-run)
reproduce: $(INSTALLED)
	+$(PY) -m lightsam reproduce --preset $(PRESET) --profile $(PROFILE) \
		$(if $(CALIBRATION),--calibration $(CALIBRATION)) $(DRY_RUN)
	$(if $(DRY_RUN),,$(MAKE) figures)

# Regenerate figures, tables, REPORT.md and the README's results from runs/; never trains.
figures: $(INSTALLED)
	$(PY) -m lightsam figures --readme README.md
