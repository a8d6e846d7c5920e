# Every target bootstraps the virtualenv itself: `make run` and `make test` are all a new machine needs.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast serve ui lint bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

run: $(STAMP)  ## ingest the default dataset, version it with DVC, run the training pipeline
	$(BIN)/mlops ingest
	$(BIN)/dvc add --quiet data
	$(BIN)/mlops run

test: $(STAMP)  ## the whole suite, slow end-to-end tests included
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

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
