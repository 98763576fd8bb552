# The README's commands. Each one creates or reuses .venv/ and installs what is missing first.
#   make book   build the book (standard mode) into _build/html
#   make test   run every test (unit tests, chapters in quick mode under nbval, browser checks)
#   make lab    open the chapters in JupyterLab
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MODE ?= standard
JOBS ?= 2
STAMP := $(VENV)/.installed

.PHONY: book test lab env bench clean vendor

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	@touch $@

vendor: $(STAMP)
	@$(PY) scripts/vendor_assets.py

book: $(STAMP) vendor
	$(PY) scripts/build_book.py --mode $(MODE) --jobs $(JOBS)

test: $(STAMP) vendor
	$(PY) -m pytest tests

lab: $(STAMP)
	$(VENV)/bin/jupyter lab chapters/

bench: $(STAMP)
	$(PY) bench/training.py

clean:
	rm -rf _build
