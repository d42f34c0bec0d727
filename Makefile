# govflow: the two commands a new user needs are `make demo` and `make test`.
# Every target creates .venv and installs the project first when it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.govflow-installed

.PHONY: install demo demo-finance test lint stack stack-down clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/govflow demo --auto-approve-as alice,bob

demo-finance: $(STAMP)
	$(BIN)/govflow demo --task invoice-matching --auto-approve-as dana,erik

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check --output-format concise .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m tests.architecture

stack: $(STAMP)
	$(BIN)/govflow stack up

stack-down: $(STAMP)
	$(BIN)/govflow stack down

clean: stack-down
	rm -rf .govflow
