"""How a headless run is driven: the newest exposure waiting for registration, and stopping on a signal.

:class:`NewestExposure` registers one exposure at a time in a thread while the shot
detector keeps seeing every frame of a live source (only the newest exposure waits);
:class:`SignalStop` turns Ctrl+C and SIGTERM into a request to stop after the shot in hand.
Used by :func:`or_assist.live.run.run_headless`.
"""

from __future__ import annotations

import signal
import threading
from typing import Callable

__all__ = ["STOP_SIGNALS", "NewestExposure", "SignalStop"]


class NewestExposure:
    """The registration side of a headless run on a live source: one exposure at a time
    in a thread, the newest one waiting (:meth:`submit` returns a waiting exposure that a
    newer one replaced), so the shot detector sees every frame meanwhile."""

    def __init__(self, handle: Callable[[dict], bool]):
        self._handle = handle
        self._cond = threading.Condition()
        self._slot: dict | None = None
        self._closing = False
        self.error: BaseException | None = None
        self.finished = False      # the handler asked to stop (max_shots)
        self._thread = threading.Thread(target=self._run, name="headless registration", daemon=True)
        self._thread.start()

    def submit(self, job: dict) -> dict | None:
        """Queue ``job``; returns the waiting job it replaced (None when none)."""
        with self._cond:
            old, self._slot = self._slot, job
            self._cond.notify_all()
            return old

    def waiting(self) -> bool:
        """True when an exposure waits (the one under way need not try further views)."""
        with self._cond:
            return self._slot is not None

    @property
    def stopped(self) -> bool:
        """True once the handler failed or asked to stop."""
        return self.error is not None or self.finished

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._slot is None and not self._closing:
                    self._cond.wait(0.2)
                if self._slot is None:
                    return
                job, self._slot = self._slot, None
            try:
                if self._handle(job):
                    self.finished = True
            except BaseException as exc:  # re-raised in the caller's thread after close()
                self.error = exc
            if self.stopped:
                return

    def close(self, drain: bool = True) -> None:
        """Finish the exposure under way and (``drain``) the waiting one, then end."""
        with self._cond:
            self._closing = True
            if not drain:
                self._slot = None
            self._cond.notify_all()
        self._thread.join()


#: Signals that stop a run cleanly, with their names for the case log.
STOP_SIGNALS = {"SIGINT": "Ctrl+C (SIGINT)", "SIGTERM": "SIGTERM"}


class SignalStop:
    """Ctrl+C and SIGTERM ask a headless run to stop after the shot in hand (a second
    Ctrl+C raises :class:`KeyboardInterrupt`); installed only in the main thread, and
    :meth:`restore` puts the previous handlers back."""

    def __init__(self, log):
        self.stopped_by: str | None = None
        self._log = log
        self._previous = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for name in STOP_SIGNALS:
            sig = getattr(signal, name)
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, _frame) -> None:
        name = STOP_SIGNALS.get(signal.Signals(signum).name, signal.Signals(signum).name)
        if self.stopped_by is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.stopped_by is None:
            self.stopped_by = name
            self._log(f"{name}: stopping after the shot in hand (Ctrl+C again: at once)")

    def restore(self) -> None:
        """Put the previous handlers back."""
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous = {}
