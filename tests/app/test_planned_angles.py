"""The OR display says the active planned view's C-arm angles for the radiographer, and
shows a shot that did not register with its approximate positioning hint (issue 16, item 6)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")

from or_assist.app.main_window import MainWindow  # noqa: E402
from or_assist.app.settings import AppSettings  # noqa: E402
from or_assist.core.view_poses import plan_carm_angles  # noqa: E402
from or_assist.live.hint import APPROX_PREFIX  # noqa: E402
from or_assist.live.result import ShotResult  # noqa: E402
from or_assist.register.pipeline import RegistrationResult  # noqa: E402
from or_assist.register.settings import RegistrationSettings  # noqa: E402
from or_assist.sim.scenario.demo_case import open_demo_case  # noqa: E402


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    case = open_demo_case(cases_root=tmp_path_factory.mktemp("cases"), implants=["L1"],
                          registration_settings=RegistrationSettings(time_budget_s=None))
    w = MainWindow(case, AppSettings())          # not started: no video, no workers needed
    yield w
    w.shutdown()
    w.deleteLater()


def test_planned_view_angles_follow_the_selection(window):
    w = window
    pipe = w.pipeline
    implant, view = w.selection.get()
    angles = plan_carm_angles(pipe.plan, pipe.planned_pose(implant, view), pipe.patient_position)
    assert w.angles_label.text() == f"C-arm {view}: {angles.radiographer_text()}"
    w.select(view="inlet")
    text = w.angles_label.text()
    inlet = plan_carm_angles(pipe.plan, pipe.planned_pose(implant, "inlet"), pipe.patient_position)
    assert text.startswith("C-arm inlet: orbital ") and f"tilt CAUD {abs(inlet.tilt_deg):.0f} deg" in text
    w.select(view="outlet")
    assert "tilt CRAN" in w.angles_label.text()


def test_not_registered_shot_shows_the_approximate_hint(window):
    w = window
    implant, view = w.selection.get()
    reg = RegistrationResult(w.pipeline.planned_pose(implant, view), False, 0.05, "gc", 0.1, "not confident: test")
    r = ShotResult(1, reg, np.zeros((8, 8), np.uint8), 0, 0.0, implant, view, None, "bone-dark")
    r.hint = APPROX_PREFIX + "tilt ~10 deg more caudal"
    w.last_result = r
    w._render()
    panel = w.panel_text()
    assert panel["level"] == "NOT REGISTERED"
    assert panel["hint"] == "C-arm: approx. (not registered): tilt ~10 deg more caudal"
    assert panel["mm"] == "-- mm"                         # nothing confident is shown
    r.hint = None
    w._render()
    assert w.panel_text()["hint"] == ""
