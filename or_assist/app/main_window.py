"""The OR display's main window: live shot with the plan, virtual view, deviation panel, status.

Layout (dark, for reading from 1-2 m): the live video large on the left with the
guidance overlay as a separate layer (opacity adjustable); on the right the virtual
view of the active implant and view, the selector, the deviation panel (big numbers,
the cue colour, the correction in words), the C-arm positioning hint; a status bar with
the video signal, display rate, registration state and shot-to-overlay latency.

The display always shows one shot: the one on screen. When a new shot is detected the
panel switches to it at once (in the same event-loop turn): the previous shot's numbers,
cue colour, warnings and outline go, and the panel says the new shot is being matched
to the CT until its result comes. While the image changes (the C-arm is shooting or
moving) the previous numbers are greyed and labelled with the shot they belong to. One
state wins the coloured headline (:func:`~or_assist.live.wording.headline`): a safety
warning is never shown beside green. Reasons are in plain words
(:func:`~or_assist.live.wording.plain_reason`); the case log keeps the technical ones.

The overlay of a shot is shown only while the video still shows that shot and only
when it was registered with confidence; otherwise the panel says NOT REGISTERED in
red, and :func:`~or_assist.guidance.overlay.draw_overlay` draws no plan. Capture
(Space) records the shot on screen, registered or not; pressed while that shot is still
being matched, it records the shot when its result comes.

Keys (:data:`KEYS`; a foot pedal that sends keys works): Right / PageDown next
implant, Left / PageUp previous, V next view, Space / C capture, O overlay on/off,
+ / - overlay opacity, F / F11 full screen, Esc leave full screen, Ctrl+Q quit (the
case is closed).

Longer than 400 lines because :class:`MainWindow` is one Qt window (layout, keys, which
shot is on screen and what the panel shows for it, capture, stopping); its logic lives in
live/ (the wording and the headline in :mod:`or_assist.live.wording`) and guidance/.
"""

from __future__ import annotations

import collections
import sys
import time

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtGui, QtWidgets

from or_assist.app import theme
from or_assist.app.workers import JobQueueWorker, LatestJobWorker, Selection, VideoWorker
from or_assist.core.vocabulary import SIJF_VIEWS
from or_assist.guidance.cues import CueThresholds, judged_apex_mm
from or_assist.guidance.deviation import END_ON_FORESHORTENING
from or_assist.live.wording import headline, plain_reason, plain_warning

__all__ = ["KEYS", "MainWindow", "overlay_layer"]

KEYS = {
    "next_implant": ("Right", "PgDown"),
    "previous_implant": ("Left", "PgUp"),
    "next_view": ("V",),
    "capture": ("Space", "C"),
    "toggle_overlay": ("O",),
    "opacity_up": ("+", "="),
    "opacity_down": ("-",),
    "full_screen": ("F", "F11"),
    "leave_full_screen": ("Esc",),
    "quit": ("Ctrl+Q",),
}


def overlay_layer(overlay_bgr: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """The overlay as its own RGBA layer: opaque where it differs from the frame.

    Parameters
    ----------
    overlay_bgr : (H, W, 3) uint8
        The frame with the overlay drawn on it.
    frame : (H, W) uint8
        The frame alone.

    Returns
    -------
    (H, W, 4) uint8 ndarray, RGBA
    """
    drawn = np.any(overlay_bgr != frame[:, :, None], axis=2) if overlay_bgr.shape[:2] == frame.shape else \
        np.ones(overlay_bgr.shape[:2], bool)
    out = np.empty(overlay_bgr.shape[:2] + (4,), np.uint8)
    out[..., :3] = overlay_bgr[..., ::-1]
    out[..., 3] = drawn.view(np.uint8) * 255
    return out


def _number_html(value: str, unit: str, colour: str) -> str:
    """A big number with a smaller unit (rich text)."""
    return (f"<span style='font-size:{theme.NUMBER_PX}px; color:{colour}'>{value}</span>"
            f"<span style='font-size:{theme.TEXT_PX}px; color:{colour}'> {unit}</span>")


def _main_numbers(r, thresholds=None) -> tuple[float | None, float | None, str]:
    """``(mm, deg, kind)`` the panel shows big for a result: with a ``deviation_3d``, the
    two-view apex deviation the 3-D cue judges (:func:`~or_assist.guidance.cues.judged_apex_mm`:
    at the planned depth while the pin is short of it) and the angle; else the shot's 2-D
    tip offset and angle, each only where it was seen (no offset from an unseen tip, no
    angle of a pin seen end-on)."""
    if r is None or not r.registered:
        return None, None, ""
    d3 = r.deviation_3d
    if d3 is not None:
        kind = r.deviation_3d_label()
        sigma = d3.uncertainty.get("apex_deviation_mm")
        if sigma is not None and np.isfinite(sigma):
            kind += f" (±{sigma:.1f} mm)"
        th = thresholds or CueThresholds()
        if d3.remaining_depth_mm > th.green_mm:
            kind += f"; apex at planned depth, {d3.remaining_depth_mm:.0f} mm to go"
        return judged_apex_mm(d3, th), float(d3.angle_deg), kind
    dev = r.deviation
    if dev is not None:
        tip_seen = dev.tip_reliable
        end_on = dev.foreshortening < END_ON_FORESHORTENING
        kind = "2-D, this view" + ("" if tip_seen else "; tip not seen") + ("; pin seen end-on" if end_on else "")
        return (float(dev.tip_offset_mm) if tip_seen else None,
                None if end_on else float(dev.angle_deg), kind)
    return None, None, ""


#: GIL switch interval while the display runs (Python's default is 5 ms).
GIL_SWITCH_INTERVAL_S = 0.001

class _Bridge(QtCore.QObject):
    """Carries capture-thread reports to the GUI thread."""

    state = QtCore.pyqtSignal(str, str)


def _label(text: str, size_px: int, colour: str = theme.TEXT, bold: bool = True,
           align=QtCore.Qt.AlignLeft | QtCore.Qt.AlignVCenter) -> QtWidgets.QLabel:
    lab = QtWidgets.QLabel(text)
    lab.setFont(theme.font_px(size_px, bold))
    lab.setStyleSheet(f"color: {colour};")
    lab.setAlignment(align)
    lab.setFocusPolicy(QtCore.Qt.NoFocus)
    return lab


class MainWindow(QtWidgets.QMainWindow):
    """The OR display for one case (module doc).

    Parameters
    ----------
    case : LiveCase
        From :func:`~or_assist.live.run.open_real_case`, or the demo's
        (:func:`or_assist.sim.scenario.demo_case.open_demo_case`, opened by the CLI).
    settings : AppSettings
        Overlay opacity and screen; updated (not saved) as they change.
    title : str
    no_signal_report_s : float, optional
        While the source sends nothing, the status bar says "NO SIGNAL (no signal from
        ... for N s, retrying)" anew every this many seconds; default the settings'.
    """

    #: Emitted once the window was closed (and the case with it).
    closed = QtCore.pyqtSignal()

    def __init__(self, case, settings, title: str = "or_assist OR display", *,
                 no_signal_report_s: float | None = None):
        super().__init__()
        from or_assist.video.capture import CaptureThread

        self.case = case
        self.pipeline = case.pipeline
        self.settings = settings
        self.setWindowTitle(title)
        self.selection = Selection(self.pipeline.implant_ids[0], SIJF_VIEWS[0])
        self.last_result = None
        self.results = 0
        self.captures = 0
        self.latencies_s: list[float] = []   # shot first on screen -> its overlay shown
        self.processing_s: list[float] = []  # preprocess + register + guidance + log, per shot
        self.errors: list[str] = []
        self.frames_drawn = 0
        self._draw_times = collections.deque(maxlen=50)
        self._last_index = None
        self._latest_shot_index = -1
        self._image_changing = False
        self._overlay_on = True
        self._registering = False
        self._signal = ("connecting", "")
        self._flash_until = 0.0
        self._flash = ""
        self.shots_seen = 0               # shots detected since the start (the panel's "shot N")
        self.stopped_by: str | None = None  # "quit key", "SIGINT", ... once the display was asked to stop
        self._shown = None                # the shot on screen: {"index", "number", "implant", "view"}
        self._shot_numbers: dict = {}     # frame index -> shot number (recent shots)
        self._pending_captures: dict = {}  # frame index of a shot being matched -> who asked for its capture
        self._build()
        self._bridge = _Bridge()
        self._bridge.state.connect(self._on_state)
        if no_signal_report_s is None:
            no_signal_report_s = getattr(settings, "no_signal_report_s", 5.0)
        self.capture = CaptureThread(case.source, on_state=lambda s, m: self._bridge.state.emit(s.value, m),
                                     no_signal_report_s=no_signal_report_s)
        self.registration = LatestJobWorker(self._register_job, "registration")
        self.registration.done.connect(self._on_result)
        self.registration.failed.connect(self._on_failed)
        self.registration.started_job.connect(lambda _tag: self._set_registering(True))
        self.virtual = LatestJobWorker(self.pipeline.virtual_view, "virtual view")
        self.virtual.done.connect(self._on_virtual)
        self.virtual.failed.connect(self._on_failed)
        self.capturer = JobQueueWorker(self._capture_job, "captures")
        self.capturer.done.connect(self._on_captured)
        self.capturer.failed.connect(self._on_failed)
        self.video = VideoWorker(self.capture, self.pipeline, self.selection, self.registration, case.script)
        self.video.image_changing.connect(self._on_image_changing)
        self.video.selection_changed.connect(lambda i, v: self._show_selection(by="demo script"))
        self.video.shot_detected.connect(self._on_shot)
        self._draw_timer = QtCore.QTimer(self)
        self._draw_timer.setTimerType(QtCore.Qt.PreciseTimer)
        self._draw_timer.timeout.connect(self._draw_frame)
        self._status_timer = QtCore.QTimer(self)
        self._status_timer.timeout.connect(self._update_status)
        self._install_keys()
        self._started = False
        self._render()

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        central = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(central)
        row.setContentsMargins(8, 8, 8, 8)
        row.setSpacing(10)
        self.video_view = pg.GraphicsLayoutWidget()
        self.video_view.setBackground(theme.BACKGROUND)
        self.video_view.setFocusPolicy(QtCore.Qt.NoFocus)
        self.video_box = self.video_view.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.video_box.setMenuEnabled(False)
        self.live_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item.setZValue(10)
        self.overlay_item.setOpacity(self.settings.overlay_opacity)
        self.video_box.addItem(self.live_item)
        self.video_box.addItem(self.overlay_item)
        row.addWidget(self.video_view, 3)

        side = QtWidgets.QVBoxLayout()
        side.setSpacing(8)
        self.virtual_view = pg.GraphicsLayoutWidget()
        self.virtual_view.setBackground(theme.BACKGROUND)
        self.virtual_view.setFocusPolicy(QtCore.Qt.NoFocus)
        self.virtual_view.setMinimumHeight(200)
        self.virtual_box = self.virtual_view.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.virtual_box.setMenuEnabled(False)
        self.virtual_item = pg.ImageItem(axisOrder="row-major")
        self.virtual_box.addItem(self.virtual_item)
        self.virtual_caption = _label("virtual view", theme.MIN_TEXT_PX, theme.DIM, bold=False)
        side.addWidget(self.virtual_caption)
        self._add_angles_label(side)
        side.addWidget(self.virtual_view, 2)

        pick = QtWidgets.QHBoxLayout()
        self.implant_box = QtWidgets.QComboBox()
        self.implant_box.addItems(self.pipeline.implant_ids)
        self.view_box = QtWidgets.QComboBox()
        self.view_box.addItems(list(SIJF_VIEWS))
        for box in (self.implant_box, self.view_box):
            box.setFont(theme.font_px(theme.TEXT_PX))
            box.setFocusPolicy(QtCore.Qt.NoFocus)
        self.implant_box.activated.connect(lambda i: self.select(implant_id=self.pipeline.implant_ids[i]))
        self.view_box.activated.connect(lambda i: self.select(view=SIJF_VIEWS[i]))
        pick.addWidget(self.implant_box)
        pick.addWidget(self.view_box)
        side.addLayout(pick)

        panel = QtWidgets.QFrame()
        panel.setObjectName("panel")
        col = QtWidgets.QVBoxLayout(panel)
        col.setContentsMargins(16, 12, 16, 12)
        self.state_label = _label("", theme.TEXT_PX, theme.DIM)
        self.state_label.setWordWrap(True)
        numbers = QtWidgets.QHBoxLayout()
        self._mm_text = self._deg_text = "--"
        self.mm_label = _label(_number_html("--", "mm", theme.DIM), theme.NUMBER_PX)
        self.deg_label = _label(_number_html("--", "deg", theme.DIM), theme.NUMBER_PX)
        for lab in (self.mm_label, self.deg_label):
            lab.setMinimumHeight(theme.NUMBER_PX + 16)
        numbers.addWidget(self.mm_label)
        numbers.addWidget(self.deg_label)
        self.level_label = _label("", theme.TITLE_PX, theme.BACKGROUND, align=QtCore.Qt.AlignCenter)
        self.level_label.setMinimumHeight(theme.TITLE_PX + 20)
        self.correction_label = _label("", theme.TEXT_PX)
        self.correction_label.setWordWrap(True)
        self.correction_label.setMinimumHeight(3 * QtGui.QFontMetrics(self.correction_label.font()).lineSpacing())
        self.warning_label = _label("", theme.TEXT_PX, theme.RED)
        self.warning_label.setWordWrap(True)
        for w in (self.level_label, self.state_label):
            col.addWidget(w)
        col.addLayout(numbers)
        col.addWidget(self.correction_label)
        col.addWidget(self.warning_label)
        side.addWidget(panel, 3)
        self.hint_label = _label("", theme.TEXT_PX, theme.AMBER)
        self.hint_label.setWordWrap(True)
        side.addWidget(self.hint_label)
        # the case line (captures, faults) beside the panel, where it has room at 32 px
        self.case_label = _label("", theme.STATUS_PX, theme.DIM, bold=False)
        self.case_label.setWordWrap(True)
        side.addWidget(self.case_label)

        opacity = QtWidgets.QHBoxLayout()
        opacity.addWidget(_label("overlay", theme.MIN_TEXT_PX, theme.DIM, bold=False))
        self.opacity_slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(int(round(100 * self.settings.overlay_opacity)))
        self.opacity_slider.setFocusPolicy(QtCore.Qt.NoFocus)
        self.opacity_slider.valueChanged.connect(lambda v: self.set_opacity(v / 100.0))
        opacity.addWidget(self.opacity_slider)
        side.addLayout(opacity)
        holder = QtWidgets.QWidget()
        holder.setLayout(side)
        holder.setMinimumWidth(520)
        row.addWidget(holder, 1)
        self.setCentralWidget(central)

        bar = self.statusBar()
        bar.setSizeGripEnabled(False)
        self.signal_label = _label("video: connecting", theme.STATUS_PX)
        self.fps_label = _label("-- fps", theme.STATUS_PX)
        self.registration_label = _label("waiting for a shot", theme.STATUS_PX, theme.DIM)
        self.latency_label = _label("latency --", theme.STATUS_PX)
        for w, widest in ((self.signal_label, "video: RECONNECTING"), (self.fps_label, "100 fps"),
                          (self.registration_label, "registered (0.00, ±0.0 mm)"),
                          (self.latency_label, "latency 10.0 s")):
            w.setMinimumWidth(QtGui.QFontMetrics(w.font()).horizontalAdvance(widest) + 24)
        # the video state first and stretching: a long no-signal message is cut at its end
        self.signal_label.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Preferred)
        bar.addWidget(self.signal_label, 1)
        for w in (self.registration_label, self.latency_label, self.fps_label):
            bar.addPermanentWidget(w)
        self._show_selection(by=None)

    def _install_keys(self) -> None:
        actions = {"next_implant": lambda: self.step_implant(+1), "previous_implant": lambda: self.step_implant(-1),
                   "next_view": self.next_view, "capture": self.capture_shot, "toggle_overlay": self.toggle_overlay,
                   "opacity_up": lambda: self.set_opacity(self.settings.overlay_opacity + 0.1),
                   "opacity_down": lambda: self.set_opacity(self.settings.overlay_opacity - 0.1),
                   "full_screen": self.toggle_full_screen, "leave_full_screen": self.leave_full_screen,
                   "quit": lambda: self.quit(by="quit key")}
        self._shortcuts = []
        for name, keys in KEYS.items():
            for key in keys:
                sc = QtWidgets.QShortcut(QtGui.QKeySequence(key), self)
                sc.setContext(QtCore.Qt.ApplicationShortcut)
                sc.activated.connect(actions[name])
                self._shortcuts.append(sc)

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Start capture, workers and timers."""
        if self._started:
            return
        self._started = True
        # Capture, shot detection and registration run in Python threads; a shorter GIL
        # switch interval than the default 5 ms keeps the GUI thread's turns frequent.
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        for w in (self.registration, self.virtual, self.capturer):
            w.start()
        self.capture.start()
        self.video.start()
        self._draw_timer.start(10)
        self._status_timer.start(250)
        self._request_virtual()

    def shutdown(self) -> None:
        """Stop everything and close the case log (idempotent)."""
        for sc in self._shortcuts:  # a display that stopped takes no keys (they are application-wide)
            sc.setEnabled(False)
        if not self._started:
            self.case.close()
            return
        self._started = False
        self._draw_timer.stop()
        self._status_timer.stop()
        self.video.stop()
        self.capture.stop()
        for w in (self.registration, self.virtual, self.capturer):
            w.stop()
        self.case.close()

    def quit(self, by: str = "quit key") -> None:
        """Stop the display and close the case (Ctrl+Q); the case log gets a ``quit`` event."""
        if self.stopped_by is None:
            self.stopped_by = by
            self.pipeline.log_event("quit", {"by": by})
        self.close()

    def stop_by_signal(self, name: str) -> None:
        """Stop on a signal (Ctrl+C, SIGTERM): the case is marked interrupted with the
        signal's name, then closed with its end time (:func:`~or_assist.app.run.run_window`)."""
        if self.stopped_by is None:
            self.stopped_by = name
            log = self.case.case_log
            if log is not None and self.pipeline.log_fault is None:
                try:
                    log.mark_interrupted(f"the OR display was stopped by {name}.")
                except Exception:  # noqa: BLE001 - a log that cannot be written must not keep the display open
                    pass
        self.close()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        self.shutdown()
        super().closeEvent(event)
        self.closed.emit()

    # ------------------------------------------------------------------ selection and keys
    def select(self, implant_id: str | None = None, view: str | None = None) -> None:
        """Make an implant and/or view active (keys, selector)."""
        self.selection.set(implant_id, view)
        self._show_selection(by="user")

    def step_implant(self, step: int) -> None:
        """Next (+1) or previous (-1) implant."""
        ids = self.pipeline.implant_ids
        current, _ = self.selection.get()
        self.select(implant_id=ids[(ids.index(current) + step) % len(ids)])

    def next_view(self) -> None:
        """Next of lateral, inlet, outlet."""
        _, view = self.selection.get()
        self.select(view=SIJF_VIEWS[(SIJF_VIEWS.index(view) + 1) % len(SIJF_VIEWS)] if view in SIJF_VIEWS else SIJF_VIEWS[0])

    def _show_selection(self, by: str | None) -> None:
        implant_id, view = self.selection.get()
        self.implant_box.setCurrentIndex(self.pipeline.implant_ids.index(implant_id))
        if view in SIJF_VIEWS:
            self.view_box.setCurrentIndex(SIJF_VIEWS.index(view))
        self.virtual_caption.setText(f"virtual view: {implant_id} {view}")
        self._show_planned_angles(implant_id, view)
        if by is not None and self._started:
            self.pipeline.log_event("selection", {"implant": implant_id, "view": view, "by": by})
            self._request_virtual()

    def _add_angles_label(self, layout) -> None:
        """The active planned view's C-arm angles, for the radiographer (under the virtual view's caption)."""
        self.angles_label = _label("", theme.MIN_TEXT_PX, theme.AMBER, bold=False)
        self.angles_label.setWordWrap(True)
        layout.addWidget(self.angles_label)

    def _show_planned_angles(self, implant_id: str, view: str) -> None:
        from or_assist.errors import InputError
        from or_assist.live.hint import planned_angles_text

        try:
            text = planned_angles_text(self.pipeline.planned_pose(implant_id, view), self.pipeline.plan.landmarks,
                                       patient_position=self.pipeline.patient_position)
        except InputError as exc:
            text = f"no planned angles ({exc})"
        self.angles_label.setText(f"C-arm {view}: {text}")

    def _request_virtual(self) -> None:
        if self._started:
            self.virtual.submit(self.selection.get(), *self.selection.get())

    def toggle_overlay(self) -> None:
        """Overlay on/off."""
        self._overlay_on = not self._overlay_on
        self._refresh_overlay()

    def set_opacity(self, opacity: float) -> None:
        """Overlay opacity, 0-1."""
        opacity = float(min(1.0, max(0.0, opacity)))
        self.settings.overlay_opacity = opacity
        self.overlay_item.setOpacity(opacity)
        if self.opacity_slider.value() != int(round(100 * opacity)):
            self.opacity_slider.blockSignals(True)
            self.opacity_slider.setValue(int(round(100 * opacity)))
            self.opacity_slider.blockSignals(False)

    def toggle_full_screen(self) -> None:
        """Full screen on the configured screen, or back."""
        if self.isFullScreen():
            self.leave_full_screen()
        else:
            self.show_on_screen(self.settings.screen, full_screen=True)

    def leave_full_screen(self) -> None:
        """Back to a normal window."""
        if self.isFullScreen():
            self.showNormal()

    def show_on_screen(self, index: int, full_screen: bool = False) -> None:
        """Show the window on screen ``index`` (the last one if there are fewer)."""
        screens = QtWidgets.QApplication.screens()
        screen = screens[min(max(0, int(index)), len(screens) - 1)]
        if self.windowHandle() is None:
            self.winId()
        self.windowHandle().setScreen(screen)
        self.setGeometry(screen.availableGeometry())
        if full_screen:
            self.showFullScreen()
        else:
            self.show()

    # ------------------------------------------------------------------ capture
    def capture_shot(self, by: str = "user") -> bool:
        """Record the shot on screen with its overlay in the case log (Space / C).

        The shot on screen is captured whether it was registered or not. While it is still
        being matched to the CT, the capture is made when its result comes (the status bar
        says so); a shot replaced by a newer one before it was matched is not captured
        (the status bar says that too). Nothing is captured while the image changes.

        Returns
        -------
        bool
            True when a capture was made or is waiting for the shot's result.
        """
        if self._image_changing:
            self._flash_status("not captured: the image is changing")
            return False
        r = self.last_result
        if self._is_current(r):
            self._capture_result(r, by)
            return True
        if self._shown is None:
            self._flash_status("nothing to capture yet")
            return False
        self._pending_captures[self._shown["index"]] = by
        self._flash_status(f"capturing shot {self._shown['number']} when it is matched")
        return True

    def _capture_result(self, result, by: str) -> None:
        self.capturer.submit(by, result, by, self._shot_number(result.frame_index))

    def _capture_job(self, result, by: str, number: int | None = None):
        """Runs in the capture worker: the capture and its event in the case log."""
        capture_id = self.pipeline.capture(result)
        if capture_id is not None:
            self.pipeline.log_event("capture", {"capture_id": capture_id, "shot_id": result.shot_id, "by": by,
                                                "registered": result.registered})
        return capture_id, number, result.registered

    def _on_captured(self, by, payload) -> None:
        capture_id, number, registered = payload
        if capture_id is None:
            self._flash_status("not captured (no case log)")
            return
        self.captures += 1
        shot = f" (shot {number}" + ("" if registered else ", NOT REGISTERED") + ")" if number is not None else ""
        self._flash_status(f"CAPTURED #{self.captures}{shot}")

    def _fulfil_captures(self, result, index: int) -> None:
        """Captures asked for while their shot was matched: made now, or dropped when the
        shot was replaced by a newer one before it was matched (results come in order)."""
        for waiting in sorted(self._pending_captures):
            if waiting > index:
                break
            by = self._pending_captures.pop(waiting)
            if waiting == index:
                self._capture_result(result, by)
            else:
                self._flash_status(f"shot {self._shot_number(waiting)} not captured: a newer shot replaced it "
                                   "before it was matched")

    def _flash_status(self, text: str) -> None:
        self._flash, self._flash_until = text, time.monotonic() + 2.5
        self._update_status()

    # ------------------------------------------------------------------ shots and results (GUI thread)
    def _shot_number(self, index: int) -> int | None:
        return self._shot_numbers.get(index)

    def _on_shot(self, job) -> None:
        """A new shot is on screen: the whole display switches to it now."""
        event = job["event"]
        if event.index <= self._latest_shot_index:
            return
        self._latest_shot_index = event.index
        self.shots_seen += 1
        self._shot_numbers[event.index] = self.shots_seen
        while len(self._shot_numbers) > 64:
            self._shot_numbers.pop(min(self._shot_numbers))
        self._shown = {"index": event.index, "number": self.shots_seen, "implant": job["implant"],
                       "view": job["view"]}
        self._image_changing = False  # the detector found the image held: this shot
        self._render()

    def _set_registering(self, on: bool) -> None:
        self._registering = on
        self._update_status()

    def _register_job(self, job):
        """Runs in the registration worker."""
        event = job["event"]
        result = self.pipeline.process(event.image, job["implant"], job["view"], frame_index=event.index,
                                       shown_since_s=job["shown_since_s"], should_stop=self.registration.pending)
        return result, overlay_layer(result.overlay_bgr, result.frame)

    def _on_result(self, job, payload) -> None:
        result, layer = payload
        index = job["event"].index
        self._registering = self.registration.pending()
        self.results += 1
        self.processing_s.append(result.seconds.get("total", float("nan")))
        self._fulfil_captures(result, index)
        if index < self._latest_shot_index:
            self._update_status()
            return  # a newer shot is on screen: this one is only in the log
        if index not in self._shot_numbers:  # a result without its shot event (not from the video worker)
            self._on_shot(job)
        self.last_result = result
        self.overlay_item.setImage(layer, autoLevels=False, levels=(0, 255))
        if (result.implant_id, result.view) != self.selection.get():
            self.selection.set(result.implant_id, result.view)
            self._show_selection(by="registration")
        self._render()
        self.latencies_s.append(time.monotonic() - result.shown_since_s)
        self._update_status()
        if job.get("capture") and result.registered and result.cue is not None:
            self._capture_result(result, "demo script")

    def _on_failed(self, tag, message: str) -> None:
        self.errors.append(message)
        self._registering = self.registration.pending()
        self._flash_status("error: " + message.splitlines()[0][:80])

    def _on_virtual(self, key, image) -> None:
        if key != self.selection.get():
            return
        self.virtual_item.setImage(np.ascontiguousarray(image[..., ::-1]), autoLevels=False, levels=(0, 255))
        self.virtual_box.autoRange(padding=0.0)

    def _on_image_changing(self, changing: bool) -> None:
        self._image_changing = changing
        self._render()

    def _on_state(self, state: str, message: str) -> None:
        self._signal = (state, message)
        self._update_status()

    def _is_current(self, r) -> bool:
        """True when ``r`` is the result of the shot on screen."""
        return r is not None and r.frame_index >= self._latest_shot_index

    def _overlay_valid(self) -> bool:
        return self._is_current(self.last_result) and not self._image_changing

    def _refresh_overlay(self) -> None:
        self.overlay_item.setVisible(self._overlay_on and self._overlay_valid())

    def _render(self) -> None:
        """Panel, overlay and status for what is on screen now (module doc): the one place
        that decides what the display shows."""
        r = self.last_result if self._is_current(self.last_result) else None
        pending = self._shown is not None and r is None
        text, level = headline(r, shot_pending=pending, image_changing=self._image_changing)
        back = theme.level_colour(level) if level in ("green", "amber", "red") else theme.PANEL
        fore = theme.BACKGROUND if level in ("green", "amber", "red") else theme.TEXT
        self.level_label.setText(text)
        self.level_label.setStyleSheet(f"background: {back}; color: {fore}; border-radius: 6px;")
        self._refresh_overlay()
        if r is None or self._image_changing:
            self._show_without_result(r)
        else:
            self._show_result(r)
        self._update_status()

    def _context(self, r) -> str:
        number = self._shot_number(r.frame_index)
        return (f"shot {number} · " if number is not None else "") + f"{r.implant_id} {r.view}"

    def _show_without_result(self, r) -> None:
        """A shot being matched, a changing image, or nothing yet: no numbers in colour."""
        self.correction_label.setText("")
        self.warning_label.setText("")
        self.hint_label.setText("")
        if r is not None:  # the image changes: the numbers shown are the previous shot's, greyed
            self.state_label.setText(f"greyed: {self._context(r)} (previous image)")
            self.state_label.setStyleSheet(f"color: {theme.DIM};")
            mm, deg, _ = _main_numbers(r, self.pipeline.thresholds)
            self._numbers(mm, deg, theme.DIM)
            return
        shown = self._shown
        self.state_label.setText("" if shown is None else f"shot {shown['number']} · {shown['implant']} "
                                                          f"{shown['view']} · matching to the CT")
        self.state_label.setStyleSheet(f"color: {theme.TEXT};")
        self._numbers(None, None, theme.DIM)

    def _show_result(self, r) -> None:
        """The result of the shot on screen."""
        mm, deg, kind = _main_numbers(r, self.pipeline.thresholds)
        self.state_label.setText(self._context(r) + (f" · {kind}" if kind else ""))
        self.state_label.setStyleSheet(f"color: {theme.TEXT};")
        self._numbers(mm, deg, theme.TEXT)
        if not r.registered:
            reason = r.message or (r.registration.reason if r.registration is not None else None)
            self.correction_label.setText(plain_reason(reason))
            self.warning_label.setText("")
            self.hint_label.setText(f"C-arm: {r.hint}" if r.hint else "")   # marked "approx." by the pipeline
            return
        cue3 = r.cue_3d if r.deviation_3d is not None else None
        cue = cue3 or r.cue   # the lines of the cue whose numbers are shown (the two-view one wins)
        if cue is not None:
            self.correction_label.setText("\n".join(cue.lines[:2]))
        else:
            self.correction_label.setText(plain_reason(r.message or "no pin detected",
                                                       default=r.message))   # registered: never "Not registered"
        warnings = dict.fromkeys(w for c in (r.cue, cue3) if c is not None for w in c.warnings)
        self.warning_label.setText("\n".join(plain_warning(w) for w in warnings))
        self.hint_label.setText(f"C-arm: {r.hint}" if r.hint else "")
        sim, est = r.registration.similarity, r.registration.estimated_error_mm
        self.registration_label.setToolTip(f"similarity {sim:.3f}" + (
            f"; estimated error at the planned implant {est:.1f} mm" if est is not None else ""))

    def _numbers(self, mm, deg, colour: str) -> None:
        self._mm_text = "--" if mm is None else f"{mm:.1f}"
        self._deg_text = "--" if deg is None else f"{deg:.0f}"
        self.mm_label.setText(_number_html(self._mm_text, "mm", colour))
        self.deg_label.setText(_number_html(self._deg_text, "deg", colour))
        self.correction_label.setStyleSheet(f"color: {colour};")

    # ------------------------------------------------------------------ drawing (timer)
    def _draw_frame(self) -> None:
        frame = self.capture.peek()
        if frame is None or frame.index == self._last_index:
            return
        first = self._last_index is None
        self._last_index = frame.index
        self.live_item.setImage(frame.image, autoLevels=False, levels=(0, 255))
        if first:
            self.video_box.autoRange(padding=0.0)
        self.frames_drawn += 1
        self._draw_times.append(time.monotonic())

    @property
    def display_fps(self) -> float:
        """Frames drawn per second over the last 50."""
        t = self._draw_times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def _update_status(self) -> None:
        state, message = self._signal
        ok = state in ("live", "frozen")
        self.signal_label.setText(f"video: {state.upper()}" + (f" ({message})" if message and not ok else ""))
        self.signal_label.setStyleSheet(f"color: {theme.GREEN if ok else theme.RED};")
        self.fps_label.setText(f"{self.display_fps:.0f} fps")
        r = self.last_result if self._is_current(self.last_result) else None
        if self._image_changing:
            text, colour = "image changing", theme.DIM
        elif (r is None and self._shown is not None) or self._registering or self.registration.busy:
            text, colour = "registering...", theme.AMBER
        elif r is None:
            text, colour = "waiting for a shot", theme.DIM
        elif r.registered:
            est = r.registration.estimated_error_mm
            text = f"registered ({r.registration.similarity:.2f}" + \
                (f", ±{est:.1f} mm)" if est is not None else ")")
            colour = theme.GREEN
        else:
            text, colour = "NOT REGISTERED", theme.RED
        self.registration_label.setText(text)
        self.registration_label.setStyleSheet(f"color: {colour};")
        if self.latencies_s:
            self.latency_label.setText(f"latency {self.latencies_s[-1]:.1f} s")
        if self.pipeline.log_fault is not None:
            # Persistent: the guidance goes on, but nothing is recorded any more.
            self.case_label.setText("CASE LOG NOT RECORDING: " + self.pipeline.log_fault)
            self.case_label.setStyleSheet(f"color: {theme.RED}; font-weight: bold;")
        elif time.monotonic() < self._flash_until:
            self.case_label.setText(self._flash)
            self.case_label.setStyleSheet(f"color: {theme.AMBER};")
        else:
            self.case_label.setText(f"shots {self.results}, captures {self.captures}")
            self.case_label.setStyleSheet(f"color: {theme.DIM};")
        for lab in (self.warning_label, self.hint_label, self.case_label):  # the room goes to what is said
            lab.setVisible(bool(lab.text()))

    # ------------------------------------------------------------------ for tests and benchmarks
    def status_text(self) -> dict:
        """The status bar's texts: ``signal``, ``fps``, ``registration``, ``latency``, ``case``."""
        return {"signal": self.signal_label.text(), "fps": self.fps_label.text(),
                "registration": self.registration_label.text(), "latency": self.latency_label.text(),
                "case": self.case_label.text()}

    def panel_text(self) -> dict:
        """The deviation panel's texts: ``level`` (the coloured headline), ``state`` (which
        shot, implant and view the numbers belong to), ``mm``, ``deg``, ``correction``,
        ``warnings``, ``hint``, ``virtual``."""
        return {"state": self.state_label.text(), "mm": f"{self._mm_text} mm", "deg": f"{self._deg_text} deg",
                "level": self.level_label.text(), "correction": self.correction_label.text(),
                "warnings": self.warning_label.text(), "hint": self.hint_label.text(),
                "virtual": self.virtual_caption.text()}

    @property
    def overlay_visible(self) -> bool:
        """True while the plan overlay layer is shown."""
        return self.overlay_item.isVisible()
