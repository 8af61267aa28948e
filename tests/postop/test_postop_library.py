"""The library calls adopted in the post-op evaluation (issue 18).

* ``scipy.optimize.least_squares`` solves the triangular-prism fit (``prism_fit.fit_prism``);
* ``scipy.ndimage.correlate1d`` is its 3-tap scanner blur (``prism_fit._blur3``);
* ``scipy.optimize.linear_sum_assignment`` pairs planned implants with metal objects
  (``match._pair_within``).
"""

from __future__ import annotations

import numpy as np
import pytest

from or_assist.core.ct.volume import CTVolume
from or_assist.core.plan import implant_vertex_directions
from or_assist.core.pose import rotation_about_axis
from or_assist.postop.match import _pair_within
from or_assist.postop.prism_fit import _blur3, fit_prism, roll_about_axis_rad
from tests.postop import postop_cases as pc


# --------------------------------------------------------------------------- pairing

def test_pairing_matches_both_implants_where_nearest_first_would_strand_one():
    # implant 0 is nearest to object 0 (3 mm) but also within reach of object 1 (5 mm);
    # implant 1 has only object 0 within 20 mm: both are matched, crosswise
    assert _pair_within(np.array([[3.0, 5.0], [4.0, 25.0]]), 20.0) == {0: 1, 1: 0}


def test_pairing_keeps_pairs_within_reach_only():
    assert _pair_within(np.array([[25.0]]), 20.0) == {}
    assert _pair_within(np.array([[2.0, 30.0, 1.0]]), 20.0) == {0: 2}
    assert _pair_within(np.array([[1.0], [2.0], [30.0]]), 20.0) == {0: 0}
    assert _pair_within(np.zeros((3, 0)), 20.0) == {}


def test_pairing_takes_the_smallest_total_among_full_matchings():
    cost = np.array([[1.0, 2.0, 9.0], [2.0, 9.0, 9.0], [9.0, 1.0, 3.0]])
    # the six matchings total 13, 11, 7, 20, 12, 27; nearest-first would take 1 + 1 + 9 = 11
    assert _pair_within(cost, 20.0) == {0: 1, 1: 0, 2: 2}


# --------------------------------------------------------------------------- 3-tap blur

@pytest.mark.parametrize("var_vox", [0.0, 0.1, 0.3, 0.5])
def test_blur_is_the_three_tap_kernel_with_the_given_variance(var_vox):
    a = np.zeros((9, 9, 9))
    a[4, 4, 4] = 1.0
    b = _blur3(a, var_vox)
    assert b.sum() == pytest.approx(1.0, abs=1e-12)                       # interior: mass kept
    x = np.arange(9) - 4.0
    for ax in range(3):
        profile = b.sum(axis=tuple(k for k in range(3) if k != ax))
        assert (profile * x * x).sum() == pytest.approx(var_vox, abs=1e-12)
    c = 0.5 * var_vox
    assert b[4, 4, 3] == pytest.approx((1 - 2 * c) ** 2 * c, abs=1e-12)


def test_blur_repeats_the_edge_voxels_and_caps_the_variance():
    const = np.full((4, 5, 6), 7.0)
    assert np.allclose(_blur3(const, 0.4), 7.0, atol=1e-12)             # no darkening at the box edge
    ramp = np.tile(np.arange(6.0), (3, 4, 1))
    out = _blur3(ramp, 0.5)
    assert out[0, 0, 0] == pytest.approx(0.25, abs=1e-12)                # [0, 0, 1] with weights 1/4 1/2 1/4
    assert np.allclose(_blur3(ramp, 5.0), out, atol=1e-12)               # variance capped at 0.5 voxel^2


# --------------------------------------------------------------------------- prism fit (least_squares)

def _synthetic_box():
    imp, grid, frac = pc.r2_box()
    hu = np.minimum(100.0 + _blur3(frac, 0.2) * (8000.0 - 100.0), 3071.0)
    box = CTVolume(hu.astype(np.float32), grid.origin_mm, grid.spacing_mm, grid.direction)
    return imp, box


def test_prism_fit_recovers_the_implant_from_an_offset_start():
    imp, box = _synthetic_box()
    roll = roll_about_axis_rad(imp.axis_unit, implant_vertex_directions(imp)[0])
    perp = np.cross(imp.axis_unit, [0.0, 0.0, 1.0])
    axis0 = rotation_about_axis(perp / np.linalg.norm(perp), np.radians(2.0)) @ imp.axis_unit
    apex0 = imp.apex_lps_mm + np.array([0.8, -0.6, 0.5])
    pre = np.full(box.hu.shape, 100.0)
    use = np.ones(box.hu.shape, bool)
    fit = fit_prism(box, pre, use, imp.item, apex0, axis0, hu_max=3071.0, roll0_rad=roll + 0.05)
    assert np.linalg.norm(fit.apex_lps_mm - imp.apex_lps_mm) < 0.3
    assert np.degrees(np.linalg.norm(np.cross(fit.axis_unit, imp.axis_unit))) < 0.5
    assert np.linalg.norm(fit.apex_lps_mm - fit.entry_lps_mm) == pytest.approx(imp.item.length_mm, abs=1e-9)
    assert fit.rms_hu < 150.0 and 0 < fit.iterations <= 30
    assert fit.blur_mm <= np.sqrt(0.5) * 2.0 + 1e-9                      # the variance bound holds


def test_prism_fit_accepts_a_blur_start_beyond_the_kernel():
    imp, box = _synthetic_box()
    pre = np.full(box.hu.shape, 100.0)
    fit = fit_prism(box, pre, np.ones(box.hu.shape, bool), imp.item, imp.apex_lps_mm, imp.axis_unit,
                    hu_max=3071.0, blur0_var_vox=3.0, iterations=5)
    assert np.isfinite(fit.rms_hu) and fit.blur_mm <= np.sqrt(0.5) * 2.0 + 1e-9
    assert np.linalg.norm(fit.apex_lps_mm - imp.apex_lps_mm) < 1.0
