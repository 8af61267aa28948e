"""Background capture: always the newest frame, signal-state reports and reconnection.

:class:`CaptureThread` reads a :class:`~or_assist.video.sources.base.FrameSource` in a
daemon thread as fast as the source delivers and keeps **one** frame: the newest.
A consumer that is slower than the source (registration, drawing) never works on a
backlog; the frames it missed are counted as dropped. The thread watches the signal
(no frames, black frames, a frozen stream, a size change), reports every state change
through ``on_state(state, message)`` and reopens a lost source with back-off.

Examples
--------
>>> from or_assist.video.sources.spec import open_source
>>> with CaptureThread(open_source("/dev/video0"), on_state=print) as cap:   # doctest: +SKIP
...     frame = cap.latest(timeout_s=1.0)
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable

import numpy as np

from or_assist.errors import InputError
from or_assist.video.sources.base import Frame, FrameSource, SignalState

__all__ = ["CaptureThread"]

_log = logging.getLogger(__name__)

_IDLE_S = 0.005  # pause after a read that returned nothing at once (no busy loop)


class CaptureThread:
    """Run a frame source in a background thread, keeping only the newest frame.

    Parameters
    ----------
    source : FrameSource
        Opened by the thread (and reopened after a loss); closed when it stops.
    on_state : callable(SignalState, str), optional
        Called from the capture thread on every state change, and with the current
        state for reports that are not a change (``"frame size changed from 640x480
        to 1024x768"``, the reason of a failed reconnection is not repeated). Keep it
        short; exceptions it raises are logged and ignored.
    black_level : int
        Grey level (0-255) at or below which a pixel counts as black.
    black_fraction : float
        A frame is BLACK when at least this fraction of its pixels is black.
    frozen_after_s : float or None
        Report FROZEN after bit-identical frames for this long; ``None`` turns the
        check off. FROZEN is a report, not an error: a digital last-image-hold output
        may legitimately repeat a held image exactly (an analogue path adds noise).
    no_signal_after_s : float
        Report NO_SIGNAL, close and reopen the source when no frame came for this long
        (or at once when the source says its stream broke).
    reconnect_backoff_s : sequence of float
        Waits before successive reopen attempts; the last one repeats.
    reconnect : bool
        Reopen a lost source (default). When False the thread stops at NO_SIGNAL.
    no_signal_report_s : float or None
        While no frame comes (a source that cannot be opened, a lost stream), report
        NO_SIGNAL with ``"no signal from <source> for <N> s, retrying"`` every this many
        seconds (also when the state did not change), so a display and a log keep
        saying what is going on; ``None`` turns these reports off.
    """

    def __init__(self, source: FrameSource, on_state: Callable[[SignalState, str], None] | None = None, *,
                 black_level: int = 16, black_fraction: float = 0.99, frozen_after_s: float | None = 10.0,
                 no_signal_after_s: float = 2.0, reconnect_backoff_s=(0.5, 1.0, 2.0, 4.0, 5.0),
                 reconnect: bool = True, no_signal_report_s: float | None = 5.0):
        if not isinstance(source, FrameSource):
            raise InputError(f"expected a FrameSource (see or_assist.video.sources.spec.open_source), "
                             f"got {type(source).__name__}", "source")
        if not 0 <= black_level <= 255:
            raise InputError(f"expected a grey level 0-255, got {black_level!r}", "black_level")
        if not 0 < black_fraction <= 1:
            raise InputError(f"expected a fraction in (0, 1], got {black_fraction!r}", "black_fraction")
        if frozen_after_s is not None and not frozen_after_s > 0:
            raise InputError(f"expected seconds > 0 or None, got {frozen_after_s!r}", "frozen_after_s")
        if not no_signal_after_s > 0:
            raise InputError(f"expected seconds > 0, got {no_signal_after_s!r}", "no_signal_after_s")
        if no_signal_report_s is not None and not no_signal_report_s > 0:
            raise InputError(f"expected seconds > 0 or None, got {no_signal_report_s!r}", "no_signal_report_s")
        backoff = tuple(float(b) for b in reconnect_backoff_s)
        if not backoff or min(backoff) < 0:
            raise InputError(f"expected one or more waits >= 0 s, got {reconnect_backoff_s!r}",
                             "reconnect_backoff_s")
        self.source = source
        self.on_state = on_state
        self.black_level = int(black_level)
        self.black_fraction = float(black_fraction)
        self.frozen_after_s = None if frozen_after_s is None else float(frozen_after_s)
        self.no_signal_after_s = float(no_signal_after_s)
        self.reconnect_backoff_s = backoff
        self.reconnect = bool(reconnect)
        self.no_signal_report_s = None if no_signal_report_s is None else float(no_signal_report_s)

        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._slot: Frame | None = None       # newest frame not yet taken
        self._newest: Frame | None = None     # newest frame, taken or not
        self._state = SignalState.CONNECTING
        self._message = ""
        self._captured = 0
        self._dropped = 0
        self._taken = 0
        self._reconnects = 0
        self._attempts = 0
        self._size_changes = 0
        self._times = collections.deque(maxlen=30)
        self._size: tuple[int, int] | None = None
        self._prev_image: np.ndarray | None = None
        self._same_since: float | None = None
        self._silent_since = time.monotonic()   # start, or the last frame
        self._next_report_t: float | None = None
        self._no_signal_reports = 0
        self._problem = ""                      # why the last open or read failed

    # ------------------------------------------------------------------ public
    def start(self) -> "CaptureThread":
        """Start capturing (returns at once; the source is opened in the thread)."""
        if self._thread is not None:
            raise InputError("this capture thread was already started; make a new one", "CaptureThread")
        self._thread = threading.Thread(target=self._run, name=f"capture {self.source.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 1.0) -> bool:
        """Stop the thread and close the source; True when it ended within ``timeout_s``.

        A backend call that blocks (an open or read timeout) can keep the daemon thread
        alive a little longer; it closes the source as soon as that call returns.
        """
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def latest(self, timeout_s: float | None = None) -> Frame | None:
        """Take the newest frame not taken before.

        Parameters
        ----------
        timeout_s : float, optional
            Wait up to this long for a new frame; ``None`` or 0: do not wait.

        Returns
        -------
        Frame or None
            The newest frame (older ones that were never taken are dropped), or None
            when no new frame came in time.
        """
        deadline = None if not timeout_s else time.monotonic() + float(timeout_s)
        with self._cond:
            while self._slot is None and deadline is not None and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self._thread is not None and not self._thread.is_alive()):
                    break
                self._cond.wait(min(remaining, 0.1))
            frame, self._slot = self._slot, None
            if frame is not None:
                self._taken += 1
            return frame

    def peek(self) -> Frame | None:
        """The newest frame whether or not it was taken (for redrawing); never waits."""
        with self._cond:
            return self._newest

    @property
    def state(self) -> SignalState:
        """The current signal state."""
        return self._state

    @property
    def running(self) -> bool:
        """True while the capture thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def stats(self) -> dict:
        """Counters: ``frames_captured``, ``frames_dropped`` (captured, then replaced by a
        newer frame before anyone took them), ``frames_taken``, ``reconnects``
        (successful), ``reconnect_attempts``, ``size_changes``, ``state`` (SignalState),
        ``message`` (the last report), ``fps_measured`` (over the last 30 frames),
        ``width``, ``height``, ``last_frame_age_s`` (None before the first frame) and
        ``no_signal_reports`` (periodic "no signal ... retrying" reports so far) and
        ``problem`` (why the last open or read failed, without the source's name; "" when
        none failed)."""
        with self._cond:
            times = list(self._times)
            newest = self._newest
            fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
            return {"frames_captured": self._captured, "frames_dropped": self._dropped,
                    "frames_taken": self._taken, "reconnects": self._reconnects,
                    "reconnect_attempts": self._attempts, "size_changes": self._size_changes,
                    "state": self._state, "message": self._message, "fps_measured": fps,
                    "width": self._size[0] if self._size else 0, "height": self._size[1] if self._size else 0,
                    "last_frame_age_s": None if newest is None else time.monotonic() - newest.timestamp_s,
                    "no_signal_reports": self._no_signal_reports, "problem": self._problem}

    def __enter__(self) -> "CaptureThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ thread
    def _report(self, state: SignalState, message: str, force: bool = False) -> None:
        with self._cond:
            changed = state is not self._state
            self._state, self._message = state, message
        if (changed or force) and self.on_state is not None:
            try:
                self.on_state(state, message)
            except Exception:  # a consumer's bug must not stop capture
                _log.exception("on_state callback failed")

    def _wait_backoff(self, attempt: int) -> None:
        """Wait the back-off of this attempt, making the periodic no-signal reports on time."""
        until = time.monotonic() + self.reconnect_backoff_s[min(attempt, len(self.reconnect_backoff_s) - 1)]
        while not self._stop.is_set():
            self._report_no_signal()
            now = time.monotonic()
            if now >= until:
                return
            step = until - now
            if self._next_report_t is not None:
                step = min(step, max(self._next_report_t - now, 0.0) + 1e-3)
            self._stop.wait(step)

    def _report_no_signal(self) -> None:
        """The periodic "no signal from ... for N s, retrying" report, when one is due."""
        if self.no_signal_report_s is None or not self.reconnect:
            return
        now = time.monotonic()
        if self._next_report_t is None:
            self._next_report_t = self._silent_since + self.no_signal_report_s
        if now < self._next_report_t:
            return
        silent_s = now - self._silent_since
        self._next_report_t = now + self.no_signal_report_s
        self._no_signal_reports += 1
        self._report(SignalState.NO_SIGNAL, f"no signal from {self.source.name} for {silent_s:.0f} s, retrying",
                     force=True)

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            try:
                self.source.close()
            except Exception:
                _log.exception("closing %s failed", self.source.name)
            with self._cond:
                self._cond.notify_all()

    def _loop(self) -> None:
        name = self.source.name
        attempt = 0
        ever_opened = False
        recovering = False          # a frame after this counts as a reconnection
        last_frame_t = time.monotonic()
        self._silent_since, self._next_report_t = last_frame_t, None

        def retry() -> bool:
            """After a failure: False when not reconnecting, else wait the back-off."""
            nonlocal attempt, recovering
            if not self.reconnect:
                return False
            self._wait_backoff(attempt)
            attempt += 1
            recovering = True
            return True

        while not self._stop.is_set():
            if not self.source.is_open:
                if ever_opened or attempt > 0:
                    self._attempts += 1
                    self._report(SignalState.RECONNECTING, f"reopening {name} (attempt {max(attempt, 1)})")
                try:
                    info = self.source.open()
                except Exception as exc:  # InputError from the source, or a backend failure
                    why = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
                    if why.startswith(name + ": "):
                        why = why[len(name) + 2:]
                    self._problem = why
                    state = SignalState.NO_SIGNAL if self._state is SignalState.CONNECTING else self._state
                    self._report(state, f"cannot open {name}: {why}")
                    if not retry():
                        return
                    continue
                ever_opened = True
                last_frame_t = time.monotonic()
                self._message = f"opened {info.summary()}"
            try:
                frame = self.source.read()
            except Exception as exc:
                self._problem = f"reading failed: {type(exc).__name__}: {exc}"
                self._report(SignalState.ERROR, f"reading {name} failed: {type(exc).__name__}: {exc}")
                self.source.close()
                if not retry():
                    return
                continue
            now = time.monotonic()
            if frame is None:
                if self.source.ended:
                    self._report(SignalState.ENDED, f"{name}: end of the recording")
                    return
                silent_s = now - last_frame_t
                waits = getattr(self.source, "pushed", False)   # a DICOM node: silence until the C-arm sends
                if self.source.lost or (silent_s > self.no_signal_after_s and not waits):
                    why = "the stream broke or timed out" if self.source.lost else f"no frame for {silent_s:.1f} s"
                    self._problem = why
                    self._report(SignalState.NO_SIGNAL, f"{name}: {why}")
                    self.source.close()
                    if not retry():
                        return
                else:
                    self._stop.wait(_IDLE_S)
                continue
            last_frame_t = now
            self._silent_since, self._next_report_t = now, None
            attempt = 0
            if recovering:
                self._reconnects += 1
                recovering = False
            self._take_in(frame)

    def _take_in(self, frame: Frame) -> None:
        image = frame.image
        size = (frame.width, frame.height)
        size_message = None
        if self._size is not None and size != self._size:
            size_message = (f"frame size changed from {self._size[0]}x{self._size[1]} "
                            f"to {size[0]}x{size[1]}")
            self._size_changes += 1
            self._prev_image = None
        self._size = size

        step = max(1, min(image.shape[:2]) // 128)
        sample = image[::step, ::step]
        if sample.ndim == 3:
            sample = sample.max(axis=2)
        black = np.count_nonzero(sample <= self.black_level) >= self.black_fraction * sample.size

        same = self._prev_image is not None and np.array_equal(self._prev_image, image)
        self._prev_image = image
        if not same:
            self._same_since = frame.timestamp_s
        frozen_s = 0.0 if self._same_since is None else frame.timestamp_s - self._same_since
        frozen = self.frozen_after_s is not None and frozen_s >= self.frozen_after_s

        with self._cond:
            if self._slot is not None:
                self._dropped += 1
            self._slot = frame
            self._newest = frame
            self._captured += 1
            self._times.append(frame.timestamp_s)
            self._cond.notify_all()

        if black:
            self._report(SignalState.BLACK, f"{self.source.name}: black frames (no video on the input?)")
        elif frozen:
            self._report(SignalState.FROZEN, f"{self.source.name}: identical frames for {frozen_s:.1f} s")
        else:
            self._report(SignalState.LIVE, f"{self.source.name}: {size[0]}x{size[1]}")
        if size_message is not None:
            self._report(self._state, size_message, force=True)
