"""What the OR display shows for the shot on screen (pytest-qt, offscreen): a new shot
clears the previous one's state within one event-loop turn, capture takes the shot on
screen, one state wins the headline, reasons in plain words, the 3-D numbers, text sizes
for 2 m, and a clean stop (quit key, SIGTERM, a failed start) that closes the case.

The shots are simulated with a guide pin; the registration is a stand-in that returns
the true pose (or no confident pose, or waits until released), so that everything after
it (pin detection, deviation, cue, overlay, case log, workers, signals) runs for real and
fast. Shot events are sent from a thread, as the video worker sends them."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")
from PyQt5 import QtCore, QtGui, QtWidgets  # noqa: E402

from or_assist.app import theme  # noqa: E402
from or_assist.app.main_window import MainWindow  # noqa: E402
from or_assist.app.settings import AppSettings  # noqa: E402
from or_assist.errors import InputError  # noqa: E402
from or_assist.live.pipeline import LivePipeline  # noqa: E402
from or_assist.live.run import LiveCase  # noqa: E402
from or_assist.register.pipeline import RegistrationResult  # noqa: E402
from or_assist.session.caselog import CaseLog, list_cases  # noqa: E402
from or_assist.video.shots import ShotEvent  # noqa: E402

FRAME_SIZE_PX = (960, 540)
NOT_CONFIDENT = "not confident: final gc 0.154 is below the threshold 0.400"
OUT_OF_TIME = "not registered: the time budget of 3.0 s ran out in the compass128 stage"


@pytest.fixture(scope="module")
def shots():
    """Two lateral shots of implant L1 with the pin 3 mm and 1 mm cranial of plan, their pose."""
    from or_assist.core.instruments import GuidePin
    from or_assist.core.view_poses import plan_view_pose
    from or_assist.render.drr import AttenuationVolume, DRRRenderer
    from or_assist.sim.scenario.spec import load_sample_case
    from or_assist.sim.shots.settings import ShotSettings
    from or_assist.sim.shots.simulate import simulate_shot

    ct, plan, geometry = load_sample_case()
    settings = ShotSettings(frame_size_px=FRAME_SIZE_PX, seed=3, supersample=1)
    renderer = DRRRenderer(AttenuationVolume.from_ct(ct, energy_kev=settings.energy_kev))
    imp = plan.implant("L1")
    pose = plan_view_pose(plan, "L1", "lateral", geometry=geometry)
    out = []
    for cranial_mm in (3.0, 1.0):
        tip = imp.entry_lps_mm + 0.6 * imp.length_mm * imp.axis_unit + np.array([0.0, 0.0, cranial_mm])
        pin = GuidePin.from_tip_direction(tip, imp.axis_unit, 150.0)
        out.append(simulate_shot(renderer, pose, geometry, pin=pin, settings=settings))
    return plan, pose, out


class StandInRegistrar:
    """Returns the true pose (``mode='truth'``) or no confident pose (``'never'``); with
    ``gate`` set, waits until it is released (a registration that takes its time)."""

    def __init__(self, pose):
        from or_assist.register.settings import RegistrationSettings

        self.settings = RegistrationSettings()   # its time budget (3 s) is what the display speaks of
        self.pose = pose
        self.mode = "truth"
        self.gate: threading.Event | None = None
        self.gate_from_call = 1  # the gate holds this call and the later ones
        self.calls = 0
        self.last_result = None

    def register(self, frame, init_pose, *, polarity="bone-dark", library=None, target_lps_mm=None):
        self.calls += 1
        if self.gate is not None and self.calls >= self.gate_from_call:
            assert self.gate.wait(30)
        if self.mode == "truth":
            r = RegistrationResult(self.pose, True, 0.9, "gc", 0.01, estimated_error_mm=0.8)
        elif self.mode == "out of time":
            r = RegistrationResult(init_pose, False, 0.2, "gc", 3.0, OUT_OF_TIME, stopped_in="compass128")
        else:
            r = RegistrationResult(init_pose, False, 0.154, "gc", 0.01, NOT_CONFIDENT)
        self.last_result = r
        return r


def _silent_source():
    from or_assist.video.sources.opencv import UrlSource
    from tests.video.mjpeg_server import closed_port

    return UrlSource(f"rtsp://127.0.0.1:{closed_port()}/x", open_timeout_s=0.5)


def _case(shots, tmp_path):
    plan, pose, sims = shots
    registrar = StandInRegistrar(pose)
    log = CaseLog.create(tmp_path, plan=plan, geometry=sims[0].video_geometry.to_dict())
    pipe = LivePipeline(plan, sims[0].video_geometry, registrar=registrar, case_log=log, try_other_views=False)
    return LiveCase(_silent_source(), pipe, "test", None, log), registrar


@pytest.fixture
def display(qtbot, qapp, shots, tmp_path):
    case, registrar = _case(shots, tmp_path)
    theme.apply_dark_theme(qapp)
    w = MainWindow(case, AppSettings())
    qtbot.addWidget(w)
    w.resize(1600, 900)
    w.show()
    w.start()
    yield w, registrar, shots[2]
    w.shutdown()


def _job(sim, index):
    event = ShotEvent(index, 0.0, None, index, sim.frame, index, float("inf"), 1.0)
    import time

    return {"event": event, "implant": "L1", "view": "lateral", "shown_since_s": time.monotonic(), "capture": False}


def _send_shot(w, sim, index) -> dict:
    """What the video worker does for a new shot, from another thread: the shot event to
    the GUI, the job to the registration worker."""
    job = _job(sim, index)

    def send():
        w.video.shot_detected.emit(job)
        w.registration.submit(job, job)

    t = threading.Thread(target=send)
    t.start()
    t.join()
    return job


def _emit_from_thread(signal_, *args) -> None:
    t = threading.Thread(target=lambda: signal_.emit(*args))
    t.start()
    t.join()


def _registered(qtbot, w, index):
    qtbot.waitUntil(lambda: w.last_result is not None and w.last_result.frame_index == index, timeout=30000)
    return w.last_result


def _headline_colour(w) -> str:
    return re.search(r"background: (#[0-9a-f]{6})", w.level_label.styleSheet()).group(1)


def test_a_new_shot_clears_the_previous_state_within_one_event_loop_turn(display, qtbot, qapp):
    w, registrar, sims = display
    _send_shot(w, sims[0], 10)
    r = _registered(qtbot, w, 10)
    assert r.registered and r.cue is not None, r.summary()
    panel = w.panel_text()
    assert panel["level"] in ("ON PLAN", "CLOSE TO PLAN", "OFF PLAN")
    assert panel["mm"] == f"{r.deviation.tip_offset_mm:.1f} mm" and abs(r.deviation.tip_offset_mm - 3.0) < 1.0
    assert panel["state"] == "shot 1 · L1 lateral · 2-D, this view"
    assert panel["correction"].startswith("tip ") and w.overlay_visible
    assert _headline_colour(w) == theme.level_colour(r.cue.level)

    registrar.gate = threading.Event()  # the next registration waits
    _send_shot(w, sims[1], 20)
    qapp.processEvents()  # one turn of the event loop
    panel = w.panel_text()
    assert panel["level"] == "NEW SHOT..."
    assert panel["state"] == "shot 2 · L1 lateral · matching to the CT"
    assert (panel["mm"], panel["deg"], panel["correction"], panel["warnings"], panel["hint"]) == \
        ("-- mm", "-- deg", "", "", "")
    assert _headline_colour(w) == theme.PANEL  # no cue colour
    assert not w.overlay_visible
    assert w.status_text()["registration"] == "registering..."

    # Space now captures the shot on screen (shot 2) once it is matched, not shot 1
    qtbot.keyClick(w, QtCore.Qt.Key_Space)
    assert w.status_text()["case"] == "capturing shot 2 when it is matched"
    registrar.gate.set()
    r2 = _registered(qtbot, w, 20)
    qtbot.waitUntil(lambda: w.captures == 1, timeout=10000)
    assert w.status_text()["case"] == "CAPTURED #1 (shot 2)"
    assert w.panel_text()["mm"] == f"{r2.deviation.tip_offset_mm:.1f} mm" and w.overlay_visible
    case_dir = w.case.case_log.case_dir
    w.shutdown()
    with CaseLog.open(case_dir, readonly=True) as log:
        assert [c["shot_id"] for c in log.captures()] == [r2.shot_id]


def test_a_changing_image_greys_the_numbers_and_says_whose_they_are(display, qtbot, qapp):
    w, registrar, sims = display
    _send_shot(w, sims[0], 10)
    r = _registered(qtbot, w, 10)
    _emit_from_thread(w.video.image_changing, True)
    qapp.processEvents()
    panel = w.panel_text()
    assert panel["level"] == "NEW IMAGE..." and _headline_colour(w) == theme.PANEL
    assert panel["state"] == "greyed: shot 1 · L1 lateral (previous image)"
    assert panel["mm"] == f"{r.deviation.tip_offset_mm:.1f} mm"
    assert theme.DIM in w.mm_label.text() and theme.TEXT not in w.mm_label.text()
    assert (panel["correction"], panel["warnings"], panel["hint"]) == ("", "", "")
    assert not w.overlay_visible
    assert not w.capture_shot()
    assert w.status_text()["case"] == "not captured: the image is changing"
    # the image settles back on the same shot: its result is shown again
    _emit_from_thread(w.video.image_changing, False)
    qapp.processEvents()
    assert w.panel_text()["level"] in ("ON PLAN", "CLOSE TO PLAN", "OFF PLAN") and w.overlay_visible


def test_one_state_wins_and_reasons_are_plain_words(display, qtbot, qapp):
    w, registrar, sims = display
    job = _send_shot(w, sims[0], 10)
    r = _registered(qtbot, w, 10)
    # a green cue with a safety warning: the headline is the warning, in red, never green
    warned = dataclasses.replace(r, cue=dataclasses.replace(
        r.cue, level="green", warnings=("WARNING: projected pin path crosses s1_foramen_left (this view)",)))
    w.registration.done.emit(job, (warned, np.zeros((4, 4, 4), np.uint8)))
    panel = w.panel_text()
    assert panel["level"] == "SAFETY WARNING" and _headline_colour(w) == theme.RED
    assert panel["warnings"] == "Pin path crosses the left S1 foramen (this view)"
    assert theme.GREEN not in w.level_label.styleSheet()

    # a shot that is not registered: NOT REGISTERED in red, the reason in plain words;
    # the case log keeps the technical reason
    registrar.mode = "never"
    _send_shot(w, sims[1], 20)
    r2 = _registered(qtbot, w, 20)
    assert not r2.registered
    panel = w.panel_text()
    assert panel["level"] == "NOT REGISTERED" and _headline_colour(w) == theme.RED
    assert panel["correction"] == "The image does not match the CT: take another shot."
    assert (panel["mm"], panel["deg"]) == ("-- mm", "-- deg") and r2.pose is None  # no plan drawn
    # Space captures the shot on screen although it is not registered
    assert w.capture_shot()
    qtbot.waitUntil(lambda: w.captures == 1, timeout=10000)
    assert w.status_text()["case"] == "CAPTURED #1 (shot 2, NOT REGISTERED)"
    case_dir = w.case.case_log.case_dir
    w.shutdown()
    with CaseLog.open(case_dir, readonly=True) as log:
        shots_logged = log.shots()
        assert shots_logged[-1]["registration"]["reason"] == NOT_CONFIDENT
        assert [c["shot_id"] for c in log.captures()] == [r2.shot_id]


def test_shots_running_out_of_time_bring_a_standing_notice(display, qtbot, qapp):
    """Two shots in a row NOT REGISTERED because the time budget ran out: the case line
    says, in amber and for the rest of the case, that the computer may be too slow for the
    budget and what to do; one such shot alone does not."""
    w, registrar, sims = display
    registrar.mode = "out of time"
    _send_shot(w, sims[0], 10)
    _registered(qtbot, w, 10)
    assert w.panel_text()["level"] == "NOT REGISTERED"
    # (the stand-in case has no view library: its start-up flash goes after 2.5 s)
    qtbot.waitUntil(lambda: w.status_text()["case"] == "shots 1, captures 0", timeout=10000)
    _send_shot(w, sims[1], 20)
    _registered(qtbot, w, 20)
    qtbot.waitUntil(lambda: w.status_text()["case"].startswith("2 of the last 2 shots ran out"), timeout=10000)
    case = w.status_text()["case"]
    assert case.startswith("2 of the last 2 shots ran out of the registration's 3 s time budget"), case
    assert "--time-budget-s 0" in case and theme.AMBER in w.case_label.styleSheet()
    registrar.mode = "truth"   # a later registered shot: the notice stands (it is about the computer)
    _send_shot(w, sims[0], 30)
    _registered(qtbot, w, 30)
    qtbot.wait(300)
    assert w.status_text()["case"] == case


def test_a_3d_deviation_is_the_main_number(display, qtbot):
    """With a two-view 3-D deviation the big numbers are the apex deviation the 3-D cue
    judges (at the planned depth while the pin is short of it) and the angle, labelled with
    the shots they came from; the 3-D cue's level is the headline."""
    from or_assist.guidance.cues import Cue
    from or_assist.guidance.triangulate import Deviation3D

    w, registrar, sims = display
    job = _send_shot(w, sims[0], 10)
    r = _registered(qtbot, w, 10)
    sigma = {"apex_deviation_mm": 0.7, "angle_deg": 0.9, "tip_mm": 0.5}
    # 10 mm short of the planned apex: the tip is 4.26 mm from the apex, 4.0 mm at the planned depth
    short = Deviation3D(np.zeros(3), np.array([0.0, 0.0, 1.0]), 4.26, 3.4, 2.0, np.zeros(3), 10.0, 4.0, sigma, 60.0, 70.0)
    r3 = dataclasses.replace(r)
    r3.deviation_3d = short
    r3.cue_3d = Cue("red", ("tip 4 mm cranial of plan",), ())
    w.registration.done.emit(job, (r3, np.zeros((4, 4, 4), np.uint8)))
    panel = w.panel_text()
    assert (panel["mm"], panel["deg"]) == ("4.0 mm", "3 deg")
    assert panel["state"] == "shot 1 · L1 lateral · 3-D from two views (±0.7 mm); apex at planned depth, 10 mm to go"
    assert panel["level"] == "OFF PLAN"          # the 3-D cue's level, whatever the one view said
    assert panel["correction"] == "tip 4 mm cranial of plan"   # and its lines
    at_depth = dataclasses.replace(short, remaining_depth_mm=0.5, predicted_apex_deviation_mm=4.1)
    r3.deviation_3d = at_depth
    r3.deviation_3d_with = {"number": 2, "view": "inlet"}   # the pipeline names the earlier shot
    w.registration.done.emit(job, (r3, np.zeros((4, 4, 4), np.uint8)))
    panel = w.panel_text()
    assert panel["mm"] == "4.1 mm"
    assert panel["state"] == f"shot 1 · L1 lateral · 3-D from shots 2 (inlet) + {r3.number} (lateral) (±0.7 mm)"
    r3.deviation_3d = dataclasses.replace(short, remaining_depth_mm=-5.0, apex_deviation_mm=6.3)   # past the apex
    w.registration.done.emit(job, (r3, np.zeros((4, 4, 4), np.uint8)))
    assert w.panel_text()["mm"] == "6.3 mm"


def test_a_new_shot_from_the_video_clears_the_previous_state(shots, qtbot, qapp, tmp_path):
    """The same through the real capture thread, video worker and shot detector: a video
    file with two shots; the second one's registration is held back."""
    import cv2

    from or_assist.video.sources.opencv import FileSource

    plan, pose, sims = shots
    path = tmp_path / "two_shots.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, FRAME_SIZE_PX, False)
    blank = np.zeros(FRAME_SIZE_PX[::-1], np.uint8)
    for image in [blank] * 10 + [sims[0].frame] * 25 + [blank] * 10 + [sims[1].frame] * 25:
        writer.write(image)
    writer.release()
    case, registrar = _case(shots, tmp_path)
    case = dataclasses.replace(case, source=FileSource(path, realtime=True))
    registrar.gate, registrar.gate_from_call = threading.Event(), 2
    theme.apply_dark_theme(qapp)
    w = MainWindow(case, AppSettings())
    qtbot.addWidget(w)
    w.show()
    w.start()
    try:
        qtbot.waitUntil(lambda: w.shots_seen == 2, timeout=20000)
        first = w.last_result
        assert first is not None and first.registered and abs(first.deviation.tip_offset_mm - 3.0) < 1.0
        # the second shot is on screen and being matched: nothing of the first is shown
        panel = w.panel_text()
        assert (panel["level"], panel["state"]) == ("NEW SHOT...", "shot 2 · L1 lateral · matching to the CT")
        assert (panel["mm"], panel["correction"], panel["hint"]) == ("-- mm", "", "") and not w.overlay_visible
        registrar.gate.set()
        qtbot.waitUntil(lambda: w.last_result is not first, timeout=20000)
        second = w.last_result
        assert second.registered and abs(second.deviation.tip_offset_mm - 1.0) < 1.0
        assert w.panel_text()["mm"] == f"{second.deviation.tip_offset_mm:.1f} mm"
        assert w.panel_text()["state"] == "shot 2 · L1 lateral · 2-D, this view" and w.overlay_visible
    finally:
        registrar.gate.set()
        w.shutdown()


def _visible_labels(w):
    return [lab for lab in w.findChildren(QtWidgets.QLabel) if lab.isVisible()]


def test_text_is_legible_from_2_m_on_a_1080p_screen(display, qtbot, qapp):
    from or_assist.guidance.overlay import text_height_px

    w, registrar, sims = display
    w.resize(1920, 1080)
    _send_shot(w, sims[0], 10)
    _registered(qtbot, w, 10)
    qapp.processEvents()
    # every label's text at least 32 px, the key numbers 72 px
    for lab in _visible_labels(w):
        assert lab.font().pixelSize() >= theme.MIN_TEXT_PX, (lab.text(), lab.font().pixelSize())
        for size in re.findall(r"font-size:(\d+)px", lab.text()):
            assert int(size) >= theme.MIN_TEXT_PX, lab.text()
    assert "font-size:72px" in w.mm_label.text() and "font-size:72px" in w.deg_label.text()
    assert w.implant_box.font().pixelSize() >= theme.MIN_TEXT_PX
    # the on-image cue text: the frame is shown scaled; its capitals must be at least
    # those of a 32 px font on the screen
    w.video_box.autoRange(padding=0.0)
    qapp.processEvents()
    frame_px_per_screen_px = max(w.video_box.viewPixelSize())
    cap_on_screen_px = text_height_px(FRAME_SIZE_PX[1]) / frame_px_per_screen_px
    cap_32_px = QtGui.QFontMetrics(theme.font_px(theme.MIN_TEXT_PX)).capHeight()
    assert cap_on_screen_px >= cap_32_px, (cap_on_screen_px, cap_32_px)
    # every headline fits its bar on one line
    from or_assist.live.wording import HEADLINES

    metrics = QtGui.QFontMetrics(w.level_label.font())
    for text, _ in HEADLINES.values():
        assert metrics.horizontalAdvance(text) <= w.level_label.contentsRect().width(), text


def test_on_image_text_is_wrapped_inside_the_frame():
    from or_assist.guidance.overlay import draw_text_block, text_height_px

    img = np.zeros((1080, 1920, 3), np.uint8)
    warning = "WARNING: projected pin path crosses s1_foramen_left (this view)"
    draw_text_block(img, ["tip 3.0 mm cranial of plan (this view)", warning],
                    colours=[(0, 180, 255), (60, 60, 240)])
    drawn = img.max(axis=2) > 0
    cols, rows = np.flatnonzero(drawn.any(axis=0)), np.flatnonzero(drawn.any(axis=1))
    assert cols.min() >= 1920 // 2 - 60          # half the frame at most, from the right edge
    assert img[..., 2].max() >= 230               # the red warning is there (wrapped, not cut)
    red_rows = np.flatnonzero(((img[..., 2] > 200) & (img[..., 1] < 90)).any(axis=1))
    assert red_rows.max() - red_rows.min() > 2 * text_height_px(1080)  # on two lines or more
    assert rows.max() < 1080


def test_quit_key_closes_the_case(display, qtbot, tmp_path):
    w, registrar, sims = display
    qtbot.keyClick(w, QtCore.Qt.Key_Q, QtCore.Qt.ControlModifier)
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=5000)
    assert w.stopped_by == "quit key"
    [case] = list_cases(tmp_path)
    assert case["status"] == "closed"
    with CaseLog.open(w.case.case_log.case_dir, readonly=True) as log:
        assert [e["kind"] for e in log.events()] == ["quit"]


@pytest.mark.parametrize("signum, name", [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl+C (SIGINT)")])
def test_a_signal_closes_the_display_and_the_case(tmp_path, signum, name):
    """In its own process, as in the OR: the display is up, a signal comes, the window
    closes, the case is closed and marked interrupted with the signal's name."""
    import subprocess
    import sys
    import time

    from tests.conftest import REPO_ROOT

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "tests" / "app" / "app_signal_script.py"),
                             str(tmp_path / "cases"), str(tmp_path / "settings.json")], env=env, cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 120
        line = ""
        while line.strip() != "ready" and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
        assert line.strip() == "ready", "the display did not start"
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert f"{name}: closing the display and the case" in out and f"stopped by {name}" in out
    [summary] = list_cases(tmp_path / "cases")
    assert summary["status"] == f"interrupted: the OR display was stopped by {name}."
    assert summary["ended"] is not None


def test_a_failed_start_leaves_no_open_case(shots, qapp, tmp_path):
    from or_assist.app.run import run_window

    case, _ = _case(shots, tmp_path)
    with pytest.raises(InputError, match="no_signal_report_s"):
        run_window(case, settings=AppSettings(), settings_file=tmp_path / "settings.json", log=print,
                   no_signal_report_s=-1.0)
    [summary] = list_cases(tmp_path)
    assert summary["status"].startswith("interrupted: the OR display did not start (InputError: ")
    assert summary["ended"] is not None


def test_no_big_offset_number_from_an_unseen_tip(display, qtbot):
    """The 72-px numbers come only from what was seen: with the tip not seen there is no
    tip offset (the angle of the seen pin stays); a pin seen end-on gives no angle."""
    w, registrar, sims = display
    job = _send_shot(w, sims[0], 10)
    r = _registered(qtbot, w, 10)
    assert r.deviation is not None and r.deviation.tip_reliable
    hidden = dataclasses.replace(r)
    hidden.deviation = dataclasses.replace(r.deviation, tip_reliable=False, tip_problem="tip hidden")
    w.registration.done.emit(job, (hidden, np.zeros((4, 4, 4), np.uint8)))
    panel = w.panel_text()
    assert panel["mm"] == "-- mm" and panel["deg"] == f"{r.deviation.angle_deg:.0f} deg"
    assert panel["state"].endswith("2-D, this view; tip not seen")
    assert hidden.cue is not None and panel["correction"] == "\n".join(hidden.cue.lines[:2])   # the cue's own lines
    end_on = dataclasses.replace(r)
    end_on.deviation = dataclasses.replace(r.deviation, foreshortening=0.1)
    w.registration.done.emit(job, (end_on, np.zeros((4, 4, 4), np.uint8)))
    panel = w.panel_text()
    assert panel["deg"] == "-- deg" and panel["mm"] == f"{r.deviation.tip_offset_mm:.1f} mm"



@pytest.mark.parametrize("size_px, n_warnings", [((1600, 900), 1), ((1600, 1000), 1), ((1920, 1080), 2)])
def test_a_long_warning_gets_the_room_it_needs(display, qtbot, qapp, size_px, n_warnings):
    """A registered shot with two correction lines and long safety warnings, a C-arm hint
    and a case line, in the window the display opens (1600 x 900), the demo's and a 1080p
    screen: the window keeps its size, every text gets the height its wrapped lines need,
    nothing is drawn over anything else, and what is said is on screen whole (the virtual
    view below it gives up its room first)."""
    from or_assist.guidance.cues import Cue

    w, registrar, sims = display
    w.resize(*size_px)
    job = _send_shot(w, sims[0], 10)
    r = _registered(qtbot, w, 10)
    warnings = ("WARNING: projected pin path within 2.2 mm of s1_foramen_left (this view)",
                "WARNING: projected pin path within 3.1 mm of spinal_canal (this view)")[:n_warnings]
    long = dataclasses.replace(r, cue=Cue("amber", ("tip 3.0 mm cranial of plan (this view)",
                                                    "tip at the planned depth"), warnings),
                               hint="rotate the C-arm 4 deg cranial (approx.)")
    w.registration.done.emit(job, (long, np.zeros((4, 4, 4), np.uint8)))
    qtbot.wait(100)   # the layout settles (a label's new height is a posted layout request)
    assert w.panel_text()["warnings"].count("\n") == n_warnings - 1 and w.panel_text()["hint"]
    assert (w.width(), w.height()) == size_px
    said = [w.level_label, w.state_label, w.mm_label, w.correction_label, w.warning_label, w.hint_label,
            w.case_label]
    bottom_px = w.centralWidget().geometry().bottom()
    spans = []
    for lab in said + [w.angles_label]:
        assert lab.isVisible(), lab.text()
        need = lab.heightForWidth(lab.width()) if lab.wordWrap() else lab.sizeHint().height()
        assert lab.height() >= need, (size_px, lab.text(), lab.height(), need)
        top = lab.mapTo(w, QtCore.QPoint(0, 0)).y()
        spans.append((top, top + lab.height(), lab.text()))
        if lab in said:   # what is said is on screen whole
            assert top + lab.height() <= bottom_px, (size_px, lab.text(), top + lab.height(), bottom_px)
    spans.sort()
    for (_, bottom, text), (top, _, below) in zip(spans, spans[1:]):
        assert bottom <= top, (size_px, text, below)
    # what room is left is the virtual view's; too little of it draws no postage stamp
    assert w.virtual_item.isVisible() == (w.virtual_view.height() >= w.virtual_view.MIN_DRAWN_PX)
