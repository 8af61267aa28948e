"""The planner's user actions: clicks, drags, table edits, undo/redo, save, export, propose.

A mixin of :class:`~or_assist.app.planner.window.PlannerWindow`; every action calls the Qt-free
edit model and reports bad input (a click outside the volume, an implant longer than
any catalogue item, saving over another CT's plan) as a status message, losing nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PyQt5 import QtCore, QtWidgets

from or_assist.errors import InputError

__all__ = ["PlannerActionsMixin"]


class PlannerActionsMixin:
    """Actions of the planner window (see the module doc)."""

    # ------------------------------------------------------------------ modes and clicks
    def set_mode(self, mode: str) -> None:
        """``"navigate"``, ``"implant"`` (entry then apex) or ``"landmark"``."""
        if mode not in ("navigate", "implant", "landmark"):
            raise InputError(f"must be navigate, implant or landmark, got {mode!r}", "mode")
        self.mode = mode
        self._pending_entry = None
        self.panel.mode_buttons[mode].setChecked(True)
        hints = {"navigate": "Navigate: click to move the crosshair; drag an implant's end dots to move it",
                 "implant": "Add implant: click the entry point on the lateral iliac cortex",
                 "landmark": f"Landmark: click to place a {self.panel.landmark_kind.currentText()}"}
        self.message(hints[mode])
        self.refresh_overlays()

    def on_slice_click(self, view_name: str, point_lps_mm: np.ndarray) -> None:
        """A left click at an LPS point in one of the slice views."""
        if not bool(self.ct.contains(point_lps_mm)):
            self.message(f"click at {np.round(point_lps_mm, 1).tolist()} mm ({view_name}) is outside the CT "
                         f"volume: ignored", error=True)
            return
        try:
            if self.mode == "navigate":
                self.set_cursor(point_lps_mm)
            elif self.mode == "implant":
                if self._pending_entry is None:
                    self._pending_entry = np.asarray(point_lps_mm, dtype=np.float64)
                    self.message("entry set: now click the apex (Esc cancels)")
                    self.refresh_overlays()
                else:
                    entry, self._pending_entry = self._pending_entry, None
                    imp, note = self.editor.add_implant(entry, point_lps_mm,
                                                        family=self.panel.family.currentText())
                    self.mode = "navigate"
                    self.panel.mode_buttons["navigate"].setChecked(True)
                    self.set_active(imp.id)
                    self.message(f"added {imp.id} ({imp.side}, {imp.item.id}, length suggested from the "
                                 f"entry-apex distance)" + (f"; {note}" if note else ""), error=bool(note))
            elif self.mode == "landmark":
                lm = self.editor.add_landmark(self.panel.landmark_kind.currentText(), point_lps_mm)
                self.message(f"added landmark {lm.name}")
        except InputError as exc:
            self.message(str(exc), error=True)

    def _on_handle_dragged(self, key, x: float, y: float, z: float) -> None:
        implant_id, end = key
        p = np.array([x, y, z])
        if bool(self.ct.contains(p)):
            self._drag_preview = (implant_id, end, p)
            self.refresh_overlays()

    def _on_handle_released(self, key) -> None:
        preview, self._drag_preview = self._drag_preview, None
        if preview is None:
            self.refresh_overlays()
            return
        implant_id, end, p = preview
        try:
            _, note = self.editor.move_end(implant_id, end, p)
            if note:
                self.message(note, error=True)
        except InputError as exc:
            self.message(str(exc), error=True)
            self.refresh_overlays()

    # ------------------------------------------------------------------ edits
    def undo(self) -> None:
        desc = self.editor.undo()
        if desc is None:
            self.message("nothing to undo")

    def redo(self) -> None:
        desc = self.editor.redo()
        if desc is None:
            self.message("nothing to redo")

    def delete_active_implant(self) -> None:
        if self.active is None:
            self.message("no active implant to delete", error=True)
            return
        self.editor.delete_implant(self.active)

    def delete_selected_landmark(self) -> None:
        name = self.panel.selected_landmark()
        if name is None:
            self.message("select a landmark in the table first", error=True)
            return
        self.editor.delete_landmark(name)

    def on_implant_cell_edited(self, implant_id: str, column: str, text: str) -> None:
        """An edited cell of the implant table (id, side, item, length, roll, level)."""
        text = text.strip()
        try:
            if column == "id":
                if text != implant_id:
                    self.editor.rename_implant(implant_id, text)
                    if self.active == implant_id:
                        self.active = text
                    self._on_plan_changed(f"renamed {implant_id} to {text}")
                return
            if column == "side":
                self.editor.set_side(implant_id, text.lower())
            elif column == "item":
                _, note = self.editor.set_item(implant_id, text)
                if note:
                    self.message(note, error=True)
            elif column == "length mm":
                try:
                    length = float(text.lower().replace("mm", ""))
                except ValueError:
                    raise InputError(f"must be a length in mm, got {text!r}", "length") from None
                _, note = self.editor.set_length(implant_id, length)
                if note:
                    self.message(note, error=True)
            elif column == "roll deg":
                try:
                    roll = float(text.lower().replace("deg", ""))
                except ValueError:
                    raise InputError(f"must be an angle in degrees, got {text!r}", "roll") from None
                self.editor.set_roll(implant_id, roll)
            elif column == "level":
                self.editor.set_level(implant_id, text or None)
        except InputError as exc:
            self.message(str(exc), error=True)
            self.panel.set_implants(self.editor.implants, self.active)   # show the unchanged values
            self.panel.remember_ids()

    def propose(self) -> None:
        """Assisted planning: replace the implants of each side that has the needed
        landmarks by a proposed standard configuration (one undo step)."""
        from or_assist.planning.propose import propose_plan_implants

        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.WaitCursor)
        try:
            proposal = propose_plan_implants(self.editor.plan, self.ct)
        except InputError as exc:
            self.message(str(exc), error=True)
            return
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        sides = {i.side for i in proposal.implants}
        keep = [i for i in self.editor.implants if i.side not in sides]
        self.editor.replace_implants(keep + list(proposal.implants), "propose " + ", ".join(sorted(sides)))
        self.set_active(proposal.implants[0].id if proposal.implants else None)
        self.message(proposal.summary, error=not proposal.all_passed)

    # ------------------------------------------------------------------ save / export
    def save(self) -> bool:
        """Ctrl+S: save to :attr:`plan_path` (asked for when unset). Returns success."""
        if self.plan_path is None:
            path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save plan", "plan.json", "Plan (*.json)")
            if not path:
                return False
            return self.save_as(path)
        return self.save_as(self.plan_path)

    def save_as(self, path: str | os.PathLike) -> bool:
        """Save the plan (refusing to overwrite a plan of another CT); returns success."""
        try:
            out = self.editor.save(path)
        except InputError as exc:
            self.message(f"not saved: {exc}", error=True)
            return False
        self.plan_path = Path(out)
        self._update_title()
        self.message(f"saved {out}")
        return True

    def export_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export view library and plan sheet")
        if folder:
            self.export(folder)

    def export(self, out_dir: str | os.PathLike, *, neighbourhood: bool = True,
               size_px: int | None = None) -> dict:
        """Save the view library for the chosen C-arm profile and the printable plan sheet.

        Returns
        -------
        dict
            ``library``, ``png`` (view PNGs), ``sheet_png``, ``sheet_html`` paths; empty
            when it failed (the message says why).
        """
        from or_assist.core.carm_profiles import load_profile
        from or_assist.render.plan_sheet import write_plan_sheet
        from or_assist.render.views.build import build_view_library
        from or_assist.render.views.model import DEFAULT_NEIGHBOURHOOD_DEG
        from or_assist.render.views.io import save_view_library

        plan = self.editor.plan
        if not plan.implants:
            self.message("nothing to export: place at least one implant", error=True)
            return {}
        profile = self.panel.profile.currentText()
        inlet, outlet, _ = self.tilts()
        from or_assist.core.plan import ViewSpec, default_views

        plan.views = [ViewSpec(v.name, v.kind, v.implant, inlet if v.kind == "inlet" else outlet
                               if v.kind == "outlet" else v.tilt_deg) for v in default_views(plan)]
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.WaitCursor)
        try:
            geometry = load_profile(profile).geometry_at(1024)
            library = build_view_library(plan, geometry, ct=self.ct, size_px=size_px,
                                         neighbourhood_deg=DEFAULT_NEIGHBOURHOOD_DEG if neighbourhood else None)
            out = Path(out_dir)
            paths = save_view_library(library, out / "views")
            sheet = write_plan_sheet(plan, library, self.checks, out, profile=profile)
        except InputError as exc:
            self.message(f"export failed: {exc}", error=True)
            return {}
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        self.message(f"exported {paths['library']} and {sheet['png'].name}, {sheet['html'].name} to {out}")
        return {**paths, "sheet_png": sheet["png"], "sheet_html": sheet["html"]}
