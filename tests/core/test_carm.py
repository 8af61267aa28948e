"""C-arm angles and the named SIJF views."""

import numpy as np
import pytest

from or_assist.core.carm import (
    carm_angles_from_pose, derive_view_tilts_deg, patient_axes, pose_from_carm_angles,
    sijf_view_pose,
)
from or_assist.core.geometry import CArmGeometry, project, project_with_depth
from or_assist.core.pose import rotation_about_axis
from or_assist.errors import InputError

GEOM = CArmGeometry((1024, 1024), 1000.0, (0.3, 0.3), (512.0, 512.0), 600.0)
ENTRY = np.array([-110.0, 20.0, 10.0])   # right ilium (LPS x < 0)
APEX = np.array([-65.0, 15.0, 12.0])


def test_prone_ap_is_the_conventions_example():
    pose = pose_from_carm_angles(0, 0, [0, -160, 260], 600, "prone")
    np.testing.assert_allclose(pose.matrix, [[1, 0, 0, 0], [0, 0, -1, 260], [0, 1, 0, 760], [0, 0, 0, 1]],
                               atol=1e-12)


@pytest.mark.parametrize("position", ["prone", "supine"])
@pytest.mark.parametrize("orbital, tilt", [(0, 0), (30, -25), (-90, 0), (12, 42), (-45, 10)])
def test_angles_roundtrip(position, orbital, tilt):
    pose = pose_from_carm_angles(orbital, tilt, [1, 2, 3], 600, position)
    a = carm_angles_from_pose(pose, position)
    assert a.orbital_deg == pytest.approx(orbital, abs=1e-9)
    assert a.tilt_deg == pytest.approx(tilt, abs=1e-9)
    np.testing.assert_allclose(pose.apply([1, 2, 3]), [0, 0, 600], atol=1e-9)


def test_describe():
    assert pose_from_carm_angles(0, 0, [0, 0, 0], 600) is not None
    from or_assist.core.carm import CArmAngles
    assert CArmAngles(10, -25).describe() == "LAO 10 deg, CAUD 25 deg"


@pytest.mark.parametrize("kind", ["lateral", "inlet", "outlet", "ap", "axis"])
@pytest.mark.parametrize("position", ["prone", "supine"])
def test_named_views_head_up_and_centred(kind, position):
    pose = sijf_view_pose(kind, ENTRY, APEX, "right", 600, patient_position=position)
    mid = (ENTRY + APEX) / 2
    np.testing.assert_allclose(project(mid, pose, GEOM), [512, 512], atol=1e-9)
    head, feet = project(np.array([mid + [0, 0, 30], mid - [0, 0, 30]]), pose, GEOM)
    assert head[1] < feet[1], "the patient's head must be up on screen"


def test_view_angles_match_domain_defaults():
    prone_inlet = carm_angles_from_pose(sijf_view_pose("inlet", ENTRY, APEX, "right", 600), "prone")
    assert prone_inlet.tilt_deg == pytest.approx(-25) and prone_inlet.orbital_deg == pytest.approx(0, abs=1e-9)
    prone_outlet = carm_angles_from_pose(sijf_view_pose("outlet", ENTRY, APEX, "right", 600), "prone")
    assert prone_outlet.tilt_deg == pytest.approx(42)
    # the beam line is anatomical: a supine inlet is the same line, tube on the other end
    sup = sijf_view_pose("inlet", ENTRY, APEX, "right", 600, patient_position="supine")
    pr = sijf_view_pose("inlet", ENTRY, APEX, "right", 600)
    np.testing.assert_allclose(sup.beam_direction_lps, -pr.beam_direction_lps, atol=1e-12)
    assert sijf_view_pose("inlet", ENTRY, APEX, "right", 600, tilt_deg=30).beam_direction_lps[2] == \
        pytest.approx(-np.sin(np.radians(30)))


def test_lateral_detector_side_and_axis_view():
    lat = sijf_view_pose("lateral", ENTRY, APEX, "right", 600)
    assert lat.beam_direction_lps[0] == pytest.approx(-1)  # detector on the right (operative) side
    lat2 = sijf_view_pose("lateral", ENTRY, APEX, "right", 600, detector_on_operative_side=False)
    assert lat2.beam_direction_lps[0] == pytest.approx(1)
    ax = sijf_view_pose("axis", ENTRY, APEX, "right", 600)
    uv = project(np.array([ENTRY, APEX]), ax, GEOM)
    np.testing.assert_allclose(uv[0], uv[1], atol=1e-9)  # down the barrel


def test_true_lateral_follows_rotated_patient():
    rot = rotation_about_axis([0, 0, 1], np.radians(8))  # patient rotated 8 deg on the table
    lms = []
    for kind, pos in [("s1_foramen", [30, 10, 0]), ("alar_line", [50, -5, 10]), ("s2_foramen", [25, 20, -25])]:
        p = np.array(pos, float)
        lms.append({"kind": kind, "side": "left", "position_lps_mm": rot @ p})
        lms.append({"kind": kind, "side": "right", "position_lps_mm": rot @ (p * [-1, 1, 1])})
    left, post, sup = patient_axes(lms)
    np.testing.assert_allclose(left, rot @ [1, 0, 0], atol=1e-9)
    lat = sijf_view_pose("lateral", ENTRY, APEX, "right", 600, landmarks=lms)
    np.testing.assert_allclose(lat.beam_direction_lps, -(rot @ [1, 0, 0]), atol=1e-9)
    # the two sides' landmarks superimpose in a true lateral
    uv, depth = project_with_depth(np.array([lms[0]["position_lps_mm"], lms[1]["position_lps_mm"]]), lat, GEOM)
    # same ray up to perspective: offsets from the principal point scale with 1 / depth
    np.testing.assert_allclose((uv[0] - 512) * depth[0], (uv[1] - 512) * depth[1], atol=1e-6)


def test_derived_tilts():
    prom = {"kind": "sacral_promontory", "side": "midline", "position_lps_mm": [0, -20, 30]}
    s2 = {"kind": "s2_anterior_body", "side": "midline", "position_lps_mm": [0, 20, 10]}
    endplate = {"kind": "s1_endplate_posterior", "side": "midline", "position_lps_mm": [0, 10, 57]}
    inlet, outlet = derive_view_tilts_deg([prom, s2, endplate])
    assert inlet == pytest.approx(np.degrees(np.arctan2(20, 40)))   # caudal along S1-S2
    assert outlet == pytest.approx(np.degrees(np.arctan2(27, 30)))  # cranial along the endplate
    assert derive_view_tilts_deg([prom]) == (None, None)
    assert derive_view_tilts_deg([prom, s2]) == (pytest.approx(inlet), None)
    # implausible landmarks (an inlet of 63 deg) are not used
    steep = dict(s2, position_lps_mm=[0, 0, -10])
    assert derive_view_tilts_deg([prom, steep])[0] is None


@pytest.mark.parametrize("kwargs, name", [
    (dict(kind="oblique"), "kind"),
    (dict(side="middle"), "side"),
    (dict(patient_position="lateral_decubitus"), "patient_position"),
    (dict(tilt_deg=float("nan")), "tilt_deg"),
    (dict(tilt_deg=95.0), "tilt_deg"),
])
def test_bad_view_arguments(kwargs, name):
    args = dict(kind="inlet", entry_lps_mm=ENTRY, apex_lps_mm=APEX, side="right", source_to_isocenter_mm=600)
    args.update(kwargs)
    with pytest.raises(InputError, match=name):
        sijf_view_pose(**args)


def test_entry_equals_apex_rejected():
    with pytest.raises(InputError, match="coincide"):
        sijf_view_pose("axis", ENTRY, ENTRY, "right", 600)


def test_plan_view_tilt_precedence(tmp_path):
    from or_assist.core.plan import Implant, Landmark, Plan, ViewSpec
    from or_assist.core.catalogue import load_catalogue
    from or_assist.core.view_poses import plan_view_pose, view_tilt_deg

    imp = Implant("R1", "right", load_catalogue().item("T7-45"), ENTRY, ENTRY + [45, 0, 0])
    lms = [Landmark("p", "sacral_promontory", "midline", [0, -20, 30]),
           Landmark("s2", "s2_anterior_body", "midline", [0, 20, 10])]
    plan = Plan(None, None, [imp], landmarks=lms)
    derived = np.degrees(np.arctan2(20, 40))
    assert view_tilt_deg(plan, "R1", "inlet") == pytest.approx(derived)
    assert view_tilt_deg(plan, "R1", "outlet") == 42.0           # no endplate landmark: default
    plan.views = [ViewSpec("R1 inlet", "inlet", "R1", 30.0)]
    assert view_tilt_deg(plan, "R1", "inlet") == 30.0            # the plan's own view wins
    assert view_tilt_deg(plan, "R1", "inlet", 21.0) == 21.0      # an explicit argument wins
    pose = plan_view_pose(plan, "R1", "inlet", source_to_isocenter_mm=600)
    assert carm_angles_from_pose(pose, "prone").tilt_deg == pytest.approx(-30.0)


def test_radiographer_text_words_and_signs():
    from or_assist.core.carm import CArmAngles

    assert CArmAngles(-90.0, 0.0).radiographer_text() == "orbital RAO 90 deg, tilt 0 deg"
    assert CArmAngles(0.0, -25.0).radiographer_text() == "orbital 0 deg, tilt CAUD 25 deg"
    assert CArmAngles(12.34, 41.96).radiographer_text(1) == "orbital LAO 12.3 deg, tilt CRAN 42.0 deg"
    assert CArmAngles(-0.2, 0.3).radiographer_text() == "orbital 0 deg, tilt 0 deg"   # no side for a rounded 0
    with pytest.raises(InputError, match="^decimals:"):
        CArmAngles(0.0, 0.0).radiographer_text(3)


@pytest.mark.parametrize("position", ["prone", "supine"])
def test_plan_carm_angles_read_back_the_planned_views(position):
    """A planned view's angles, measured about the plan's patient axes, are those it was
    built with: a right lateral RAO 90 / tilt 0, a prone inlet CAUD and outlet CRAN by
    their tilts (supine: the same beam lines, the tube at their other ends, so the detector
    tilts the other way), also for a patient lying rotated on the table (landmark axes)."""
    from or_assist.core.catalogue import load_catalogue
    from or_assist.core.plan import Implant, Landmark, Plan
    from or_assist.core.view_poses import plan_carm_angles, plan_view_pose

    turn = rotation_about_axis([0, 0, 1], np.radians(8.0))           # the patient turned 8 deg on the table
    lms = [Landmark("fR", "s1_foramen", "right", turn @ [-25.0, 0.0, 0.0]),
           Landmark("fL", "s1_foramen", "left", turn @ [25.0, 0.0, 0.0])]
    imp = Implant("R1", "right", load_catalogue().item("T7-45"), ENTRY, ENTRY + [45, 0, 0])
    plan = Plan(None, None, [imp], landmarks=lms)
    flip = 1.0 if position == "prone" else -1.0
    expected = {"lateral": (-90.0, 0.0), "inlet": (0.0, -25.0 * flip), "outlet": (0.0, 42.0 * flip)}
    for kind, (orbital, tilt) in expected.items():
        pose = plan_view_pose(plan, "R1", kind, source_to_isocenter_mm=600, tilt_deg=abs(tilt) or None,
                              patient_position=position)
        a = plan_carm_angles(plan, pose, position)
        assert a.orbital_deg == pytest.approx(orbital, abs=1e-6) and a.tilt_deg == pytest.approx(tilt, abs=1e-6)
    # measured about the CT's axes instead, the turned patient's lateral is 8 deg off
    lateral = plan_view_pose(plan, "R1", "lateral", source_to_isocenter_mm=600, patient_position=position)
    assert abs(abs(carm_angles_from_pose(lateral, position).orbital_deg) - 90.0) == pytest.approx(8.0, abs=1e-6)
