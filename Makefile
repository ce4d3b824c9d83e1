# PoX: `make demo` runs the example workflow under --executor pox and verifies it;
# `make test` runs every check CI runs. Both start with `make setup` (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR := workflows/variant-calling
DEMO_CORES ?= 2
# Node and npm installed by scripts/install-node.sh when the system's are too old (Debian 12: 18).
export PATH := $(CURDIR)/.tools/node/node_modules/.bin:$(PATH)

.PHONY: setup system-packages venv contracts-toolchain docker demo test lint typecheck \
        demo-confidential demo-confidential-docker slurm-up slurm-down \
        test-contracts test-python test-package bench contracts clean compat

setup: system-packages venv contracts-toolchain docker

system-packages:
	@bash scripts/install-system-packages.sh

# Re-install only when the project metadata changed.
$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# The distribution was called pox-executor before it took the plugin catalog's name.
	@$(BIN)/python -m pip uninstall -q -y pox-executor 2>/dev/null || true
	$(BIN)/python -m pip install -q -e ".[dev,chain,attest]"
	@touch $@

venv: $(VENV)/.installed

contracts-toolchain:
	@bash scripts/install-node.sh
	@bash contracts/scripts/setup.sh
	@bash scripts/ipfs-node/setup.sh

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

# Confidential datasets end to end (workflows/confidential-cohort/demo.sh): devnet, key broker and
# store in a scratch folder, all stopped afterwards.
demo-confidential: setup
	@bash workflows/confidential-cohort/demo.sh

demo-confidential-docker: setup
	@POX_DEMO_BACKEND=docker bash workflows/confidential-cohort/demo.sh

lint:
	$(BIN)/ruff check pox_executor snakemake_executor_plugin_pox tests benchmarks
	$(BIN)/ruff format --check pox_executor snakemake_executor_plugin_pox

typecheck:
	$(BIN)/mypy pox_executor

# `forge snapshot --check` runs every Solidity test and compares gas with the committed snapshot.
test-contracts:
	cd contracts && node_modules/.bin/forge snapshot --check

test-python:
	$(BIN)/python -m pytest -q -ra --durations=25

# What users install is what is tested: build the sdist and wheel, install the wheel into a clean
# virtualenv and run a workflow with --executor pox from there (scripts/test-package.sh).
test-package: setup
	@bash scripts/test-package.sh $(PYTHON)

test: setup lint typecheck test-contracts test-python test-package

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
	rm -rf $(VENV) .tools build contracts/out contracts/cache .pytest_cache .mypy_cache .ruff_cache

# A one-machine SLURM cluster (munged, slurmctld, slurmd pox-node1 and pox-node2) with its state in
# $(SLURM_STATE); then `export SLURM_CONF=$(SLURM_STATE)/slurm.conf` (docs/slurm.md).
SLURM_STATE ?= .slurm-cluster
slurm-up:
	@bash scripts/slurm-up.sh $(SLURM_STATE)

slurm-down:
	@bash scripts/slurm-down.sh $(SLURM_STATE)
