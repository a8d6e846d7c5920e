# Every target bootstraps the virtualenv itself: `make run` and `make test` are all a new machine needs.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast serve ui lint bench clean chromium screenshots

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

run: $(STAMP)  ## ingest the default dataset, version it with DVC, run the training pipeline
	$(BIN)/mlops ingest
	$(BIN)/dvc add --quiet data
	$(BIN)/mlops run

# Two pytest workers, a test file each at a time (module fixtures stay shared): the end-to-end tests
# mostly wait on servers they start, so one process left a core idle about half the time.
TEST_WORKERS ?= 2
PYTEST_PAR   := -n $(TEST_WORKERS) --dist loadfile --durations=15

test: $(STAMP) chromium  ## the whole suite, slow end-to-end tests included
	$(BIN)/pytest $(PYTEST_PAR)

# Debian's chromium for the browser test (tests/e2e/test_ui_browser.py), installed when it is missing and
# we are root or have passwordless sudo. Never fails: without it the browser test skips and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	  else echo "chromium: not installed (not root, no passwordless sudo): the browser test will skip"; exit 0; fi; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
	    && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	    || echo "chromium: apt-get install failed: the browser test will skip"; }

screenshots: $(STAMP) chromium  ## docs/screenshots/*.png: the MLflow, Prefect and Swagger pages after a small run
	$(BIN)/python -m tests.e2e.ui_pages docs/screenshots

test-fast: $(STAMP)
	$(BIN)/pytest $(PYTEST_PAR) -m "not slow"

serve: $(STAMP)  ## serve the champion's exact bento on 127.0.0.1:3000
	$(BIN)/mlops serve

ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1

lint: $(STAMP)
	$(BIN)/ruff check components flows tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/pipeline.py

clean:  ## remove local stores (not the venv, not data/)
	rm -rf mlflow.db mlartifacts .bentoml runs
