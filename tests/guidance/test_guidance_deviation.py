"""Pin deviation: one-shot 2-D numbers and two-view triangulation on exact projections."""

from __future__ import annotations

import math

import numpy as np
import pytest

from or_assist.core.carm_profiles import load_profile
from or_assist.core.geometry import project
from or_assist.core.view_poses import plan_view_pose
from or_assist.errors import InputError
from or_assist.guidance.deviation import shot_deviation
from or_assist.guidance.triangulate import (
    TriangulationRefused,
    ViewUncertainty,
    triangulate_pin,
    two_view_deviation,
)
from or_assist.guidance.pin import PinDetection
from or_assist.sim.pin_cases import deviated_pin


@pytest.fixture(scope="module")
def geometry():
    return load_profile("siemens_cios_fusion").geometry_at(512)


def exact_detection(pin, pose, geometry, occluded=False) -> PinDetection:
    tip, back = project(np.stack([pin.tip_lps_mm, pin.back_lps_mm]), pose, geometry)
    d = (tip - back) / np.linalg.norm(tip - back)
    return PinDetection(tip, back, d, 10.0, 1.0, 0.0, 1.0, tip_occluded=occluded)


def test_shot_deviation_on_plan_is_zero(plan, geometry):
    imp = plan.implant("R2")
    pin = deviated_pin(imp, 0.0, 0.0, 0.7, np.random.default_rng(0))
    pose = plan_view_pose(plan, "R2", "outlet", geometry=geometry)
    dev = shot_deviation(exact_detection(pin, pose, geometry), imp, pose, geometry)
    assert dev.angle_deg < 1e-6 and dev.tip_offset_mm < 1e-6
    assert dev.remaining_depth_mm == pytest.approx(0.3 * imp.length_mm, abs=1e-6)


def test_shot_deviation_offset_in_image_plane(plan, geometry):
    imp = plan.implant("R1")
    pose = plan_view_pose(plan, "R1", "outlet", geometry=geometry)
    # shift the on-plan pin by 4 mm along the source's x axis (in the image plane, across the axis)
    pin = deviated_pin(imp, 0.0, 0.0, 1.0, np.random.default_rng(0))
    x_src = pose.rotation[0]
    across = x_src - (x_src @ imp.axis_unit) * imp.axis_unit
    across /= np.linalg.norm(across)
    from or_assist.core.instruments import GuidePin
    moved = GuidePin(pin.tip_lps_mm + 4.0 * across, pin.back_lps_mm + 4.0 * across)
    dev = shot_deviation(exact_detection(moved, pose, geometry), imp, pose, geometry)
    expected = 4.0 * math.sqrt(1.0 - (across @ pose.beam_direction_lps) ** 2)
    assert dev.tip_offset_mm == pytest.approx(expected, abs=0.05)
    assert dev.angle_deg < 0.05
    assert np.linalg.norm(dev.offset_lps_mm) == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_view_exact(plan, geometry, seed):
    rng = np.random.default_rng(seed)
    imp = plan.implants[seed % 3]
    pin = deviated_pin(imp, rng.uniform(0, 10), rng.uniform(0, 10), rng.uniform(0.5, 1.0), rng)
    poses = [plan_view_pose(plan, imp.id, k, geometry=geometry) for k in ("inlet", "outlet")]
    dets = [exact_detection(pin, p, geometry) for p in poses]
    dev = two_view_deviation(imp, dets, poses, [geometry] * 2)
    assert np.allclose(dev.tip_lps_mm, pin.tip_lps_mm, atol=1e-6)
    d = (pin.tip_lps_mm - pin.back_lps_mm) / np.linalg.norm(pin.tip_lps_mm - pin.back_lps_mm)
    assert np.allclose(dev.direction_lps, d, atol=1e-9)
    assert dev.apex_deviation_mm == pytest.approx(np.linalg.norm(pin.tip_lps_mm - imp.apex_lps_mm), abs=1e-6)
    assert dev.views_angle_deg > 20
    assert 0 < dev.uncertainty["apex_deviation_mm"] < 1.0 and 0 < dev.uncertainty["angle_deg"] < 1.0
    # a registered pose is less certain than a known one
    reg = two_view_deviation(imp, dets, poses, [geometry] * 2, [ViewUncertainty(pose_mm=1.0, pose_deg=0.5)] * 2)
    assert reg.uncertainty["tip_mm"] > dev.uncertainty["tip_mm"]


def test_two_view_uses_the_visible_tip(plan, geometry):
    imp = plan.implant("R3")
    pin = deviated_pin(imp, 3.0, 3.0, 0.8, np.random.default_rng(5))
    poses = [plan_view_pose(plan, imp.id, k, geometry=geometry) for k in ("inlet", "outlet")]
    dets = [exact_detection(pin, poses[0], geometry, occluded=True), exact_detection(pin, poses[1], geometry)]
    dets[0] = PinDetection(dets[0].tip_px - 30 * dets[0].direction_px, dets[0].back_px, dets[0].direction_px,
                           10.0, 1.0, 0.0, 1.0, tip_occluded=True)
    dev = two_view_deviation(imp, dets, poses, [geometry] * 2)
    assert np.allclose(dev.tip_lps_mm, pin.tip_lps_mm, atol=1e-6)
    assert dev.warnings


def test_refuses_nearly_the_same_direction(plan, geometry):
    imp = plan.implant("R1")
    pin = deviated_pin(imp, 2.0, 2.0, 0.8, np.random.default_rng(1))
    p1 = plan_view_pose(plan, imp.id, "outlet", geometry=geometry)
    p2 = plan_view_pose(plan, imp.id, "outlet", geometry=geometry, tilt_deg=30.0)  # 42 vs 30 deg: 12 deg apart
    dets = [exact_detection(pin, p, geometry) for p in (p1, p2)]
    with pytest.raises(TriangulationRefused, match="apart .*ill-conditioned"):
        triangulate_pin(dets, [p1, p2], [geometry] * 2)


def test_refuses_hidden_tips_and_wrong_counts(plan, geometry):
    imp = plan.implant("R1")
    pin = deviated_pin(imp, 2.0, 2.0, 0.8, np.random.default_rng(1))
    poses = [plan_view_pose(plan, imp.id, k, geometry=geometry) for k in ("inlet", "outlet")]
    dets = [exact_detection(pin, p, geometry, occluded=True) for p in poses]
    with pytest.raises(TriangulationRefused, match="hidden"):
        triangulate_pin(dets, poses, [geometry] * 2)
    with pytest.raises(TriangulationRefused, match="exactly two"):
        triangulate_pin(dets[:1], poses[:1], [geometry])


def test_bad_arguments(plan, geometry):
    imp = plan.implant("R1")
    pose = plan_view_pose(plan, imp.id, "outlet", geometry=geometry)
    with pytest.raises(InputError, match="PinDetection"):
        shot_deviation(None, imp, pose, geometry)
    with pytest.raises(InputError, match="implant"):
        plan.implant("L9")
