"""The real-CT plan fixture ``tests/data/real_ct_plan.json`` against the real 3 mm CT.

The plan (three right-side implants R1, R2 in S1 and R3 in S2, with anatomical landmarks)
was placed by reading the CT in ``tests/data/real_ct``; ``tests/data/README.md`` says how.
These tests check that it loads, that it names that CT, that the plan checks accept it,
and, independently of the plan checks, that the implants sit where the CT says bone is.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from or_assist.core.ct.load import load_ct
from or_assist.core.plan import load_plan, load_plan_ct
from or_assist.cli.plan import format_check_table
from or_assist.planning.checks import CHECK_NAMES, run_plan_checks
from tests.conftest import REAL_PLAN

PLAN_PATH = REAL_PLAN


# Independent "bone neighbourhood" rule (not the plan checks' enclosure rule): within
# 10 mm of a point at least 5 % of the samples are bone (>= 150 HU) and at most 10 % are
# fat or air (< -30 HU). The sacral marrow of this patient is fatty (about 0-60 HU) but
# lies inside trabecular and cortical bone; muscle has no bone, the pelvis, the foramina
# and the canal are fatty.
BONE_HU, FAT_HU = 150.0, -30.0
MIN_BONE_FRACTION, MAX_FAT_FRACTION = 0.05, 0.10


@pytest.fixture(scope="module")
def plan():
    return load_plan(PLAN_PATH)


@pytest.fixture(scope="module")
def ct(real_ct_path):
    return load_ct(real_ct_path)


@pytest.fixture(scope="module")
def check_rows(plan, ct):
    return run_plan_checks(plan, ct)


def _ball_offsets_mm(radius_mm: float = 10.0, step_mm: float = 1.0) -> np.ndarray:
    g = np.arange(-radius_mm, radius_mm + 1e-9, step_mm)
    pts = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    return pts[np.linalg.norm(pts, axis=1) <= radius_mm]


def _bone_neighbourhood(ct, point_mm) -> tuple[bool, float, float]:
    """(verdict, bone fraction, fat fraction) of the 10 mm ball around a point."""
    hu = ct.sample_hu(np.asarray(point_mm, dtype=float) + _ball_offsets_mm())
    bone, fat = float(np.mean(hu >= BONE_HU)), float(np.mean(hu < FAT_HU))
    return bone >= MIN_BONE_FRACTION and fat <= MAX_FAT_FRACTION, bone, fat


def _bony_midline_x_mm(ct, z_min_mm: float, z_max_mm: float) -> float:
    """LPS x of the centroid of bone voxels (200-2000 HU: no metal) in an axial slab."""
    k, j, i = np.nonzero((ct.hu >= 200.0) & (ct.hu < 2000.0))
    pts = ct.index_to_lps(np.column_stack([i, j, k]).astype(float))
    slab = (pts[:, 2] >= z_min_mm) & (pts[:, 2] <= z_max_mm)
    return float(pts[slab, 0].mean())


def _axis_hu(ct, imp, t_mm):
    return ct.sample_hu(imp.entry_lps_mm + np.asarray(t_mm)[:, None] * imp.axis_unit)


# ----------------------------------------------------------------------------- the file


def test_plan_loads_and_names_the_shared_ct(plan, real_ct_path):
    assert plan.ct_path.resolve() == real_ct_path.resolve()
    assert [i.id for i in plan.implants] == ["R1", "R2", "R3"]
    assert [i.level for i in plan.implants] == ["S1", "S1", "S2"]
    assert all(i.side == "right" and i.item.family == "T7" for i in plan.implants)
    kinds = Counter((lm.kind, lm.side) for lm in plan.landmarks)
    for side in ("left", "right"):
        assert kinds[("s1_foramen", side)] == 1 and kinds[("s2_foramen", side)] == 1
        assert kinds[("alar_line", side)] >= 1
    assert kinds[("spinal_canal", "midline")] == 2
    for kind in ("sacral_promontory", "s1_endplate_posterior", "s2_anterior_body"):
        assert kinds[(kind, "midline")] == 1
    assert kinds[("si_joint", "right")] == 3
    assert all(lm.radius_mm > 0 for lm in plan.landmarks)
    views = {(v.implant, v.kind): v.tilt_deg for v in plan.views}
    for imp in plan.implants:
        assert views[(imp.id, "lateral")] is None
        assert views[(imp.id, "inlet")] == 25.0 and views[(imp.id, "outlet")] == 42.0


def test_plan_sha256_matches_the_real_ct(plan, ct):
    assert plan.ct_sha256 == ct.voxel_sha256()
    loaded, warnings = load_plan_ct(plan)
    assert warnings == [] and loaded.voxel_sha256() == plan.ct_sha256


def test_catalogue_length_equals_entry_apex_distance(plan):
    for imp in plan.implants:
        assert abs(imp.item.length_mm - imp.length_mm) <= 2.0, imp.id


# ----------------------------------------------------------------------------- plan checks


def test_plan_checks_pass_on_the_real_ct(plan, check_rows):
    assert [(r.implant, r.check) for r in check_rows] == \
        [(i.id, c) for i in plan.implants for c in CHECK_NAMES]
    assert not any(r.skipped for r in check_rows), format_check_table(check_rows)
    failed = [r for r in check_rows if not r.passed]
    assert not failed, format_check_table(check_rows)


@pytest.mark.parametrize("implant_id", ["R1", "R2", "R3"])
def test_si_joint_found_for_each_implant(check_rows, implant_id):
    row = next(r for r in check_rows if r.implant == implant_id and r.check == "crosses_si_joint")
    assert row.passed, row.message


# ----------------------------------------------------------------------------- independent sanity


def test_entry_and_apex_inside_the_ct(plan, ct):
    for imp in plan.implants:
        assert ct.contains(np.vstack([imp.entry_lps_mm, imp.apex_lps_mm])).all(), imp.id


def test_implants_lie_right_of_the_bony_midline(plan, ct):
    z = np.array([[i.entry_lps_mm[2], i.apex_lps_mm[2]] for i in plan.implants])
    midline_x = _bony_midline_x_mm(ct, z.min() - 10.0, z.max() + 10.0)
    for lm in plan.landmarks:
        if lm.kind == "spinal_canal":               # the landmarks agree with the image
            assert abs(lm.position_lps_mm[0] - midline_x) < 5.0, lm.name
    for imp in plan.implants:                       # LPS: patient right is -x
        assert imp.entry_lps_mm[0] < midline_x - 25.0 and imp.apex_lps_mm[0] < midline_x - 25.0, imp.id
        assert imp.entry_lps_mm[0] < imp.apex_lps_mm[0], f"{imp.id} must run from lateral to medial"


def test_hu_along_each_axis(plan, ct):
    joints = [lm for lm in plan.landmarks if lm.kind == "si_joint"]
    for imp in plan.implants:
        # entry on the lateral iliac cortex
        assert _axis_hu(ct, imp, np.arange(-3.0, 3.01, 0.5)).max() >= 200.0, imp.id
        # its si_joint landmark lies on the axis, with the ilium before and >= 10 mm of sacrum after
        rel = np.array([lm.position_lps_mm - imp.entry_lps_mm for lm in joints])
        t = rel @ imp.axis_unit
        off = np.linalg.norm(rel - t[:, None] * imp.axis_unit, axis=1)
        k = int(np.argmin(off))
        assert off[k] < 1.0 and 5.0 <= t[k] <= imp.length_mm - 10.0, imp.id
        # no fat or air on the last 10 mm (the foramina, canal and pelvis are fatty)
        last = _axis_hu(ct, imp, imp.length_mm - np.arange(0.0, 10.01, 0.5))
        assert last.min() >= FAT_HU, f"{imp.id}: {last.min():.0f} HU before the apex"
        # and bone around the apex
        ok, bone, fat = _bone_neighbourhood(ct, imp.apex_lps_mm)
        assert ok, f"{imp.id} apex: {100 * bone:.0f}% bone, {100 * fat:.0f}% fat within 10 mm"


def test_sanity_rules_reject_soft_tissue_and_nerve_spaces(plan, ct):
    """The rules above fail where they should (so the sanity test can fail)."""
    r1, r2, r3 = plan.implants
    not_bone = [r1.apex_lps_mm + [0.0, -25.0, 0.0],           # pelvis in front of the ala
                r1.apex_lps_mm + [0.0, 25.0, 0.0],            # behind the sacrum
                *(i.entry_lps_mm - 20.0 * i.axis_unit for i in plan.implants)]   # gluteal muscle
    not_bone += [lm.position_lps_mm for lm in plan.landmarks
                 if lm.kind in ("s1_foramen", "s2_foramen", "spinal_canal")]
    for p in not_bone:
        assert not _bone_neighbourhood(ct, p)[0], np.round(p, 1).tolist()
    # pushed 15-20 mm deeper, R2 and R3 would end in the S1 nerve channel / S2 foramen fat
    for imp, extra_mm in ((r2, 15.0), (r3, 20.0)):
        t = imp.length_mm + extra_mm - np.arange(0.0, 10.01, 0.5)
        assert _axis_hu(ct, imp, t).min() < FAT_HU, imp.id
