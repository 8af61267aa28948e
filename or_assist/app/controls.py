"""What the OR display's keys do: selection, overlay, full screen, capture, quit.

Keys (:data:`KEYS`; a foot pedal that sends keys works): Right / PageDown next implant,
Left / PageUp previous, V next view, Space / C capture, O overlay on/off, + / - overlay
opacity, F / F11 full screen, Esc leave full screen, Ctrl+Q quit (the case is closed; a
signal, Ctrl+C or SIGTERM, stops the display the same way and marks the case interrupted).
The shortcuts are application-wide (no widget of the display takes keyboard focus).

Capture (Space) records the shot on screen, registered or not; pressed while that shot
is still being matched to the CT, it records the shot when its result comes; a shot
replaced by a newer one before it was matched is not captured (the case line says so).
Captures run in order in their own worker (none is lost).

:class:`DisplayControls` is a part of :class:`~or_assist.app.main_window.MainWindow`
(a mixin: it works on the window's selection, widgets and workers).
"""

from __future__ import annotations

from PyQt5 import QtCore, QtGui, QtWidgets

from or_assist.core.vocabulary import SIJF_VIEWS

__all__ = ["KEYS", "DisplayControls"]

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


class DisplayControls:
    """Selection, overlay, window and capture actions of the OR display (module doc)."""

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

    # ------------------------------------------------------------------ selection
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

    def _show_planned_angles(self, implant_id: str, view: str) -> None:
        """The active planned view's C-arm angles, for the radiographer."""
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

    # ------------------------------------------------------------------ overlay and window
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

    # ------------------------------------------------------------------ stopping
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
