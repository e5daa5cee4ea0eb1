# Two entry points (README): `make demo` and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PRESET ?= full
OUT ?= build/$(PRESET)

.PHONY: demo test lint regress bench clean

$(BIN)/cimflow: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

TOP ?= core_fpga

# The whole flow: generate the core, compile the bundled digits MLP, run it on the golden
# chip (software / ideal / non-ideal accuracy) and one layer on the RTL core in Verilator.
demo: $(BIN)/cimflow
	$(BIN)/cimflow generate --preset $(PRESET) --top $(TOP) --out $(OUT)
	$(BIN)/python -m cimflow.mapping.demo --core $(OUT) --out build/demo

test: $(BIN)/cimflow
	$(BIN)/ruff check .
	$(BIN)/pytest -n 2 --junitxml=build/test-results.xml

# `make regress` runs preset small; `make regress CONFIG=my_core.json` any CoreConfig JSON.
regress: $(BIN)/cimflow
	$(BIN)/cimflow regress $(if $(CONFIG),--config $(CONFIG),--preset small)

bench: $(BIN)/cimflow
	$(BIN)/python benchmarks/bench_spine.py

clean:
	rm -rf build
