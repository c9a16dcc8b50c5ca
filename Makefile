# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# The tests also run the external conformance vectors in $DELGRAD_SHARED/conformance/vectors.json
# (default: ../shared), and skip them when absent (fail under CI=true); `make test SHARED=dir` sets it.
ifdef SHARED
export DELGRAD_SHARED := $(abspath $(SHARED))
endif
# pip may build as root without a virtualenv; keep it quiet about that.
export PIP_ROOT_USER_ACTION := ignore
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test install lint lint-rust lint-python test-rust test-python bench criterion

# Build the wheel into this Python, train H30_W and H30_WS (300 epochs each), print the table.
run: install
	$(PYTHON) examples/reproduce.py

# Builds the Rust core and bindings (release) and installs both Python distributions.
install:
	$(PIP) install --quiet maturin
	$(PIP) install --quiet --no-build-isolation -e ".[test,plot]"
	$(PIP) install --quiet -e "./hw[test,dev]"

test: lint-rust test-rust install lint-python test-python

lint: lint-rust lint-python

lint-rust:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p delgrad -q

lint-python:
	$(PYTHON) -m ruff check python tests examples benchmarks
	$(PYTHON) -m mypy
	cd hw && $(PYTHON) -m ruff check . && $(PYTHON) -m mypy

test-rust:
	cargo test --workspace --release

test-python:
	$(PYTHON) -m pytest tests/python -q
	$(PYTHON) -m pytest tests/hw -q -W error

# Throughput of forward + loss + backward, the Python overhead of a training step and the time of
# a chip-in-the-loop training (alone, and two at once); one JSON object per line.
bench: install
	cargo bench --bench throughput
	cargo bench --bench memory
	$(PYTHON) benchmarks/python_overhead.py
	$(PYTHON) benchmarks/chip_loop.py
	$(PYTHON) benchmarks/chip_loop.py --concurrent 2

criterion:
	cargo bench --bench core
