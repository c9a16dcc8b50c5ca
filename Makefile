# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
SHARED ?= $(abspath ../shared)
export DELGRAD_SHARED := $(SHARED)

.PHONY: run test lint test-rust bench criterion

run:
	cargo run --release --example yinyang

test: lint test-rust

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

test-rust:
	cargo test --workspace

# Throughput of forward + loss + backward, one JSON object per line.
bench:
	cargo bench --bench throughput

criterion:
	cargo bench --bench core
