"""Remote chip: the :class:`~delgrad_hw.chip.Chip` interface over the network protocol.

:class:`RemoteChip` connects lazily (HELLO, AUTH), remembers the last configuration and, when the
connection drops, reconnects with exponential backoff, re-sends the configuration and retries the work
unit, so that a server restart in the middle of a training is survived. The chip id seen on the first
connection is pinned: a different chip after a reconnect raises :class:`~delgrad_hw.chip.ChipMismatch`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .auth import read_token_file
from .chip import (
    PROTOCOL_VERSION,
    BadRequest,
    ChipConfig,
    ChipError,
    ChipInfo,
    ChipMismatch,
    ChipTimeout,
    LinkError,
    RunResult,
    Unauthorized,
    error_for_status,
)
from .protocol import (
    HEADER,
    SERVER_TYPES,
    Limits,
    Message,
    ProtocolError,
    SubmitRequest,
    decode_info,
    decode_message,
    decode_result,
    encode_config,
    encode_frame,
    encode_submit,
    frame_length,
)

__all__ = ["TOKEN_ENV", "RemoteChip", "parse_address"]

#: Environment variable read for the token when neither ``token`` nor ``token_file`` is given.
TOKEN_ENV = "DELGRAD_HW_TOKEN"

T = TypeVar("T")


def parse_address(address: str) -> tuple[str, int]:
    """Parse ``"host:port"``, ``"remote://host:port"`` or ``"[v6addr]:port"``.

    Parameters
    ----------
    address : str
        Server address.

    Returns
    -------
    tuple of (str, int)
        Host and port.

    Raises
    ------
    ValueError
        If the address has no valid port.
    """
    addr = address.strip()
    if addr.startswith("remote://"):
        addr = addr[len("remote://") :]
    addr = addr.rstrip("/")
    host, sep, port_s = addr.rpartition(":")
    if not sep or not host or not port_s.isdigit():
        raise ValueError(f"address: expected 'host:port' or 'remote://host:port', got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_s)
    if not 0 < port < 65536:
        raise ValueError(f"address: port out of range in {address!r}")
    return host, port


def _read_token(token: str | None, token_file: str | os.PathLike[str] | None) -> str:
    if token is not None:
        return token
    if token_file is not None:
        # A client only warns about a file others can read: the server's owner chose the token.
        return read_token_file(token_file, allow_insecure=True, flag="token_file")
    env = os.environ.get(TOKEN_ENV)
    if env:
        return env.strip()
    raise Unauthorized(f"no token: pass token=, token_file= or set {TOKEN_ENV}")


class _Dropped(Exception):
    """The connection is gone (EOF, reset, unreadable frame)."""


class RemoteChip:
    """A chip reached through an :class:`~delgrad_hw.server.ExperimentServer`.

    Parameters
    ----------
    address : str
        ``"host:port"`` or ``"remote://host:port"``.
    token : str, optional
        Authentication token. Falls back to ``token_file``, then the environment variable
        ``DELGRAD_HW_TOKEN``.
    token_file : path-like, optional
        File whose content (stripped) is the token.
    timeout : float
        Seconds to wait for one reply (this includes queueing behind other clients on the server).
    connect_timeout : float
        Seconds to wait for the TCP connection.
    retries : int
        Reconnect attempts for one call after the connection dropped or timed out.
    backoff : float
        First wait between attempts; doubles on every attempt up to ``max_backoff``.
    max_backoff : float
        Largest wait between attempts.
    deadline_s : float, optional
        Deadline asked for every work unit (the server applies the smaller of its own and this one).
    limits : Limits, optional
        Size limits for frames received from the server.

    Raises
    ------
    Unauthorized
        If no token is available.
    ValueError
        If the address is malformed.

    Notes
    -----
    Methods are serialised by a lock; use one instance per thread for concurrency.
    """

    def __init__(
        self,
        address: str,
        token: str | None = None,
        token_file: str | os.PathLike[str] | None = None,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        retries: int = 5,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
        deadline_s: float | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.host, self.port = parse_address(address)
        self._token = _read_token(token, token_file)
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.deadline_s = deadline_s
        self.limits = limits or Limits()
        self._sock: socket.socket | None = None
        self._seq = 0
        self._lock = threading.RLock()
        self._info: ChipInfo | None = None
        self._chip_id: str | None = None
        self._session_id: str | None = None
        self._config: ChipConfig | None = None
        self._config_hash: str | None = None
        self._written = 0
        #: Number of successful reconnects after the first connection.
        self.reconnects = 0
        self._connected_once = False

    # ------------------------------------------------------------------------------------------------
    # Chip interface
    # ------------------------------------------------------------------------------------------------
    def info(self) -> ChipInfo:
        """Return the chip's identity and limits (connects if needed).

        Returns
        -------
        ChipInfo
            As reported by the server's INFO.
        """
        with self._lock:
            self._with_retry(lambda: None)
            assert self._info is not None
            return self._info

    def configure(self, config: ChipConfig) -> str:
        """Send a configuration; it is re-sent automatically after a reconnect.

        Parameters
        ----------
        config : ChipConfig
            Network configuration.

        Returns
        -------
        str
            Configuration hash computed by the chip.
        """
        if not isinstance(config, ChipConfig):
            raise TypeError("config: expected a ChipConfig")
        with self._lock:
            body = {"config": encode_config(config)}

            def op() -> str:
                reply = self._request("CONFIGURE", body, "CONFIGURED")
                return self._accept_configured(reply)

            h = self._with_retry(op, on_reconnect_configure=False)
            self._config = config
            return h

    def run(self, inputs: npt.ArrayLike) -> RunResult:
        """Run a batch on the remote chip.

        Parameters
        ----------
        inputs : array_like
            ``[batch, n_inputs]`` input spike times (float64; ``+inf`` = no spike).

        Returns
        -------
        RunResult
            Times of every layer, health, timing, chip id and configuration hash.

        Raises
        ------
        BadRequest
            If no configuration was sent or the inputs do not fit.
        ChipTimeout
            If the work unit exceeded its deadline or the server did not answer after all retries.
        LinkError
            If the server stayed unreachable.
        ChipMismatch
            If the server now serves a different chip.
        """
        try:
            arr = np.array(inputs, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"inputs: cannot convert to float64 ({exc})") from None
        if arr.ndim != 2:
            raise BadRequest(f"inputs: expected a 2-D [batch, n_inputs] array, got shape {arr.shape}")
        with self._lock:
            if self._config is None:
                raise BadRequest("run() before configure()")

            def op() -> RunResult:
                assert self._config_hash is not None
                req = SubmitRequest(self._config_hash, arr, None, self._chip_id, self.deadline_s)
                reply = self._request("SUBMIT", encode_submit(req), "RESULT")
                res = decode_result(reply.body, self.limits)
                if res.status != "OK" or res.result is None:
                    raise error_for_status(res.status, res.message or res.status)
                return res.result

            return self._with_retry(op)

    # ------------------------------------------------------------------------------------------------
    # Extras
    # ------------------------------------------------------------------------------------------------
    @property
    def last_written_entries(self) -> int:
        """Entries written by the last :meth:`configure` (as reported by the server, -1 if unknown)."""
        return self._written

    @property
    def chip_id(self) -> str | None:
        """Chip id pinned at the first connection (None before connecting)."""
        return self._chip_id

    @property
    def session_id(self) -> str | None:
        """Session id of the current connection."""
        return self._session_id

    @property
    def config_hash(self) -> str | None:
        """Hash of the current configuration."""
        return self._config_hash

    def status(self) -> dict[str, Any]:
        """Ask the server for its status.

        Returns
        -------
        dict
            ``queue_length``, ``clients``, ``uptime_s``, ``chip_id``, ``work_units``, ``reinits``.
        """
        with self._lock:
            return self._with_retry(lambda: dict(self._request("STATUS", {}, "STATUS_REPLY").body))

    def close(self) -> None:
        """Say BYE (best effort) and close the connection."""
        with self._lock:
            if self._sock is not None:
                try:
                    self._seq += 1
                    self._sock.settimeout(1.0)
                    self._sock.sendall(encode_frame(Message("BYE", self._seq, {})))
                    self._recv()
                except (OSError, _Dropped, ProtocolError, ChipError):
                    pass
            self._drop()

    def __enter__(self) -> RemoteChip:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        sock = getattr(self, "_sock", None)
        if sock is not None:
            sock.close()

    # ------------------------------------------------------------------------------------------------
    # Transport
    # ------------------------------------------------------------------------------------------------
    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._session_id = None

    def _recv_exact(self, n: int) -> bytes:
        assert self._sock is not None
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise _Dropped("connection closed by the server")
            buf += chunk
        return bytes(buf)

    def _recv(self) -> Message:
        try:
            n = frame_length(self._recv_exact(HEADER), self.limits.max_frame_bytes)
            return decode_message(self._recv_exact(n), self.limits, SERVER_TYPES)
        except ProtocolError as exc:
            raise _Dropped(f"unreadable reply: {exc.message}") from None

    def _request(self, mtype: str, body: dict[str, Any], expect: str) -> Message:
        assert self._sock is not None
        self._seq += 1
        seq = self._seq
        try:
            frame = encode_frame(Message(mtype, seq, body), self.limits.max_frame_bytes)
        except ProtocolError as exc:
            raise BadRequest(f"{mtype}: {exc.message}") from None
        self._sock.sendall(frame)
        while True:
            reply = self._recv()
            if reply.id == seq:
                break
        if reply.type == "ERROR":
            status = reply.body.get("status")
            message = reply.body.get("message")
            raise error_for_status(str(status), f"{mtype}: {message}")
        if reply.type != expect:
            raise _Dropped(f"protocol violation: {mtype} answered with {reply.type}")
        return reply

    def _accept_configured(self, reply: Message) -> str:
        h = reply.body.get("config_hash")
        written = reply.body.get("written_entries", -1)
        if not isinstance(h, str) or not isinstance(written, int):
            raise _Dropped("malformed CONFIGURED reply")
        self._config_hash = h
        self._written = written
        return h

    def _connect(self, reconfigure: bool) -> None:
        self._drop()
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.timeout)
        self._sock = sock
        info = decode_info(self._request("HELLO", {}, "INFO").body)
        if info.protocol_version != PROTOCOL_VERSION:
            self._drop()
            raise ChipError(f"server speaks protocol {info.protocol_version}, client {PROTOCOL_VERSION}")
        if self._chip_id is None:
            self._chip_id = info.chip_id
        elif info.chip_id != self._chip_id:
            self._drop()
            raise ChipMismatch(
                f"the server now serves chip {info.chip_id!r}, but this experiment started on {self._chip_id!r}"
            )
        self._info = info
        reply = self._request("AUTH", {"token": self._token}, "SESSION")
        sid = reply.body.get("session_id")
        self._session_id = sid if isinstance(sid, str) else None
        if self._connected_once:
            self.reconnects += 1
        self._connected_once = True
        if reconfigure and self._config is not None:
            self._accept_configured(self._request("CONFIGURE", {"config": encode_config(self._config)}, "CONFIGURED"))

    def _with_retry(self, op: Callable[[], T], on_reconnect_configure: bool = True) -> T:
        attempt = 0
        while True:
            try:
                if self._sock is None:
                    self._connect(reconfigure=on_reconnect_configure)
                return op()
            except ChipError:
                raise
            except (OSError, _Dropped, ProtocolError) as exc:
                self._drop()
                attempt += 1
                if attempt > self.retries:
                    if isinstance(exc, TimeoutError):
                        raise ChipTimeout(
                            f"no reply from {self.host}:{self.port} within {self.timeout} s ({self.retries} retries)"
                        ) from exc
                    raise LinkError(
                        f"cannot reach the chip server {self.host}:{self.port} after {self.retries} retries: {exc}"
                    ) from exc
                time.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))
