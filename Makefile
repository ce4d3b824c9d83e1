# PoX: `make demo` runs the example workflow under --executor pox and verifies it;
# `make test` runs every check CI runs. Both start with `make setup` (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR := workflows/variant-calling
DEMO_CORES ?= 2

.PHONY: setup system-packages venv contracts-toolchain docker demo test lint typecheck \
        test-contracts test-python bench contracts clean compat

setup: system-packages venv contracts-toolchain docker

system-packages:
	@bash scripts/install-system-packages.sh

# Re-install only when the project metadata changed.
$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev,chain,attest]"
	@touch $@

venv: $(VENV)/.installed

contracts-toolchain:
	@bash contracts/scripts/setup.sh

docker:
	@bash scripts/start-dockerd.sh

# The run is anchored on the local devnet (anvil like bloxberg, started on first use and left
# running; state in ~/.local/share/pox/devnet; `pox chain down` stops it) and verified on chain.
demo: setup
	@echo "== running $(DEMO_DIR) with --executor pox, anchored on the local devnet"
	cd $(DEMO_DIR) && ../../$(BIN)/snakemake --executor pox --pox-chain local --cores $(DEMO_CORES)
	@echo "== verifying the run offline and on chain (simulated TEE: integrity only)"
	cd $(DEMO_DIR) && ../../$(BIN)/pox verify --allow-simulated
	cd $(DEMO_DIR) && ../../$(BIN)/pox show | head -n 40
	@echo "== the local devnet keeps running; stop it with: $(BIN)/pox chain down"

lint:
	$(BIN)/ruff check pox_executor snakemake_executor_plugin_pox tests benchmarks
	$(BIN)/ruff format --check pox_executor snakemake_executor_plugin_pox

typecheck:
	$(BIN)/mypy pox_executor

# `forge snapshot --check` runs every Solidity test and compares gas with the committed snapshot.
test-contracts:
	cd contracts && node_modules/.bin/forge snapshot --check

test-python:
	$(BIN)/python -m pytest -q -ra

test: setup lint typecheck test-contracts test-python

contracts: setup
	$(BIN)/python contracts/scripts/export-artifacts.py

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Snakemake's own test suite with the local executor and with pox (docs/compat.md): long; the
# local baseline is cached in ~/.cache/pox-compat and reused (COMPAT_ARGS=--fresh-local re-runs it).
compat: venv
	$(BIN)/python -m pip install -q -e ".[compat]"
	$(BIN)/python scripts/compat.py $(COMPAT_ARGS)

clean:
	rm -rf $(VENV) contracts/out contracts/cache .pytest_cache .mypy_cache .ruff_cache
