# Every target sets up the virtual environment first if it is missing or older than
# pyproject.toml, so on a fresh clone `make test` and `make reproduce` are the only commands.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: test lint bench

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
