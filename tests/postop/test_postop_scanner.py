"""The scanner families of the post-op simulator: own grid, slice profile, tilt, blooming, streaks."""

from __future__ import annotations

import numpy as np
import pytest

from or_assist.core.pose import rotation_angle_deg
from or_assist.errors import InputError
from or_assist.sim.postop_ct import rigid_motion
from or_assist.sim.postop_scanner import (SCANNER_FAMILIES, _streak_bands, scanner_family, scanner_motion,
                                          scanner_postop_ct)
from tests.postop import postop_cases as pc

_SMALL = {"fov_mm": (200.0, 160.0, 90.0), "noise_hu": 0.0}


def _make(family, **kw):
    imps = pc.placed(pc.PERTURB_A)
    motion = rigid_motion(*pc.MOTION_A, centre_mm=pc.SACRUM_MM)
    model = scanner_family(family, **dict(_SMALL, **kw))
    post, truth = scanner_postop_ct(pc.real_ct(), imps, motion, model, seed=3)
    return post, truth, imps, model


def _mid(imps):
    return np.array([0.5 * (i.apex_lps_mm + i.entry_lps_mm) for i in imps])


@pytest.mark.parametrize("family", ["thick_3_tilt_20", "flipped"])
def test_scanner_grid_and_truth(family):
    post, truth, imps, model = _make(family)
    assert np.allclose(post.spacing_mm, [model.pixel_mm, model.pixel_mm, model.slice_mm])
    # the slice normal is tilted by the gantry tilt from LPS z (or flipped)
    normal = post.direction[:, 2]
    assert np.degrees(np.arccos(abs(normal[2]))) == pytest.approx(abs(model.tilt_deg), abs=1e-6)
    # the truth (motion and the scanner's frame shift) puts each implant's middle in saturated metal
    assert np.all(post.sample_hu(truth.apply(_mid(imps))) > 2900.0)
    if family == "flipped":
        assert np.linalg.det(post.direction) < 0
        assert np.linalg.norm(truth.translation_mm) > 500.0


def test_thick_slices_average_along_the_normal():
    """A 3 mm slice is the mean of 3 mm of anatomy: fewer voxels saturate than at 0.6 mm and edges are grey."""
    thin, truth, imps, _ = _make("thin_0.6", fov_mm=(120.0, 100.0, 90.0))
    thick, truth2, _, _ = _make("thick_3", pixel_mm=0.78, fov_mm=(120.0, 100.0, 90.0))
    vox = lambda ct: float(np.prod(ct.spacing_mm))   # noqa: E731
    metal_thin = np.count_nonzero(thin.hu > 2500) * vox(thin)
    metal_thick = np.count_nonzero(thick.hu > 2500) * vox(thick)
    grey_thick = np.count_nonzero((thick.hu > 1200) & (thick.hu < 2500)) * vox(thick)
    grey_thin = np.count_nonzero((thin.hu > 1200) & (thin.hu < 2500)) * vox(thin)
    assert grey_thick > 1.3 * grey_thin            # partial volume of the slice profile
    assert 0.5 < metal_thick / metal_thin < 1.6     # the same metal, measured on another grid


def test_blooming_makes_metal_look_larger_with_a_dark_rim():
    plain, truth, imps, _ = _make("bloom", bloom_mm=0.0, rim=0.0)
    bloom, _, _, _ = _make("bloom")
    mid = truth.apply(_mid(imps))
    kk, jj, ii = np.nonzero(np.ones(plain.hu.shape, bool))
    pts = plain.index_to_lps(np.column_stack([ii, jj, kk]).astype(float))
    near = (np.min(np.linalg.norm(pts[:, None, :] - mid[None], axis=2), axis=1) < 30.0).reshape(plain.hu.shape)
    assert np.count_nonzero(near & (bloom.hu > 2000)) > 1.1 * np.count_nonzero(near & (plain.hu > 2000))
    # an undershoot rim: just outside the metal the bloomed scan is much darker than the plain one
    assert np.count_nonzero(near & (plain.hu > -200) & (plain.hu < 1000) & (bloom.hu < plain.hu - 150)) > 50


def test_streak_bands_join_metal_objects():
    hu = np.zeros((1, 80, 120), np.float32)
    hu[0, 38:43, 18:23] = 3000.0
    hu[0, 38:43, 98:103] = 3000.0
    bands = _streak_bands(hu, np.array([1.0, 1.0, 1.0]), 400.0, 2.0)[0]
    assert bands[40, 60] == pytest.approx(-400.0, rel=0.05)        # between them: dark
    assert bands[40, 110] > 50.0                                    # beyond them: bright
    assert abs(bands[10, 60]) < 1.0                                 # far from the line: nothing
    one = hu.copy()
    one[0, :, 90:] = 0.0
    assert not np.any(_streak_bands(one, np.array([1.0, 1.0, 1.0]), 400.0, 2.0))


def test_sheared_series_drifts_from_its_declared_geometry():
    """Stacked along the table but declared along the tilted normal: the further from the centre
    slice, the further the voxels are from where the declared geometry puts them."""
    post, truth, imps, model = _make("sheared_tilt_15", fov_mm=(200.0, 160.0, 120.0))
    straight, truth2, _, _ = _make("sheared_tilt_15", sheared=False, fov_mm=(200.0, 160.0, 120.0))
    assert np.allclose(post.direction, straight.direction)
    k0 = post.hu.shape[0] // 2
    assert np.abs(post.hu[k0] - straight.hu[k0]).mean() < 30.0
    k1 = k0 + 25                                        # 50 mm along the table: ~13 mm of in-plane shear
    assert np.abs(post.hu[k1] - straight.hu[k1]).mean() > 60.0


def test_family_motion_reaches_its_bounds():
    rng = np.random.default_rng(0)
    model = scanner_family("motion_15_50")
    for _ in range(5):
        m = scanner_motion(model, rng, pc.SACRUM_MM)
        assert 10.0 - 1e-9 <= rotation_angle_deg(np.eye(3), m.rotation) <= 15.0 + 1e-9
        assert np.linalg.norm(m.apply(np.array(pc.SACRUM_MM)) - pc.SACRUM_MM) <= 50.0 + 1e-9
    assert scanner_motion(scanner_family("thick_3"), rng, pc.SACRUM_MM) is None


def test_bad_input_names_the_argument():
    with pytest.raises(InputError, match="family"):
        scanner_family("no_such_scanner")
    with pytest.raises(InputError, match="overrides"):
        scanner_family("thick_3", slice_thickness=2.0)
    with pytest.raises(InputError, match="axes"):
        _make("thick_3", axes="xxz")
    with pytest.raises(InputError, match="field of view"):
        _make("thick_3", fov_mm=(20.0, 20.0, 20.0))
    assert {"thin_0.6", "thick_3_tilt_20", "bloom", "streaks", "motion_15_50", "flipped"} <= set(SCANNER_FAMILIES)
