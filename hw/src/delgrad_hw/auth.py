"""Tokens: how strong a server token must be, reading token files safely, and writing new ones.

A token is a shared secret compared in constant time. The server requires at least
:data:`MIN_TOKEN_BITS` bits of estimated entropy, so that guessing it over the network (which the
server also rate-limits per source address) is hopeless. ``delgrad-hw token FILE`` writes a fresh
random token of :data:`NEW_TOKEN_BYTES` bytes (hex) into a file only its owner can read.
"""

from __future__ import annotations

import math
import os
import secrets
import stat
import string
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "MIN_TOKEN_BITS",
    "NEW_TOKEN_BYTES",
    "AuthLimiter",
    "InsecureTokenFileWarning",
    "check_token_strength",
    "new_token",
    "read_token_file",
    "token_bits",
    "write_token_file",
]

#: Least estimated entropy of a server token, in bits.
MIN_TOKEN_BITS = 128
#: Random bytes in a token made by :func:`new_token` (written as 2 hex digits each: 256 bits).
NEW_TOKEN_BYTES = 32
#: Fewest distinct characters of an accepted token (rejects repetitions such as ``"aaaa…"``).
MIN_DISTINCT_CHARS = 8

_HEX = frozenset(string.hexdigits)
_URLSAFE = frozenset(string.ascii_letters + string.digits + "-_")


class InsecureTokenFileWarning(UserWarning):
    """A token file is readable or writable by other users than its owner."""


def token_bits(token: str) -> float:
    """Estimate a token's entropy as if its characters were drawn uniformly from its alphabet.

    The alphabet is the smallest of hexadecimal digits (16), URL-safe base64 (64) and printable ASCII
    (95) that holds every character; this overestimates human-made tokens, so the distinct-character
    rule of :func:`check_token_strength` goes with it.

    Parameters
    ----------
    token : str
        The token.

    Returns
    -------
    float
        ``len(token) * log2(alphabet size)``.
    """
    chars = set(token)
    size = 16 if chars <= _HEX else 64 if chars <= _URLSAFE else 95
    return len(token) * math.log2(size)


def check_token_strength(token: str, what: str = "token") -> None:
    """Raise if ``token`` is too weak to guard a server.

    Parameters
    ----------
    token : str
        The token.
    what : str
        How to name the token in the message (an argument or flag).

    Raises
    ------
    ValueError
        If the token is empty, has fewer than :data:`MIN_DISTINCT_CHARS` distinct characters or
        fewer than :data:`MIN_TOKEN_BITS` estimated bits.
    """
    if not isinstance(token, str) or not token:
        raise ValueError(f"{what}: a non-empty token is required (`delgrad-hw token FILE` writes one)")
    bits = token_bits(token)
    if len(set(token)) < MIN_DISTINCT_CHARS or bits < MIN_TOKEN_BITS:
        raise ValueError(
            f"{what}: too weak ({len(token)} characters, about {bits:.0f} bits); a token needs at least "
            f"{MIN_TOKEN_BITS} bits, e.g. 32 random hex digits (`delgrad-hw token FILE` writes one)"
        )


def new_token() -> str:
    """Return a fresh random token: :data:`NEW_TOKEN_BYTES` bytes from the OS, in hex."""
    return secrets.token_hex(NEW_TOKEN_BYTES)


def read_token_file(path: str | os.PathLike[str], *, allow_insecure: bool = False, flag: str = "token file") -> str:
    """Read a token file, refusing one that other users can read or write.

    Parameters
    ----------
    path : path-like
        The file; its content, stripped of surrounding white space, is the token.
    allow_insecure : bool
        Accept a file with group or other permissions, with an :class:`InsecureTokenFileWarning`.
    flag : str
        How to name the file's argument in messages (e.g. ``"--token-file"``).

    Returns
    -------
    str
        The token.

    Raises
    ------
    ValueError
        If the file cannot be read, is not UTF-8 text, or is readable or writable by others and
        ``allow_insecure`` is false.
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
        raw = p.read_bytes()
    except OSError as exc:
        raise ValueError(f"{flag}: cannot read {str(p)!r}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        message = (
            f"{flag}: {str(p)!r} is accessible to other users (mode {stat.S_IMODE(mode):04o}); "
            f"make it private with `chmod 600 {p}`"
        )
        if not allow_insecure:
            raise ValueError(message)
        warnings.warn(message, InsecureTokenFileWarning, stacklevel=2)
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{flag}: {str(p)!r} is not a text file (expected the token as UTF-8 text)") from None


def write_token_file(path: str | os.PathLike[str], *, overwrite: bool = False) -> str:
    """Write a fresh token into a new file that only its owner can read and write (mode 0600).

    Parameters
    ----------
    path : path-like
        The file to create.
    overwrite : bool
        Replace an existing file (its content and mode).

    Returns
    -------
    str
        The token written.

    Raises
    ------
    FileExistsError
        If the file exists and ``overwrite`` is false.
    """
    token = new_token()
    p = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    fd = os.open(p, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode on O_TRUNC
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    return token


class AuthLimiter:
    """Per-source-address limit on failed AUTH attempts, with exponential back-off.

    Each address may fail ``free`` times; after that every further failure locks the address out for
    ``base_s * 2 ** (extra failures - 1)`` seconds (at most ``max_s``). While locked out, AUTH from that
    address is refused without looking at the token, so reconnecting does not buy guesses. A success
    clears the address; an address with no failure for ``forget_s`` is forgotten, and at most
    ``max_addresses`` are tracked (the least recently failed go first).

    Parameters
    ----------
    free : int
        Failures allowed before the back-off starts.
    base_s : float
        First lock-out, seconds.
    max_s : float
        Longest lock-out, seconds.
    forget_s : float
        Seconds without failures after which an address starts afresh.
    max_addresses : int
        Addresses tracked at once.
    clock : callable
        Monotonic time in seconds (tests pass their own).
    """

    def __init__(
        self,
        free: int = 5,
        base_s: float = 0.5,
        max_s: float = 60.0,
        forget_s: float = 900.0,
        max_addresses: int = 65536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if free < 0 or not (0 < base_s <= max_s) or forget_s <= 0 or max_addresses < 1:
            raise ValueError("AuthLimiter: need free >= 0, 0 < base_s <= max_s, forget_s > 0, max_addresses >= 1")
        self.free, self.base_s, self.max_s = free, base_s, max_s
        self.forget_s, self.max_addresses = forget_s, max_addresses
        self._clock = clock
        # address -> (failures, time of the last failure, locked until)
        self._failures: OrderedDict[str, tuple[int, float, float]] = OrderedDict()

    def retry_in(self, address: str) -> float:
        """Seconds until ``address`` may try again (0 if it may now)."""
        entry = self._failures.get(address)
        if entry is None:
            return 0.0
        now = self._clock()
        if now - entry[1] > self.forget_s:
            del self._failures[address]
            return 0.0
        return max(0.0, entry[2] - now)

    def failed(self, address: str) -> float:
        """Record a failure of ``address``; return the lock-out it now has, in seconds."""
        now = self._clock()
        count, last, _ = self._failures.pop(address, (0, now, now))
        if now - last > self.forget_s:
            count = 0
        count += 1
        extra = count - self.free
        lock = 0.0 if extra <= 0 else min(self.max_s, self.base_s * 2.0 ** min(extra - 1, 64))
        self._failures[address] = (count, now, now + lock)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
        return lock

    def succeeded(self, address: str) -> None:
        """Forget the failures of ``address``."""
        self._failures.pop(address, None)
