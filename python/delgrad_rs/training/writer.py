"""The training loop's file writes in the background, and Ctrl-C that stops at an epoch boundary."""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any


class GracefulStop:
    """Ctrl-C during training: stop at the next epoch boundary; a second Ctrl-C stops at once.

    The first press asks the loop to stop after the current epoch (it then checkpoints and raises
    KeyboardInterrupt). Handling the signal here, rather than letting KeyboardInterrupt land
    anywhere, keeps it out of the middle of a checkpoint or metrics write (libraries that check
    signals themselves could otherwise raise it twice). Only the main thread can install handlers;
    elsewhere nothing changes.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)


def _lower_priority() -> None:
    """Give the calling thread the lowest CPU priority (Linux; elsewhere nothing).

    The writer thread then takes a core only when the training's threads leave one idle, instead
    of preempting them: a preempted core thread holds up the whole parallel step.
    """
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:  # not permitted (e.g. in a sandbox): run at normal priority
            pass


class BackgroundWriter:
    """Runs the loop's file writes in order on one background thread while the next epoch trains.

    The jobs only read immutable snapshots (:class:`~delgrad_rs.training.TrainState`, metric
    rows). At most two wait at a time (``submit`` blocks beyond). ``close`` waits for every job;
    an exception of a job is raised by the next ``submit`` or ``close`` (later jobs are skipped).
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job`` after the ones already submitted."""
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="delgrad-writer", daemon=True)
            self._thread.start()
        self._jobs.put(job)

    def close(self) -> None:
        """Wait for every submitted job; raise the first exception of one."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            e, self._error = self._error, None
            raise e

    def _work(self) -> None:
        _lower_priority()
        while (job := self._jobs.get()) is not None:
            if self._error is None:
                try:
                    job()
                except BaseException as e:  # handed to the training thread
                    self._error = e


__all__ = ["BackgroundWriter", "GracefulStop"]
