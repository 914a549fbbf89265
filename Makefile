# Two commands on a fresh machine: `make demo` runs the main job on the shipped default model and
# `make test` runs the lint and the tests (.ci/run calls it). Both create .venv on first use and install
# the package into it, torch first and pinned to the CPU build: an unpinned torch pulls gigabytes of
# CUDA wheels. On a GPU machine: `make demo TORCH=torch` (or the torch build for your CUDA).
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

.PHONY: demo test install

demo: $(VENV)/.installed
	$(BIN)/streamvideo play --headless --frames 300 --record play.mp4

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[all,dev]"
	touch $@
