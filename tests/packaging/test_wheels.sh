#!/usr/bin/env bash
# The built distributions on their own (`make test-wheels`, after `make wheel`).
#
# usage: tests/packaging/test_wheels.sh PYTHON DIST
#
# 1. Wheels: a fresh venv (no system site packages) in a temporary directory installs only the two
#    wheels of DIST and their dependencies from PyPI; with PATH reduced to the venv and /usr/bin:/bin
#    (no cargo, no rustc) and the temporary directory as working directory, installed.py checks the
#    imports, the data files, both command-line tools, a 5-epoch training, a forward pass and an
#    emulator run. The only repository files it sees are installed.py and one example config.
# 2. sdists: a second fresh venv builds both sdists (this needs Rust) and repeats the checks; its
#    forward pass and emulator run must equal the wheels' bit for bit.
set -euo pipefail

python=$1
dist=$(cd "$2" && pwd)
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

one() {  # the single file of DIST matching a pattern
    local found=("$dist"/$1)
    if [ ${#found[@]} -ne 1 ] || [ ! -f "${found[0]}" ]; then
        echo "test_wheels: expected exactly one $1 in $dist, found: ${found[*]}" >&2
        exit 1
    fi
    echo "${found[0]}"
}
rs_wheel=$(one 'delgrad_rs-*.whl')
hw_wheel=$(one 'delgrad_hw-*.whl')
rs_sdist=$(one 'delgrad_rs-*.tar.gz')
hw_sdist=$(one 'delgrad_hw-*.tar.gz')

cp "$repo/tests/packaging/installed.py" "$repo/examples/configs/digits_W.toml" "$work/"
cd "$work"

echo "== wheels: $(basename "$rs_wheel") $(basename "$hw_wheel")"
"$python" -m venv "$work/venv-wheels"
bare=(env -u PYTHONPATH -u PYTHONHOME -u VIRTUAL_ENV -u CARGO_TARGET_DIR "PATH=$work/venv-wheels/bin:/usr/bin:/bin")
if "${bare[@]}" sh -c 'command -v cargo || command -v rustc'; then
    echo "test_wheels: Rust is reachable with PATH=$work/venv-wheels/bin:/usr/bin:/bin" >&2
    exit 1
fi
"${bare[@]}" python -m pip install --quiet "$rs_wheel" "$hw_wheel"
mkdir "$work/out-wheels"
"${bare[@]}" python -I installed.py digits_W.toml "$work/out-wheels"

echo "== sdists: $(basename "$rs_sdist") $(basename "$hw_sdist")"
"$python" -m venv "$work/venv-sdists"
# Reuse the repository's compiled dependencies (the sdist's own crates build anew).
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target} \
    env -u PYTHONPATH -u VIRTUAL_ENV "$work/venv-sdists/bin/python" -m pip install --quiet "$rs_sdist" "$hw_sdist"
mkdir "$work/out-sdists"
env -u PYTHONPATH -u VIRTUAL_ENV "PATH=$work/venv-sdists/bin:$PATH" \
    python -I installed.py digits_W.toml "$work/out-sdists" "$work/out-wheels/results.npz"
echo "test_wheels: passed"
