# Build, lint and test the connector. CI runs `make test` through .ci/run.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
# moto server for the adapter and whole-system tests; the stamp's name carries the pin, so changing
# the pin reinstalls.
MOTO_VERSION := 5.2.1
VENV_STAMP := $(VENV)/.moto-$(MOTO_VERSION).stamp

.PHONY: help tools venv test

help:
	@echo "make venv  - Python venv $(VENV) with moto[server]==$(MOTO_VERSION) (needed by the AWS tests)"
	@echo "make test  - cargo fmt --check, clippy -D warnings, then every test against one moto server"

tools:
	@command -v cargo >/dev/null 2>&1 || { echo "error: cargo not found: install the Rust toolchain (rustup) and put cargo on PATH" >&2; exit 1; }
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found: install Python 3 with its venv module (e.g. apt-get install python3 python3-venv)" >&2; exit 1; }

venv: $(VENV_STAMP)

$(VENV_STAMP):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found: install Python 3 with its venv module (e.g. apt-get install python3 python3-venv)" >&2; exit 1; }
	@echo "==> venv: moto[server]==$(MOTO_VERSION) into $(VENV)"
	@$(PYTHON) -m venv $(VENV) || { echo "error: '$(PYTHON) -m venv' failed: install Python's venv module (e.g. apt-get install python3-venv)" >&2; exit 1; }
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)'
	@rm -f $(VENV)/.moto-*.stamp
	@touch $@

test: tools venv
	@echo "==> cargo fmt --check"
	cargo fmt --all --check
	@echo "==> clippy"
	cargo clippy --workspace --all-targets -- -D warnings
	@echo "==> tests (one moto server for the whole run)"
	scripts/with-moto.sh cargo test --workspace
