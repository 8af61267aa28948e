"""Tests of the plan checks on exact synthetic CTs, the phantom and the real 3 mm CT."""

from __future__ import annotations


import numpy as np
import pytest

from or_assist.core.catalogue import load_catalogue
from or_assist.core.ct.load import load_ct, save_ct
from or_assist.core.ct.volume import CTVolume
from or_assist.core.plan import Implant, Landmark, Plan, save_plan
from or_assist.cli.plan import format_check_table, format_plan_check
from or_assist.planning.checks import (
    CheckResult,
    bone_mask,
    check_plan_file,
    plan_check_exit_code,
    run_plan_checks,
)
from or_assist.planning.measure import segment_distance_mm
from or_assist.errors import InputError
from tests.conftest import REAL_PLAN

CAT = load_catalogue()
CORTEX_HU, TISSUE_HU = 900.0, 40.0


def box_pelvis(marrow_hu: float | None, voxel_mm: int = 1) -> CTVolume:
    """Two bone boxes (ilium x 20-45 mm, sacrum x 47-110 mm; y, z 15-75 mm) with a 2 mm
    soft-tissue SI joint gap at x 45-47 mm, in soft tissue with air at the border.

    ``marrow_hu=None``: uniform dense bone (600 HU); else a 2 mm cortex (900 HU) around
    marrow of that HU. Built at 1 mm and block-averaged to ``voxel_mm`` (partial volume).
    """
    x = np.arange(150) + 0.5
    y = z = np.arange(90) + 0.5
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    hu = np.full(xx.shape, -1000.0, dtype=np.float32)
    body = (xx > 4) & (xx < 146) & (yy > 4) & (yy < 86) & (zz > 4) & (zz < 86)
    hu[body] = TISSUE_HU
    yz_in = (yy > 15) & (yy < 75) & (zz > 15) & (zz < 75)
    for x0, x1 in ((20, 45), (47, 110)):
        box = yz_in & (xx > x0) & (xx < x1)
        if marrow_hu is None:
            hu[box] = 600.0
        else:
            hu[box] = CORTEX_HU
            core = (yy > 17) & (yy < 73) & (zz > 17) & (zz < 73) & (xx > x0 + 2) & (xx < x1 - 2)
            hu[core] = marrow_hu
    v = voxel_mm
    if v > 1:
        hu = hu.reshape(90 // v, v, 90 // v, v, 150 // v, v).mean(axis=(1, 3, 5))
    return CTVolume(hu, origin_mm=(v / 2,) * 3, spacing_mm=(v,) * 3, direction=np.eye(3), source=f"box{v}mm")


def implant(id_, entry, apex, item=None, side="left") -> Implant:
    length = float(np.linalg.norm(np.subtract(apex, entry)))
    return Implant(id_, side, CAT.item(item) if item else CAT.nearest_length("T7", length), entry, apex)


GOOD = ((20.0, 45.0, 45.0), (80.0, 45.0, 45.0))            # joint at 26 mm, 34 mm beyond


@pytest.fixture(scope="module")
def fatty_1mm():
    return box_pelvis(30.0)


def rows(results, implant_id):
    return {r.check: r for r in results if r.implant == implant_id}


# ----------------------------------------------------------------------------- good implant


@pytest.mark.parametrize("marrow_hu, voxel_mm, joint_kind", [
    (30.0, 1, "joint space resolved"),       # fatty marrow in a cortical shell, thin slices
    (None, 1, "joint space resolved"),       # uniform dense bone with a gap plane
    (30.0, 3, "dense joint band"),           # 3 mm voxels: cortices and gap merge
    (None, 3, "joint space resolved"),
])
def test_good_implant_passes_everything(marrow_hu, voxel_mm, joint_kind):
    ct = box_pelvis(marrow_hu, voxel_mm)
    plan = Plan(None, None, [implant("L1", *GOOD)])
    res = rows(run_plan_checks(plan, ct), "L1")
    assert list(res) == ["length", "in_bone", "crosses_si_joint", "clearance", "collision"]
    assert all(r.passed for r in res.values()), format_check_table(list(res.values()))
    assert res["length"].value == pytest.approx(0.0) and res["length"].limit == 2.5
    assert res["in_bone"].value > 95.0
    joint = res["crosses_si_joint"]
    assert joint_kind in joint.message
    tol = 0.6 if voxel_mm == 1 else 3.0
    assert joint.value == pytest.approx(34.0, abs=tol)          # purchase beyond the joint at x = 46
    assert res["clearance"].skipped and res["collision"].skipped


def test_fatty_marrow_is_bone_by_enclosure(fatty_1mm):
    pts = np.array([[30.0, 45.0, 45.0],      # iliac marrow, 30 HU
                    [80.0, 45.0, 45.0],      # sacral marrow
                    [46.0, 45.0, 45.0],      # in the joint gap plane (open along y and z)
                    [80.0, 45.0, 80.0],      # soft tissue above the sacrum
                    [125.0, 45.0, 45.0]])    # soft tissue beyond it
    hu = fatty_1mm.sample_hu(pts)
    assert np.all(hu < 100)
    np.testing.assert_array_equal(bone_mask(fatty_1mm, pts), [True, True, False, False, False])


# ----------------------------------------------------------------------------- planted bad implants


def test_apex_outside_bone_fails_in_bone_naming_the_apex(fatty_1mm):
    plan = Plan(None, None, [implant("L1", *GOOD), implant("BAD", (20.0, 45.0, 45.0), (60.0, 45.0, 82.0))])
    results = run_plan_checks(plan, fatty_1mm)
    bad = rows(results, "BAD")["in_bone"]
    assert not bad.passed and "apex [60.0, 45.0, 82.0] is outside bone" in bad.message
    table = format_check_table(results)
    line = next(line for line in table.splitlines() if line.startswith("BAD") and "in_bone" in line)
    assert "FAIL" in line and "apex" in line
    assert rows(results, "L1")["in_bone"].passed
    assert plan_check_exit_code(results) == 1


def test_apex_beyond_the_sacrum_fails(fatty_1mm):
    plan = Plan(None, None, [implant("BAD", (35.0, 45.0, 45.0), (125.0, 45.0, 45.0), "T7-90")])
    res = rows(run_plan_checks(plan, fatty_1mm), "BAD")
    assert not res["in_bone"].passed and "apex [125.0, 45.0, 45.0] is outside bone (HU 40)" in res["in_bone"].message
    assert res["crosses_si_joint"].passed          # it does cross the joint (entry in the iliac marrow)


def test_foramen_breach_fails_clearance(fatty_1mm):
    # axis at y = 45; foramen sphere r = 3 mm centred 8 mm from the axis: 8 - 7 - 3 = -2 mm
    foramen = Landmark("S1 foramen left", "s1_foramen", "left", [70.0, 53.0, 45.0], 3.0)
    ok = Landmark("S2 foramen left", "s2_foramen", "left", [70.0, 45.0, 57.0], 3.0)   # 12 - 7 - 3 = 2 mm
    promontory = Landmark("promontory", "sacral_promontory", "midline", [75.0, 45.0, 45.0], 0.0)
    plan = Plan(None, None, [implant("L1", *GOOD)], [foramen, promontory])
    results = run_plan_checks(plan, fatty_1mm)
    c = rows(results, "L1")["clearance"]
    assert not c.passed and c.value == pytest.approx(-2.0) and c.limit == 2.0
    assert "breaches S1 foramen left" in c.message
    line = next(line for line in format_check_table(results).splitlines() if "clearance" in line)
    assert line.split()[:3] == ["L1", "clearance", "FAIL"]
    plan.landmarks = [ok, promontory]               # exactly at the limit passes; the promontory is ignored
    c = rows(run_plan_checks(plan, fatty_1mm), "L1")["clearance"]
    assert c.passed and c.value == pytest.approx(2.0) and "S2 foramen left" in c.message
    c = rows(run_plan_checks(plan, fatty_1mm, min_clearance_mm=3.0), "L1")["clearance"]
    assert not c.passed and "too close to S2 foramen left" in c.message


def test_clearance_beyond_the_apex_uses_the_segment_end(fatty_1mm):
    canal = Landmark("canal", "spinal_canal", "midline", [100.0, 45.0, 45.0], 5.0)   # 20 mm past the apex
    plan = Plan(None, None, [implant("L1", *GOOD)], [canal])
    assert rows(run_plan_checks(plan, fatty_1mm), "L1")["clearance"].value == pytest.approx(20 - 5)
    # beside the tapered tip (5 mm long): 2.5 mm before the apex the envelope radius is 3.5 mm
    plan.landmarks = [Landmark("canal", "spinal_canal", "midline", [77.5, 55.0, 45.0], 1.0)]
    value = rows(run_plan_checks(plan, fatty_1mm), "L1")["clearance"].value
    cone = np.array([5.0, -7.0]) / np.hypot(5.0, 7.0)        # the cone's generator, (u, rho) plane
    brute = np.min(np.hypot(*(np.array([2.5, 10.0])[:, None] - np.outer(cone, np.linspace(0, np.hypot(5, 7), 200001))
                              - np.array([[0.0], [7.0]])))) - 1.0
    assert value == pytest.approx(brute, abs=1e-3) and 10.0 - 7.0 - 1.0 < value < 10.0 - 3.5 - 1.0
    # inside the implant: negative
    plan.landmarks = [Landmark("canal", "spinal_canal", "midline", [60.0, 47.0, 45.0], 0.5)]
    assert rows(run_plan_checks(plan, fatty_1mm), "L1")["clearance"].value == pytest.approx(-5.0 - 0.5)


def test_implant_stopping_in_the_ilium_does_not_cross(fatty_1mm):
    plan = Plan(None, None, [implant("S", (20.0, 45.0, 45.0), (50.0, 45.0, 45.0), "T7-30"),   # 4 mm past joint
                             implant("I", (12.0, 45.0, 45.0), (42.0, 45.0, 45.0), "T7-30")])  # ends in ilium
    results = run_plan_checks(plan, fatty_1mm)
    for name in ("S", "I"):
        j = rows(results, name)["crosses_si_joint"]
        assert not j.passed and j.value is None and "no SI joint found" in j.message
    assert rows(run_plan_checks(plan, fatty_1mm, min_sacral_purchase_mm=3.0), "S")["crosses_si_joint"].passed


def test_si_joint_landmark_prior(fatty_1mm):
    near = Landmark("SI joint left", "si_joint", "left", [46.0, 50.0, 45.0], 0.0)
    far = Landmark("SI joint left", "si_joint", "left", [70.0, 50.0, 45.0], 0.0)      # 24 mm off the gap
    other_side = Landmark("SI joint right", "si_joint", "right", [70.0, 50.0, 45.0], 0.0)
    imp = implant("L1", *GOOD)
    assert rows(run_plan_checks(Plan(None, None, [imp], [near]), fatty_1mm), "L1")["crosses_si_joint"].passed
    j = rows(run_plan_checks(Plan(None, None, [imp], [far]), fatty_1mm), "L1")["crosses_si_joint"]
    assert not j.passed and "of landmark SI joint left (at 50.0 mm)" in j.message
    assert rows(run_plan_checks(Plan(None, None, [imp], [other_side]), fatty_1mm), "L1")["crosses_si_joint"].passed


def test_length_check(fatty_1mm):
    plan = Plan(None, None, [implant("A", (20.0, 45.0, 45.0), (67.0, 45.0, 45.0), "T7-45"),    # 2 mm off
                             implant("B", (20.0, 45.0, 45.0), (67.0, 45.0, 45.0), "T7-40")])   # 7 mm off
    results = run_plan_checks(plan, fatty_1mm)
    a, b = rows(results, "A")["length"], rows(results, "B")["length"]
    assert a.passed and a.value == pytest.approx(2.0)
    assert not b.passed and b.value == pytest.approx(7.0) and "T7-40 is 40 mm, entry-apex 47.0 mm" in b.message


def test_collision(fatty_1mm):
    a = implant("A", (20.0, 45.0, 30.0), (80.0, 45.0, 30.0))
    b = implant("B", (20.0, 45.0, 40.0), (80.0, 45.0, 40.0))                # axes 10 mm apart < 7 + 7
    c = implant("C", (20.0, 45.0, 60.0), (80.0, 45.0, 60.0), "T4-60")      # 20 mm from B, limit 7 + 4
    results = run_plan_checks(Plan(None, None, [a, b, c]), fatty_1mm)
    ra, rb, rc = (rows(results, k)["collision"] for k in "ABC")
    assert not ra.passed and ra.value == pytest.approx(10.0) and ra.limit == pytest.approx(14.0)
    assert "collides with B" in ra.message
    assert not rb.passed and "collides with A" in rb.message
    assert rc.passed and rc.value == pytest.approx(20.0) and rc.limit == pytest.approx(11.0)
    rc = rows(run_plan_checks(Plan(None, None, [b, c]), fatty_1mm, collision_margin_mm=10.0), "C")["collision"]
    assert not rc.passed and rc.limit == pytest.approx(21.0)


def test_implant_outside_ct_raises(fatty_1mm):
    plan = Plan(None, None, [implant("L1", (20.0, 45.0, 45.0), (20.0, 45.0, 95.0), "T7-50")], source="p.json")
    with pytest.raises(InputError, match=r"p\.json: implants\[0\]: implant 'L1': field 'apex_lps_mm'.*outside the CT"):
        run_plan_checks(plan, fatty_1mm)


# ----------------------------------------------------------------------------- helpers, table


def test_segment_distance_against_brute_force():
    rng = np.random.default_rng(3)
    s = np.linspace(0.0, 1.0, 401)
    for _ in range(25):
        p0, p1, q0, q1 = rng.normal(scale=20.0, size=(4, 3))
        a = p0 + s[:, None] * (p1 - p0)
        b = q0 + s[:, None] * (q1 - q0)
        brute = np.min(np.linalg.norm(a[:, None] - b[None, :], axis=2))
        assert segment_distance_mm(p0, p1, q0, q1) == pytest.approx(brute, abs=0.1)
    # parallel, collinear-disjoint, crossing, degenerate
    assert segment_distance_mm([0, 0, 0], [10, 0, 0], [0, 3, 0], [10, 3, 0]) == pytest.approx(3.0)
    assert segment_distance_mm([0, 0, 0], [10, 0, 0], [14, 0, 0], [20, 0, 0]) == pytest.approx(4.0)
    assert segment_distance_mm([0, 0, 0], [10, 0, 0], [5, -5, 2], [5, 5, 2]) == pytest.approx(2.0)
    assert segment_distance_mm([0, 0, 0], [0, 0, 0], [3, 4, 0], [3, 4, 0]) == pytest.approx(5.0)


def test_table_format_and_exit_code():
    results = [CheckResult("L1", "length", True, 1.25, 2.5, "mm", "ok"),
               CheckResult("L1", "clearance", False, -2.0, 2.0, "mm", "breaches S1 foramen left"),
               CheckResult("L1", "collision", True, None, None, "mm", "skipped: no other implant", skipped=True)]
    table = format_check_table(results)
    lines = table.splitlines()
    assert lines[0].split() == ["implant", "check", "result", "value", "limit", "unit", "message"]
    assert lines[2].split()[:6] == ["L1", "length", "PASS", "1.2", "2.5", "mm"] or \
        lines[2].split()[:6] == ["L1", "length", "PASS", "1.3", "2.5", "mm"]
    assert lines[3].split()[:6] == ["L1", "clearance", "FAIL", "-2.0", "2.0", "mm"]
    assert lines[4].split()[:5] == ["L1", "collision", "SKIP", "-", "-"]
    assert lines[-1] == "1 of 3 checks failed (1 skipped)"
    assert plan_check_exit_code(results) == 1
    assert plan_check_exit_code([results[0], results[2]]) == 0


def test_check_plan_file_end_to_end(tmp_path, fatty_1mm):
    ct_path = save_ct(fatty_1mm, tmp_path / "ct" / "box.nii.gz")
    sha = load_ct(ct_path).voxel_sha256()
    good = Plan(ct_path.resolve(), sha, [implant("L1", *GOOD)])
    report = check_plan_file(save_plan(good, tmp_path / "good.json"))
    text, code = format_plan_check(report), report.exit_code
    assert len(report.results) == 5 and report.warnings == []
    assert code == 0 and text.splitlines()[-1] == "0 of 5 checks failed (2 skipped)"
    bad = Plan(ct_path.resolve(), sha, [implant("L1", *GOOD), implant("BAD", (20.0, 45.0, 45.0), (60.0, 45.0, 82.0))])
    report = check_plan_file(save_plan(bad, tmp_path / "bad.json"))
    text, code = format_plan_check(report), report.exit_code
    assert code == 1 and "checks failed" in text.splitlines()[-1] and not text.splitlines()[-1].startswith("0 ")
    # another CT: a clear error, or a warning with the override
    other = save_ct(box_pelvis(31.0), tmp_path / "other.nii.gz")
    with pytest.raises(InputError, match="does not match the voxel data"):
        check_plan_file(tmp_path / "good.json", ct_path=other)
    report = check_plan_file(tmp_path / "good.json", ct_path=other, ignore_hash=True)
    text, code = format_plan_check(report), report.exit_code
    assert any("WARNING" in w for w in report.warnings)
    assert "WARNING" in text and "checking anyway" in text and code == 0


# ----------------------------------------------------------------------------- phantom


@pytest.fixture(scope="module")
def phantom_ct():
    from or_assist.sim.phantom.make import sample_ct_path
    return load_ct(sample_ct_path())


def phantom_plan(side: str) -> Plan:
    from or_assist.sim.phantom.make import phantom_implant_targets, phantom_landmarks
    implants = [Implant(t["id"], side, CAT.item(f"T7-{t['length_mm']:g}"), t["entry_lps_mm"], t["apex_lps_mm"],
                        0.0, t["level"]) for t in phantom_implant_targets(side)]
    landmarks = [Landmark(lm["name"], lm["kind"], lm["side"], lm["position_lps_mm"], lm["radius_mm"])
                 for lm in phantom_landmarks()]
    return Plan(None, None, implants, landmarks)


@pytest.mark.parametrize("side", ["left", "right"])
def test_phantom_plan_passes_fast(phantom_ct, side):
    plan = phantom_plan(side)
    results = run_plan_checks(plan, phantom_ct)
    assert len(results) == 15 and all(r.passed and not r.skipped for r in results), format_check_table(results)
    assert all("joint space resolved" in r.message for r in results if r.check == "crosses_si_joint")
    # without the si_joint landmarks the profile alone finds the same joint (within 3 mm)
    with_prior = {r.implant: r.value for r in results if r.check == "crosses_si_joint"}
    plan.landmarks = [lm for lm in plan.landmarks if lm.kind != "si_joint"]
    for r in run_plan_checks(plan, phantom_ct):
        if r.check == "crosses_si_joint":
            assert r.passed and r.value == pytest.approx(with_prior[r.implant], abs=3.0)


def test_phantom_planted_bad_implants_fail(phantom_ct):
    plan = phantom_plan("left")
    l1, l2 = plan.implant("L1"), plan.implant("L2")
    outside = np.array([28.3, -32.0, 0.3])            # in front of the left ala, in the pelvis
    foramen = next(lm for lm in plan.landmarks if lm.name == "s1_foramen_left").position_lps_mm
    plan.implants += [implant("BONE", l1.entry_lps_mm, outside), implant("FORAMEN", l2.entry_lps_mm, foramen)]
    results = run_plan_checks(plan, phantom_ct)
    table = format_check_table(results)
    bone = rows(results, "BONE")["in_bone"]
    assert not bone.passed and "apex [28.3, -32.0, 0.3] is outside bone" in bone.message
    breach = rows(results, "FORAMEN")["clearance"]
    assert not breach.passed and breach.value == pytest.approx(-5.0, abs=0.01)   # apex at the centre
    assert "breaches s1_foramen_left" in breach.message
    failing = {(line.split()[0], line.split()[1]) for line in table.splitlines() if " FAIL " in line}
    assert {("BONE", "in_bone"), ("FORAMEN", "clearance")} <= failing
    assert all(r.passed for r in results if r.implant == "L3")
    assert plan_check_exit_code(results) == 1


# ----------------------------------------------------------------------------- real 3 mm CT


@pytest.fixture(scope="module")
def real_ct(real_ct_path):
    return load_ct(real_ct_path)


def _real_implant(ct, id_, side, e_idx, a_idx):
    e = ct.index_to_lps(np.array(e_idx, dtype=float))
    a = ct.index_to_lps(np.array(a_idx, dtype=float))
    return Implant(id_, side, CAT.nearest_length("T7", float(np.linalg.norm(a - e))), e, a)


def test_real_ct_s1_implants(real_ct):
    """Hand-placed S1 trajectories on the real CT (osteoporotic sacral ala near 0 HU)."""
    ct = real_ct
    good_l = _real_implant(ct, "L1", "left", (33.5, 31, 41), (49, 31, 41))       # LPS x 77.5 -> 31.0
    good_r = _real_implant(ct, "R1", "right", (85.3, 32, 39), (70, 32, 39))      # LPS x -77.9 -> -32.0
    anterior = _real_implant(ct, "BAD", "left", (33.5, 31, 41), (46, 45, 41))    # apex in the pelvis
    short = _real_implant(ct, "SHORT", "left", (33.5, 31, 41), (38, 31, 41))     # ends in the ilium
    results = run_plan_checks(Plan(None, None, [good_l, good_r, anterior, short]), ct)
    for name in ("L1", "R1"):
        r = rows(results, name)
        assert r["in_bone"].passed and r["crosses_si_joint"].passed, format_check_table(results)
        assert 20.0 < r["crosses_si_joint"].value < 35.0
    bad = rows(results, "BAD")
    assert not bad["in_bone"].passed and "apex" in bad["in_bone"].message
    assert not bad["crosses_si_joint"].passed
    assert not rows(results, "SHORT")["crosses_si_joint"].passed


def test_real_ct_weak_joint_found_with_its_landmark(real_ct):
    """The posterior implants of ``tests/data/real_ct_plan.json``: their joints are a 196 HU
    band and a shallow 85 HU dip (osteoporotic, 3 mm); the si_joint landmarks on the axes
    let the weaker evidence count there, and only there."""
    from or_assist.core.plan import load_plan

    plan = load_plan(REAL_PLAN)
    results = run_plan_checks(plan, real_ct)
    for name in ("R1", "R2", "R3"):
        assert rows(results, name)["crosses_si_joint"].passed, format_check_table(results)
    no_landmarks = Plan(None, None, plan.implants, [lm for lm in plan.landmarks if lm.kind != "si_joint"])
    assert not rows(run_plan_checks(no_landmarks, real_ct), "R2")["crosses_si_joint"].passed
    # cut short so that less than 5 mm lies beyond the joint (at about 19-21 mm): fails
    for imp in plan.implants[1:]:
        short = Implant(imp.id, imp.side, imp.item, imp.entry_lps_mm, imp.entry_lps_mm + 22.0 * imp.axis_unit)
        row = rows(run_plan_checks(Plan(None, None, [short], plan.landmarks), real_ct), imp.id)["crosses_si_joint"]
        assert not row.passed and "no SI joint found within" in row.message
