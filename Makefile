# Polar → Smartabase connector. `make demo` shows it working locally; `make test` is what CI runs.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
# moto server for the AWS tests and the demo; the stamp's name carries the pin, so changing it reinstalls.
MOTO_VERSION := 5.2.1
VENV_STAMP := $(VENV)/.moto-$(MOTO_VERSION).stamp
# cargo-lambda (with zig) for Lambda builds, in a venv of its own.
CARGO_LAMBDA_VERSION := 1.9.2
LAMBDA_VENV := .venv-lambda
LAMBDA_STAMP := $(LAMBDA_VENV)/.cargo-lambda-$(CARGO_LAMBDA_VERSION).stamp
# cargo-deny for the dependency audit, installed from crates.io into .tools (a cold install takes a few
# minutes on 2 cores). Advisories need the RustSec database from GitHub: where GitHub is reachable,
# `make audit AUDIT_CHECKS="advisories licenses bans sources"`.
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY_ROOT := .tools/cargo-deny-$(CARGO_DENY_VERSION)
CARGO_DENY := $(CARGO_DENY_ROOT)/bin/cargo-deny
AUDIT_CHECKS ?= licenses bans sources
TEST_LOGS := $${CARGO_TARGET_DIR:-target}/test-logs
FUNCTIONS := oauth-callback athlete-scan sync-fanout sync-worker revoke-hook polar-webhook
ARGS ?=

.PHONY: help tools venv demo local test validate build deploy bench chaos audit

help:
	@echo "make demo      - the whole connector on a local stack, narrated (ARGS=--keep leaves it running)"
	@echo "make test      - fmt, clippy -D warnings, doc links, dependency audit, every test on one moto server, the log scan, template validation"
	@echo "make audit     - cargo deny check licenses bans sources (deny.toml; advisories where GitHub is reachable)"
	@echo "make local     - moto and both simulators in the foreground, with their URLs"
	@echo "make validate  - cfn-lint and sam validate --lint of infra/template.yaml, and its tests (offline)"
	@echo "make build     - cargo lambda build --release --arm64 of the six functions (x86_64 fallback)"
	@echo "make deploy    - sam build && sam deploy --guided from infra/"
	@echo "make bench     - cold start, API efficiency, scale, throughput, cost -> bench/results.md (ARGS=--help)"
	@echo "make chaos     - the full chaos suite: >= 1,000 seeded faults, then everything delivered once (CHAOS_SEED=n)"

tools:
	@command -v cargo >/dev/null 2>&1 || { echo "error: cargo not found: install the Rust toolchain (https://rustup.rs) and put cargo on PATH" >&2; exit 1; }
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found: install Python 3 with its venv module (e.g. apt-get install python3 python3-venv)" >&2; exit 1; }

venv: $(VENV_STAMP)

$(VENV_STAMP):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found: install Python 3 with its venv module (e.g. apt-get install python3 python3-venv)" >&2; exit 1; }
	@echo "==> venv: moto[server]==$(MOTO_VERSION) into $(VENV)"
	@$(PYTHON) -m venv $(VENV) || { echo "error: '$(PYTHON) -m venv' failed: install Python's venv module (e.g. apt-get install python3-venv)" >&2; exit 1; }
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)'
	@rm -f $(VENV)/.moto-*.stamp
	@touch $@

demo: tools venv
	@echo "==> building the six functions, the connector CLI and the local runner (first time: a few minutes)"
	@cargo build --quiet $(addprefix -p ,$(FUNCTIONS)) -p connector -p testkit --bins
	@RUST_BACKTRACE=0 cargo run --quiet -p testkit --bin connector-local -- demo $(ARGS)

local: tools venv
	@cargo build --quiet -p testkit --bin connector-local
	@RUST_BACKTRACE=0 cargo run --quiet -p testkit --bin connector-local -- local $(ARGS)

test: tools venv
	@echo "==> cargo fmt --check"
	cargo fmt --all --check
	@echo "==> clippy"
	cargo clippy --workspace --all-targets -- -D warnings
	@echo "==> cargo doc: every link in the docs names an item that exists"
	RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --workspace --document-private-items
	@$(MAKE) --no-print-directory audit
	@echo "==> building the function binaries and the connector CLI (the local runner's tests run them)"
	cargo build --bins $(addprefix -p ,$(FUNCTIONS)) -p connector
	@echo "==> tests (one moto server for the whole run)"
	rm -rf "$(TEST_LOGS)"
	scripts/with-moto.sh cargo test --workspace
	@echo "==> log scan: no secret, token or code in any log line the tests captured"
	scripts/scan-test-logs.sh
	@echo "==> infra/template.yaml"
	scripts/validate-infra.sh

validate:
	scripts/validate-infra.sh

$(CARGO_DENY):
	@echo "==> installing cargo-deny $(CARGO_DENY_VERSION) into $(CARGO_DENY_ROOT) (first time: a few minutes)"
	cargo install --quiet --locked cargo-deny --version $(CARGO_DENY_VERSION) --root $(CARGO_DENY_ROOT)

audit: tools $(CARGO_DENY)
	@echo "==> cargo deny check $(AUDIT_CHECKS) (deny.toml)"
	$(CARGO_DENY) check --hide-inclusion-graph $(AUDIT_CHECKS)

$(LAMBDA_STAMP):
	@echo "==> venv: cargo-lambda==$(CARGO_LAMBDA_VERSION) into $(LAMBDA_VENV)"
	@$(PYTHON) -m venv $(LAMBDA_VENV)
	@$(LAMBDA_VENV)/bin/pip install --quiet --disable-pip-version-check 'cargo-lambda==$(CARGO_LAMBDA_VERSION)'
	@rm -f $(LAMBDA_VENV)/.cargo-lambda-*.stamp
	@touch $@

build: tools $(LAMBDA_STAMP)
	@export PATH="$(CURDIR)/$(LAMBDA_VENV)/bin:$$PATH"; \
	if rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then \
		echo "==> cargo lambda build --release --arm64"; \
		cargo lambda build --release --arm64 $(addprefix -p ,$(FUNCTIONS)); \
	else \
		echo "warning: the aarch64-unknown-linux-gnu target is not installed and could not be added;" >&2; \
		echo "         building x86_64 instead: set Architectures to x86_64 in infra/template.yaml before deploying it" >&2; \
		cargo lambda build --release --x86-64 $(addprefix -p ,$(FUNCTIONS)); \
	fi
	@ls -l target/lambda/*/bootstrap

deploy: tools $(LAMBDA_STAMP)
	@command -v sam >/dev/null 2>&1 || [ -x .venv-infra/bin/sam ] || { echo "error: sam not found: run 'make validate' once (it installs the pinned SAM CLI into .venv-infra) or install the AWS SAM CLI" >&2; exit 1; }
	@export PATH="$(CURDIR)/$(LAMBDA_VENV)/bin:$(CURDIR)/.venv-infra/bin:$$PATH"; cd infra && sam build && sam deploy --guided

bench: tools venv
	@echo "==> building the release binaries the benchmarks run (first time: many minutes)"
	@cargo build --release --quiet $(addprefix -p ,$(FUNCTIONS)) -p connector -p bench
	@echo "==> benchmarks on one moto server; progress below, results in bench/results.md and bench/results.json"
	@RUST_BACKTRACE=0 scripts/with-moto.sh cargo run --release --quiet -p bench --bin bench -- $(ARGS)

chaos: tools
	@echo "==> chaos suite, full size (a bounded run of it is part of make test); CHAOS_SEED=<n> reruns a seed"
	@RUST_BACKTRACE=0 cargo test --quiet -p system-tests --test chaos -- --ignored --nocapture 2>&1 | grep -v '"_aws":'
