"""Build helpers and checks of the distributions in ``dist/`` (``make wheel``, ``make sdist``).

Usage::

    python tests/packaging/dists.py maturin ARGS...   # the maturin of this Python, with its zig on PATH
    python tests/packaging/dists.py check-sdist DIST  # both sdists hold what a build needs, nothing else
    python tests/packaging/dists.py check-wheel DIST  # tags (auditwheel: manylinux2014 or older), contents

Each check prints what it verified and exits non-zero with the reason when a check fails.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parents[2]
# Oldest glibc a wheel may need: manylinux2014 = manylinux_2_17.
MAX_GLIBC_MINOR = 17
LICENSE = "MIT OR Apache-2.0"
# Directories whose files belong in the delgrad_rs sdist (every source file under them).
RS_SOURCE_DIRS = ("python/delgrad_rs", "rust/delgrad/src", "rust/delgrad-py/src")
RS_TOP_FILES = (
    "pyproject.toml",
    "Cargo.toml",
    "Cargo.lock",
    "README.md",
    "rust/delgrad/Cargo.toml",
    "rust/delgrad-py/Cargo.toml",
    "PKG-INFO",
)
HW_TOP_FILES = ("pyproject.toml", "README.md", "PKG-INFO", "src/delgrad_hw/py.typed")
# Path components an sdist must not contain: test suites, build output, caches, benchmarks.
FORBIDDEN_PARTS = {"tests", "target", "benches", "examples", "proptest-regressions", "__pycache__", "dist"}
DATA_FILES = ("delgrad_rs/data/digits.npz", "delgrad_rs/data/README.md", "delgrad_rs/py.typed")


class CheckError(Exception):
    """A distribution misses a file, holds a forbidden one or has the wrong tag."""


def one(dist: Path, pattern: str) -> Path:
    """Return the single file of ``dist`` matching ``pattern``."""
    found = sorted(dist.glob(pattern))
    if len(found) != 1:
        raise CheckError(f"{dist}: expected exactly one {pattern}, found {[p.name for p in found]}")
    return found[0]


def run_maturin(args: list[str]) -> None:
    """Replace this process by the maturin installed for this Python, the ``ziglang`` zig on PATH."""
    # The script is located through its package record: `python -m maturin` only searches this
    # Python's own bin directory, which lacks it when maturin comes from inherited site packages.
    # `--zig` runs the `zig` it finds on PATH, so the one of this Python's ziglang goes first.
    try:
        files = distribution("maturin").files or []
        import ziglang  # type: ignore[import-untyped]
    except (PackageNotFoundError, ImportError) as exc:
        raise CheckError(f"maturin and ziglang must be installed for {sys.executable}: {exc}") from None
    scripts = [Path(str(f.locate())).resolve() for f in files if f.name == "maturin" and f.parent.name == "bin"]
    if not scripts:
        raise CheckError("maturin: its distribution lists no bin/maturin")
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(ziglang.__file__).parent), os.environ.get("PATH", "")]))
    os.execve(scripts[0], [str(scripts[0]), *args], env)


def sdist_members(path: Path) -> tuple[set[str], str]:
    """Return the member paths of an sdist (without the top directory) and its PKG-INFO."""
    with tarfile.open(path) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
        top = {PurePosixPath(n).parts[0] for n in names}
        if len(top) != 1:
            raise CheckError(f"{path.name}: expected one top directory, found {sorted(top)}")
        prefix = top.pop() + "/"
        pkg_info = tar.extractfile(prefix + "PKG-INFO")
        if pkg_info is None:
            raise CheckError(f"{path.name}: no PKG-INFO")
        return {n.removeprefix(prefix) for n in names}, pkg_info.read().decode()


def check_metadata(name: str, meta_text: str) -> None:
    """The licence expression and the README as long description are in the metadata."""
    meta = Parser().parsestr(meta_text)
    if meta.get("License-Expression") != LICENSE:
        raise CheckError(f"{name}: License-Expression is {meta.get('License-Expression')!r}, expected {LICENSE!r}")
    if not str(meta.get("Description-Content-Type", "")).startswith("text/markdown") or not meta.get_payload():
        raise CheckError(f"{name}: no README as the long description (Description-Content-Type text/markdown)")


def check_members(name: str, members: set[str], required: set[str]) -> None:
    """Every required file is present; no member lies under a forbidden directory or is a binary."""
    missing = sorted(required - members)
    if missing:
        raise CheckError(f"{name}: missing {missing}")
    bad = sorted(
        m for m in members if FORBIDDEN_PARTS & set(PurePosixPath(m).parts[:-1]) or m.endswith((".so", ".pyc"))
    )
    if bad:
        raise CheckError(f"{name}: must not contain {bad}")


def repo_files(directory: str) -> set[str]:
    """Source files under a directory of the repository (relative to the repository)."""
    root = REPO / directory
    return {
        p.relative_to(REPO).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".so", ".pyc")
    }


def check_sdist(dist: Path) -> None:
    """Both sdists hold every source and data file a build needs and no tests or build output."""
    rs = one(dist, "delgrad_rs-*.tar.gz")
    members, meta = sdist_members(rs)
    required = set(RS_TOP_FILES).union(*(repo_files(d) for d in RS_SOURCE_DIRS))
    check_members(rs.name, members, required)
    check_metadata(rs.name, meta)
    print(f"{rs.name}: {len(members)} files, all {len(required)} needed files present, no tests or build output")

    hw = one(dist, "delgrad_hw-*.tar.gz")
    members, meta = sdist_members(hw)
    required = set(HW_TOP_FILES) | {f.removeprefix("hw/") for f in repo_files("hw/src/delgrad_hw")}
    check_members(hw.name, members, required)
    check_metadata(hw.name, meta)
    print(f"{hw.name}: {len(members)} files, all {len(required)} needed files present, no tests or build output")


def wheel_members(path: Path) -> tuple[set[str], str, str]:
    """Return the members of a wheel, its METADATA and its entry_points.txt."""
    with zipfile.ZipFile(path) as whl:
        names = set(whl.namelist())
        info = next((n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA")), None)
        if info is None:
            raise CheckError(f"{path.name}: no .dist-info/METADATA")
        entry_points = whl.read(f"{info}/entry_points.txt").decode() if f"{info}/entry_points.txt" in names else ""
        return names, whl.read(f"{info}/METADATA").decode(), entry_points


def console_scripts(entry_points: str) -> dict[str, str]:
    """The ``[console_scripts]`` of an ``entry_points.txt`` (name -> ``module:function``)."""
    parser = configparser.ConfigParser()
    parser.read_string(entry_points)
    return dict(parser["console_scripts"]) if parser.has_section("console_scripts") else {}


def glibc_minor(tag: str) -> int:
    """The glibc minor version a platform tag needs (``manylinux2014_x86_64`` -> 17)."""
    legacy = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}
    m = re.fullmatch(r"manylinux_2_(\d+)_\w+", tag)
    if m:
        return int(m.group(1))
    m = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_\w+", tag)
    if m:
        return legacy[m.group(1)]
    raise CheckError(f"platform tag {tag!r} is not a manylinux tag")


def check_wheel(dist: Path) -> None:
    """delgrad_rs: abi3, manylinux2014 or older by its tags and by auditwheel; both: files and scripts."""
    rs = one(dist, "delgrad_rs-*.whl")
    _, _, python_tag, abi_tag, platforms = rs.stem.split("-")
    if abi_tag != "abi3" or python_tag != "cp311":
        raise CheckError(f"{rs.name}: expected the cp311-abi3 tags, got {python_tag}-{abi_tag}")
    for tag in platforms.split("."):
        if glibc_minor(tag) > MAX_GLIBC_MINOR:
            raise CheckError(f"{rs.name}: platform tag {tag} needs glibc 2.{glibc_minor(tag)} > 2.{MAX_GLIBC_MINOR}")
    shown = subprocess.run(
        [sys.executable, "-m", "auditwheel", "show", str(rs)], capture_output=True, text=True, check=False
    )
    print(shown.stdout.strip())
    if shown.returncode != 0:
        raise CheckError(f"auditwheel show {rs.name} failed: {shown.stderr.strip()}")
    # auditwheel wraps its text at varying places: any whitespace may separate the words
    m = re.search(r'consistent\s+with\s+the\s+following\s+platform\s+tag:\s*"([^"]+)"', shown.stdout)
    if m is None:
        raise CheckError(f"auditwheel show {rs.name}: no platform tag in its output")
    if glibc_minor(m.group(1)) > MAX_GLIBC_MINOR:
        raise CheckError(f"{rs.name}: auditwheel finds {m.group(1)}, newer than manylinux2014")
    members, meta, entry_points = wheel_members(rs)
    check_metadata(rs.name, meta)
    required = {*DATA_FILES, "delgrad_rs/_core.abi3.so", "delgrad_rs/cli.py"}
    if required - members:
        raise CheckError(f"{rs.name}: missing {sorted(required - members)}")
    if console_scripts(entry_points).get("delgrad") != "delgrad_rs.cli:main":
        raise CheckError(f"{rs.name}: no 'delgrad' console script")
    print(f"{rs.name}: abi3, {platforms}, {len(members)} files with the data files and the 'delgrad' script")

    hw = one(dist, "delgrad_hw-*-py3-none-any.whl")
    members, meta, entry_points = wheel_members(hw)
    check_metadata(hw.name, meta)
    required = {f.removeprefix("hw/src/") for f in repo_files("hw/src/delgrad_hw")}
    if required - members:
        raise CheckError(f"{hw.name}: missing {sorted(required - members)}")
    if console_scripts(entry_points).get("delgrad-hw") != "delgrad_hw.cli:main":
        raise CheckError(f"{hw.name}: no 'delgrad-hw' console script")
    print(f"{hw.name}: {len(members)} files with py.typed and the 'delgrad-hw' script")


def main(argv: list[str]) -> int:
    """Dispatch the command line (see the module docstring)."""
    commands = {"check-sdist": check_sdist, "check-wheel": check_wheel}
    try:
        if argv[:1] == ["maturin"]:
            run_maturin(argv[1:])
        elif len(argv) == 2 and argv[0] in commands:
            commands[argv[0]](Path(argv[1]))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except CheckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
