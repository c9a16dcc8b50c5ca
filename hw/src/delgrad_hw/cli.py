"""Command-line tool ``delgrad-hw``.

``delgrad-hw token FILE`` writes a fresh 256-bit token into a new file only its owner can read.

``delgrad-hw serve --host 127.0.0.1 --port PORT --token-file FILE [--chip-id ID] [--seed N]
[--backend MODULE:FACTORY]`` serves a chip over the delgrad-hw protocol. The backend is a Python factory
called as ``FACTORY(chip_id=..., seed=...)`` (only the options given are passed); the default is the
BrainScaleS-2 emulator ``delgrad_hw.emulator:EmulatedChip``, imported only when used. The token file
must not be accessible to other users (``--allow-insecure-token-file`` overrides that, with a warning).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .auth import read_token_file, write_token_file
from .chip import Chip
from .protocol import Limits

__all__ = ["DEFAULT_BACKEND", "load_factory", "main"]

DEFAULT_BACKEND = "delgrad_hw.emulator:EmulatedChip"

#: The serve flag behind each option that ExperimentServer and Limits check.
_FLAGS = {
    "deadline_s": "--deadline",
    "max_frame_bytes": "--max-frame-bytes",
    "max_clients": "--max-clients",
    "idle_timeout_s": "--idle-timeout",
    "auth_timeout_s": "--auth-timeout",
    "max_unauthenticated": "--max-unauthenticated",
    "max_queued_bytes": "--max-queued-bytes",
    "token": "--token-file (or DELGRAD_HW_TOKEN)",
}


def _flag_message(message: str) -> str:
    """Name the command-line flag in a message that names the option behind it."""
    name, sep, rest = message.partition(":")
    return f"{_FLAGS[name]}:{rest}" if sep and name in _FLAGS else message


def load_factory(spec: str) -> Callable[..., Any]:
    """Import ``"module:attribute"`` (attribute may be dotted) and return it.

    Parameters
    ----------
    spec : str
        Factory specification.

    Returns
    -------
    callable
        The factory.

    Raises
    ------
    ValueError
        If the specification is malformed, the module cannot be imported or the attribute is missing or
        not callable.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--backend: expected MODULE:FACTORY, got {spec!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--backend: cannot import module {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"--backend: module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise ValueError(f"--backend: {spec!r} is not callable")
    return obj  # type: ignore[no-any-return]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="delgrad-hw", description="delgrad-hw: chip server and tools")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="serve a chip (emulated by default) over the delgrad-hw protocol",
        description="Serve a chip over the delgrad-hw protocol until SIGINT/SIGTERM.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    serve.add_argument("--port", type=int, default=0, help="port to bind (default: 0 = any free port)")
    serve.add_argument(
        "--token-file",
        required=False,
        help="file holding the client token (default: the environment variable DELGRAD_HW_TOKEN)",
    )
    serve.add_argument("--chip-id", default=None, help="chip identifier passed to the backend")
    serve.add_argument("--seed", type=int, default=None, help="seed passed to the backend")
    serve.add_argument(
        "--backend",
        default=DEFAULT_BACKEND,
        help=f"chip factory MODULE:FACTORY, called with chip_id= and seed= (default: {DEFAULT_BACKEND})",
    )
    serve.add_argument("--deadline", type=float, default=60.0, help="deadline of one work unit in seconds")
    serve.add_argument(
        "--max-frame-bytes", type=int, default=Limits.max_frame_bytes, help="largest accepted message in bytes"
    )
    serve.add_argument("--max-clients", type=int, default=64, help="largest number of authenticated clients")
    serve.add_argument(
        "--max-unauthenticated", type=int, default=16, help="connections allowed to wait for AUTH at once"
    )
    serve.add_argument("--auth-timeout", type=float, default=10.0, help="seconds a new connection has to authenticate")
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=600.0,
        help="close an authenticated connection that sends nothing for this many seconds (default: 600)",
    )
    serve.add_argument(
        "--max-queued-bytes",
        type=int,
        default=None,
        help="bytes one client may have queued before the server stops reading from it (default: 4 frames)",
    )
    serve.add_argument(
        "--allow-insecure-token-file",
        action="store_true",
        help="accept a token file that other users can read or write (warns)",
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    token = sub.add_parser(
        "token",
        help="write a new random token into a file only you can read",
        description="Write a fresh 256-bit random token (hex) into FILE, created with mode 0600.",
    )
    token.add_argument("file", help="the token file to create")
    token.add_argument("--force", action="store_true", help="replace an existing file")
    return parser


def _token(args: argparse.Namespace) -> int:
    try:
        write_token_file(args.file, overwrite=args.force)
    except FileExistsError:
        print(f"delgrad-hw token: {args.file} exists (use --force to replace it)", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"delgrad-hw token: cannot write {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"delgrad-hw: wrote a new token to {args.file} (mode 0600)")
    return 0


def _server_token(args: argparse.Namespace) -> str:
    """Return the server token from ``--token-file`` or ``DELGRAD_HW_TOKEN`` (ValueError when unusable)."""
    if args.token_file is not None:
        return read_token_file(args.token_file, allow_insecure=args.allow_insecure_token_file, flag="--token-file")
    return os.environ.get("DELGRAD_HW_TOKEN", "").strip()


def _wait_for_stop() -> None:
    """Block until SIGTERM or SIGINT."""
    import signal
    import threading

    done = threading.Event()

    def handler(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not done.wait(0.5):
        pass


def _serve(args: argparse.Namespace) -> int:
    from .server import ExperimentServer

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        token = _server_token(args)
        factory = load_factory(args.backend)
    except ValueError as exc:
        print(f"delgrad-hw serve: {exc}", file=sys.stderr)
        return 2
    kwargs: dict[str, Any] = {}
    if args.chip_id is not None:
        kwargs["chip_id"] = args.chip_id
    if args.seed is not None:
        kwargs["seed"] = args.seed

    def make_chip() -> Chip:
        chip: Chip = factory(**kwargs)
        return chip

    try:
        server = ExperimentServer(
            make_chip,
            token=token,
            host=args.host,
            port=args.port,
            deadline_s=args.deadline,
            limits=Limits(max_frame_bytes=args.max_frame_bytes),
            max_clients=args.max_clients,
            max_unauthenticated=args.max_unauthenticated,
            auth_timeout_s=args.auth_timeout,
            idle_timeout_s=args.idle_timeout,
            max_queued_bytes=args.max_queued_bytes,
        )
    except ValueError as exc:
        print(f"delgrad-hw serve: {_flag_message(str(exc))}", file=sys.stderr)
        return 2
    server.start()
    info = server.info
    chip_id = info.chip_id if info is not None else "?"
    print(f"delgrad-hw: serving chip {chip_id} on {server.address}", flush=True)
    try:
        _wait_for_stop()
    finally:
        server.stop()
    print("delgrad-hw: stopped", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command-line tool.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    args = _build_parser().parse_args(argv)
    if args.command == "token":
        return _token(args)
    if args.command == "serve":
        try:
            return _serve(args)
        except Exception as exc:  # binding failed or the backend could not be created
            print(f"delgrad-hw serve: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    return 2  # pragma: no cover - argparse enforces a command
