"""Appearance families: determinism, family ranges, beam hardening, processing, clutter, CT-only metal."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest

from or_assist.core.carm import pose_from_beam, pose_from_carm_angles
from or_assist.core.ct.load import load_ct
from or_assist.core.ct.volume import CTVolume
from or_assist.core.geometry import CArmGeometry, project
from or_assist.errors import InputError
from or_assist.render.implants import metal_line_integrals
from or_assist.sim.shots.appearance import APPEARANCE_FAMILIES, R, Appearance, draw_appearance
from or_assist.sim.shots.appearance_shot import appearance_spectrum, simulate_appearance_shot
from or_assist.sim.shots.chain import field_mask
from or_assist.sim.shots.clutter import ExtraMetal, add_ct_metal, body_box_lps_mm, extra_metal_meshes
from or_assist.sim.shots.processing import s_distortion_shift_px, unsharp_mask
from or_assist.sim.shots.spectrum import kramers_spectrum, monochromatic_spectrum, polychromatic_transmission

HOLE_MM = np.array([-20.0, 0.0, 20.0])     # an air hole along y: the bright end of the window
BEAD_MM = np.array([20.0, 0.0, 20.0])      # a dense bead: the dark end


def phantom(*, slab: bool = False, hole: bool = True, bead_mm=BEAD_MM) -> CTVolume:
    """A 110 mm water cube (1.5 mm voxels) with an air hole, a 3000 HU bead and optionally a
    20 mm bone slab (600 HU) filling x > 0, so the image has an edge along the line x = 0."""
    n, sp = 80, 1.5
    origin = -sp * (n - 1) / 2 * np.ones(3)
    k, j, i = np.mgrid[0:n, 0:n, 0:n]
    lps = np.stack([i, j, k], axis=-1) * sp + origin
    hu = np.full((n, n, n), -1000.0, np.float32)
    cube = np.all(np.abs(lps) <= 55.0, axis=-1)
    hu[cube] = 0.0
    if slab:
        hu[cube & (lps[..., 0] > 0) & (np.abs(lps[..., 1]) <= 10.0)] = 600.0
    if hole:
        hu[(np.hypot(lps[..., 0] - HOLE_MM[0], lps[..., 2] - HOLE_MM[2]) <= 6.0) & (np.abs(lps[..., 1]) <= 30.0)] = -1000
    if bead_mm is not None:
        hu[np.linalg.norm(lps - bead_mm, axis=-1) <= 4.0] = 3000.0
    return CTVolume(hu, origin, (sp,) * 3, np.eye(3), source="phantom")


def quiet(**changes) -> Appearance:
    """Noise-free, no scatter or blur, no field, no text: geometry and processing alone."""
    kw = dict(family="test", i0_photons_per_px=1e9, detector_blur_px=0.0, scatter_fraction=0.0,
              range_compression=0.0, collimation=None, detector_px=128, burnt_in_text=False)
    kw.update(changes)
    return Appearance(**kw)


@pytest.fixture(scope="module")
def ct(real_ct_path) -> CTVolume:
    return load_ct(real_ct_path)


@pytest.fixture(scope="module")
def lateral():
    pose = pose_from_carm_angles(90, 0, [0.0, -100.0, 215.0], 600.0, "supine")
    return pose, CArmGeometry((96, 96), 1000.0, (3.0, 3.0), (47.5, 47.5), 600.0)


@pytest.fixture(scope="module")
def ap_phantom():
    """Beam along +y through the cube's centre; 0.72 mm per pixel at the isocentre."""
    return pose_from_beam([0.0, 1.0, 0.0], [0.0, 0.0, 0.0], 600.0), \
        CArmGeometry((128, 128), 1000.0, (1.2, 1.2), (63.5, 63.5), 600.0)


# --------------------------------------------------------------------------- drawing and determinism


def test_same_seed_same_frame(ct, lateral):
    a = draw_appearance("intensifier", np.random.default_rng(7))
    assert a == draw_appearance("intensifier", np.random.default_rng(7))
    a = replace(a, detector_px=128, frame_size_px=None)
    one = simulate_appearance_shot(ct, *lateral, a, seed=3)
    two = simulate_appearance_shot(ct, *lateral, a, seed=3)
    other = simulate_appearance_shot(ct, *lateral, a, seed=4)
    assert np.array_equal(one.frame, two.frame) and np.array_equal(one.image, two.image)
    assert not np.array_equal(one.frame, other.frame)


@pytest.mark.parametrize("family", sorted(APPEARANCE_FAMILIES))
def test_every_family_draws_valid_appearances_and_renders_the_frame(ct, lateral, family):
    rng = np.random.default_rng(11)
    for _ in range(5):
        a = draw_appearance(family, rng)
        assert a.family == family
        for f in fields(Appearance):
            spec = APPEARANCE_FAMILIES[family].get(f.name)
            if isinstance(spec, R):
                assert spec.lo <= getattr(a, f.name) <= spec.hi, f.name
        assert 512 <= a.detector_px <= 1536 and 60 <= a.kvp <= 120
    a = replace(a, detector_px=128, frame_size_px=(192, 108))
    shot = simulate_appearance_shot(ct, *lateral, a, seed=1)
    assert shot.frame.dtype == np.uint8 and shot.frame.shape == (108, 192)
    assert shot.geometry.image_size_px == (128, 128)
    assert shot.frame[shot.fov_mask & ~shot.text_mask].std() > 5     # anatomy, not a flat field
    if family == "cluttered":
        assert a.extra_metal and a.collimation_leaf is not None


# --------------------------------------------------------------------------- physics


def test_beam_hardening_lowers_the_attenuation_per_mm_with_path_length():
    lengths = np.array([5.0, 50.0, 150.0, 300.0])
    for material in ("water", "bone"):
        poly = polychromatic_transmission(kramers_spectrum(80.0, 3.0), {material: lengths})
        mono = polychromatic_transmission(monochromatic_spectrum(60.0), {material: lengths})
        mu_poly = -np.log(poly.astype(np.float64)) / lengths
        mu_mono = -np.log(mono.astype(np.float64)) / lengths
        assert np.all(np.diff(mu_poly) < 0), material
        assert np.allclose(mu_mono, mu_mono[0], rtol=1e-4), material
    assert len(appearance_spectrum(quiet(polychromatic=False)).energies_kev) == 1
    assert len(appearance_spectrum(quiet()).energies_kev) >= 8


def test_unsharp_mask_increases_the_contrast_across_an_edge(ap_phantom):
    step = np.tile(np.r_[np.full(20, 0.3), np.full(20, 0.6)].astype(np.float32), (5, 1))
    sharp = unsharp_mask(step, 2.0, 1.0)
    assert np.ptp(sharp[2, 14:26]) > 1.3 * np.ptp(step[2, 14:26])
    assert np.allclose(sharp[2, :5], 0.3, atol=1e-4) and np.allclose(sharp[2, -5:], 0.6, atol=1e-4)

    pose, geom = ap_phantom
    ct = phantom(slab=True)
    line = np.array([[x, 0.0, -25.0] for x in (-2.0, 2.0)])    # either side of the slab's edge
    uv = np.round(project(line, pose, geom)).astype(int)

    def contrast(gain):
        shot = simulate_appearance_shot(ct, pose, geom, quiet(unsharp_gain=gain, unsharp_radius_px=3.0))
        f = shot.frame.astype(float)
        return abs(f[uv[0, 1], uv[0, 0]] - f[uv[1, 1], uv[1, 0]])

    plain = contrast(0.0)
    assert plain > 5
    assert contrast(1.5) > 1.2 * plain


def test_vignetting_darkens_the_field_edge(ap_phantom):
    pose, geom = ap_phantom
    ct = phantom()
    plain = simulate_appearance_shot(ct, pose, geom, quiet())
    vign = simulate_appearance_shot(ct, pose, geom, quiet(vignetting=0.4))
    ratio = vign.image / plain.image
    assert abs(ratio[64, 64] - 1.0) < 2e-3
    r = np.hypot(0 - 63.5, 64 - 63.5)
    assert abs(ratio[64, 0] - (1.0 - 0.4 * (r / 64.0) ** 2)) < 5e-3

    def edge_minus_centre(shot):
        f = shot.frame.astype(float)
        return f[62:67, 2:7].mean() - f[62:67, 62:67].mean()

    assert edge_minus_centre(vign) < edge_minus_centre(plain) - 10   # bone-dark: the edge goes dark


def _dark_centroid(image: np.ndarray, uv: np.ndarray, half: int = 8) -> np.ndarray:
    uc, vc = np.round(uv).astype(int)
    win = -np.log(image[vc - half:vc + half + 1, uc - half:uc + half + 1].astype(np.float64))
    border = np.concatenate([win[0], win[-1], win[:, 0], win[:, -1]])
    w = np.clip(win - np.median(border), 0, None)
    vv, uu = np.mgrid[vc - half:vc + half + 1, uc - half:uc + half + 1]
    return np.array([(w * uu).sum() / w.sum(), (w * vv).sum() / w.sum()])


def test_s_distortion_moves_content_by_its_amplitude_and_not_the_geometry(ap_phantom):
    pose, geom = ap_phantom
    bead = np.array([23.0, 0.0, 0.0])                       # about half the screen radius out
    ct = phantom(hole=False, bead_mm=bead)
    plain = simulate_appearance_shot(ct, pose, geom, quiet())
    warped = simulate_appearance_shot(ct, pose, geom, quiet(s_distortion_px=6.0))
    assert warped.geometry == plain.geometry == geom and warped.video_geometry == plain.video_geometry
    uv = project(bead[None], pose, geom)[0]
    a, b = _dark_centroid(plain.image, uv), _dark_centroid(warped.image, uv)
    assert np.linalg.norm(a - uv) < 0.3                     # the plain shot agrees with its geometry
    radial = a - 63.5
    expected = s_distortion_shift_px(float(np.linalg.norm(radial)), 6.0, 64.0)
    moved = b - a
    assert expected > 4.0
    assert abs(np.linalg.norm(moved) - expected) < 0.15 * expected + 0.3
    assert abs(moved @ radial / np.linalg.norm(radial)) < 0.5   # along the arc


def test_intensifier_k1_goes_into_the_returned_geometry(ap_phantom):
    pose, geom = ap_phantom
    shot = simulate_appearance_shot(phantom(), pose, geom, quiet(ii_k1=0.05, s_distortion_px=3.0))
    assert shot.geometry.distortion is not None and shot.geometry.distortion[0] == pytest.approx(0.05)


def test_partial_field_is_cut_by_one_leaf():
    full = field_mask((100, 100), "circle", 0.9)
    cut = field_mask((100, 100), "circle", 0.9, leaf=(0.5, 0.0))    # leaf from the +u side
    assert np.all(cut <= full) and cut.sum() < full.sum()
    assert not cut[50, 80:].any() and cut[50, 20:70].all()


# --------------------------------------------------------------------------- metal the CT and the shot do not share


def test_extra_metal_is_in_the_shot_and_not_in_the_ct(ct, lateral):
    pose, geom = lateral
    hu_before = ct.hu.copy()
    cable = ExtraMetal("cable", (0.5, 0.7, 0.4), (0.0, 0.0, 1.0), 300.0, 2.5)
    plain = quiet(i0_photons_per_px=1e7, range_compression=0.8, collimation="circle")
    with_cable = simulate_appearance_shot(ct, pose, geom, replace(plain, extra_metal=(cable,)))
    without = simulate_appearance_shot(ct, pose, geom, plain)
    chord = metal_line_integrals(pose, with_cable.geometry, extra_metal_meshes(ct, [cable]), 1.0)
    on = (chord > 1.5) & with_cable.fov_mask
    assert on.sum() > 20
    assert with_cable.frame[on].mean() < without.frame[on].mean() - 30   # dark in a bone-dark image
    assert np.array_equal(ct.hu, hu_before)
    lo, hi = body_box_lps_mm(ct)
    axis_points = lo + (hi - lo) * np.array([0.5, 0.7, 0.4]) + np.linspace(-100, 100, 21)[:, None] * [0, 0, 1]
    assert ct.sample_hu(axis_points).max() < 2500


@pytest.mark.parametrize("side", ["right", "left"])
def test_add_ct_metal_adds_metal_in_a_bounded_region(ct, side):
    hu_before = ct.hu.copy()
    metal = add_ct_metal(ct, side=side)
    assert np.array_equal(ct.hu, hu_before)
    changed = metal.hu != ct.hu
    assert changed.any() and np.all(metal.hu[changed] >= 2500)
    k, j, i = np.nonzero(changed)
    lps = ct.origin_mm + (np.stack([i, j, k], axis=1) * ct.spacing_mm) @ ct.direction.T
    assert np.all(np.ptp(lps, axis=0) <= 200.0)
    lo, hi = body_box_lps_mm(ct)
    centre_x = 0.5 * (lo[0] + hi[0])
    assert (lps[:, 0].mean() < centre_x) == (side == "right")     # LPS: the patient's right is -x


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("field, value", [
    ("family", ""), ("kvp", 50.0), ("kvp", 130.0), ("filtration_mm_al", -1.0), ("polychromatic", "yes"),
    ("bone_hu_breakpoint", 900.0), ("bone_scale", 100.0), ("log_display", 1), ("gamma", 2.0),
    ("unsharp_radius_px", 0.0), ("unsharp_gain", 6.0), ("i0_photons_per_px", 0.0), ("detector_blur_px", -1.0),
    ("scatter_fraction", 0.95), ("vignetting", 0.6), ("s_distortion_px", -1.0), ("ii_k1", 1.0),
    ("collimation", "round"), ("collimation_radius_fraction", 1.5), ("collimation_offset_fraction", (0.9, 0.0)),
    ("collimation_leaf", (2.0, 0.0)), ("detector_px", 32), ("detector_px", 512.0), ("frame_size_px", (0, 10)),
    ("invert", "no"), ("extra_metal", ("rail",)),
])
def test_bad_appearance_fields_are_named(field, value):
    with pytest.raises(InputError, match=field):
        quiet(**{field: value})


def test_bad_arguments_are_named(ct, lateral):
    pose, geom = lateral
    a = quiet()
    with pytest.raises(InputError, match="family"):
        draw_appearance("xray", np.random.default_rng(0))
    with pytest.raises(InputError, match="rng"):
        draw_appearance("default", 3)
    with pytest.raises(InputError, match="ct"):
        simulate_appearance_shot(np.zeros((4, 4, 4)), pose, geom, a)
    with pytest.raises(InputError, match="appearance"):
        simulate_appearance_shot(ct, pose, geom, {"kvp": 80})
    with pytest.raises(InputError, match="pose"):
        simulate_appearance_shot(ct, np.eye(4), geom, a)
    with pytest.raises(InputError, match="geometry"):
        simulate_appearance_shot(ct, pose, {"sid_mm": 1000}, a)
    with pytest.raises(InputError, match="seed"):
        simulate_appearance_shot(ct, pose, geom, a, seed=-1)
    with pytest.raises(InputError, match="kind"):
        ExtraMetal("pipe", (0.5, 0.5, 0.5), (0, 0, 1), 100.0, 2.0)
    with pytest.raises(InputError, match="side"):
        add_ct_metal(ct, side="middle")
    with pytest.raises(InputError, match="kind"):
        add_ct_metal(ct, kind="knee")
    with pytest.raises(InputError, match="kvp"):
        kramers_spectrum(200.0, 3.0)
