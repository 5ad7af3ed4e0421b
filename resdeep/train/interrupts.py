"""Ctrl-C, SIGTERM and SLURM's SIGUSR1 become a request to stop at the next step boundary.

The loop then writes a resumable checkpoint before exiting, so an interrupted run loses at
most one step. A second Ctrl-C stops at once (the last checkpoint on disk is still whole).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

HANDLED = tuple(
    s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGUSR1", None)) if s is not None
)


class StopRequest:
    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.signal = signum

    def pass_on(self) -> None:
        """Hand the signal to whoever handled it before us (submitit requeues the job on it)."""
        previous = self._previous.get(self.signal) if self.signal is not None else None
        if callable(previous) and previous not in (signal.default_int_handler,):
            previous(self.signal, None)

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""
