"""Implants as they really are (issue 19, item 2): cannulated, fenestrated, porous-coated.

The prism fit's channel and coating terms on small synthetic boxes; the simulator's
fenestrations and coating; touching faint implants split and matched; the whole
location (segmentation, matching, fit) on case A (tests/postop/postop_cases.py) made with
the new appearance families, at the true registration.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from or_assist.core.catalogue import CatalogueItem
from or_assist.core.ct.volume import CTVolume
from or_assist.core.instruments import GuidePin
from or_assist.core.plan import Implant, implant_mesh, implant_vertex_directions
from or_assist.errors import InputError
from or_assist.postop.match import locate_implants
from or_assist.postop.pieces import item_volume_mm3, single_width_mm
from or_assist.postop.prism_fit import _blur3, fit_prism, roll_about_axis_rad
from or_assist.sim.postop_ct import (appearance_kwargs, implant_fraction_volume, perturbed_implant, rigid_motion,
                                     synthesize_postop_ct)
from tests.postop import postop_cases as pc


# --------------------------------------------------------------------------- prism fit: channel and coating

def _box(channel_mm: float = 0.0, coat_mm: float = 0.0, metal_hu: float = 2500.0):
    """A 2 mm box around planned implant R2 with a channel and/or a half-density coating."""
    imp, grid, frac = pc.r2_box()
    if coat_mm:
        it = imp.item
        big = CatalogueItem(it.id, it.inscribed_diameter_mm + 2 * coat_mm, it.length_mm, it.tip_taper_mm)
        outer = Implant(imp.id, imp.side, big, imp.entry_lps_mm, imp.apex_lps_mm, imp.roll_deg, imp.level)
        frac = frac + 0.5 * (implant_fraction_volume(grid, [implant_mesh(outer)], 6) - frac)
    if channel_mm:
        a = imp.axis_unit
        pin = GuidePin(imp.apex_lps_mm + a, imp.entry_lps_mm - a, diameter_mm=channel_mm)
        frac = np.clip(frac - implant_fraction_volume(grid, [pin], 6), 0.0, 1.0)
    hu = 100.0 + _blur3(frac, 0.2) * (metal_hu - 100.0)
    return imp, CTVolume(hu.astype(np.float32), grid.origin_mm, grid.spacing_mm, grid.direction)


def _fit(imp, box, **kw):
    roll = roll_about_axis_rad(imp.axis_unit, implant_vertex_directions(imp)[0])
    perp = np.cross(imp.axis_unit, [0.0, 0.0, 1.0])
    from or_assist.core.pose import rotation_about_axis

    axis0 = rotation_about_axis(perp / np.linalg.norm(perp), np.radians(1.5)) @ imp.axis_unit
    fit = fit_prism(box, np.full(box.hu.shape, 100.0), np.ones(box.hu.shape, bool), imp.item,
                    imp.apex_lps_mm + np.array([0.6, -0.5, 0.4]), axis0, hu_max=4095.0, roll0_rad=roll + 0.05,
                    metal0_hu=2000.0, **kw)
    return fit, float(np.linalg.norm(fit.apex_lps_mm - imp.apex_lps_mm)), \
        float(np.degrees(np.arccos(np.clip(fit.axis_unit @ imp.axis_unit, -1, 1))))


def test_channel_term_fits_a_cannulated_implant_better_than_a_solid_prism():
    imp, box = _box(channel_mm=3.3)
    hollow, apex_mm, angle_deg = _fit(imp, box, channel_mm=3.3)
    solid, _, _ = _fit(imp, box)
    assert apex_mm < 0.3 and angle_deg < 0.5
    assert hollow.rms_hu < 0.6 * solid.rms_hu                  # the residual tells a hollow core
    assert hollow.channel_mm == 3.3 and solid.channel_mm == 0.0
    assert hollow.metal_hu == pytest.approx(2500.0, rel=0.15)  # the solid model dims M to fill the channel


def test_grow_term_takes_up_a_coating():
    imp, box = _box(coat_mm=1.0)
    fit, apex_mm, angle_deg = _fit(imp, box, fit_grow=True)
    assert apex_mm < 0.3 and angle_deg < 0.5
    assert 0.2 < fit.grow_mm < 1.0                              # about half of the 1 mm half-density layer
    plain, _, _ = _fit(imp, box)
    assert plain.grow_mm == 0.0 and fit.rms_hu < plain.rms_hu


@pytest.mark.parametrize("channel", [-1.0, float("nan"), 7.0])
def test_bad_channel_is_named(channel):
    imp, box = _box()
    with pytest.raises(InputError, match="channel_mm"):
        _fit(imp, box, channel_mm=channel)


# --------------------------------------------------------------------------- simulator

def _metal(post: CTVolume, level: float) -> int:
    return int(np.count_nonzero(post.hu >= level))


@functools.lru_cache(maxsize=None)
def _case(family: str):
    imps = pc.placed(pc.PERTURB_A)
    motion = rigid_motion(*pc.MOTION_A, centre_mm=pc.SACRUM_MM)
    post = synthesize_postop_ct(pc.pelvis_ct(), imps, motion, noise_hu=10.0, streak_hu=100.0, seed=1,
                                **appearance_kwargs(family))
    return post, imps, motion


def test_fenestrations_remove_metal_and_a_coating_adds_it():
    imps = pc.placed(pc.PERTURB_A)[:1]
    motion = rigid_motion([0, 0, 0], [0, 0, 0])
    kw = dict(metal_hu=2500.0, hu_max=4095.0, blur_mm=0.0)
    solid = synthesize_postop_ct(pc.pelvis_ct(), imps, motion, **kw)
    holes = synthesize_postop_ct(pc.pelvis_ct(), imps, motion, fenestration_mm=3.0, **kw)
    coat = synthesize_postop_ct(pc.pelvis_ct(), imps, motion, porous_mm=1.0, **kw)
    diff_holes = (holes.hu - solid.hu).astype(np.float64)
    diff_coat = (coat.hu - solid.hu).astype(np.float64)
    assert diff_holes.max() <= 1e-3 and diff_holes.min() < -1000.0           # only removes metal
    assert diff_coat.min() >= -1e-3 and diff_coat.max() > 300.0              # only adds metal, outside
    vol = item_volume_mm3(imps[0].item)
    removed_mm3 = -diff_holes.sum() / (2500.0 - 200.0) * float(np.prod(solid.spacing_mm))
    assert 0.03 * vol < removed_mm3 < 0.3 * vol                              # holes, not a hollow implant
    assert _metal(coat, 1000.0) > _metal(solid, 1000.0)                      # metal looks larger


@pytest.mark.parametrize("kw", [{"fenestration_mm": -1.0}, {"porous_mm": float("inf")}, {"porous_density": 0.0},
                                {"cannulation_mm": float("nan")}])
def test_bad_design_arguments_are_named(kw):
    imps = pc.placed(pc.PERTURB_A)[:1]
    with pytest.raises(InputError, match=next(iter(kw))):
        synthesize_postop_ct(pc.pelvis_ct(), imps, rigid_motion([0, 0, 0], [0, 0, 0]), **kw)


def test_new_families_are_known():
    for fam in ("fenestrated", "porous", "fenestrated_cannulated", "porous_cannulated_2500"):
        assert appearance_kwargs(fam)


# --------------------------------------------------------------------------- location on case A

def _errors(family: str):
    post, imps, motion = _case(family)
    loc = locate_implants(pc.plan(), post, pc.pelvis_ct(), motion.inverse())
    out = {}
    for imp in imps:
        hit = loc.matches[imp.id]
        apex = motion.apply(imp.apex_lps_mm)
        axis = motion.rotation @ imp.axis_unit
        got = (hit.apex_lps_mm - hit.entry_lps_mm) / np.linalg.norm(hit.apex_lps_mm - hit.entry_lps_mm)
        out[imp.id] = (float(np.linalg.norm(hit.apex_lps_mm - apex)),
                       float(np.degrees(np.arccos(np.clip(got @ axis, -1, 1)))), hit.fit)
    return loc, out


@pytest.mark.parametrize("family", ["fenestrated", "porous", "porous_cannulated_2500"])
def test_designed_implants_are_found_one_each_and_fitted(family):
    loc, errs = _errors(family)
    assert not loc.extra and len(loc.matches) == 3
    for pid, (apex_mm, angle_deg, fit) in errs.items():
        assert fit["method"] == "prism fit", (pid, fit)
        assert apex_mm < 0.6 and angle_deg < 1.2, (pid, apex_mm, angle_deg)


def test_cannulated_dim_implant_is_fitted_with_its_channel():
    loc, errs = _errors("cannulated_2500")
    for pid, (apex_mm, angle_deg, fit) in errs.items():
        assert fit["channel_mm"] > 0, (pid, fit)                  # the residual chose the hollow model
        assert apex_mm < 0.4 and angle_deg < 0.6, (pid, apex_mm, angle_deg)


def test_bad_cannulation_is_named():
    post, imps, motion = _case("standard")
    with pytest.raises(InputError, match="cannulation_mm"):
        locate_implants(pc.plan(), post, pc.pelvis_ct(), motion.inverse(), cannulation_mm=-3.0)


def test_touching_faint_implants_are_split_and_the_pieces_merged():
    """Seed 37 case 2 of the benchmark: R1 and R2 9.7 mm apart, dim cannulated metal joins them."""
    rng = np.random.default_rng(37)
    for _ in range(3):
        placed = [perturbed_implant(i, rng.normal(0, 2.5, 3), rng.uniform(0, 6)) for i in pc.plan().implants]
        motion = rigid_motion(rng.normal(0, 3.0, 3), rng.normal(0, 5.0, 3), centre_mm=pc.SACRUM_MM)
    post = synthesize_postop_ct(pc.pelvis_ct(), placed, motion, noise_hu=10.0, streak_hu=100.0, seed=2,
                                **appearance_kwargs("cannulated_2500"))
    loc = locate_implants(pc.plan(), post, pc.pelvis_ct(), motion.inverse())
    assert not loc.extra and len(loc.matches) == 3
    assert any("split" in w for w in loc.warnings)
    for imp in placed:
        hit = loc.matches[imp.id]
        assert np.linalg.norm(hit.apex_lps_mm - motion.apply(imp.apex_lps_mm)) < 0.5
        assert hit.fit["width_mm"] < 1.5 * single_width_mm(imp.item)
