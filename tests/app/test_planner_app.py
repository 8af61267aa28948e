"""The planner window (pytest-qt, offscreen): place an implant by clicks, edit, save, check."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PyQt5 import QtCore, QtGui, QtWidgets  # noqa: E402

from or_assist.app.planner.window import PlannerWindow, plan_app  # noqa: E402
from or_assist.cli import main as cli_main  # noqa: E402
from or_assist.core.ct.load import load_ct, save_ct  # noqa: E402
from or_assist.core.ct.volume import CTVolume  # noqa: E402
from or_assist.core.plan import Plan, load_plan, save_plan  # noqa: E402
from or_assist.errors import InputError  # noqa: E402
from or_assist.sim.phantom.make import phantom_implant_targets, phantom_landmarks, sample_ct_path  # noqa: E402
from tests.conftest import REPO_ROOT  # noqa: E402

SCREENSHOT = REPO_ROOT / "test-output" / "planner.png"


@pytest.fixture(scope="module")
def phantom_ct():
    return load_ct(sample_ct_path())


@pytest.fixture()
def window(qtbot, phantom_ct, tmp_path):
    w = PlannerWindow(phantom_ct, None, plan_path=tmp_path / "plan.json")
    w.show()                       # closed below (not by qtbot: an unsaved plan asks before closing)
    qtbot.waitExposed(w)
    yield w
    w._force_close = True
    w.close()


def _click(qtbot, view, point_lps):
    pos = view.lps_to_widget(point_lps)
    qtbot.mouseClick(view.viewport(), QtCore.Qt.LeftButton, pos=pos)


def _click_in_axial(qtbot, window, point_lps):
    window.set_cursor(point_lps)            # crosshair navigation to the point's axial slice
    _click(qtbot, window.views["axial"], point_lps)


def _landmark(name):
    return next(lm for lm in phantom_landmarks() if lm["name"] == name)


def test_place_edit_save_passes_plan_check(qtbot, window, tmp_path):
    target = phantom_implant_targets("left")[0]
    qtbot.mouseClick(window.panel.mode_buttons["implant"], QtCore.Qt.LeftButton)
    assert window.mode == "implant"
    _click_in_axial(qtbot, window, target["entry_lps_mm"])
    assert window._pending_entry is not None and not window.editor.implants
    _click_in_axial(qtbot, window, target["apex_lps_mm"])
    imps = window.editor.implants
    assert len(imps) == 1 and window.mode == "navigate"
    imp = imps[0]
    assert (imp.id, imp.side, imp.item.id) == ("L1", "left", "T7-55")      # suggested from the distance
    assert np.linalg.norm(imp.entry_lps_mm - target["entry_lps_mm"]) < 1.5
    assert np.linalg.norm(imp.apex_lps_mm - target["apex_lps_mm"]) < 1.5
    assert window.active == "L1"

    # change its length in the table: the apex moves back along the axis
    window.panel.implants.item(0, 3).setText("50")
    imp = window.editor.implant("L1")
    assert imp.item.id == "T7-50" and abs(imp.length_mm - 50.0) < 1e-6

    # landmarks by clicks in landmark mode
    window.set_mode("landmark")
    for name, kind in (("s1_foramen_left", "s1_foramen"), ("s2_foramen_left", "s2_foramen"),
                       ("spinal_canal_S1", "spinal_canal"), ("sacral_promontory", "sacral_promontory")):
        window.panel.landmark_kind.setCurrentText(kind)
        _click_in_axial(qtbot, window, _landmark(name)["position_lps_mm"])
    kinds = [lm.kind for lm in window.editor.landmarks]
    assert kinds == ["s1_foramen", "s2_foramen", "spinal_canal", "sacral_promontory"]
    assert window.editor.landmarks[0].side == "left" and window.editor.landmarks[2].side == "midline"
    assert {r.check: r.passed for r in window.checks if r.implant == "L1"}["clearance"]
    assert window.panel.checks.rowCount() == 5 and window.panel.distances.rowCount() == 5

    # undo / redo through the keys
    window.activateWindow()
    window.setFocus()
    qtbot.keyClick(window, QtCore.Qt.Key_Z, QtCore.Qt.ControlModifier)
    assert len(window.editor.landmarks) == 3
    qtbot.keyClick(window, QtCore.Qt.Key_Y, QtCore.Qt.ControlModifier)
    assert len(window.editor.landmarks) == 4

    # the live view went to full resolution once idle
    qtbot.waitUntil(lambda: "full" in window.fluoro[window.current_view_kind()].label.textItem.toPlainText(),
                    timeout=10000)

    assert window.save()
    path = tmp_path / "plan.json"
    saved = load_plan(path)
    assert [i.id for i in saved.implants] == ["L1"] and len(saved.landmarks) == 4
    assert not window.editor.modified
    assert cli_main(["plan-check", str(path)]) == 0

    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert window.grab().save(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


def test_click_outside_volume_is_ignored_with_a_message(qtbot, window):
    window.set_mode("landmark")
    view = window.views["axial"]
    pos = view.view_to_widget(-40.0, -40.0)                   # beyond the image's top-left corner
    qtbot.mouseClick(view.viewport(), QtCore.Qt.LeftButton, pos=pos)
    assert not window.editor.landmarks
    assert "outside the CT volume" in window.last_message


def test_too_long_implant_is_clamped_with_a_message(qtbot, window):
    window.set_mode("implant")
    entry = np.array([85.0, 20.0, -3.0])
    window.on_slice_click("axial", entry)
    window.on_slice_click("axial", entry + np.array([-120.0, 0.0, 0.0]))   # 120 mm > 90 mm
    imp = window.editor.implants[0]
    assert imp.item.id == "T7-90" and abs(imp.length_mm - 90.0) < 1e-6
    assert "longer than any T7 implant" in window.last_message


def test_drag_an_implant_end(qtbot, window):
    t = phantom_implant_targets("left")[1]
    window.editor.add_implant(t["entry_lps_mm"], t["apex_lps_mm"])
    window.set_active("L1")
    before = window.editor.implant("L1").apex_lps_mm.copy()
    view = window.views["axial"]
    window.set_cursor(t["apex_lps_mm"])
    start = view.lps_to_widget(t["apex_lps_mm"])
    target = np.asarray(t["apex_lps_mm"]) + np.array([4.0, 0.0, 0.0])
    end = view.lps_to_widget(target)
    vp = view.viewport()
    qtbot.mousePress(vp, QtCore.Qt.LeftButton, pos=start)
    move = QtGui.QMouseEvent(QtCore.QEvent.MouseMove, QtCore.QPointF(end), QtCore.Qt.NoButton,
                             QtCore.Qt.LeftButton, QtCore.Qt.NoModifier)
    QtWidgets.QApplication.sendEvent(vp, move)
    qtbot.mouseRelease(vp, QtCore.Qt.LeftButton, pos=end)
    imp = window.editor.implant("L1")
    assert imp.apex_lps_mm[0] > np.asarray(t["apex_lps_mm"])[0] + 2.0     # moved towards +x ...
    assert abs(imp.length_mm - imp.item.length_mm) < 1e-6                  # ... and re-snapped
    window.undo()
    assert np.array_equal(window.editor.implant("L1").apex_lps_mm, before)


def test_save_over_a_plan_of_another_ct_is_refused(window, tmp_path):
    other = tmp_path / "other.json"
    save_plan(Plan(Path("/elsewhere/ct.nii.gz"), "ab" * 32, []), other)
    before = other.read_bytes()
    window.editor.add_landmark("sacral_promontory", [0.0, -21.5, 0.9])
    assert not window.save_as(other)
    assert "plan of another CT" in window.last_message and other.read_bytes() == before
    assert window.editor.modified                                    # nothing lost


def test_tilts_derived_from_landmarks(window):
    for lm in phantom_landmarks():
        if lm["kind"] in ("sacral_promontory", "s2_anterior_body", "s1_endplate_posterior"):
            window.editor.add_landmark(lm["kind"], lm["position_lps_mm"])
    window.panel.derive_tilts.setChecked(True)
    inlet, outlet, source = window.tilts()
    # the phantom's steep sacrum gives an inlet line outside the plausible range: the set value is kept
    assert "outlet derived" in source and "inlet set (not derivable" in source
    assert inlet == 25.0 and outlet != 42.0
    window.fluoro_tabs.setCurrentIndex(2)                                 # outlet
    view = window.fluoro["outlet"].last_view
    assert view.kind == "outlet" and abs(view.tilt_deg - outlet) < 1e-9
    window.panel.derive_tilts.setChecked(False)
    window.panel.outlet.setValue(35.0)
    assert abs(window.fluoro["outlet"].last_view.tilt_deg - 35.0) < 1e-9


def test_propose_then_export_views_and_sheet(qtbot, window, tmp_path):
    for lm in phantom_landmarks():
        if lm["side"] in ("left", "midline") and lm["kind"] != "si_joint":
            window.editor.add_landmark(lm["kind"], lm["position_lps_mm"], side=lm["side"],
                                       radius_mm=lm["radius_mm"], name=lm["name"])
    window.propose()
    assert [i.id for i in window.editor.implants] == ["L1", "L2", "L3"]
    assert all(r.passed for r in window.checks), window.last_message
    window.undo()
    assert not window.editor.implants
    window.redo()
    out = window.export(tmp_path / "export", neighbourhood=False, size_px=128)
    assert out, window.last_message
    assert out["library"].is_file() and len(out["png"]) == 12
    assert out["sheet_png"].stat().st_size > 50_000
    page = out["sheet_html"].read_text()
    assert page.count("<img src='data:image/png;base64,") == 12 and "L3" in page


def test_non_pelvis_ct_is_refused_naming_file_and_extent(tmp_path):
    small = CTVolume(np.zeros((40, 40, 40), np.float32) - 1000.0, [0, 0, 0], [1.0, 1.0, 1.0], np.eye(3))
    path = save_ct(small, tmp_path / "hand.nii.gz")
    with pytest.raises(InputError, match=r"hand\.nii\.gz.*not a pelvis-sized CT volume: extent 40 x 40 x 40 mm"):
        plan_app(path)
    assert QtWidgets.QApplication.topLevelWidgets() == [] or \
        not any(isinstance(w, PlannerWindow) and w.isVisible() for w in QtWidgets.QApplication.topLevelWidgets())


def test_plan_of_another_ct_is_refused_at_startup(phantom_ct, tmp_path):
    other = tmp_path / "other.json"
    save_plan(Plan(Path("/elsewhere/ct.nii.gz"), "ab" * 32, []), other)
    with pytest.raises(InputError, match="different CT"):
        plan_app(sample_ct_path(), other)
