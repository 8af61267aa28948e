"""The live two-view 3-D deviation on exact projections: pairing, the pin moved, tips unseen, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from or_assist.core.carm_profiles import load_profile
from or_assist.core.geometry import project
from or_assist.core.plan import load_plan
from or_assist.core.pose import Pose, rotation_about_axis
from or_assist.core.view_poses import plan_view_pose
from or_assist.errors import InputError
from or_assist.guidance.pin import PinDetection
from or_assist.live.two_view import (MOVED_FLOOR_MM, PinView, TwoViewTracker, view_uncertainty,
                                     views_angle_deg)
from or_assist.register.pipeline import RegistrationResult
from or_assist.sim.sample import demo_pin
from tests.conftest import REAL_PLAN


@pytest.fixture(scope="module")
def plan():
    return load_plan(REAL_PLAN)


@pytest.fixture(scope="module")
def geometry():
    return load_profile("siemens_cios_fusion").geometry_at(512)


def _view(number, view, pin, pose, geometry, *, occluded=False, at_border=False, est_mm=1.0) -> PinView:
    tip, back = project(np.stack([pin.tip_lps_mm, pin.back_lps_mm]), pose, geometry)
    d = (tip - back) / np.linalg.norm(tip - back)
    det = PinDetection(tip, back, d, 10.0, 1.0, 0.0, 1.0, tip_occluded=occluded, tip_at_border=at_border)
    reg = RegistrationResult(pose, True, 0.9, "gc", 1.0, estimated_error_mm=est_mm)
    return PinView(number, view, pose, geometry, det, view_uncertainty(reg))


def _truth(imp, pin):
    apex = float(np.linalg.norm(pin.tip_lps_mm - imp.apex_lps_mm))
    d = (pin.tip_lps_mm - pin.back_lps_mm) / np.linalg.norm(pin.tip_lps_mm - pin.back_lps_mm)
    return apex, math.degrees(math.acos(float(np.clip(d @ imp.axis_unit, -1, 1))))


def _poses(plan, geometry, imp_id):
    return {v: plan_view_pose(plan, imp_id, v, geometry=geometry) for v in ("inlet", "outlet", "lateral")}


def test_inlet_outlet_pair_gives_the_pins_3d_deviation(plan, geometry):
    imp = plan.implants[0]
    poses = _poses(plan, geometry, imp.id)
    pin = demo_pin(imp, 0.7, (0.0, 1.5, 3.0), 4.0)
    tracker = TwoViewTracker(plan)
    first = tracker.update(imp.id, _view(1, "inlet", pin, poses["inlet"], geometry))
    assert first.deviation is None and "needs a second shot" in first.refused and "inlet + outlet" in first.refused
    r = tracker.update(imp.id, _view(2, "outlet", pin, poses["outlet"], geometry))
    assert r.refused is None and (r.older.number, r.newer.number) == (1, 2)
    apex, angle = _truth(imp, pin)
    d = r.deviation
    assert d.apex_deviation_mm == pytest.approx(apex, abs=0.05)
    assert d.angle_deg == pytest.approx(angle, abs=0.05)
    assert np.allclose(d.tip_lps_mm, pin.tip_lps_mm, atol=0.05)
    # the registrations' uncertainty is propagated, and both tips agree exactly here
    assert 0.2 < d.uncertainty["apex_deviation_mm"] < 5.0 and 0.05 < d.uncertainty["angle_deg"] < 3.0
    assert r.tips_gap_mm == pytest.approx(0.0, abs=0.05) and not d.warnings
    assert r.cue is not None and any("apex" in line for line in r.cue.lines)
    # a third shot (lateral) pairs with the most recent one far enough in direction (the outlet), but the
    # lateral sees the pin nearly end-on: a move between the shots could not be seen, so no 3-D apex
    r3 = tracker.update(imp.id, _view(3, "lateral", pin, poses["lateral"], geometry))
    assert r3.older.number == 2 and r3.deviation is None
    assert "shot 3 (lateral) sees the pin nearly end-on" in r3.refused and "inlet + outlet" in r3.refused
    # a fourth (inlet) passes over the lateral (end-on) to the outlet before it, which checks the pin did not move
    r4 = tracker.update(imp.id, _view(4, "inlet", pin, poses["inlet"], geometry))
    assert r4.refused is None and r4.older.number == 2
    assert r4.deviation.apex_deviation_mm == pytest.approx(apex, abs=0.05)


def test_a_worse_registration_gives_a_wider_uncertainty(plan, geometry):
    imp = plan.implants[0]
    poses = _poses(plan, geometry, imp.id)
    pin = demo_pin(imp, 0.7, (0.0, 0.0, 3.0), 4.0)
    sigmas = []
    for est in (1.0, 6.0):
        tracker = TwoViewTracker(plan)
        tracker.update(imp.id, _view(1, "inlet", pin, poses["inlet"], geometry, est_mm=est))
        r = tracker.update(imp.id, _view(2, "outlet", pin, poses["outlet"], geometry, est_mm=est))
        sigmas.append(r.deviation.uncertainty["apex_deviation_mm"])
    assert sigmas[1] > 1.2 * sigmas[0]
    assert view_uncertainty(RegistrationResult(None, True, 0.9, "gc", 1.0, estimated_error_mm=6.0)).pose_mm == 1.5
    assert view_uncertainty(RegistrationResult(None, True, 0.9, "gc", 1.0)).pose_mm == 1.0


def test_pin_advanced_between_the_shots_is_refused(plan, geometry):
    imp = plan.implants[0]
    poses = _poses(plan, geometry, imp.id)
    before = demo_pin(imp, 0.5, (0.0, 0.0, 3.0), 4.0)
    after = demo_pin(imp, 0.5 + 6.0 / imp.length_mm, (0.0, 0.0, 3.0), 4.0)  # advanced 6 mm along itself
    tracker = TwoViewTracker(plan)
    tracker.update(imp.id, _view(1, "inlet", before, poses["inlet"], geometry))
    r = tracker.update(imp.id, _view(2, "outlet", after, poses["outlet"], geometry))
    assert r.deviation is None and r.refused.startswith("pin moved since shot 1 (inlet)")
    assert r.tips_gap_mm == pytest.approx(6.0, abs=0.3)
    # the next view after the advance pairs with the outlet (the pin has not moved since)
    r = tracker.update(imp.id, _view(3, "inlet", after, poses["inlet"], geometry))
    assert r.refused is None and r.older.number == 2
    assert r.deviation.apex_deviation_mm == pytest.approx(_truth(imp, after)[0], abs=0.05)
    # advanced again before a lateral (end-on: cannot check) and an inlet: the inlet passes over the
    # lateral to the outlet, and the move since the outlet is seen
    again = demo_pin(imp, 0.5 + 12.0 / imp.length_mm, (0.0, 0.0, 3.0), 4.0)
    assert "end-on" in tracker.update(imp.id, _view(4, "lateral", again, poses["lateral"], geometry)).refused
    r = tracker.update(imp.id, _view(5, "outlet", again, poses["outlet"], geometry))
    assert r.deviation is None and r.refused.startswith("pin moved since shot 3 (inlet)")


def test_a_small_disagreement_of_the_tips_widens_the_uncertainty(plan, geometry):
    imp = plan.implants[0]
    poses = _poses(plan, geometry, imp.id)
    before = demo_pin(imp, 0.5, (0.0, 0.0, 3.0), 4.0)
    after = demo_pin(imp, 0.5 + 1.0 / imp.length_mm, (0.0, 0.0, 3.0), 4.0)  # 1 mm: below the move limit
    tracker = TwoViewTracker(plan)
    tracker.update(imp.id, _view(1, "inlet", before, poses["inlet"], geometry))
    r = tracker.update(imp.id, _view(2, "outlet", after, poses["outlet"], geometry))
    assert r.refused is None and r.tips_gap_mm == pytest.approx(1.0, abs=0.2) and r.tips_gap_mm < MOVED_FLOOR_MM
    truth_apex = [_truth(imp, p)[0] for p in (before, after)]
    assert min(truth_apex) - 0.1 <= r.deviation.apex_deviation_mm <= max(truth_apex) + 0.1
    assert r.deviation.uncertainty["tip_mm"] >= 0.5


def test_pair_less_than_20_deg_apart_is_refused(plan, geometry):
    imp = plan.implants[0]
    poses = _poses(plan, geometry, imp.id)
    pin = demo_pin(imp, 0.7, (0.0, 0.0, 3.0), 4.0)
    inlet = poses["inlet"]
    centre = inlet.apply(imp.apex_lps_mm)  # the inlet turned 10 deg about the apex
    t = np.eye(4)
    t[:3, :3] = rotation_about_axis(np.array([1.0, 0.0, 0.0]), math.radians(10.0))
    t[:3, 3] = centre - t[:3, :3] @ centre
    turned = Pose(t @ inlet.matrix)
    assert views_angle_deg(inlet, turned) == pytest.approx(10.0, abs=0.01)
    tracker = TwoViewTracker(plan)
    tracker.update(imp.id, _view(1, "inlet", pin, inlet, geometry))
    r = tracker.update(imp.id, _view(2, "inlet", pin, turned, geometry))
    assert r.deviation is None and "too close in direction" in r.refused and "10 deg" in r.refused
    assert "at least 20 deg" in r.refused


def test_tip_not_seen_gives_no_apex(plan, geometry):
    imp = plan.implants[0]
    poses = _poses(plan, geometry, imp.id)
    pin = demo_pin(imp, 0.7, (0.0, 0.0, 3.0), 4.0)
    tracker = TwoViewTracker(plan)
    tracker.update(imp.id, _view(1, "inlet", pin, poses["inlet"], geometry, occluded=True))
    r = tracker.update(imp.id, _view(2, "outlet", pin, poses["outlet"], geometry))
    assert r.deviation is None and "tip is not seen in shot 1 (inlet)," in r.refused
    r = tracker.update(imp.id, _view(3, "inlet", pin, poses["inlet"], geometry, at_border=True))
    assert r.deviation is None and "not seen in shot 3 (inlet)," in r.refused and r.older.number == 2
    tracker = TwoViewTracker(plan)
    tracker.update(imp.id, _view(1, "inlet", pin, poses["inlet"], geometry, occluded=True))
    r = tracker.update(imp.id, _view(2, "outlet", pin, poses["outlet"], geometry, at_border=True))
    assert r.deviation is None and "not seen in shot 1 (inlet) nor in shot 2 (outlet)" in r.refused


def test_implants_are_kept_apart_and_bad_input(plan, geometry):
    a, b = plan.implants[0], plan.implants[1]
    pa, pb = _poses(plan, geometry, a.id), _poses(plan, geometry, b.id)
    tracker = TwoViewTracker(plan, kept_shots=2)
    tracker.update(a.id, _view(1, "inlet", demo_pin(a, 0.7), pa["inlet"], geometry))
    r = tracker.update(b.id, _view(2, "outlet", demo_pin(b, 0.7), pb["outlet"], geometry))
    assert r.deviation is None and f"second shot of {b.id}" in r.refused
    assert tracker.update(a.id, None, reason="no pin detected in this shot").refused == "no pin detected in this shot"
    for k in range(3):
        tracker.update(a.id, _view(3 + k, "outlet", demo_pin(a, 0.7), pa["outlet"], geometry))
    assert [v.number for v in tracker.history(a.id)] == [4, 5]
    tracker.reset(a.id)
    assert tracker.history(a.id) == [] and len(tracker.history(b.id)) == 1
    with pytest.raises(InputError, match="plan"):
        TwoViewTracker(object())
    with pytest.raises(InputError, match="kept_shots"):
        TwoViewTracker(plan, kept_shots=0)
    with pytest.raises(InputError, match="view"):
        tracker.update(a.id, "shot 3")
    with pytest.raises(InputError, match="X9"):
        tracker.update("X9", None)


def test_no_partner_gives_the_pin_then_the_most_recent_reason_is_said(plan, geometry):
    imp = plan.implants[0]
    poses = _poses(plan, geometry, imp.id)
    pin = demo_pin(imp, 0.7, (0.0, 0.0, 3.0), 4.0)
    tracker = TwoViewTracker(plan)
    tracker.update(imp.id, _view(1, "inlet", pin, poses["inlet"], geometry, occluded=True))
    tracker.update(imp.id, _view(2, "lateral", pin, poses["lateral"], geometry))
    r = tracker.update(imp.id, _view(3, "outlet", pin, poses["outlet"], geometry))
    # the lateral (end-on) was tried first, then the inlet (tip hidden): neither gives the pin
    assert r.deviation is None and r.older.number == 2 and "shot 2 (lateral) sees the pin nearly end-on" in r.refused
