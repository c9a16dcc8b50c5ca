"""Helpers shared by the delgrad-hw tests: the test token, a raw protocol client, a free loopback
port, and small chip-in-the-loop training configurations."""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from typing import Any

import polars as pl
from delgrad_hw.protocol import HEADER, SERVER_TYPES, Message, decode_message, encode_frame, frame_length
from delgrad_hw.training import ChipBackend

from delgrad_rs.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "configs"

TOKEN = "5f0c2a9e41d37b86e1a4c09d2b7f3e58"  # 128 bits, hex: strong enough for a server


class RawClient:
    """Minimal blocking protocol client for tests (no retries, no validation)."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.seq = 0

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_payload(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def send(self, mtype: str, body: dict[str, Any] | None = None, msg_id: int | None = None) -> int:
        if msg_id is None:
            self.seq += 1
            msg_id = self.seq
        self.sock.sendall(encode_frame(Message(mtype, msg_id, body or {})))
        return msg_id

    def _exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("closed")
            buf += chunk
        return bytes(buf)

    def recv(self) -> Message:
        n = frame_length(self._exact(HEADER))
        return decode_message(self._exact(n), allowed_types=SERVER_TYPES)

    def frame(self, mtype: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        """Next sequence number and the encoded frame (for pipelining several frames in one write)."""
        self.seq += 1
        return self.seq, encode_frame(Message(mtype, self.seq, body or {}))

    def call(self, mtype: str, body: dict[str, Any] | None = None) -> Message:
        self.send(mtype, body)
        return self.recv()

    def is_closed(self, timeout: float = 2.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def small_cfg(name: str = "hwaware_WA", epochs: int = 2) -> Any:
    """Return the example config ``name`` shortened to ``epochs`` epochs on one thread."""
    cfg = load_config(CONFIGS / f"{name}.toml")
    cfg.training.epochs = epochs
    cfg.training.threads = 1
    cfg.hardware.chip_id = "train-chip"
    return cfg


def backend_for(chip: Any, cfg: Any) -> ChipBackend:
    """Return a chip-in-the-loop backend on ``chip`` with the MSE loss of ``cfg``."""
    return ChipBackend(chip, input_repeat=cfg.hardware.input_repeat, loss={"loss": "mse", "delta": cfg.loss.delta})


def metrics(df: pl.DataFrame) -> pl.DataFrame:
    """Return the metrics without the wall time (which differs between runs)."""
    return df.drop("wall_time")
