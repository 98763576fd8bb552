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
# SCOPE=cpu: the full mode's CPU build (chapter 11's sweep at p = 0.6 with one seed; memlib.experiments SCOPES)
SCOPE ?=
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

# The book of mode $(1), one build per mode at a time (flock), JOBS chapters at a time (or make -jN's N; THREADS
# is counted from JOBS). make -k book: keep going after a failing chapter; make -n book: say what would be
# executed; make -B book: execute every chapter and rebuild the HTML (and reinstall .venv).
locked_html = mkdir -p $(abspath $(BUILD))/executed/$(1); lock=$(abspath $(BUILD))/executed/$(1)/.lock; \
	flock -n $$lock true || echo "[book] another build of mode $(1) is running: waiting for it"; \
	flock $$lock $(MAKE) --no-print-directory $(or $(filter -j%,$(MAKEFLAGS)),-j$(JOBS)) html MODE=$(1) THREADS=$(THREADS) \
	  SCOPE=$(SCOPE)

book: $(STAMP) vendor
	+@$(call locked_html,$(MODE))

test: $(STAMP) vendor lint
	+@$(call locked_html,quick)
	shopt -s nullglob; chapters=($(QUICK_EXECUTED)/*.ipynb); \
	export $(THREAD_ENV); \
	if (( $${#chapters[@]} )); then \
	  $(PY) -m pytest tests "$${chapters[@]}" $(NBVAL); \
	else \
	  echo "no executed chapters yet: running tests/ only"; $(PY) -m pytest tests; \
	fi

# The linter (configuration in pyproject.toml: 120 columns, pyflakes, pycodestyle, import order, bugbear).
.PHONY: lint
lint: $(STAMP)
	$(VENV)/bin/ruff check memlib scripts tests bench

# --------------------------------------------------------------------------- the book's rules
# Each executed chapter, $(BUILD)/executed/<mode>/chapters/NN-slug.ipynb, is made by papermill from
# $(CHAPTERS)/NN-slug.ipynb when the notebook or memlib's code is newer. The mode is in the path: a mode
# change executes its own copies. memlib counts by content (every memlib/*.py, names and bytes, in
# memlib.sha256): a checkout that only touches the files executes nothing. papermill writes into a hidden
# file that is renamed on success; a failed run goes to failed/ with its error (build_book.py failed).
# `html` then stages the executed copies and runs Jupyter Book (scripts/build_book.py html).
CHAPTERS ?= chapters
BUILD ?= _build
TOC ?= _toc.yml
MEMLIB ?= memlib
$(if $(filter $(MODE),quick standard full),,$(error MODE=$(MODE) is not a mode: use quick, standard or full))
EXEC := $(abspath $(BUILD))/executed/$(MODE)
NOTEBOOKS := $(filter-out $(CHAPTERS)/_%,$(wildcard $(CHAPTERS)/*.ipynb))
EXECUTED := $(patsubst $(CHAPTERS)/%,$(EXEC)/chapters/%,$(NOTEBOOKS))
# make -j starts prerequisites in the order listed: last chapter first, so that the heaviest (11, MASC: a third of
# the standard book's kernel time) does not start last and leave one job idle (measured: 15 min -> about 12).
EXECUTED_FIRST := $(shell printf '%s\n' $(EXECUTED) | sort -r)
MEMLIB_SUM := $(abspath $(BUILD))/executed/memlib.sha256
BBK := $(PY) scripts/build_book.py --mode $(MODE) --build-dir $(BUILD) --chapters $(CHAPTERS)
THREAD_ENV := OMP_NUM_THREADS=$(THREADS) MKL_NUM_THREADS=$(THREADS) OPENBLAS_NUM_THREADS=$(THREADS) \
	NUMEXPR_NUM_THREADS=$(THREADS) VECLIB_MAXIMUM_THREADS=$(THREADS)
PAPERMILL := $(PY) -m papermill --kernel python3 --cwd $(EXEC)/chapters --log-output --no-progress-bar \
	--request-save-on-cell-execute $(if $(CELL_TIMEOUT),--execution-timeout $(CELL_TIMEOUT))

comma := ,
.DELETE_ON_ERROR:
.PHONY: chapters html
chapters: $(EXECUTED_FIRST)

html: $(EXEC)/environment.json
	@$(BBK) html --toc $(TOC)

$(EXEC)/environment.json: $(EXECUTED_FIRST)
	@$(BBK) environment

$(MEMLIB_SUM): $(MEMLIB) $(wildcard $(MEMLIB)/*.py)
	+@mkdir -p $(@D); s=$$(cd $(MEMLIB) && sha256sum *.py | sha256sum); \
	[ "$$s" = "$$(cat $@ 2>/dev/null)" ] || { echo "$$s" > $@.tmp && mv $@.tmp $@; }

$(EXEC)/chapters/%.ipynb: $(CHAPTERS)/%.ipynb $(MEMLIB_SUM)
	@rm -f $@ $(@D)/.$*.ipynb $(EXEC)/logs/$*.runs.jsonl; mkdir -p $(@D) $(EXEC)/logs $(EXEC)/failed
	@$(BBK) check $<
	@echo "[book] >> $*: executing (mode=$(MODE)$(if $(SCOPE),$(comma) scope=$(SCOPE)), $(THREADS) thread$(if $(filter 1,$(THREADS)),,s))"
	@t0=$$(date +%s%N); \
	env -u MPLBACKEND $(THREAD_ENV) PYDEVD_DISABLE_FILE_VALIDATION=1 MEMLIB_RUN_LOG=$(EXEC)/logs/$*.runs.jsonl \
	  $(PAPERMILL) $(abspath $<) $(@D)/.$*.ipynb -p mode $(MODE) -p threads $(THREADS) $(if $(SCOPE),-p scope $(SCOPE)) > $(EXEC)/logs/$*.log 2>&1 \
	  || { $(BBK) failed $< $(@D)/.$*.ipynb; exit 1; }; \
	mv $(@D)/.$*.ipynb $@; \
	echo "[book] ok $*: done in $$(awk "BEGIN { printf \"%.1f\", ($$(date +%s%N) - $$t0) / 1e9 }") s"

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
