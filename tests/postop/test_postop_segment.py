"""Implant segmentation that holds across scanner metal levels and cannulated implants (issue 19).

Post-op CTs of case A (tests/postop/postop_cases.py) made with the appearance families of
:mod:`or_assist.sim.postop_ct`: metal at 2000-4000 HU on an extended scale, metal
clipped at 3071, and cannulated implants (a 3.3 mm channel).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from or_assist.core.ct.volume import CTVolume
from or_assist.core.instruments import GuidePin
from or_assist.errors import InputError
from or_assist.postop.metal import METAL_CEILING_HU, METAL_FLOOR_HU, fill_metal_channels, metal_threshold_hu
from or_assist.postop.segment import find_metal_objects
from or_assist.sim.postop_ct import (appearance_kwargs, implant_fraction_volume, rigid_motion,
                                     synthesize_postop_ct)
from tests.postop import postop_cases as pc


@functools.lru_cache(maxsize=None)
def _case(family: str, bright_bone: bool = False):
    """(post-op CT, placed implants moved into the post-op frame as (apex, axis) pairs)."""
    imps = pc.placed(pc.PERTURB_A)
    motion = rigid_motion(*pc.MOTION_A, centre_mm=pc.SACRUM_MM)
    pre = _bright_bone_ct() if bright_bone else pc.pelvis_ct()
    post = synthesize_postop_ct(pre, imps, motion, noise_hu=10.0, streak_hu=100.0, seed=1,
                                **appearance_kwargs(family))
    truth = [(motion.apply(i.apex_lps_mm), motion.rotation @ i.axis_unit, motion.apply(i.entry_lps_mm))
             for i in imps]
    return post, truth


@functools.lru_cache(maxsize=None)
def _bright_bone_ct() -> CTVolume:
    """The pelvis CT with its bone stretched so that the cortex reaches 1500-1790 HU."""
    ct = pc.pelvis_ct()
    hu = ct.hu.astype(np.float32)
    bone = (hu > 300.0) & (hu < 2000.0)                   # not the hip prosthesis
    hu[bone] = np.minimum(300.0 + (hu[bone] - 300.0) * 3.0, 1790.0)
    return CTVolume(hu, ct.origin_mm, ct.spacing_mm, ct.direction, source="bright-bone pelvis")


def _near_objects(post: CTVolume, truth, metal_hu: float):
    objs = find_metal_objects(fill_metal_channels(post), metal_hu=metal_hu)
    near = []
    for o in objs:
        d = min(float(np.min(np.linalg.norm(o.points_lps_mm - apex, axis=1))) for apex, _, _ in truth)
        if d < 40.0:
            near.append(o)
    return near


def _assert_one_object_per_implant(near, truth, angle_tol_deg: float):
    assert len(near) == len(truth), [round(o.volume_mm3) for o in near]
    for apex, axis, entry in truth:
        mid = 0.5 * (apex + entry)
        obj = min(near, key=lambda o: float(np.linalg.norm(o.centroid_lps_mm - mid)))
        assert obj.distance_to_line_mm(mid[None])[0] < 1.5            # the object lies on the implant's axis
        ang = np.degrees(np.arccos(min(1.0, abs(float(obj.axis_unit @ axis)))))
        assert ang < angle_tol_deg


@pytest.mark.parametrize("family", ["metal_2000", "metal_2500", "metal_4000", "clip_3071", "standard"])
def test_metal_threshold_follows_the_scanner_metal_level(family):
    post, truth = _case(family)
    t = metal_threshold_hu(fill_metal_channels(post), pc.plan().catalogue)
    assert METAL_FLOOR_HU <= t <= METAL_CEILING_HU
    if family in ("standard", "clip_3071"):               # clipped titanium: the threshold the fit was built at
        assert t == pytest.approx(METAL_CEILING_HU)
    _assert_one_object_per_implant(_near_objects(post, truth, t), truth, angle_tol_deg=3.0)


def test_the_fixed_2500_threshold_misses_dim_metal_that_the_histogram_finds():
    post, truth = _case("metal_2000")
    assert _near_objects(post, truth, 2500.0) == []       # what the constant did (issue 19)
    assert len(_near_objects(post, truth, metal_threshold_hu(post))) == 3


def test_cortical_bone_below_the_floor_is_never_metal():
    pre = _bright_bone_ct()
    assert np.count_nonzero((pre.hu >= 1500) & (pre.hu < 2000)) > 50   # there is bright cortex to confuse
    post, truth = _case("metal_2000", bright_bone=True)
    t = metal_threshold_hu(post)
    assert t >= METAL_FLOOR_HU
    _assert_one_object_per_implant(_near_objects(post, truth, t), truth, angle_tol_deg=3.0)
    # without implants: no metal anywhere near the sacrum
    empty = synthesize_postop_ct(pre, [], rigid_motion(*pc.MOTION_A, centre_mm=pc.SACRUM_MM))
    assert _near_objects(empty, truth, metal_threshold_hu(empty)) == []


@pytest.mark.parametrize("family", ["cannulated", "cannulated_2500"])
def test_cannulated_implants_are_one_object_each(family):
    post, truth = _case(family)
    _assert_one_object_per_implant(_near_objects(post, truth, metal_threshold_hu(post)), truth, angle_tol_deg=2.0)


def test_cannulated_case_evaluates_like_a_solid_one():
    from or_assist.postop.evaluate import evaluate_case

    post, _ = _case("cannulated_2500")
    ev = evaluate_case(pc.plan(), post, pc.real_ct())
    assert ev.extra == []
    for got, imp in zip(ev.implants, pc.placed(pc.PERTURB_A)):
        dev, ang, _ = pc.true_deviation(imp)
        assert got.found
        assert abs(got.apex_deviation_mm - dev) < 0.5
        assert abs(got.angle_deg - ang) < 0.75


def _fine_cannulated_ct(channel_mm: float):
    """A 0.5 mm grid of soft tissue (40 HU) with one 7 mm implant, metal 3000 HU, optional channel."""
    imp = pc.plan().implant("R1")
    c = 0.5 * (imp.apex_lps_mm + imp.entry_lps_mm)
    shape = (110, 110, 110)
    grid = CTVolume(np.full(shape, 40.0, np.float32), c - 27.25, np.full(3, 0.5), np.eye(3))
    frac = implant_fraction_volume(grid, [imp], 4)
    if channel_mm:
        a = imp.axis_unit
        frac = np.clip(frac - implant_fraction_volume(
            grid, [GuidePin(imp.apex_lps_mm + a, imp.entry_lps_mm - a, diameter_mm=channel_mm)], 4), 0, 1)
    hu = 40.0 + frac * (3000.0 - 40.0)
    return CTVolume(hu.astype(np.float32), grid.origin_mm, grid.spacing_mm, grid.direction), imp


def test_fill_metal_channels_closes_a_resolved_channel_and_keeps_solid_metal():
    ct, imp = _fine_cannulated_ct(3.3)
    mid = 0.5 * (imp.apex_lps_mm + imp.entry_lps_mm)
    assert ct.sample_hu(mid[None])[0] < 1000.0                        # the channel is resolved at 0.5 mm
    filled = fill_metal_channels(ct)
    assert filled.sample_hu(mid[None])[0] > 2500.0
    objs = find_metal_objects(filled, metal_hu=metal_threshold_hu(filled))
    assert len(objs) == 1
    assert np.degrees(np.arccos(min(1.0, abs(float(objs[0].axis_unit @ imp.axis_unit))))) < 1.0
    assert objs[0].distance_to_line_mm(mid[None])[0] < 0.3
    solid, _ = _fine_cannulated_ct(0.0)
    moved = np.abs(fill_metal_channels(solid).hu - solid.hu)
    far = solid.hu < 41.0                                           # tissue away from the metal is untouched
    assert float(moved[far].max()) < 1.0
    assert float(np.percentile(moved[solid.hu > 2500.0], 99)) < 50.0  # solid metal barely changes


def test_fill_metal_channels_in_boxes_equals_the_whole_volume_closing_near_metal():
    import SimpleITK as sitk

    ct, _ = _fine_cannulated_ct(3.3)
    hu = ct.hu.copy()
    hu[5:15, 5:15, 5:15] = 1200.0                                   # dense bone with a 1 mm dark gap, far from metal
    hu[5:15, 9:11, 5:15] = 200.0
    hu[100:104, 100:104, 100:104] = 2600.0                          # a second, separate bright object
    hu[101:103, 100:104, 101:103] = 40.0
    ct = CTVolume(hu, ct.origin_mm, ct.spacing_mm, ct.direction)
    filled = fill_metal_channels(ct).hu
    whole = sitk.GetArrayFromImage(sitk.GrayscaleMorphologicalClosing(
        sitk.Cast(ct.to_sitk(), sitk.sitkFloat32), [4, 4, 4], sitk.sitkBall, True))
    whole = np.maximum(whole, ct.hu)
    near = (whole >= 1500.0) | (filled >= 1500.0)
    assert near.sum() > 1000
    np.testing.assert_array_equal(filled[near], whole[near])        # exact wherever the metal is
    assert filled[102, 102, 102] >= 2500.0                          # the second object's hole is filled too
    assert np.all(filled[5:15, 9:11, 5:15] == 200.0)                # the bone's gap is not metal: left alone
    assert np.all(whole[7:13, 9:11, 7:13] > 1000.0)                 # (the whole-volume closing filled it)


def test_prism_fraction_kernel_matches_the_numpy_reference():
    from or_assist.postop.prism_fit import _Grid, prism_planes

    imp, grid, _ = pc.r2_box()
    for spacing, sub in (([2.0, 2.0, 2.0], 5), ([0.5, 0.7, 1.0], (1, 2, 2))):
        shape = grid.hu.shape
        kk, jj, ii = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
        box = CTVolume(grid.hu, grid.origin_mm, spacing, grid.direction)
        centres = box.index_to_lps(np.column_stack([ii.ravel(), jj.ravel(), kk.ravel()]))
        g = _Grid(centres, shape, box.direction * box.spacing_mm[None, :], sub)
        planes = prism_planes(imp.apex_lps_mm, imp.axis_unit, 0.4, imp.item, grow_mm=0.3)
        for channel in (None, (imp.apex_lps_mm, imp.axis_unit, 1.65)):
            fast, ref = g.fraction(*planes, channel), g.fraction_reference(*planes, channel)
            assert 0.02 < float(np.mean((ref > 0.01) & (ref < 0.99))) < 0.5     # partial voxels are tested
            np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-9)


def test_bad_arguments_are_named():
    post, _ = _case("standard")
    with pytest.raises(InputError, match="channel_mm"):
        fill_metal_channels(post, -1.0)
    with pytest.raises(InputError, match="floor_hu"):
        metal_threshold_hu(post, floor_hu=3000.0, ceiling_hu=2000.0)
    with pytest.raises(InputError, match="family"):
        appearance_kwargs("titanium_mesh")
