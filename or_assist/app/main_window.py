"""The OR display's main window: live shot with the plan, virtual view, deviation panel, status.

Layout (dark, for reading from 1-2 m): the live video large on the left with the
guidance overlay as a separate layer (opacity adjustable; :mod:`~or_assist.app.image_view`);
on the right, what is said first: the deviation panel (:mod:`~or_assist.app.panel`: big
numbers, the cue colour, the correction in words, the warnings), the C-arm positioning hint
and the case line; below them the selector and the virtual view of the active implant and
view with the planned C-arm angles, which gives up its room when the texts need it; a
status bar (:mod:`~or_assist.app.status`) with the video signal, display rate,
registration state and shot-to-overlay latency. Keys and capture:
:mod:`~or_assist.app.controls`; background work: :mod:`~or_assist.app.workers`.

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
red, and :func:`~or_assist.guidance.overlay.draw_overlay` draws no plan. A shot that came
over DICOM is registered with its header and full-depth pixels (the shot job's ``dicom``
and ``pixels``, from :class:`~or_assist.app.workers.VideoWorker`).
"""

from __future__ import annotations

import sys
import time

from PyQt5 import QtCore, QtWidgets

from or_assist.app import theme
from or_assist.app.controls import KEYS, DisplayControls  # noqa: F401 (KEYS: imported from here too)
from or_assist.app.image_view import ImageView, LiveView, overlay_layer
from or_assist.app.panel import DeviationPanel, label
from or_assist.app.status import StatusBar, registration_state
from or_assist.app.workers import JobQueueWorker, LatestJobWorker, Selection, VideoWorker
from or_assist.core.vocabulary import SIJF_VIEWS

__all__ = ["MainWindow"]

#: GIL switch interval while the display runs (Python's default is 5 ms).
GIL_SWITCH_INTERVAL_S = 0.001


class _Bridge(QtCore.QObject):
    """Carries capture-thread reports to the GUI thread."""

    state = QtCore.pyqtSignal(str, str)


class MainWindow(DisplayControls, QtWidgets.QMainWindow):
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
        self._started = False
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
        self._render()

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        central = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(central)
        row.setContentsMargins(8, 8, 8, 8)
        row.setSpacing(10)
        self.video_view = LiveView(self.settings.overlay_opacity)
        self.video_box, self.live_item, self.overlay_item = \
            self.video_view.box, self.video_view.item, self.video_view.overlay_item
        row.addWidget(self.video_view, 3)

        # The column, what is said first: the deviation panel, the C-arm hint and the case
        # line; below them the selector, the virtual view of the active implant and view with
        # its planned C-arm angles (for the radiographer), and the overlay slider.
        side = QtWidgets.QVBoxLayout()
        side.setSpacing(8)
        self.panel = DeviationPanel(self.pipeline.thresholds)
        for name in ("level_label", "state_label", "mm_label", "deg_label", "correction_label", "warning_label",
                     "hint_label"):
            setattr(self, name, getattr(self.panel, name))
        side.addWidget(self.panel)
        side.addWidget(self.hint_label)
        self.status = StatusBar(self.statusBar())
        for name in ("signal_label", "fps_label", "registration_label", "latency_label", "case_label"):
            setattr(self, name, getattr(self.status, name))
        side.addWidget(self.case_label)   # the case line beside the panel, where it has room at 32 px

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

        self.virtual_caption = label("virtual view", theme.MIN_TEXT_PX, theme.DIM, bold=False)
        side.addWidget(self.virtual_caption)
        self.angles_label = label("", theme.MIN_TEXT_PX, theme.AMBER, bold=False, wrap=True)
        side.addWidget(self.angles_label)
        self.virtual_view = ImageView()   # takes the room the texts leave, down to none
        self.virtual_view.setMinimumHeight(0)
        self.virtual_view.setSizePolicy(QtWidgets.QSizePolicy.Preferred, QtWidgets.QSizePolicy.Ignored)
        self.virtual_box, self.virtual_item = self.virtual_view.box, self.virtual_view.item
        side.addWidget(self.virtual_view, 1)

        opacity = QtWidgets.QHBoxLayout()
        opacity.addWidget(label("overlay", theme.MIN_TEXT_PX, theme.DIM, bold=False))
        self.opacity_slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(int(round(100 * self.settings.overlay_opacity)))
        self.opacity_slider.setFocusPolicy(QtCore.Qt.NoFocus)
        self.opacity_slider.valueChanged.connect(lambda v: self.set_opacity(v / 100.0))
        opacity.addWidget(self.opacity_slider)
        side.addLayout(opacity)
        holder = QtWidgets.QWidget()
        holder.setLayout(side)
        # The column never makes the window taller than the screen: when its texts need more
        # room than there is, the virtual view gives its room first (down to none), then what
        # is at the bottom (the overlay slider, the angles) is cut, never drawn over.
        column = QtWidgets.QScrollArea()
        column.setWidget(holder)
        column.setWidgetResizable(True)
        column.setFrameShape(QtWidgets.QFrame.NoFrame)
        column.setFocusPolicy(QtCore.Qt.NoFocus)
        for policy in (column.setHorizontalScrollBarPolicy, column.setVerticalScrollBarPolicy):
            policy(QtCore.Qt.ScrollBarAlwaysOff)
        column.setMinimumWidth(520)
        row.addWidget(column, 1)
        self.setCentralWidget(central)
        self._show_selection(by=None)

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

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        self.shutdown()
        super().closeEvent(event)
        self.closed.emit()

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
        """Runs in the registration worker: the shot, with its DICOM header and full-depth
        pixels when it came over DICOM (the job's ``dicom``, ``pixels``)."""
        event = job["event"]
        result = self.pipeline.process(event.image, job["implant"], job["view"], frame_index=event.index,
                                       shown_since_s=job["shown_since_s"], should_stop=self.registration.pending,
                                       dicom=job.get("dicom"), pixels=job.get("pixels"))
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
        self.video_view.show_overlay(layer)
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
        self.virtual_view.show_bgr(image)

    def _on_image_changing(self, changing: bool) -> None:
        self._image_changing = changing
        self._render()

    def _on_state(self, state: str, message: str) -> None:
        self._signal = (state, message)
        self._update_status()

    def _is_current(self, r) -> bool:
        """True when ``r`` is the result of the shot on screen."""
        return r is not None and r.frame_index >= self._latest_shot_index

    def _current(self):
        """The result of the shot on screen, or None."""
        return self.last_result if self._is_current(self.last_result) else None

    def _overlay_valid(self) -> bool:
        return self._is_current(self.last_result) and not self._image_changing

    def _refresh_overlay(self) -> None:
        self.overlay_item.setVisible(self._overlay_on and self._overlay_valid())

    def _render(self) -> None:
        """Panel, overlay and status for what is on screen now (module doc): the panel
        decides what it shows (:meth:`~or_assist.app.panel.DeviationPanel.render`)."""
        r = self._current()
        self._refresh_overlay()
        self.panel.render(r, shown=self._shown, image_changing=self._image_changing, context=self._context)
        if r is not None and r.registered and not self._image_changing:
            sim, est = r.registration.similarity, r.registration.estimated_error_mm
            self.registration_label.setToolTip(f"similarity {sim:.3f}" + (
                f"; estimated error at the planned implant {est:.1f} mm" if est is not None else ""))
        self._update_status()

    def _context(self, r) -> str:
        number = self._shot_number(r.frame_index)
        return (f"shot {number} · " if number is not None else "") + f"{r.implant_id} {r.view}"

    # ------------------------------------------------------------------ drawing and status (timers)
    def _draw_frame(self) -> None:
        self.video_view.draw(self.capture.peek())

    @property
    def frames_drawn(self) -> int:
        """Video frames drawn since the start."""
        return self.video_view.frames_drawn

    @property
    def display_fps(self) -> float:
        """Frames drawn per second over the last 50."""
        return self.video_view.fps

    def _update_status(self) -> None:
        r = self._current()
        matching = (r is None and self._shown is not None) or self._registering or self.registration.busy
        flash = self._flash if time.monotonic() < self._flash_until else None
        self.status.show(signal=self._signal, fps=self.display_fps,
                         registration=registration_state(r, image_changing=self._image_changing, matching=matching),
                         latency_s=self.latencies_s[-1] if self.latencies_s else None,
                         log_fault=self.pipeline.log_fault, flash=flash, shots=self.results, captures=self.captures,
                         notice=self.pipeline.budget_watch.notice)
        for lab in (self.warning_label, self.hint_label, self.case_label):  # the room goes to what is said
            lab.setVisible(bool(lab.text()))

    # ------------------------------------------------------------------ for tests and benchmarks
    def status_text(self) -> dict:
        """The status bar's texts: ``signal``, ``fps``, ``registration``, ``latency``, ``case``."""
        return self.status.texts()

    def panel_text(self) -> dict:
        """The deviation panel's texts: ``level`` (the coloured headline), ``state`` (which
        shot, implant and view the numbers belong to), ``mm``, ``deg``, ``correction``,
        ``warnings``, ``hint``, ``virtual``."""
        return {**self.panel.texts(), "virtual": self.virtual_caption.text()}

    @property
    def overlay_visible(self) -> bool:
        """True while the plan overlay layer is shown."""
        return self.overlay_item.isVisible()
