"""Experiment server: one chip shared by several authenticated clients over the wire protocol.

The server runs an asyncio event loop (in a background thread after :meth:`ExperimentServer.start`, or
in the calling thread with :meth:`ExperimentServer.serve_forever`). Chip calls run in a single worker
thread, so the loop stays responsive while the chip works and the chip sees one call at a time.

Scheduling: every connection (session) has a FIFO of work units (CONFIGURE and SUBMIT); the scheduler
serves the sessions with pending work round-robin, one unit each, so a long queue of one client cannot
starve another. The server remembers every session's last configuration; when a session regains the
chip and the chip holds a different configuration, the server re-applies the session's configuration
("reinit") before running its work unit. Every work unit has a deadline; one that exceeds it is answered
with status TIMEOUT.

Security: a connection must authenticate (AUTH with the shared token) within ``auth_timeout_s`` and
may send only small frames before it has (``preauth_max_frame_bytes``); at most
``max_unauthenticated`` connections may be waiting to authenticate, apart from the ``max_clients``
authenticated ones (a new connection beyond that closes the one that has waited longest), so idle
strangers cannot fill the server. Failed AUTH attempts are limited per
source address with exponential back-off (:class:`~delgrad_hw.auth.AuthLimiter`). An authenticated
connection that sends nothing for ``idle_timeout_s`` is closed. The bytes a client has queued (work
not yet run and replies not yet read) are bounded by ``max_queued_bytes``: beyond that the server
stops reading from the client until it catches up (back-pressure), so a client that never reads its
replies holds a bounded amount of memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import math
import secrets
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

from .auth import AuthLimiter, check_token_strength
from .chip import Chip, ChipConfig, ChipError, ChipInfo, ChipMismatch, RunResult
from .protocol import (
    CLIENT_TYPES,
    HEADER,
    Limits,
    Message,
    ProtocolError,
    SubmitRequest,
    check_int,
    decode_config,
    decode_message,
    decode_submit,
    encode_frame,
    encode_info,
    encode_result,
    frame_length,
)

__all__ = ["ExperimentServer"]

log = logging.getLogger("delgrad_hw.server")

ChipFactory = Callable[[], Chip]


@dataclass
class _WorkUnit:
    kind: str  # "configure" | "submit"
    msg_id: int
    nbytes: int
    config: ChipConfig | None = None
    submit: SubmitRequest | None = None


@dataclass
class _Session:
    conn_id: int
    peer: str
    host: str
    out: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    session_id: str | None = None
    pending: deque[_WorkUnit] = field(default_factory=deque)
    in_rr: bool = False
    closed: bool = False
    config: ChipConfig | None = None
    config_hash: str | None = None
    auth_failures: int = 0
    pending_bytes: int = 0  # request bytes of the work units in ``pending`` and the one running
    out_bytes: int = 0  # reply bytes queued and not yet written
    room: asyncio.Event = field(default_factory=asyncio.Event)  # set whenever queued bytes shrink

    @property
    def queued_bytes(self) -> int:
        return self.pending_bytes + self.out_bytes

    def freed(self, nbytes: int, outgoing: bool) -> None:
        if outgoing:
            self.out_bytes -= nbytes
        else:
            self.pending_bytes -= nbytes
        self.room.set()


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite number of seconds > 0, got {value!r}")


def _status_of(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, ChipError):
        return exc.status, str(exc)
    if isinstance(exc, ValueError | TypeError):
        return "BAD_REQUEST", str(exc)
    return "CHIP_ERROR", f"{type(exc).__name__}: {exc}"


class ExperimentServer:
    """Serve one chip to several clients over the delgrad-hw protocol.

    Parameters
    ----------
    chip : Chip or callable returning a Chip
        The chip, or a factory (e.g. a class) called once in the chip worker thread at start.
    token : str
        Shared secret the clients must send in AUTH (compared in constant time); at least 128 bits
        (see :func:`~delgrad_hw.auth.check_token_strength`).
    host : str
        Address to bind; loopback by default.
    port : int
        Port to bind; 0 picks a free one (read :attr:`port` after :meth:`start`).
    deadline_s : float
        Deadline of one work unit (chip time, including a reinit). A SUBMIT may ask for a shorter one.
    limits : Limits
        Frame and array size limits.
    max_clients : int
        Authenticated connections at once; an AUTH beyond this is refused with an ERROR.
    max_pending : int
        Work units one client may have queued; more get BAD_REQUEST.
    max_auth_failures : int
        A connection is closed after this many wrong tokens.
    idle_timeout_s : float or None
        Close authenticated connections that send nothing for this long (None = never).
    max_outgoing : int
        A connection with this many replies not yet written (the client does not read) is closed.
    auth_timeout_s : float
        A connection that has not authenticated this long after connecting is closed.
    max_unauthenticated : int
        Connections waiting to authenticate at once; a new one beyond this closes the one that has
        waited longest.
    preauth_max_frame_bytes : int
        Largest frame accepted before AUTH (HELLO and AUTH are small).
    max_queued_bytes : int, optional
        Bytes one client may have queued (requests not yet run, replies not yet read) before the
        server stops reading from it; at least ``limits.max_frame_bytes`` (default: four frames).
    auth_limiter : AuthLimiter, optional
        Per-address limit on failed AUTH attempts (default: :class:`~delgrad_hw.auth.AuthLimiter`).

    Attributes
    ----------
    stats : dict of str to int
        Counters: ``work_units``, ``configures``, ``reinits``, ``timeouts``, ``errors``,
        ``internal_errors``, ``connections``, ``refused`` (connections and AUTHs turned away),
        ``auth_timeouts``, ``idle_closed``.
    """

    def __init__(
        self,
        chip: Chip | ChipFactory,
        *,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        deadline_s: float = 60.0,
        limits: Limits | None = None,
        max_clients: int = 64,
        max_pending: int = 256,
        max_auth_failures: int = 5,
        idle_timeout_s: float | None = 600.0,
        max_outgoing: int = 4096,
        auth_timeout_s: float = 10.0,
        max_unauthenticated: int = 16,
        preauth_max_frame_bytes: int = 4096,
        max_queued_bytes: int | None = None,
        auth_limiter: AuthLimiter | None = None,
    ) -> None:
        check_token_strength(token)
        self.limits = limits or Limits()
        _check_seconds("deadline_s", deadline_s)
        _check_seconds("auth_timeout_s", auth_timeout_s)
        if idle_timeout_s is not None:
            _check_seconds("idle_timeout_s", idle_timeout_s)
        for name, value, low in (
            ("max_clients", max_clients, 1),
            ("max_pending", max_pending, 1),
            ("max_auth_failures", max_auth_failures, 1),
            ("max_outgoing", max_outgoing, 1),
            ("max_unauthenticated", max_unauthenticated, 1),
            ("preauth_max_frame_bytes", preauth_max_frame_bytes, 256),
        ):
            check_int(name, value, low)
        if max_queued_bytes is None:
            max_queued_bytes = 4 * self.limits.max_frame_bytes
        check_int("max_queued_bytes", max_queued_bytes, self.limits.max_frame_bytes)
        self._chip: Chip | None
        self._factory: ChipFactory | None
        if isinstance(chip, type) or not isinstance(chip, Chip):
            if not callable(chip):
                raise TypeError("chip: expected a Chip or a callable returning one")
            self._chip, self._factory = None, chip
        else:
            self._chip, self._factory = chip, None
        self._token = token.encode()
        self.host = host
        self.port = port
        self.deadline_s = float(deadline_s)
        self.max_clients = max_clients
        self.max_pending = max_pending
        self.max_auth_failures = max_auth_failures
        self.idle_timeout_s = idle_timeout_s
        self.max_outgoing = max_outgoing
        self.auth_timeout_s = float(auth_timeout_s)
        self.max_unauthenticated = max_unauthenticated
        self.preauth_max_frame_bytes = min(preauth_max_frame_bytes, self.limits.max_frame_bytes)
        self.max_queued_bytes = max_queued_bytes
        self._auth_limiter = auth_limiter or AuthLimiter()
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "work_units",
                "configures",
                "reinits",
                "timeouts",
                "errors",
                "internal_errors",
                "connections",
                "refused",
                "auth_timeouts",
                "idle_closed",
            ),
            0,
        )
        self._info: ChipInfo | None = None
        self._sessions: dict[int, _Session] = {}
        self._conn_ids = itertools.count(1)
        self._rr: deque[_Session] = deque()
        self._chip_hash: str | None = None
        self._started = 0.0
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._work_event: asyncio.Event | None = None
        self._handle_signals = False
        self._stopping = False

    # ------------------------------------------------------------------------------------------------
    # Life cycle
    # ------------------------------------------------------------------------------------------------
    @property
    def address(self) -> str:
        """``"host:port"`` the server listens on (valid after :meth:`start`)."""
        return f"{self.host}:{self.port}"

    @property
    def info(self) -> ChipInfo | None:
        """The chip's :class:`~delgrad_hw.chip.ChipInfo` (None before start)."""
        return self._info

    def start(self) -> ExperimentServer:
        """Start serving in a background thread; return once the socket is bound.

        Returns
        -------
        ExperimentServer
            ``self``.

        Raises
        ------
        RuntimeError
            If the server is already running.
        OSError
            If binding fails; other exceptions from creating the chip propagate.
        """
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._ready.clear()
        self._startup_error = None
        self._thread = threading.Thread(target=self._thread_main, name="delgrad-hw-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise self._startup_error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: close every connection and the listening socket.

        Parameters
        ----------
        timeout : float
            Seconds to wait for the server thread.
        """
        loop, ev = self._loop, self._stop_event
        if loop is not None and ev is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(ev.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def serve_forever(self, handle_signals: bool = True) -> None:
        """Serve in the calling thread until SIGINT/SIGTERM (or :meth:`stop` from another thread).

        Parameters
        ----------
        handle_signals : bool
            Install SIGINT/SIGTERM handlers that stop the server gracefully (main thread only).
        """
        self._handle_signals = handle_signals
        self._ready.clear()
        asyncio.run(self._main())
        if self._startup_error is not None:
            raise self._startup_error

    def __enter__(self) -> ExperimentServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # pragma: no cover - defensive
            log.exception("server thread crashed")
            if not self._ready.is_set():
                self._startup_error = exc
                self._ready.set()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop_event = asyncio.Event()
        self._work_event = asyncio.Event()
        self._stopping = False
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delgrad-hw-chip")
        self._executor = executor
        server = await self._start(loop, executor)
        if server is None:
            return
        if self._handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self._stop_event.set)
        self._started = time.monotonic()
        assert self._info is not None
        log.info("serving chip %s on %s", self._info.chip_id, self.address)
        self._ready.set()
        scheduler = asyncio.create_task(self._scheduler(), name="delgrad-hw-scheduler")
        try:
            await self._stop_event.wait()
        finally:
            await self._shut_down(server, scheduler, executor)

    async def _start(
        self, loop: asyncio.AbstractEventLoop, executor: ThreadPoolExecutor
    ) -> asyncio.base_events.Server | None:
        """Open the chip (in the chip thread) and the listening socket.

        Returns None after recording the error for ``start()`` to raise.
        """
        server: asyncio.base_events.Server | None = None
        try:
            if self._chip is None:
                assert self._factory is not None
                self._chip = await loop.run_in_executor(executor, self._factory)
            chip = self._chip
            self._info = await loop.run_in_executor(executor, chip.info)
            self._chip_hash = None
            server = await asyncio.start_server(self._handle, self.host, self.port)
            self.port = int(server.sockets[0].getsockname()[1])
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            executor.shutdown(wait=False)
            if server is not None:
                server.close()
            return None
        return server

    async def _shut_down(
        self,
        server: asyncio.base_events.Server,
        scheduler: asyncio.Task[None],
        executor: ThreadPoolExecutor,
    ) -> None:
        """Stop listening, end every session and the scheduler, then the chip thread."""
        server.close()
        self._stopping = True
        assert self._work_event is not None
        self._work_event.set()
        scheduler.cancel()
        for sess in list(self._sessions.values()):
            self._close_session(sess)
        await asyncio.wait({scheduler}, timeout=5.0)
        # give the connection handlers a moment to flush and close their transports
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
            for t in tasks:
                t.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(server.wait_closed(), 2.0)
        executor.shutdown(wait=False, cancel_futures=True)
        self._sessions.clear()
        self._rr.clear()
        self._loop = None
        log.info("server on %s stopped", self.address)

    # ------------------------------------------------------------------------------------------------
    # Connections
    # ------------------------------------------------------------------------------------------------
    def _send(self, sess: _Session, mtype: str, msg_id: int, body: dict[str, Any]) -> None:
        if sess.closed:
            return
        if sess.out.qsize() >= self.max_outgoing:
            # the client sends requests but does not read the replies: drop it rather than buffer forever
            log.warning("closing %s: %d unread replies", sess.peer, sess.out.qsize())
            self._close_session(sess)
            return
        try:
            frame = encode_frame(Message(mtype, msg_id, body), self.limits.max_frame_bytes)
        except ProtocolError as exc:
            frame = encode_frame(Message("ERROR", msg_id, {"status": "CHIP_ERROR", "message": exc.message}))
        sess.out_bytes += len(frame)
        sess.out.put_nowait(frame)

    def _send_error(self, sess: _Session, msg_id: int, status: str, message: str) -> None:
        self.stats["errors"] += 1
        self._send(sess, "ERROR", msg_id, {"status": status, "message": message[:1000]})

    def _close_session(self, sess: _Session) -> None:
        if not sess.closed:
            sess.closed = True
            sess.pending.clear()
            sess.pending_bytes = 0
            sess.room.set()
            sess.out.put_nowait(None)

    async def _writer_loop(self, sess: _Session, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                frame = await sess.out.get()
                if frame is None:
                    break
                writer.write(frame)
                await writer.drain()
                sess.freed(len(frame), outgoing=True)
        except (ConnectionError, OSError):
            pass
        finally:
            sess.closed = True
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2.0)

    def _authenticated(self) -> int:
        return sum(1 for s in self._sessions.values() if s.session_id is not None)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        host = str(peername[0]) if isinstance(peername, tuple) and peername else str(peername)
        sess = _Session(conn_id=next(self._conn_ids), peer=str(peername), host=host)
        writer_task = asyncio.create_task(self._writer_loop(sess, writer))
        waiting = [s for s in self._sessions.values() if s.session_id is None]
        if len(waiting) >= self.max_unauthenticated:
            # Turn away the connection that has waited longest: a client that authenticates at
            # once always gets in, however many idle strangers keep connecting.
            oldest = min(waiting, key=lambda s: s.conn_id)
            self.stats["refused"] += 1
            self._send_error(oldest, 0, "UNAUTHORIZED", "server busy: closed to admit a newer connection")
            self._close_session(oldest)
            self._sessions.pop(oldest.conn_id, None)
        self._sessions[sess.conn_id] = sess
        self.stats["connections"] += 1
        auth_deadline = asyncio.get_running_loop().time() + self.auth_timeout_s
        try:
            while not sess.closed:
                payload = await self._read_frame(sess, reader, auth_deadline)
                if payload is None or not self._dispatch(sess, payload):
                    break
        except asyncio.CancelledError:
            pass
        except Exception:  # pragma: no cover - must never happen; keep the server alive
            self.stats["internal_errors"] += 1
            log.exception("connection handler failed (%s)", sess.peer)
        finally:
            self._sessions.pop(sess.conn_id, None)
            self._close_session(sess)
            with contextlib.suppress(BaseException):
                await writer_task

    async def _read_frame(self, sess: _Session, reader: asyncio.StreamReader, auth_deadline: float) -> bytes | None:
        """Read the next frame's payload, or None when the connection is to be closed.

        Before AUTH, frames are small and the whole exchange has ``auth_timeout_s``; after it, each frame
        may take ``idle_timeout_s``. While the client's queued bytes are at their bound, nothing is read.
        """
        if not await self._wait_for_room(sess):
            return None
        authed = sess.session_id is not None
        limit = self.limits.max_frame_bytes if authed else self.preauth_max_frame_bytes
        loop = asyncio.get_running_loop()
        try:
            timeout = self.idle_timeout_s if authed else max(0.0, auth_deadline - loop.time())
            header = await asyncio.wait_for(reader.readexactly(HEADER), timeout)
            n = frame_length(header, limit)
            if not authed:
                timeout = max(0.0, auth_deadline - loop.time())
            return await asyncio.wait_for(reader.readexactly(n), timeout)
        except ProtocolError as exc:
            note = "" if authed else " before AUTH"
            self._send_error(sess, 0, exc.status, exc.message + note)
        except TimeoutError:
            if authed:
                self.stats["idle_closed"] += 1
                self._send_error(sess, 0, "TIMEOUT", f"idle for {self.idle_timeout_s} s: connection closed")
            else:
                self.stats["auth_timeouts"] += 1
                self._send_error(sess, 0, "UNAUTHORIZED", f"no AUTH within {self.auth_timeout_s} s of connecting")
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        return None

    async def _wait_for_room(self, sess: _Session) -> bool:
        """Back-pressure: wait until one more frame fits within ``max_queued_bytes``.

        Returns False if the connection closed meanwhile or made no progress for ``idle_timeout_s``.
        """
        while not sess.closed and sess.queued_bytes > 0:
            if sess.queued_bytes + self.limits.max_frame_bytes <= self.max_queued_bytes:
                return True
            sess.room.clear()
            try:
                await asyncio.wait_for(sess.room.wait(), self.idle_timeout_s)
            except TimeoutError:
                self.stats["idle_closed"] += 1
                log.warning("closing %s: %d bytes queued and no progress", sess.peer, sess.queued_bytes)
                return False
        return not sess.closed

    def _dispatch(self, sess: _Session, payload: bytes) -> bool:
        """Handle one frame; return False to close the connection."""
        msg_id = 0
        try:
            msg = decode_message(payload, self.limits, CLIENT_TYPES)
            msg_id = msg.id
            mtype, body = msg.type, msg.body
            if mtype == "HELLO":
                self._send(sess, "INFO", msg_id, encode_info(self._public_info()))
            elif mtype == "BYE":
                self._send(sess, "BYE", msg_id, {})
                return False
            elif mtype == "AUTH":
                return self._auth(sess, msg_id, body)
            elif sess.session_id is None:
                self._send_error(sess, msg_id, "UNAUTHORIZED", f"{mtype} requires AUTH first")
            elif mtype == "STATUS":
                self._send(sess, "STATUS_REPLY", msg_id, self._status_body())
            elif mtype in ("CONFIGURE", "SUBMIT"):
                if len(sess.pending) >= self.max_pending:
                    self._send_error(sess, msg_id, "BAD_REQUEST", f"more than {self.max_pending} pending work units")
                elif mtype == "CONFIGURE":
                    if set(body) != {"config"}:
                        raise ProtocolError("BAD_REQUEST", "CONFIGURE body must be {config}", msg_id)
                    cfg = decode_config(body["config"], self.limits, msg_id)
                    self._check_config_limits(cfg)
                    self._enqueue(sess, _WorkUnit("configure", msg_id, len(payload), config=cfg))
                else:
                    req = decode_submit(body, self.limits, msg_id)
                    self._enqueue(sess, _WorkUnit("submit", msg_id, len(payload), submit=req))
            else:  # pragma: no cover - decode_message only lets CLIENT_TYPES through
                self._send_error(sess, msg_id, "BAD_REQUEST", f"unexpected message type {mtype}")
        except ProtocolError as exc:
            self._send_error(sess, exc.msg_id or msg_id, exc.status, exc.message)
            return not exc.fatal
        except ChipError as exc:
            self._send_error(sess, msg_id, exc.status, str(exc))
        except Exception as exc:
            self.stats["internal_errors"] += 1
            log.exception("dispatch failed")
            self._send_error(sess, msg_id, "CHIP_ERROR", f"internal error: {type(exc).__name__}")
        return True

    def _auth(self, sess: _Session, msg_id: int, body: dict[str, Any]) -> bool:
        token = body.get("token")
        if set(body) != {"token"} or not isinstance(token, str):
            self._send_error(sess, msg_id, "BAD_REQUEST", "AUTH body must be {token: str}")
            return True
        wait = self._auth_limiter.retry_in(sess.host)
        if wait > 0:
            self.stats["refused"] += 1
            msg = f"too many failed AUTH attempts from {sess.host}; retry in {wait:.1f} s"
            self._send_error(sess, msg_id, "UNAUTHORIZED", msg)
            return False
        if hmac.compare_digest(token.encode(), self._token):
            self._auth_limiter.succeeded(sess.host)
            if sess.session_id is None:
                if self._authenticated() >= self.max_clients:
                    self.stats["refused"] += 1
                    self._send_error(sess, msg_id, "BAD_REQUEST", f"server full ({self.max_clients} clients)")
                    return False
                sess.session_id = secrets.token_hex(8)
            self._send(sess, "SESSION", msg_id, {"session_id": sess.session_id})
            return True
        sess.auth_failures += 1
        lock = self._auth_limiter.failed(sess.host)
        later = f"; AUTH from {sess.host} refused for the next {lock:.1f} s" if lock > 0 else ""
        self._send_error(sess, msg_id, "UNAUTHORIZED", "wrong token" + later)
        return sess.auth_failures < self.max_auth_failures

    def _public_info(self) -> ChipInfo:
        assert self._info is not None
        limits = dict(self._info.limits)
        limits.setdefault("max_batch", self.limits.max_batch)
        limits["max_batch"] = min(limits["max_batch"], self.limits.max_batch)
        limits["max_frame_bytes"] = self.limits.max_frame_bytes
        limits["max_array_elements"] = self.limits.max_array_elements
        limits["max_pending"] = self.max_pending
        return replace(self._info, limits=limits)

    def _check_config_limits(self, cfg: ChipConfig) -> None:
        assert self._info is not None
        lim = self._info.limits
        if "max_neurons" in lim and sum(cfg.layer_sizes) > lim["max_neurons"]:
            raise ProtocolError("BAD_REQUEST", f"config needs {sum(cfg.layer_sizes)} neurons > {lim['max_neurons']}")
        if "max_inputs" in lim and cfg.weights[0].shape[1] > lim["max_inputs"]:
            raise ProtocolError(
                "BAD_REQUEST", f"config has {cfg.weights[0].shape[1]} input channels > {lim['max_inputs']}"
            )

    def _status_body(self) -> dict[str, Any]:
        return {
            "queue_length": sum(len(s.pending) for s in self._sessions.values()),
            "clients": len(self._sessions),
            "uptime_s": time.monotonic() - self._started,
            "chip_id": self._info.chip_id if self._info else "",
            "work_units": self.stats["work_units"],
            "reinits": self.stats["reinits"],
        }

    # ------------------------------------------------------------------------------------------------
    # Scheduling
    # ------------------------------------------------------------------------------------------------
    def _enqueue(self, sess: _Session, unit: _WorkUnit) -> None:
        sess.pending.append(unit)
        sess.pending_bytes += unit.nbytes
        if not sess.in_rr:
            sess.in_rr = True
            self._rr.append(sess)
        assert self._work_event is not None
        self._work_event.set()

    async def _scheduler(self) -> None:
        assert self._work_event is not None
        while not self._stopping:
            while not self._rr and not self._stopping:
                self._work_event.clear()
                await self._work_event.wait()
            if self._stopping:
                break
            sess = self._rr.popleft()
            if sess.closed or not sess.pending:
                sess.in_rr = False
                continue
            unit = sess.pending.popleft()
            if sess.pending:
                self._rr.append(sess)
            else:
                sess.in_rr = False
            try:
                await self._execute(sess, unit)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # pragma: no cover - defensive
                self.stats["internal_errors"] += 1
                log.exception("work unit failed")
                self._send_error(sess, unit.msg_id, "CHIP_ERROR", f"internal error: {type(exc).__name__}")
            finally:
                if not sess.closed:  # closing a session drops its queued bytes at once
                    sess.freed(unit.nbytes, outgoing=False)

    async def _on_chip(
        self, fn: Callable[[], Any], deadline: float, on_timeout: Callable[[], None]
    ) -> tuple[bool, Any]:
        """Run ``fn`` in the chip thread; return (timed_out, value).

        On timeout, ``on_timeout`` is called at once (to answer the client), then the scheduler waits until
        the chip call has returned: there is one chip, and the next unit must not overlap this one.
        """
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, fn)
        # asyncio.wait (unlike wait_for on 3.11) never swallows a cancellation and never cancels ``fut``
        done, _ = await asyncio.wait({fut}, timeout=deadline)
        if fut in done:
            return False, fut.result()
        self.stats["timeouts"] += 1
        self._chip_hash = None  # state unknown: force a reinit for the next unit
        on_timeout()
        await asyncio.wait({fut})
        if not fut.cancelled():
            fut.exception()  # retrieve it: the chip error of a timed-out unit is not reported
        self._chip_hash = None
        return True, None

    async def _execute(self, sess: _Session, unit: _WorkUnit) -> None:
        chip = self._chip
        assert chip is not None and self._info is not None
        if unit.kind == "configure":
            await self._execute_configure(sess, unit, chip)
        else:
            await self._execute_run(sess, unit, chip)

    async def _execute_configure(self, sess: _Session, unit: _WorkUnit, chip: Chip) -> None:
        """Write a session's configuration to the chip and answer CONFIGURED (or an error)."""
        assert unit.config is not None
        cfg: ChipConfig = unit.config

        def do_configure() -> tuple[str, int]:
            h = chip.configure(cfg)
            return h, int(getattr(chip, "last_written_entries", -1))

        def configure_timed_out() -> None:
            msg = f"configure exceeded the deadline of {self.deadline_s} s"
            self._send_error(sess, unit.msg_id, "TIMEOUT", msg)

        try:
            timed_out, value = await self._on_chip(do_configure, self.deadline_s, configure_timed_out)
        except Exception as exc:
            self._chip_hash = None
            self._send_error(sess, unit.msg_id, *_status_of(exc))
            return
        if timed_out:
            return
        h, written = value
        self.stats["configures"] += 1
        self._chip_hash = h
        sess.config, sess.config_hash = cfg, h
        self._send(sess, "CONFIGURED", unit.msg_id, {"config_hash": h, "written_entries": written})

    def _submit_error(self, sess: _Session, req: SubmitRequest) -> tuple[str, str] | None:
        """Return the status and message of why a SUBMIT cannot run in this session (None when it can)."""
        assert self._info is not None
        if req.chip_id is not None and req.chip_id != self._info.chip_id:
            return "CHIP_MISMATCH", f"client expects chip {req.chip_id!r}, this server has {self._info.chip_id!r}"
        cfg = sess.config
        if cfg is None or sess.config_hash is None:
            return "BAD_REQUEST", "no configuration: send CONFIGURE first"
        if req.config_hash != sess.config_hash:
            return "BAD_REQUEST", f"unknown configuration hash {req.config_hash[:16]!r}; send CONFIGURE first"
        if req.inputs.shape[1] != cfg.n_inputs:
            return "BAD_REQUEST", f"inputs: expected {cfg.n_inputs} columns, got {req.inputs.shape[1]}"
        if req.layers is not None and any(i >= cfg.n_layers for i in req.layers):
            return "BAD_REQUEST", f"record.layers: the configuration has {cfg.n_layers} layers"
        return None

    async def _execute_run(self, sess: _Session, unit: _WorkUnit, chip: Chip) -> None:
        """Run a SUBMIT on the chip (rewriting the session's configuration if another is on it); answer RESULT."""
        req = unit.submit
        assert req is not None and self._info is not None

        def fail(status: str, message: str) -> None:
            self._send(sess, "RESULT", unit.msg_id, encode_result(status, message=message))

        problem = self._submit_error(sess, req)
        if problem is not None:
            fail(*problem)
            return
        cfg, want = sess.config, sess.config_hash
        assert cfg is not None and want is not None
        reinit = self._chip_hash != want
        inputs = req.inputs

        def do_run() -> RunResult:
            commit = 0.0
            if reinit:
                t0 = time.perf_counter()
                h = chip.configure(cfg)
                commit = time.perf_counter() - t0
                if h != want:
                    raise ChipMismatch(f"reinit gave configuration hash {h[:16]}, expected {want[:16]}")
            result = chip.run(inputs)
            result.timing.commit_s += commit
            return result

        deadline = self.deadline_s if req.deadline_s is None else min(self.deadline_s, req.deadline_s)
        try:
            timed_out, result = await self._on_chip(
                do_run, deadline, lambda: fail("TIMEOUT", f"work unit exceeded the deadline of {deadline} s")
            )
        except Exception as exc:
            if reinit:
                self._chip_hash = None
            fail(*_status_of(exc))
            return
        if reinit:
            self.stats["reinits"] += 1
        if timed_out:
            return
        self._chip_hash = want
        self.stats["work_units"] += 1
        self._send_result(sess, unit.msg_id, req.layers, cfg, result, fail)

    def _send_result(
        self,
        sess: _Session,
        msg_id: int,
        layers: list[int] | None,
        cfg: ChipConfig,
        result: object,
        fail: Callable[[str, str], None],
    ) -> None:
        """Answer RESULT with the run's times, or CHIP_ERROR for a result the backend got wrong."""
        if not isinstance(result, RunResult) or len(result.times) != cfg.n_layers:
            self.stats["internal_errors"] += 1
            fail("CHIP_ERROR", "backend returned a malformed result")
            return
        try:
            body = encode_result("OK", result, layers=layers)
        except (ProtocolError, IndexError, TypeError, ValueError) as exc:
            fail("CHIP_ERROR", f"cannot encode the result: {exc}")
            return
        self._send(sess, "RESULT", msg_id, body)
