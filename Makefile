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

# CPU threads per chapter kernel (cores // JOBS, at least 1); nbval re-runs chapters with the same
# count so that their seeded numbers match the executed copies.
THREADS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); t=$$(( n / $(JOBS) )); echo $$(( t > 0 ? t : 1 )))
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 1800
QUICK_EXECUTED := _build/executed/quick/chapters

vendor: $(STAMP)
	@$(PY) scripts/vendor_assets.py

book: $(STAMP) vendor
	$(PY) scripts/build_book.py --mode $(MODE) --jobs $(JOBS) --threads $(THREADS)

test: $(STAMP) vendor
	$(PY) scripts/build_book.py --mode quick --jobs $(JOBS) --threads $(THREADS)
	shopt -s nullglob; chapters=($(QUICK_EXECUTED)/*.ipynb); \
	export OMP_NUM_THREADS=$(THREADS) MKL_NUM_THREADS=$(THREADS) OPENBLAS_NUM_THREADS=$(THREADS); \
	if (( $${#chapters[@]} )); then \
	  $(PY) -m pytest tests "$${chapters[@]}" $(NBVAL); \
	else \
	  echo "no executed chapters yet: running tests/ only"; $(PY) -m pytest tests; \
	fi

lab: $(STAMP)
	$(VENV)/bin/jupyter lab chapters/

bench: $(STAMP)
	$(PY) bench/training.py

clean:
	rm -rf _build

# The student edition: every chapter with its solutions removed and its outputs cleared, in
# _build/student/ and packed as _build/student.zip (scripts/student.py).
.PHONY: student
student: $(STAMP)
	$(PY) scripts/student.py

# One PDF of the whole book (scripts/pdf.py): `make book` first (a no-op when up to date), then the executed
# chapters through Jupyter Book's singlehtml builder and headless Chromium's print-to-PDF, offline.
# Writes _build/book.pdf (MODE=quick: _build/quick/book.pdf). Needs /usr/bin/chromium.
.PHONY: pdf
pdf: book
	$(PY) scripts/pdf.py --mode $(MODE)
