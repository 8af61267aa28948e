"""Side panel of the planner: tools, the implant table, live checks and distances, landmarks.

Widgets only: every change goes to the window, which calls the Qt-free
:class:`~or_assist.planning.edit.PlanEditor`.
"""

from __future__ import annotations

from PyQt5 import QtCore, QtGui, QtWidgets

from or_assist.core.plan import LANDMARK_KINDS

__all__ = ["PlannerPanel", "IMPLANT_COLUMNS", "STATUS_COLOURS"]

IMPLANT_COLUMNS = ("id", "side", "item", "length mm", "roll deg", "level")
STATUS_COLOURS = {"ok": (170, 235, 170), "warn": (255, 225, 140), "bad": (255, 150, 150),
                  "none": (225, 225, 225), "info": (235, 235, 250), "skip": (225, 225, 225)}
#: Landmark kinds offered for placing (the issue's list first).
PLACE_KINDS = ("s1_foramen", "s2_foramen", "spinal_canal", "sacral_promontory", "alar_line", "si_joint",
               "s1_endplate_posterior", "s2_anterior_body")


def _item(text: str, editable: bool = False, colour=None) -> QtWidgets.QTableWidgetItem:
    it = QtWidgets.QTableWidgetItem(text)
    flags = QtCore.Qt.ItemIsSelectable | QtCore.Qt.ItemIsEnabled
    if editable:
        flags |= QtCore.Qt.ItemIsEditable
    it.setFlags(flags)
    if colour is not None:
        it.setBackground(QtGui.QBrush(QtGui.QColor(*colour)))
        it.setForeground(QtGui.QBrush(QtGui.QColor(0, 0, 0)))
    return it


def _table(columns) -> QtWidgets.QTableWidget:
    t = QtWidgets.QTableWidget(0, len(columns))
    t.setHorizontalHeaderLabels(list(columns))
    t.verticalHeader().setVisible(False)
    t.horizontalHeader().setStretchLastSection(True)
    t.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
    t.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
    return t


class PlannerPanel(QtWidgets.QWidget):
    """The planner's right-hand panel (module doc).

    Signals
    -------
    implant_cell_edited(implant_id, column_name, text)
    implant_selected(implant_id)
    """

    implant_cell_edited = QtCore.pyqtSignal(str, str, str)
    implant_selected = QtCore.pyqtSignal(str)

    def __init__(self, families, profiles, parent=None):
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)

        modes = QtWidgets.QHBoxLayout()
        self.mode_group = QtWidgets.QButtonGroup(self)
        self.mode_buttons = {}
        for key, label in (("navigate", "Navigate"), ("implant", "Add implant (A)"), ("landmark", "Landmark (L)")):
            b = QtWidgets.QPushButton(label)
            b.setCheckable(True)
            self.mode_group.addButton(b)
            self.mode_buttons[key] = b
            modes.addWidget(b)
        self.mode_buttons["navigate"].setChecked(True)
        lay.addLayout(modes)

        form = QtWidgets.QFormLayout()
        self.landmark_kind = QtWidgets.QComboBox()
        self.landmark_kind.addItems([k for k in PLACE_KINDS if k in LANDMARK_KINDS])
        form.addRow("landmark kind", self.landmark_kind)
        self.family = QtWidgets.QComboBox()
        self.family.addItems(list(families))
        form.addRow("implant family", self.family)
        self.window_preset = QtWidgets.QComboBox()
        self.window_preset.addItems(["bone", "soft tissue"])
        form.addRow("CT window", self.window_preset)
        tilt_row = QtWidgets.QHBoxLayout()
        self.inlet = QtWidgets.QDoubleSpinBox()
        self.outlet = QtWidgets.QDoubleSpinBox()
        for box, value in ((self.inlet, 25.0), (self.outlet, 42.0)):
            box.setRange(0.0, 80.0)
            box.setDecimals(1)
            box.setSingleStep(1.0)
            box.setValue(value)
            box.setKeyboardTracking(False)
            box.setSuffix(" deg")
        tilt_row.addWidget(QtWidgets.QLabel("inlet"))
        tilt_row.addWidget(self.inlet)
        tilt_row.addWidget(QtWidgets.QLabel("outlet"))
        tilt_row.addWidget(self.outlet)
        form.addRow("tilts", tilt_row)
        self.derive_tilts = QtWidgets.QCheckBox("derive inlet/outlet from the CT landmarks")
        form.addRow("", self.derive_tilts)
        self.tilt_source = QtWidgets.QLabel("")
        self.tilt_source.setWordWrap(True)
        form.addRow("", self.tilt_source)
        self.profile = QtWidgets.QComboBox()
        self.profile.addItems(list(profiles))
        form.addRow("C-arm profile", self.profile)
        lay.addLayout(form)

        buttons = QtWidgets.QGridLayout()
        self.undo_button = QtWidgets.QPushButton("Undo")
        self.redo_button = QtWidgets.QPushButton("Redo")
        self.delete_implant_button = QtWidgets.QPushButton("Delete implant")
        self.delete_landmark_button = QtWidgets.QPushButton("Delete landmark")
        self.propose_button = QtWidgets.QPushButton("Propose 3 implants")
        self.save_button = QtWidgets.QPushButton("Save plan")
        self.export_button = QtWidgets.QPushButton("Export views + sheet")
        for k, b in enumerate((self.undo_button, self.redo_button, self.delete_implant_button,
                               self.delete_landmark_button, self.propose_button, self.save_button,
                               self.export_button)):
            buttons.addWidget(b, k // 2, k % 2)
        lay.addLayout(buttons)

        lay.addWidget(QtWidgets.QLabel("Implants (double-click to edit id, side, item, length, roll, level)"))
        self.implants = _table(IMPLANT_COLUMNS)
        self.implants.itemChanged.connect(self._on_implant_item_changed)
        self.implants.itemSelectionChanged.connect(self._on_selection)
        lay.addWidget(self.implants, 2)

        lay.addWidget(QtWidgets.QLabel("Plan checks"))
        self.checks = _table(("implant", "check", "result", "value", "message"))
        self.checks.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        lay.addWidget(self.checks, 3)

        lay.addWidget(QtWidgets.QLabel("Distances of the active implant (surface, mm)"))
        self.distances = _table(("to", "kind", "mm"))
        self.distances.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        lay.addWidget(self.distances, 2)

        lay.addWidget(QtWidgets.QLabel("Landmarks"))
        self.landmarks = _table(("name", "kind", "side", "radius mm"))
        self.landmarks.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        lay.addWidget(self.landmarks, 2)
        self._filling = False

    # ------------------------------------------------------------------ filling
    def set_implants(self, implants, active: str | None) -> None:
        self._filling = True
        try:
            t = self.implants
            t.setRowCount(len(implants))
            for r, imp in enumerate(implants):
                cells = (imp.id, imp.side, imp.item.id, f"{imp.item.length_mm:g}", f"{imp.roll_deg:g}",
                         imp.level or "")
                for c, text in enumerate(cells):
                    t.setItem(r, c, _item(text, editable=True))
                if imp.id == active:
                    t.selectRow(r)
        finally:
            self._filling = False

    def set_checks(self, results) -> None:
        t = self.checks
        t.setRowCount(len(results))
        for r, res in enumerate(results):
            status = "skip" if res.skipped else ("ok" if res.passed else "bad")
            colour = STATUS_COLOURS[status]
            value = "-" if res.value is None else f"{res.value:.1f} {res.unit}"
            cells = (res.implant or "-", res.check, "SKIP" if res.skipped else ("PASS" if res.passed else "FAIL"),
                     value, res.message)
            for c, text in enumerate(cells):
                t.setItem(r, c, _item(text, colour=colour))

    def set_distances(self, measurements) -> None:
        t = self.distances
        t.setRowCount(len(measurements))
        for r, m in enumerate(measurements):
            colour = STATUS_COLOURS.get(m.status, STATUS_COLOURS["none"])
            value = "-" if m.distance_mm is None else f"{m.distance_mm:.1f}"
            for c, text in enumerate((m.target, m.kind, value)):
                it = _item(text, colour=colour)
                if m.detail:
                    it.setToolTip(m.detail)
                t.setItem(r, c, it)

    def set_landmarks(self, landmarks) -> None:
        t = self.landmarks
        t.setRowCount(len(landmarks))
        for r, lm in enumerate(landmarks):
            for c, text in enumerate((lm.name, lm.kind, lm.side, f"{lm.radius_mm:g}")):
                t.setItem(r, c, _item(text))

    def selected_landmark(self) -> str | None:
        rows = self.landmarks.selectionModel().selectedRows()
        return self.landmarks.item(rows[0].row(), 0).text() if rows else None

    # ------------------------------------------------------------------ signals
    def _on_implant_item_changed(self, item: QtWidgets.QTableWidgetItem) -> None:
        if self._filling:
            return
        row = item.row()
        id_item = self.implants.item(row, 0)
        if id_item is None:
            return
        column = IMPLANT_COLUMNS[item.column()]
        # the id cell holds the new id; the old one is kept in its data role
        old_id = id_item.data(QtCore.Qt.UserRole) or id_item.text()
        self.implant_cell_edited.emit(old_id, column, item.text())

    def _on_selection(self) -> None:
        if self._filling:
            return
        rows = self.implants.selectionModel().selectedRows()
        if rows:
            it = self.implants.item(rows[0].row(), 0)
            if it is not None:
                self.implant_selected.emit(it.data(QtCore.Qt.UserRole) or it.text())

    def remember_ids(self) -> None:
        """Store each row's id in its data role (so an edited id cell still names the implant)."""
        self._filling = True
        try:
            for r in range(self.implants.rowCount()):
                it = self.implants.item(r, 0)
                it.setData(QtCore.Qt.UserRole, it.text())
        finally:
            self._filling = False
