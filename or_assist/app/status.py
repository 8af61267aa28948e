"""The OR display's status bar and case line.

The status bar says the video signal (first, stretching: a long no-signal message is cut
at its end), the registration state of the shot on screen (:func:`registration_state`:
the only sign besides the panel that what is shown is stale), the last shot-to-overlay
latency and the display rate. The case line beside the panel says the shots and
captures, a message for 2.5 s (captured, not captured and why), or, persistently, that
the case log stopped recording.
"""

from __future__ import annotations

from PyQt5 import QtGui, QtWidgets

from or_assist.app import theme
from or_assist.app.panel import label

__all__ = ["StatusBar", "registration_state"]


def registration_state(r, *, image_changing: bool, matching: bool) -> tuple[str, str]:
    """The status bar's registration text and colour for the shot on screen.

    Parameters
    ----------
    r : ShotResult or None
        The result of the shot on screen (None while it is matched, or before any).
    image_changing : bool
        The video no longer shows that shot.
    matching : bool
        A shot is being matched to the CT (on screen without its result, or waiting).

    Returns
    -------
    text : str
    colour : str
        Hex colour.
    """
    if image_changing:
        return "image changing", theme.DIM
    if matching:
        return "registering...", theme.AMBER
    if r is None:
        return "waiting for a shot", theme.DIM
    if r.registered:
        est = r.registration.estimated_error_mm
        return (f"registered ({r.registration.similarity:.2f}" + (f", ±{est:.1f} mm)" if est is not None else ")"),
                theme.GREEN)
    return "NOT REGISTERED", theme.RED


class StatusBar:
    """The labels of the status bar (module doc), put into ``bar``, and the case line.

    Attributes ``signal_label``, ``fps_label``, ``registration_label``, ``latency_label``
    (in the bar) and ``case_label`` (the window places it beside the panel).

    Parameters
    ----------
    bar : QStatusBar
    """

    def __init__(self, bar: QtWidgets.QStatusBar):
        bar.setSizeGripEnabled(False)
        self.signal_label = label("video: connecting", theme.STATUS_PX)
        self.fps_label = label("-- fps", theme.STATUS_PX)
        self.registration_label = label("waiting for a shot", theme.STATUS_PX, theme.DIM)
        self.latency_label = label("latency --", theme.STATUS_PX)
        for w, widest in ((self.signal_label, "video: RECONNECTING"), (self.fps_label, "100 fps"),
                          (self.registration_label, "registered (0.00, ±0.0 mm)"),
                          (self.latency_label, "latency 10.0 s")):
            w.setMinimumWidth(QtGui.QFontMetrics(w.font()).horizontalAdvance(widest) + 24)
        # the video state first and stretching: a long no-signal message is cut at its end
        self.signal_label.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Preferred)
        bar.addWidget(self.signal_label, 1)
        for w in (self.registration_label, self.latency_label, self.fps_label):
            bar.addPermanentWidget(w)
        # the case line (captures, faults) beside the panel, where it has room at 32 px
        self.case_label = label("", theme.STATUS_PX, theme.DIM, bold=False, wrap=True)

    def show(self, *, signal: tuple[str, str], fps: float, registration: tuple[str, str],
             latency_s: float | None, log_fault: str | None, flash: str | None, shots: int, captures: int,
             notice: str | None = None) -> None:
        """Update every text.

        Parameters
        ----------
        signal : (state, message)
            The capture thread's signal state ('live', 'frozen', 'no_signal', ...) and message.
        fps : float
            Frames drawn per second.
        registration : (text, colour)
            From :func:`registration_state`.
        latency_s : float or None
            The last shot-to-overlay latency (None: unchanged).
        log_fault : str or None
            Why the case log stopped recording (shown persistently, in red).
        flash : str or None
            A message shown while it lasts.
        shots, captures : int
            Shown otherwise.
        notice : str or None
            A standing notice of the case (e.g. registrations running out of their time
            budget, :mod:`or_assist.live.time_budget`): shown in amber instead of the counts.
        """
        state, message = signal
        ok = state in ("live", "frozen")
        self.signal_label.setText(f"video: {state.upper()}" + (f" ({message})" if message and not ok else ""))
        self.signal_label.setStyleSheet(f"color: {theme.GREEN if ok else theme.RED};")
        self.fps_label.setText(f"{fps:.0f} fps")
        text, colour = registration
        self.registration_label.setText(text)
        self.registration_label.setStyleSheet(f"color: {colour};")
        if latency_s is not None:
            self.latency_label.setText(f"latency {latency_s:.1f} s")
        if log_fault is not None:
            # Persistent: the guidance goes on, but nothing is recorded any more.
            self.case_label.setText("CASE LOG NOT RECORDING: " + log_fault)
            self.case_label.setStyleSheet(f"color: {theme.RED}; font-weight: bold;")
        elif flash is not None or notice is not None:
            self.case_label.setText(flash if flash is not None else notice)
            self.case_label.setStyleSheet(f"color: {theme.AMBER};")
        else:
            self.case_label.setText(f"shots {shots}, captures {captures}")
            self.case_label.setStyleSheet(f"color: {theme.DIM};")

    def texts(self) -> dict:
        """``signal``, ``fps``, ``registration``, ``latency``, ``case``."""
        return {"signal": self.signal_label.text(), "fps": self.fps_label.text(),
                "registration": self.registration_label.text(), "latency": self.latency_label.text(),
                "case": self.case_label.text()}
