"""The virtual surgical planning workstation: ``or-assist plan CT [PLAN]``.

Layout: a 2 x 3 grid of image panels (axial, coronal, sagittal; oblique along and across
the active implant's axis; the live virtual fluoroscopy with lateral, inlet, outlet and
axis tabs) beside a panel with the tools, the implant table, the live plan checks, the
active implant's distances and the landmarks.

Interaction: *Navigate* (Esc): a left click moves the crosshair. *Add implant* (A): click
the entry, then the apex, in any slice (the length snaps to the catalogue). *Landmark*
(L): a click places a landmark of the chosen kind. Drag an implant's end (its dots) to
move it. Ctrl+Z / Ctrl+Y undo and redo, Del deletes the active implant, Ctrl+S saves,
Ctrl+E exports the view library and the plan sheet. Right drag zooms, wheel zooms.

All logic lives in the Qt-free core (:mod:`or_assist.planning.edit`,
:mod:`~or_assist.planning.reslice`, :mod:`~or_assist.planning.measure`,
:mod:`~or_assist.planning.propose`, :mod:`or_assist.render.plan_live`,
:mod:`or_assist.render.plan_sheet`); this module only draws and forwards.

Live views: each edit renders the visible virtual view at reduced resolution at once
(~128 px, a few ms), then the full resolution in a worker thread after 300 ms idle.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PyQt5 import QtCore, QtGui, QtWidgets

from or_assist.app.planner.actions import PlannerActionsMixin
from or_assist.app.planner.panels import PlannerPanel
from or_assist.app.planner.views import LANDMARK_COLOURS, FluoroView, SliceView, implant_colour
from or_assist.app.theme import application
from or_assist.core.carm_profiles import list_profiles
from or_assist.core.plan import implant_vertex_directions
from or_assist.planning.checks import run_plan_checks
from or_assist.planning.edit import PlanEditor
from or_assist.planning.save import check_pelvis_ct
from or_assist.planning.measure import implant_measurements
from or_assist.planning.reslice import (ORTHOGONAL_KINDS, ct_centre_lps, oblique_planes, orthogonal_plane, reslice,
                                    window_image)
from or_assist.errors import InputError
from or_assist.render.plan_live import DEFAULT_PROFILE, LIVE_VIEW_KINDS, LiveViews, view_tilts_deg

__all__ = ["PlannerWindow", "plan_app", "FULL_RES_IDLE_MS"]

FULL_RES_IDLE_MS = 300
_SLICE_NAMES = ORTHOGONAL_KINDS + ("oblique along", "oblique across")


class PlannerWindow(PlannerActionsMixin, QtWidgets.QMainWindow):
    """The planner main window (module doc).

    Parameters
    ----------
    ct : CTVolume
        Checked with :func:`~or_assist.planning.save.check_pelvis_ct`.
    plan : Plan, optional
        A plan of this CT to continue; default an empty plan.
    plan_path : path-like, optional
        Where Ctrl+S saves (asked for when None).
    geometry : CArmGeometry, optional
        C-arm of the live views (default the Siemens Cios Fusion profile).

    Attributes
    ----------
    editor : PlanEditor
    live : LiveViews
    views : dict of str to SliceView
    fluoro : dict of str to FluoroView
    panel : PlannerPanel
    last_message : str
        The latest status or error message (also on the status bar).
    last_live_latency_s : float
        Edit-to-reduced-live-view time of the latest edit.
    """

    live_ready = QtCore.pyqtSignal(object, int)

    def __init__(self, ct, plan=None, plan_path=None, geometry=None, parent=None):
        super().__init__(parent)
        check_pelvis_ct(ct)
        self.ct = ct
        self.editor = PlanEditor(ct, plan)
        self.plan_path = None if plan_path is None else Path(plan_path)
        self.live = LiveViews(ct, geometry)
        self.mode = "navigate"
        self._pending_entry: np.ndarray | None = None
        self._drag_preview: tuple | None = None
        self.active: str | None = self.editor.implants[0].id if self.editor.implants else None
        self.cursor = self._initial_cursor()
        self.last_message = ""
        self.last_live_latency_s = float("nan")
        self.checks: list = []
        self._generation = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="planner-live")
        self._full_timer = QtCore.QTimer(self)
        self._full_timer.setSingleShot(True)
        self._full_timer.setInterval(FULL_RES_IDLE_MS)
        self._full_timer.timeout.connect(self._render_full)
        self.live_ready.connect(self._on_live_ready)
        self._build_ui()
        self.editor.add_listener(self._on_plan_changed)
        self._update_title()
        self.refresh_slices()
        self._on_plan_changed("open")

    # ------------------------------------------------------------------ setup
    def _initial_cursor(self) -> np.ndarray:
        if self.active is not None:
            imp = self.editor.implant(self.active)
            return 0.5 * (imp.entry_lps_mm + imp.apex_lps_mm)
        for lm in self.editor.landmarks:
            if lm.kind == "sacral_promontory":
                return lm.position_lps_mm.copy()
        return ct_centre_lps(self.ct)

    def _build_ui(self) -> None:
        self.resize(1500, 950)
        grid_widget = QtWidgets.QWidget()
        grid = QtWidgets.QGridLayout(grid_widget)
        grid.setContentsMargins(2, 2, 2, 2)
        grid.setSpacing(2)
        self.views: dict[str, SliceView] = {}
        for k, name in enumerate(_SLICE_NAMES):
            v = SliceView(name)
            v.clicked.connect(lambda x, y, z, n=name: self.on_slice_click(n, np.array([x, y, z])))
            v.handle_dragged.connect(self._on_handle_dragged)
            v.handle_released.connect(self._on_handle_released)
            self.views[name] = v
            grid.addWidget(v, k // 3, k % 3)
        self.fluoro_tabs = QtWidgets.QTabWidget()
        self.fluoro: dict[str, FluoroView] = {}
        for kind in LIVE_VIEW_KINDS:
            fv = FluoroView(kind)
            self.fluoro[kind] = fv
            self.fluoro_tabs.addTab(fv, kind)
        self.fluoro_tabs.currentChanged.connect(lambda _i: self.schedule_live())
        grid.addWidget(self.fluoro_tabs, 1, 2)
        self.panel = PlannerPanel(self.editor.catalogue.families, list_profiles())
        self.panel.family.setCurrentText(self.editor.family)
        self.panel.profile.setCurrentText(DEFAULT_PROFILE)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(520)
        split = QtWidgets.QSplitter()
        split.addWidget(grid_widget)
        split.addWidget(scroll)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        self.setCentralWidget(split)
        self.setStatusBar(QtWidgets.QStatusBar())
        p = self.panel
        p.mode_buttons["navigate"].clicked.connect(lambda: self.set_mode("navigate"))
        p.mode_buttons["implant"].clicked.connect(lambda: self.set_mode("implant"))
        p.mode_buttons["landmark"].clicked.connect(lambda: self.set_mode("landmark"))
        p.family.currentTextChanged.connect(lambda t: setattr(self.editor, "family", t))
        p.window_preset.currentTextChanged.connect(lambda _t: self.refresh_slices())
        p.inlet.valueChanged.connect(lambda _v: self.schedule_live())
        p.outlet.valueChanged.connect(lambda _v: self.schedule_live())
        p.derive_tilts.toggled.connect(lambda _v: self.schedule_live())
        p.undo_button.clicked.connect(self.undo)
        p.redo_button.clicked.connect(self.redo)
        p.delete_implant_button.clicked.connect(self.delete_active_implant)
        p.delete_landmark_button.clicked.connect(self.delete_selected_landmark)
        p.propose_button.clicked.connect(self.propose)
        p.save_button.clicked.connect(self.save)
        p.export_button.clicked.connect(self.export_dialog)
        p.implant_cell_edited.connect(self.on_implant_cell_edited)
        p.implant_selected.connect(self.set_active)
        for seq, slot in ((QtGui.QKeySequence.Undo, self.undo), ("Ctrl+Y", self.redo),
                          (QtGui.QKeySequence.Save, self.save), ("Ctrl+E", self.export_dialog),
                          ("A", lambda: self.set_mode("implant")), ("L", lambda: self.set_mode("landmark")),
                          ("Escape", lambda: self.set_mode("navigate")), ("Delete", self.delete_active_implant)):
            sc = QtWidgets.QShortcut(QtGui.QKeySequence(seq), self)
            sc.activated.connect(slot)

    # ------------------------------------------------------------------ messages
    def message(self, text: str, error: bool = False) -> None:
        """Show a status message (errors in red); kept in :attr:`last_message`."""
        self.last_message = text
        bar = self.statusBar()
        bar.setStyleSheet("color: #c00000; font-weight: bold" if error else "")
        bar.showMessage(text, 0 if error else 8000)

    def _update_title(self) -> None:
        star = " *" if self.editor.modified else ""
        name = self.plan_path.name if self.plan_path else "(unsaved plan)"
        self.setWindowTitle(f"or-assist planner - {name}{star} - CT {Path(self.ct.source).name}")

    # ------------------------------------------------------------------ slices
    def window_preset(self) -> str:
        return self.panel.window_preset.currentText()

    def set_cursor(self, point_lps_mm) -> None:
        """Move the crosshair (reslices the orthogonal and across views)."""
        self.cursor = np.asarray(point_lps_mm, dtype=np.float64).copy()
        self.refresh_slices()

    def refresh_slices(self) -> None:
        preset = self.window_preset()
        for kind in ORTHOGONAL_KINDS:
            plane = orthogonal_plane(self.ct, kind, self.cursor)
            self.views[kind].set_slice(plane, window_image(reslice(self.ct, plane), preset))
        imp = self.editor.implant(self.active) if self.active is not None else None
        if imp is not None:
            along, across = oblique_planes(imp.entry_lps_mm, imp.apex_lps_mm, self.cursor, roll_deg=imp.roll_deg,
                                           pixel_mm=float(max(0.75, np.min(self.ct.spacing_mm))))
            for name, plane in (("oblique along", along), ("oblique across", across)):
                self.views[name].set_slice(plane, window_image(reslice(self.ct, plane), preset))
        for v in self.views.values():
            v.set_crosshair(self.cursor)
        self.refresh_overlays()

    def refresh_overlays(self) -> None:
        implants = self.editor.implants
        colours = {imp.id: implant_colour(k) for k, imp in enumerate(implants)}
        lms = self.editor.landmarks
        for name, v in self.views.items():
            v.clear_overlays()
            if v.plane is None:
                continue
            for imp in implants:
                entry, apex = imp.entry_lps_mm, imp.apex_lps_mm
                if self._drag_preview is not None and self._drag_preview[0] == imp.id:
                    _, end, p = self._drag_preview
                    entry, apex = (p, apex) if end == "entry" else (entry, p)
                active = imp.id == self.active
                v.add_segment(entry, apex, colours[imp.id], width=3.0 if active else 1.5,
                              handles=((imp.id, "entry"), (imp.id, "apex")) if active else None)
                if name == "oblique across" and active:
                    t = float(np.clip((v.plane.centre_lps_mm - entry) @ imp.axis_unit, 0, imp.length_mm))
                    taper = min(imp.item.tip_taper_mm, 0.5 * imp.length_mm)
                    scale = 1.0 if t <= imp.length_mm - taper or taper <= 0 else (imp.length_mm - t) / taper
                    tri = entry + t * imp.axis_unit + implant_vertex_directions(imp) * imp.item.circumradius_mm * scale
                    v.add_polygon(tri, colours[imp.id])
            if lms:
                px = v.plane.pixel_mm
                v.add_markers([lm.position_lps_mm for lm in lms],
                              [LANDMARK_COLOURS.get(lm.kind, (255, 255, 255)) for lm in lms],
                              [max(7.0, 2 * lm.radius_mm / px) for lm in lms])
            if self._pending_entry is not None:
                v.add_markers([self._pending_entry], [(255, 255, 255)], [10.0])

    # ------------------------------------------------------------------ plan changes
    def _on_plan_changed(self, description: str) -> None:
        if self.active is not None and all(i.id != self.active for i in self.editor.implants):
            self.active = self.editor.implants[-1].id if self.editor.implants else None
        self.schedule_live()                       # first: the latency that matters
        plan = self.editor.plan
        self.checks = run_plan_checks(plan, self.ct) if plan.implants else []
        self.panel.set_implants(plan.implants, self.active)
        self.panel.remember_ids()
        self.panel.set_checks(self.checks)
        self.panel.set_landmarks(plan.landmarks)
        self.panel.set_distances(implant_measurements(plan, self.ct, self.active) if self.active else [])
        self.panel.undo_button.setEnabled(self.editor.can_undo)
        self.panel.redo_button.setEnabled(self.editor.can_redo)
        self._update_title()
        self.refresh_slices()
        if description not in ("open",):
            failed = sum(1 for r in self.checks if not r.passed)
            self.message(f"{description}; {failed} check(s) failing" if self.checks else description)

    def set_active(self, implant_id: str | None) -> None:
        """Make an implant the active one (obliques, live views and distances follow it)."""
        if implant_id == self.active:
            return
        self.active = implant_id
        if implant_id is not None:
            imp = self.editor.implant(implant_id)
            self.cursor = 0.5 * (imp.entry_lps_mm + imp.apex_lps_mm)
        plan = self.editor.plan
        self.panel.set_distances(implant_measurements(plan, self.ct, implant_id) if implant_id else [])
        self.refresh_slices()
        self.schedule_live()

    # ------------------------------------------------------------------ live views
    def current_view_kind(self) -> str:
        return LIVE_VIEW_KINDS[self.fluoro_tabs.currentIndex()]

    def tilts(self) -> tuple[float, float, str]:
        p = self.panel
        return view_tilts_deg(self.editor.plan, p.inlet.value(), p.outlet.value(), p.derive_tilts.isChecked())

    def schedule_live(self) -> float:
        """Render the visible live view now at reduced resolution; full resolution after
        :data:`FULL_RES_IDLE_MS` idle. Returns the reduced render's latency (s)."""
        t0 = time.perf_counter()
        self._generation += 1
        kind = self.current_view_kind()
        plan = self.editor.plan
        inlet, outlet, source = self.tilts()
        self.panel.tilt_source.setText(f"{source}: inlet {inlet:.1f}, outlet {outlet:.1f} deg")
        tilt = inlet if kind == "inlet" else outlet if kind == "outlet" else None
        fv = self.fluoro[kind]
        try:
            view = self.live.render(plan, self.active, kind, reduced=True, tilt_deg=tilt)
        except InputError as exc:
            fv.image.clear()
            fv.label.setText(str(exc))
            return float("nan")
        self._show_live(view, "reduced")
        self.last_live_latency_s = time.perf_counter() - t0
        self._full_timer.start()
        return self.last_live_latency_s

    def _show_live(self, view, resolution: str) -> None:
        colours = {imp.id: implant_colour(k) for k, imp in enumerate(self.editor.implants)}
        h, w = view.image.shape
        tilt = "" if view.tilt_deg is None else f", tilt {view.tilt_deg:.0f} deg"
        caption = f"{view.kind}{tilt} ({view.implant_id or 'pelvis'}), {w} px {resolution}, " \
                  f"{1000 * view.seconds:.0f} ms"
        self.fluoro[view.kind].show_view(view, colours, self.active, caption)

    def _render_full(self) -> None:
        gen, kind, plan, active = self._generation, self.current_view_kind(), self.editor.plan, self.active
        inlet, outlet, _ = self.tilts()
        tilt = inlet if kind == "inlet" else outlet if kind == "outlet" else None

        def work():
            try:
                view = self.live.render(plan, active, kind, reduced=False, tilt_deg=tilt)
            except InputError:
                return
            self.live_ready.emit(view, gen)

        self._executor.submit(work)

    def _on_live_ready(self, view, generation: int) -> None:
        if generation == self._generation and view.kind == self.current_view_kind():
            self._show_live(view, "full")

    def closeEvent(self, ev):  # noqa: N802 - Qt override
        if self.editor.modified and not getattr(self, "_force_close", False):
            answer = QtWidgets.QMessageBox.question(
                self, "Unsaved plan", "The plan has unsaved changes. Save before closing?",
                QtWidgets.QMessageBox.Save | QtWidgets.QMessageBox.Discard | QtWidgets.QMessageBox.Cancel)
            if answer == QtWidgets.QMessageBox.Cancel or (answer == QtWidgets.QMessageBox.Save and not self.save()):
                ev.ignore()
                return
        self._full_timer.stop()
        self._executor.shutdown(wait=True, cancel_futures=True)
        super().closeEvent(ev)


def plan_app(ct_path: str | os.PathLike, plan_path: str | os.PathLike | None = None) -> int:
    """``or-assist plan CT [PLAN]``: open the planner on a CT, optionally with a plan.

    Parameters
    ----------
    ct_path : path-like
        The CT (DICOM folder or file, NIfTI, MHA/MHD, NRRD); must be pelvis-sized.
    plan_path : path-like, optional
        A plan to continue (it must belong to this CT), or a new file to save to.

    Returns
    -------
    int
        The Qt event loop's exit status (0).

    Raises
    ------
    InputError
        Unreadable or non-pelvis CT (the message names the file and its extent), an
        unreadable plan, or a plan made on another CT; nothing is opened or changed.
    """
    from or_assist.core.ct.load import load_ct
    from or_assist.core.plan import load_plan

    ct = load_ct(ct_path)
    check_pelvis_ct(ct)
    plan = None
    if plan_path is not None and Path(plan_path).exists():
        plan = load_plan(plan_path)
    app = application("run it on a desktop session")
    win = PlannerWindow(ct, plan, plan_path)
    win.show()
    return int(app.exec_())
