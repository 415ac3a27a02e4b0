# dmafnet: the two commands of the README are `make demo` and `make test`.
# Each creates (or reuses) the virtual environment $(VENV) and installs what it needs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.dmafnet-installed
TORCH_SPEC ?= torch==2.13.0
RUN ?= runs/demo
DIMS ?= 2
export PYTHONUNBUFFERED := 1
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install lint test test-fast test-slow export check-export nbtest pytest demo docs clean help

help:
	@echo "make demo   - generate the phantom, train and evaluate DMAF-Net on CPU, write a report to $(RUN)"
	@echo "make test   - export check, notebook tests (nbdev_test) and integration tests (pytest)"
	@echo "make docs   - build the documentation site (Quarto if installed, else offline HTML in _docs/)"

$(PY):
	python3 -m venv $(VENV)

# torch first, and only if the environment has none: a present torch (CPU or CUDA) is kept.
$(STAMP): $(PY) settings.ini setup.py
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

export: install
	$(BIN)/nbdev_export

# nbdev_export must reproduce the committed package exactly.
check-export: export
	@if [ -n "$$(git status --porcelain -- dmafnet)" ]; then \
	  echo "dmafnet/ differs from what nbdev_export makes of nbs/:"; git status --porcelain -- dmafnet; exit 1; \
	else echo "nbdev_export: dmafnet/ in sync with nbs/"; fi
	$(PY) tools/readme.py --check

nbtest: install
	$(BIN)/nbdev_test --n_workers 2 --timing

pytest: install
	$(BIN)/pytest tests -m "not slow and not gpu"

# pyflakes-class errors (ruff's F rules: unused or undefined names, redefinitions) over the package, tests,
# benchmarks and tools; nbdev's generated index is the one file left out.
lint: install
	$(BIN)/ruff check --select F --extend-exclude dmafnet/_modidx.py dmafnet tests benchmarks tools

test: check-export lint nbtest pytest

# the long ones: slow notebook cells and slow integration tests
test-slow: install
	$(BIN)/nbdev_test --n_workers 1 --flags slow
	$(BIN)/pytest tests -m "slow and not gpu" || [ $$? -eq 5 ]  # 5: no slow test selected

# The main job: phantom → masks → training → evaluation over every subset → report, by executing the
# papermill run notebook (the executed notebook, rendered to HTML, is part of the report).
THREADS ?= 2
demo: install
	@mkdir -p $(RUN)
	@echo "demo: training and evaluating DMAF-Net on the built-in phantom; the report goes to $(RUN)/"
	$(BIN)/papermill nbs/runs/train.ipynb $(RUN)/report.ipynb -k python3 --log-output --no-progress-bar \
	  -p preset phantom -p out $(RUN) -p dims $(DIMS) -p threads $(THREADS) -p targets True -p progress lines
	$(BIN)/jupyter nbconvert --log-level WARN --to html --no-input --template-file nbs/runs/report.html.j2 \
	  --TagRemovePreprocessor.remove_all_outputs_tags='["log"]' $(RUN)/report.ipynb
	@echo "demo: done. Report: $(RUN)/report.html, tables and plots in $(RUN)/evaluation/, checkpoints in $(RUN)/checkpoints/"

docs: install
	$(PY) tools/build_docs.py

clean:
	rm -rf _docs _proc nbs/_proc .pytest_cache
