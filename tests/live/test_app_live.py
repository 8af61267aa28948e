"""The OR display's pipeline without Qt: the headless demo writes the case log, the C-arm
hint, the settings file, bad arguments, and no Qt import outside or_assist/app."""

from __future__ import annotations

import json
import subprocess
import time
import sys

import numpy as np
import pytest

from or_assist.errors import InputError
from or_assist.session.caselog import CaseLog
from or_assist.live.pipeline import LivePipeline
from or_assist.live.hint import positioning_hint
from tests.conftest import REPO_ROOT
from tests.live.conftest import turned_pose

REPO = REPO_ROOT


def test_positioning_hint_words(sample_case):
    from or_assist.core.view_poses import plan_view_pose

    _, plan, geometry = sample_case
    planned = plan_view_pose(plan, "L1", "inlet", geometry=geometry)
    assert positioning_hint(planned, planned, plan.landmarks) is None
    assert positioning_hint(turned_pose(planned, 0, 6, plan.landmarks), planned, plan.landmarks) == \
        "tilt 6 deg more caudal"
    assert positioning_hint(turned_pose(planned, 0, -4, plan.landmarks), planned, plan.landmarks) == \
        "tilt 4 deg more cranial"
    assert positioning_hint(turned_pose(planned, -5, 2, plan.landmarks), planned, plan.landmarks) == \
        "rotate 5 deg towards LAO"
    assert positioning_hint(turned_pose(planned, 7, -8, plan.landmarks), planned, plan.landmarks) == \
        "rotate 7 deg towards RAO, tilt 8 deg more cranial"
    with pytest.raises(InputError, match="pose"):
        positioning_hint(np.eye(4), planned)


@pytest.mark.slow
def test_headless_demo_writes_the_case_log(tmp_path):
    from or_assist.live.run import run_headless
    from or_assist.sim.scenario.demo_case import open_demo_case

    lines = []
    from or_assist.register.settings import RegistrationSettings

    case = open_demo_case(realtime=False, loop=False, implants=["L1"], cases_root=tmp_path,
                          registration_settings=RegistrationSettings(time_budget_s=None))
    try:
        summary = run_headless(case, max_shots=2, log=lines.append)
    finally:
        case.close()
    assert len(summary["shots"]) == 2 and lines == summary["shots"]
    assert summary["registered"] == 2, lines
    assert lines[0].startswith("shot 1 [L1 lateral]: registered")
    assert lines[0].endswith("C-arm: tilt 6 deg more caudal")  # the demo's first lateral is 6 deg off
    assert lines[1].startswith("shot 2 [L1 inlet]: registered")
    assert "C-arm:" not in lines[1]
    with CaseLog.open(summary["case_dir"], readonly=True) as log:
        shots, captures = log.shots(), log.captures()
        events = log.events()
    assert [(s["implant_id"], s["view"]) for s in shots] == [("L1", "lateral"), ("L1", "inlet")]
    assert all(s["registration"]["success"] for s in shots)
    assert len(captures) == summary["captures"] == 2  # the demo script captures each cue
    assert captures[0]["cue"]["level"] in ("green", "amber", "red")
    assert captures[0]["deviations"]["deviation_2d"]["tip_offset_mm"] > 0
    assert [e["kind"] for e in events] == ["capture", "capture"]


def test_the_demo_takes_a_time_budget(tmp_path):
    """``demo --time-budget-s``: on a computer whose DRRs take 50 ms more each, a 0.5 s
    budget ends the shots NOT REGISTERED for time, saying so (the budget reaches the
    registrar); the second such shot brings the notice that the computer may be too slow
    for the budget (or_assist.live.time_budget), once, also in the case log; a budget out
    of range is refused naming the option."""
    from or_assist.app.run import demo_app
    from or_assist.render.drr import DRRRenderer
    from or_assist.sim.scenario.demo_case import open_demo_case

    class Sleepy(DRRRenderer):
        def render(self, pose, geometry, **kwargs):
            time.sleep(0.05)
            return super().render(pose, geometry, **kwargs)

    def open_slow(**options):
        case = open_demo_case(**options)
        case.pipeline.registrar.renderer = Sleepy(case.pipeline.registrar.renderer.volume)
        case.pipeline.try_other_views = False
        return case

    lines = []
    assert demo_app(open_slow, headless=True, max_shots=2, implants=["L1"], cases_root=tmp_path, time_budget_s=0.5,
                    log=lines.append) == 0
    assert lines[0].startswith("shot 1 [L1 lateral]: NOT REGISTERED"), lines
    assert "the time budget of 0.5 s ran out" in lines[0] and "WARNING" not in lines[0]
    assert lines[1].startswith("shot 2 [L1 inlet]: NOT REGISTERED") and "the time budget of 0.5 s ran out" in lines[1]
    assert lines[1].endswith("; WARNING: 2 of the last 2 shots ran out of the registration's 0.5 s time budget: "
                             "this computer may be too slow for it. Run once with --time-budget-s 0 (no limit) to "
                             "see how long a registration takes here, then set --time-budget-s above that"), lines[1]
    with CaseLog.open(lines[-1].split("case log: ")[1], readonly=True) as log:
        events = [e for e in log.events() if e["kind"] == "time_budget"]
    assert len(events) == 1 and events[0]["detail"]["shot"] == 2
    with pytest.raises(InputError, match="--time-budget-s"):
        demo_app(open_slow, headless=True, max_shots=1, cases_root=tmp_path, time_budget_s=-1.0, log=lines.append)


def test_the_time_budgets_range_is_one_constant():
    """The command line, the display's settings and the registration accept the same range."""
    from or_assist.app.run import budget_settings
    from or_assist.app.settings import AppSettings
    from or_assist.cli._parser import _ARG_LIMITS
    from or_assist.register.settings import MAX_TIME_BUDGET_S, RegistrationSettings

    assert _ARG_LIMITS["time_budget_s"][1:3] == (0, MAX_TIME_BUDGET_S)
    assert budget_settings(MAX_TIME_BUDGET_S).time_budget_s == MAX_TIME_BUDGET_S
    assert AppSettings(time_budget_s=MAX_TIME_BUDGET_S).time_budget_s == MAX_TIME_BUDGET_S
    assert RegistrationSettings(time_budget_s=MAX_TIME_BUDGET_S).time_budget_s == MAX_TIME_BUDGET_S
    over = MAX_TIME_BUDGET_S + 1
    for make, name in ((budget_settings, "--time-budget-s"), (lambda v: AppSettings(time_budget_s=v), "time_budget_s"),
                       (lambda v: RegistrationSettings(time_budget_s=v), "time_budget_s")):
        with pytest.raises(InputError, match=name):
            make(over)


def test_not_registered_shot_has_no_plan_overlay(sample_case, tmp_path):
    from or_assist.register.pipeline import RegistrationResult

    class NeverConfident:
        def register(self, frame, init_pose, *, polarity="bone-dark", library=None, target_lps_mm=None):
            return RegistrationResult(init_pose, False, 0.05, "gc", 0.01, "not confident: test")

    ct, plan, geometry = sample_case
    from or_assist.core.view_poses import plan_view_pose
    from or_assist.sim.shots.simulate import simulate_shot
    from or_assist.sim.shots.settings import ShotSettings

    pose = plan_view_pose(plan, "L1", "lateral", geometry=geometry)
    shot = simulate_shot(ct, pose, geometry, settings=ShotSettings(frame_size_px=(640, 480), seed=3))
    pipe = LivePipeline(plan, shot.video_geometry, registrar=NeverConfident(), try_other_views=True)
    r = pipe.process(shot.frame, "L1", "lateral")
    assert not r.registered and r.pose is None and r.cue is None and r.hint is None
    assert "NOT REGISTERED" in r.summary()
    # nothing amber (the plan colour) is drawn; the red banner is
    ov = r.overlay_bgr
    amber = (ov[..., 2] > 200) & (ov[..., 1] > 150) & (ov[..., 1] < 220) & (ov[..., 0] < 40)
    assert not amber.any()
    assert ((ov[..., 2] > 200) & (ov[..., 0] < 90) & (ov[..., 1] < 90)).any()
    with pytest.raises(InputError, match="L9"):
        pipe.process(shot.frame, "L9", "lateral")


def test_bad_arguments(sample_case, tmp_path):
    from or_assist.app.run import demo_app, run_app
    from or_assist.live.run import LiveCase, run_headless
    from or_assist.sim.scenario.demo_case import open_demo_case

    _, plan, geometry = sample_case
    with pytest.raises(InputError, match="geometry"):
        LivePipeline(plan, {"sid_mm": 1000})
    with pytest.raises(InputError, match="ct"):
        LivePipeline(plan, geometry)
    with pytest.raises(InputError, match="plan"):
        LivePipeline(object(), geometry, registrar=object())
    pipe = LivePipeline(plan, geometry, registrar=object())
    case = LiveCase(None, pipe, "none")
    with pytest.raises(InputError, match="max_shots"):
        run_headless(case, max_shots=0)
    with pytest.raises(InputError, match="duration_s"):
        run_headless(case, duration_s=-1)
    with pytest.raises(InputError, match="--screen"):
        demo_app(open_demo_case, screen=-1)
    with pytest.raises(InputError, match="--duration"):
        demo_app(open_demo_case, headless=True, duration_s=0)
    empty = tmp_path / "settings.json"
    with pytest.raises(InputError, match="--plan"):
        run_app(None, None, None, settings_file=empty, cases_root=tmp_path)
    with pytest.raises(InputError, match="missing_plan.json: file not found"):
        run_app(tmp_path / "missing_plan.json", tmp_path / "g.json", "0", settings_file=empty,
                cases_root=tmp_path)
    from or_assist.core.geometry import save_geometry
    from or_assist.core.carm_profiles import load_profile
    from tests.conftest import REAL_PLAN

    save_geometry(load_profile("siemens_arcadis_varic").geometry_at(512), tmp_path / "g.json")
    with pytest.raises(InputError, match="missing_dewarp.json: file not found"):
        run_app(REAL_PLAN, tmp_path / "g.json", "0", settings_file=empty, cases_root=tmp_path,
                dewarp=tmp_path / "missing_dewarp.json")


def test_settings_round_trip_and_damaged_file(tmp_path, monkeypatch):
    from or_assist.app.settings import SETTINGS_SCHEMA, AppSettings, load_settings, save_settings, settings_path

    monkeypatch.setenv("OR_ASSIST_CONFIG_DIR", str(tmp_path / "cfg"))
    assert settings_path() == tmp_path / "cfg" / "settings.json"
    assert load_settings() == (AppSettings(), None)
    s = AppSettings(last_source="/dev/video2", geometry="g.json", dewarp="d.json", plan="p.json", screen=1,
                    overlay_opacity=0.5, time_budget_s=9.0)
    path = save_settings(s)
    assert json.loads(path.read_text())["schema"] == SETTINGS_SCHEMA
    assert load_settings() == (s, None)
    path.write_text("{not json")
    settings, warning = load_settings()
    assert settings == AppSettings() and "not readable JSON" in warning
    path.write_text(json.dumps({"schema": SETTINGS_SCHEMA, "screen": -2}))
    settings, warning = load_settings()
    assert settings == AppSettings() and "screen" in warning
    path.write_text(json.dumps({"schema": "other/1"}))
    assert "expected schema" in load_settings()[1]
    with pytest.raises(InputError, match="overlay_opacity"):
        AppSettings(overlay_opacity=1.5)
    with pytest.raises(InputError, match="last_source"):
        AppSettings(last_source=3)
    with pytest.raises(InputError, match="time_budget_s"):
        AppSettings(time_budget_s=-1.0)
    assert AppSettings().time_budget_s == 3.0
    with pytest.raises(InputError, match="settings"):
        save_settings({"screen": 0})


def test_live_pipeline_modules_do_not_import_qt():
    code = ("import sys, importlib.abc\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] in ('PyQt5', 'pyqtgraph'):\n"
            "            raise ImportError('Qt blocked: ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import or_assist.live.pipeline, or_assist.live.run, or_assist.app.settings\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# ---------------------------------------------------------------------- plain words (live/wording.py)
@pytest.mark.parametrize("technical, plain", [
    ("not confident: final gc 0.154 is below the threshold 0.400",
     "The image does not match the CT: take another shot."),
    ("not confident: two independent starts ended 6.2 mm apart at the planned implant with similar similarity "
     "(0.61 against 0.60); the shot fits more than one pose",
     "The image fits the CT in more than one position: take another shot with more bone in view."),
    ("not confident: estimated error 3.1 mm at the planned implant is above the limit of 2 mm",
     "The match with the CT is not precise enough at the implant: take another shot."),
    ("the result is 12.0 deg and 30.1 mm from the start pose, outside the capture range",
     "The C-arm is too far from the planned view: move it to the planned view and take another shot."),
    ("not registered: the time budget of 8.0 s ran out in the fine stage",
     "Matching to the CT took too long: take another shot."),
    ("no X-ray field found (the image is black or nearly so)",
     "No X-ray image (the image is black): take another shot."),
    ("cannot use this image: frame: is a colour image (median chroma 80 of 255), not fluoroscopy",
     "The video shows a colour image, not an X-ray: check the video input."),
    ("no guide pin detected near the planned trajectory", "No guide pin found near the planned path."),
    ("something nobody foresaw", "Not registered: take another shot."),
    (None, "Not registered: take another shot."),
])
def test_plain_reasons(technical, plain):
    from or_assist.live.wording import plain_reason

    assert plain_reason(technical) == plain
    if plain == "Not registered: take another shot.":   # unknown: a registered shot gives its own default
        assert plain_reason(technical, default="pin at 3 o'clock") == "pin at 3 o'clock"
    else:
        assert plain_reason(technical, default="pin at 3 o'clock") == plain


def test_plain_warnings_and_one_headline():
    from types import SimpleNamespace

    from or_assist.guidance.cues import Cue
    from or_assist.live.wording import HEADLINES, headline, landmark_words, plain_warning

    assert plain_warning("WARNING: projected pin path crosses s1_foramen_left (this view)") == \
        "Pin path crosses the left S1 foramen (this view)"
    assert plain_warning("WARNING: pin path within 1.5 mm of spinal_canal_S1") == \
        "Pin path passes 1.5 mm from the spinal canal S1"
    assert plain_warning("WARNING: something else") == "something else"
    assert landmark_words("s2_foramen") == "S2 foramen"

    def result(registered=True, level="green", warnings=()):
        cue = None if level is None else Cue(level, ("tip 1.0 mm cranial of plan (this view)",), tuple(warnings))
        return SimpleNamespace(registered=registered, cue=cue)

    assert headline(result()) == ("ON PLAN", "green")
    assert headline(result(level="amber")) == ("CLOSE TO PLAN", "amber")
    # a safety warning wins over green; not registered wins over everything of the shot
    assert headline(result(warnings=("WARNING: projected pin path crosses s1_foramen_left",))) == \
        ("SAFETY WARNING", "red")
    assert headline(result(registered=False)) == ("NOT REGISTERED", "red")
    assert headline(result(level=None)) == HEADLINES["no_pin"]
    # no result for the shot on screen: nothing in colour
    assert headline(None) == HEADLINES["waiting"]
    assert headline(None, shot_pending=True) == HEADLINES["registering"]
    assert headline(result(), image_changing=True) == HEADLINES["changing"]
    assert all(level == "none" for key, (_, level) in HEADLINES.items()
               if key in ("waiting", "registering", "changing", "no_pin"))


def test_sigterm_stops_a_headless_run_and_the_case_is_closed_as_interrupted(sample_case, tmp_path):
    import os
    import signal
    import threading

    from or_assist.live.run import LiveCase, run_headless
    from or_assist.session.caselog import list_cases
    from or_assist.video.sources.opencv import UrlSource
    from tests.video.mjpeg_server import closed_port

    _, plan, geometry = sample_case
    log = CaseLog.create(tmp_path, plan=plan, geometry=geometry.to_dict())
    case = LiveCase(UrlSource(f"rtsp://127.0.0.1:{closed_port()}/x", open_timeout_s=0.5),
                    LivePipeline(plan, geometry, registrar=object(), case_log=log), "silent", None, log)
    lines = []
    previous = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        summary = run_headless(case, log=lines.append, source_timeout_s=None, no_signal_report_s=None)
    finally:
        timer.cancel()
        case.close()
    assert summary["stopped_by"] == "SIGTERM" and summary["shots"] == []
    assert lines[-1] == "stopped by SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is previous
    [listed] = list_cases(tmp_path)
    assert listed["status"] == "interrupted: the headless run was stopped by SIGTERM."
    assert listed["ended"] is not None
