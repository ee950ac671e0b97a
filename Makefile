# Two entry points for a newcomer: `make repro` (whole embedded pipeline) and `make test`.
# TORCH_SPEC picks the torch build: the default is the CPU wheel; on a GPU box use e.g.
#   make repro TORCH_SPEC='torch==2.5.1' (any CUDA build >= 2.2).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: venv repro test test-slow rehearsal paper released bench clean-outputs

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e '.[test]'
	touch $@

repro: venv
	$(BIN)/snakemake --cores all

released: venv
	$(BIN)/snakemake --cores all released

# The default suite (minutes on 2 cores); the end-to-end Snakemake/DVC tests are `test-slow` (CI runs both).
test: venv
	$(BIN)/pytest -q -m "not slow"

test-slow: venv
	$(BIN)/pytest -q -m slow

rehearsal: venv
	$(BIN)/ramit rehearse

bench: venv
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean-outputs:
	rm -rf data results runs reports/tables reports/figures .snakemake
