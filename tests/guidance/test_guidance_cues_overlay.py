"""Cue levels and anatomical text, safety warnings, and the overlay (legibility, no plan when unregistered)."""

from __future__ import annotations

import numpy as np
import pytest

from or_assist.core.geometry import project
from or_assist.core.instruments import GuidePin
from or_assist.core.view_poses import plan_view_pose
from or_assist.errors import InputError
from or_assist.guidance.cues import CueThresholds, cue_3d, safety_warnings_3d, shot_cue
from or_assist.guidance.deviation import shot_deviation
from or_assist.guidance.triangulate import two_view_deviation
from or_assist.guidance.overlay import NOT_REGISTERED_TEXT, draw_overlay, draw_text_block, text_height_px
from or_assist.guidance.pin import PinDetection


def detection(pin, pose, geometry):
    tip, back = project(np.stack([pin.tip_lps_mm, pin.back_lps_mm]), pose, geometry)
    return PinDetection(tip, back, (tip - back) / np.linalg.norm(tip - back), 20.0, 1.0, 0.0, 1.0)


def known_pin(imp, offset_lps, tilt_towards_lps=None, tilt_deg=0.0, advance=1.0):
    a = imp.axis_unit
    d = a
    if tilt_towards_lps is not None:
        t = np.asarray(tilt_towards_lps, float)
        t = t - (t @ a) * a
        t /= np.linalg.norm(t)
        d = np.cos(np.radians(tilt_deg)) * a + np.sin(np.radians(tilt_deg)) * t
    tip = imp.entry_lps_mm + advance * imp.length_mm * a + np.asarray(offset_lps, float)
    return GuidePin.from_tip_direction(tip, d, 150.0)


def test_levels():
    th = CueThresholds()
    assert th.level(1.0, 1.0) == "green" and th.level(3.0, 1.0) == "amber" and th.level(1.0, 5.0) == "red"
    assert CueThresholds(green_mm=1.0, amber_mm=1.5).level(1.2, 0.0) == "amber"
    with pytest.raises(InputError, match="amber"):
        CueThresholds(green_mm=5.0, amber_mm=4.0)
    with pytest.raises(InputError, match="green_deg"):
        CueThresholds(green_deg=-1.0)


def test_3d_cue_in_anatomical_terms(plan, geometry):
    imp = plan.implant("R2")
    # tip 3 mm cranial (+S) and 2 mm anterior (-P); pin pointing 4 deg caudal
    pin = known_pin(imp, [0.0, -2.0, 3.0], [0.0, 0.0, -1.0], 5.0)
    poses = [plan_view_pose(plan, imp.id, k, geometry=geometry) for k in ("inlet", "outlet")]
    dev = two_view_deviation(imp, [detection(pin, p, geometry) for p in poses], poses, [geometry] * 2)
    cue = cue_3d(dev, imp, plan.landmarks)
    assert cue.level == "red"
    text = " | ".join(cue.lines)
    assert "3.0 mm cranial" in text and "2.0 mm anterior" in text
    assert "aim 5.0 deg cranial" in text
    on_plan = known_pin(imp, [0.0, 0.0, 0.0], advance=0.5)
    dev = two_view_deviation(imp, [detection(on_plan, p, geometry) for p in poses], poses, [geometry] * 2)
    cue = cue_3d(dev, imp, plan.landmarks)
    assert cue.level == "green" and any("advance" in s for s in cue.lines)


def test_shot_cue_and_safety_warning(plan, geometry):
    imp = plan.implant("R1")
    pose = plan_view_pose(plan, imp.id, "outlet", geometry=geometry)
    foramen = next(lm for lm in plan.landmarks if lm.name == "S1 foramen right")
    # a pin aimed straight at the S1 foramen, its tip 12 mm short of the foramen's centre
    d = foramen.position_lps_mm - imp.entry_lps_mm
    d /= np.linalg.norm(d)
    tip = foramen.position_lps_mm - 12.0 * d
    pin = GuidePin.from_tip_direction(tip, d, 150.0)
    dev = shot_deviation(detection(pin, pose, geometry), imp, pose, geometry)
    cue = shot_cue(dev, imp, pose=pose, geometry=geometry, landmarks=plan.landmarks, view_name="outlet")
    assert any("S1 foramen right" in w for w in cue.warnings)
    assert cue.colour_bgr == (60, 60, 240)
    assert any("enters S1 foramen right" in w for w in safety_warnings_3d(tip, d, 0.0, plan.landmarks))
    on_plan = imp.entry_lps_mm + 0.5 * imp.length_mm * imp.axis_unit
    assert safety_warnings_3d(on_plan, imp.axis_unit, 0.5 * imp.length_mm, plan.landmarks) == []


def test_text_height_and_overlay(plan, geometry):
    assert text_height_px(1080) >= 24
    img = np.zeros((1080, 1920, 3), np.uint8)
    draw_text_block(img, ["HHHH"], origin_px=(100, 100), align="left")
    rows = np.flatnonzero((img[..., 1] > 200).any(axis=1))
    assert rows.max() - rows.min() + 1 >= 24
    imp = plan.implant("R1")
    pose = plan_view_pose(plan, imp.id, "outlet", geometry=geometry)
    frame = np.full((1080, 1920), 128, np.uint8)
    pin = known_pin(imp, [0, 0, 3.0], advance=0.7)
    det = detection(pin, pose, geometry)
    dev = shot_deviation(det, imp, pose, geometry)
    cue = shot_cue(dev, imp, pose=pose, geometry=geometry)
    out = draw_overlay(frame, True, pose=pose, geometry=geometry, implants=plan.implants, active_id="R1",
                       detection=det, deviation=dev, cue=cue)
    apex = np.round(project(imp.apex_lps_mm, pose, geometry)).astype(int)
    patch = out[apex[1] - 12:apex[1] + 13, apex[0] - 12:apex[0] + 13].astype(int)
    amber = (patch[..., 2] > 200) & (patch[..., 1] > 140) & (patch[..., 0] < 80)
    assert amber.any()                               # the active implant's apex is marked in amber
    assert (np.abs(out.astype(int) - 128).sum(axis=2) > 0).sum() > 1000


def test_no_plan_when_not_registered(plan, geometry):
    imp = plan.implant("R1")
    pose = plan_view_pose(plan, imp.id, "outlet", geometry=geometry)
    frame = np.full((1080, 1920), 128, np.uint8)
    out = draw_overlay(frame, False, pose=pose, geometry=geometry, implants=plan.implants, active_id="R1")
    changed = np.abs(out.astype(int) - 128).sum(axis=2) > 0
    rows = np.flatnonzero(changed.any(axis=1))
    assert rows.max() < 200                          # only the banner at the top
    red = (out[..., 2] > 200) & (out[..., 1] < 100)
    assert red.any() and NOT_REGISTERED_TEXT.startswith("NOT REGISTERED")
    with pytest.raises(InputError, match="registration_ok"):
        draw_overlay(frame, "yes")
    with pytest.raises(InputError, match="uint8"):
        draw_overlay(frame.astype(np.float32), True)


def test_contralateral_foramen_raises_no_shot_warning():
    """In a lateral view both sides' foramina superimpose: only the implant's side counts."""
    from or_assist.core.plan import Landmark
    from or_assist.guidance.cues import _safety_landmarks

    lms = [Landmark("S1 left", "s1_foramen", "left", [20, 0, 0], 5.0),
           Landmark("S1 right", "s1_foramen", "right", [-20, 0, 0], 5.0),
           Landmark("canal", "spinal_canal", "midline", [0, 10, 0], 8.0)]
    assert [lm.name for lm in _safety_landmarks(lms, "left")] == ["S1 left", "canal"]
    assert [lm.name for lm in _safety_landmarks(lms, "right")] == ["S1 right", "canal"]
    assert len(_safety_landmarks(lms)) == 3
