# reportgen: two commands on a fresh Debian machine (as root): `make build` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
DATA ?= data
OUT ?= build

.PHONY: build test setup system lint templates fuzz bench clean

build: setup
	$(BIN)/reportgen build $(DATA) -o $(OUT)

test: setup
	@scripts/install-system-deps.sh --test
	$(BIN)/python -m pytest -q

setup: system $(VENV)/.installed
	@# reportgen is installed in place (-e): byte-compile it as pip does an installed package, so
	@# that every run starts without compiling its modules (only changed ones are compiled again).
	@$(BIN)/python -m compileall -q reportgen

system:
	@scripts/install-system-deps.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

lint: setup
	$(BIN)/ruff check reportgen tests benchmarks templates

templates: setup
	$(BIN)/python templates/generate.py

fuzz: setup
	REPORTGEN_FUZZ_EXAMPLES=500 $(BIN)/python -m pytest -q tests/test_property.py

bench: setup
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(OUT) $(VENV) .pytest_cache
