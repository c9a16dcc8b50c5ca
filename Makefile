# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
SHARED ?= $(abspath ../shared)
export DELGRAD_SHARED := $(SHARED)
# pip may build as root without a virtualenv; keep it quiet about that.
export PIP_ROOT_USER_ACTION := ignore
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test install lint lint-rust lint-python test-rust test-python docs bench criterion

# Build the wheel into this Python, train H30_W and H30_WS (300 epochs each), print the table.
run: install
	$(PYTHON) examples/reproduce.py

# Builds the Rust core and bindings (release) and installs both Python distributions.
install:
	$(PIP) install --quiet maturin
	$(PIP) install --quiet --no-build-isolation -e ".[test,plot]"
	$(PIP) install --quiet -e "./hw[test,dev]"

test: lint-rust test-rust install lint-python test-python docs

lint: lint-rust lint-python

lint-rust:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p delgrad -q

lint-python:
	$(PYTHON) -m ruff check python tests examples benchmarks docs/hooks
	$(PYTHON) -m mypy
	cd hw && $(PYTHON) -m ruff check . && $(PYTHON) -m mypy

test-rust:
	cargo test --workspace --release

test-python:
	$(PYTHON) -m pytest tests/python -q
	$(PYTHON) -m pytest tests/hw -q -W error

# The documentation site (docs/ and the API reference from the docstrings) into site/; any warning
# fails the build. The tools are the `docs` extra of pyproject.toml, installed without building the
# package: the reference is read from the sources, and the build itself needs no network.
docs:
	$(PYTHON) -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['docs']))" \
		| $(PIP) install --quiet -r /dev/stdin
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict --site-dir site

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
