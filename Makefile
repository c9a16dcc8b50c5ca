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

.PHONY: report run test install lint lint-rust lint-python test-rust test-python docs test-wheels wheel sdist \
	packaging-tools bench criterion

# Build the wheel into this Python, train H30_W and H30_WS (300 epochs each), print the table.
run: install
	$(PYTHON) examples/reproduce.py

# Builds the Rust core and bindings (release) and installs both Python distributions.
install:
	$(PIP) install --quiet maturin
	$(PIP) install --quiet --no-build-isolation -e ".[test,plot]"
	$(PIP) install --quiet -e "./hw[test,dev]"

# The reproduction report of docs/results.md: both 20-seed sweeps (60-75 min on 2 cores; a rerun
# continues them), the statistics and figures, written into docs/results.md.
report: install
	$(PYTHON) examples/reproduction.py --docs

test: lint-rust test-rust install lint-python test-python docs test-wheels

lint: lint-rust lint-python

lint-rust:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p delgrad --all-targets -- -D warnings   # the pure model, without the hardware feature
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p delgrad -q --features hardware

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

# Distributions in dist/ (docs/install.md): delgrad_rs as a release abi3 wheel for manylinux2014
# (glibc >= 2.17, linked by zig from the ziglang package) and its sdist; delgrad-hw as wheel and sdist.
PACKAGING := $(PYTHON) tests/packaging/dists.py

packaging-tools:
	$(PIP) install --quiet "maturin>=1.7,<2" ziglang auditwheel build

sdist: packaging-tools
	rm -f dist/delgrad_rs-*.tar.gz dist/delgrad_hw-*.tar.gz
	$(PACKAGING) maturin sdist --out dist
	$(PYTHON) -m build --quiet --sdist --outdir dist hw
	$(PACKAGING) check-sdist dist

wheel: sdist
	rm -f dist/delgrad_rs-*.whl dist/delgrad_hw-*.whl
	$(PACKAGING) maturin build --release --zig --compatibility manylinux2014 --out dist
	$(PIP) wheel --quiet --no-deps --wheel-dir dist dist/delgrad_hw-*.tar.gz
	$(PACKAGING) check-wheel dist

# The wheels alone in a fresh venv without Rust, then the sdists built in another (see the script).
test-wheels: wheel
	tests/packaging/test_wheels.sh $(PYTHON) dist

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
