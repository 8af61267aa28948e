"""Shot simulator: determinism, Poisson noise, geometry of pin/beads in the frame, video chain."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from or_assist.core.carm import pose_from_beam, pose_from_carm_angles
from or_assist.core.ct.load import load_ct
from or_assist.core.ct.volume import CTVolume
from or_assist.core.geometry import CArmGeometry, project
from or_assist.core.pose import Pose
from or_assist.core.instruments import GuidePin
from or_assist.core.plan import Implant
from or_assist.core.catalogue import load_catalogue
from or_assist.errors import InputError
from or_assist.render.display import DisplaySettings
from or_assist.render.drr import AttenuationVolume, DRRRenderer
from or_assist.sim.shots.simulate import SimulatedShot, simulate_shot
from or_assist.sim.shots.settings import ShotSettings
from or_assist.sim.shots.chain import bin_mean, supersampled_geometry

ISO_MM = np.array([2.0, -3.0, 1.0])
BEAD_MM = np.array([8.0, -2.0, 10.0])          # near the centre of the views below
PERIPHERAL_BEAD_MM = np.array([-44.0, -21.0, -42.0])  # about 45 px from the piercing point
SPACING_MM = 1.25
# Fixed display window (line integrals) for geometric tests: noise-free and unsaturated.
WINDOW = DisplaySettings(window=(1.5, 3.5))
QUIET = dict(i0_photons_per_px=1e9, display=WINDOW, text_top=(), text_bottom=())


def phantom_ct(bead: bool = True) -> CTVolume:
    """A 110 mm water cube (0 HU) in air with dense beads (3000 HU, radius 3 mm)."""
    n = 96
    origin = -SPACING_MM * (n - 1) / 2 * np.ones(3)
    hu = np.full((n, n, n), -1000.0, np.float32)
    k, j, i = np.mgrid[0:n, 0:n, 0:n]
    lps = np.stack([i, j, k], axis=-1) * SPACING_MM + origin
    hu[np.all(np.abs(lps) <= 55.0, axis=-1)] = 0.0
    if bead:
        for b in (BEAD_MM, PERIPHERAL_BEAD_MM):
            hu[np.linalg.norm(lps - b, axis=-1) <= 3.0] = 3000.0
    return CTVolume(hu, origin, (SPACING_MM,) * 3, np.eye(3), source="phantom")


@pytest.fixture(scope="module")
def ct() -> CTVolume:
    return phantom_ct()


@pytest.fixture(scope="module")
def renderer(ct) -> DRRRenderer:
    return DRRRenderer(AttenuationVolume.from_ct(ct))


@pytest.fixture(scope="module")
def empty_renderer() -> DRRRenderer:
    """The phantom without its beads: the difference isolates the beads."""
    return DRRRenderer(AttenuationVolume.from_ct(phantom_ct(bead=False)))


@pytest.fixture(scope="module")
def pose() -> Pose:
    return pose_from_beam([0.3, -1.0, 0.2], ISO_MM, 600.0)


@pytest.fixture(scope="module")
def geometry() -> CArmGeometry:
    """120 x 100 px, 2.5 mm pixels (about 1.5 mm at the isocentre), off-centre piercing point."""
    return CArmGeometry((120, 100), 1000.0, (2.5, 2.5), (61.3, 48.7), 600.0)


def dark_centroid(frame: np.ndarray, uv: np.ndarray, half: int = 7) -> np.ndarray:
    """Centroid of darkness around ``uv`` after removing a plane fitted to the window's border."""
    uc, vc = int(round(uv[0])), int(round(uv[1]))
    win = 255.0 - frame[vc - half:vc + half + 1, uc - half:uc + half + 1].astype(np.float64)
    return blob_centroid(win, uc - half, vc - half)


def blob_centroid(win: np.ndarray, u_min: int, v_min: int) -> np.ndarray:
    """Centroid of the positive part of ``win`` above a plane fitted to its border pixels."""
    vv, uu = np.mgrid[0:win.shape[0], 0:win.shape[1]]
    border = np.zeros(win.shape, bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    a = np.column_stack([uu[border], vv[border], np.ones(border.sum())])
    coef = np.linalg.lstsq(a, win[border], rcond=None)[0]
    w = np.clip(win - (coef[0] * uu + coef[1] * vv + coef[2]), 0, None)
    return np.array([(w * uu).sum() / w.sum() + u_min, (w * vv).sum() / w.sum() + v_min])


def bead_centroid(shot: SimulatedShot, empty: SimulatedShot, uv: np.ndarray, half: int = 6) -> np.ndarray:
    """Centroid of the bead's own line integral (shot minus the bead-free phantom) near ``uv``."""
    uc, vc = np.round(uv).astype(int)
    win = (slice(vc - half, vc + half + 1), slice(uc - half, uc + half + 1))
    w = np.log(empty.expected_image[win]) - np.log(shot.expected_image[win])
    vv, uu = np.mgrid[win]
    return np.array([(w * uu).sum() / w.sum(), (w * vv).sum() / w.sum()])


def bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = u - u0, v - v0
    a = img.astype(np.float64)
    return ((1 - fu) * (1 - fv) * a[v0, u0] + fu * (1 - fv) * a[v0, u0 + 1]
            + (1 - fu) * fv * a[v0 + 1, u0] + fu * fv * a[v0 + 1, u0 + 1])


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_frame_other_seed_other_frame(renderer, pose, geometry):
    a = simulate_shot(renderer, pose, geometry, settings=ShotSettings(seed=5))
    b = simulate_shot(renderer, pose, geometry, settings=ShotSettings(seed=5))
    c = simulate_shot(renderer, pose, geometry, settings=ShotSettings(seed=5), seed=6)
    assert isinstance(a, SimulatedShot) and a.seed == 5 and c.seed == 6
    assert a.frame.dtype == np.uint8 and a.frame.shape == (100, 120)
    assert np.array_equal(a.frame, b.frame) and np.array_equal(a.image, b.image)
    assert not np.array_equal(a.frame, c.frame)
    assert np.array_equal(a.expected_image, c.expected_image)  # only the noise differs


def test_ct_input_gives_the_same_shot_as_a_renderer(ct, renderer, pose, geometry):
    a = simulate_shot(ct, pose, geometry, settings=ShotSettings(seed=1))
    b = simulate_shot(renderer, pose, geometry, settings=ShotSettings(seed=1))
    assert np.array_equal(a.frame, b.frame)


def test_rays_are_finer_than_registration_renders(renderer, pose, geometry):
    """Expected image = supersampled rays at a quarter-voxel step, binned (no inverse crime)."""
    st = ShotSettings(focal_spot_mm=0.0, scatter_fraction=0.0, collimation=None, supersample=2)
    shot = simulate_shot(renderer, pose, geometry, settings=st)
    fine = supersampled_geometry(geometry, 2)
    manual = bin_mean(np.exp(-renderer.render(pose, fine, step_mm=0.25 * SPACING_MM)), 2)
    np.testing.assert_allclose(shot.expected_image, manual, rtol=1e-5, atol=1e-7)
    coarse = np.exp(-renderer.render(pose, geometry))  # what a registration would render
    assert np.abs(shot.expected_image - coarse).max() > 1e-3


# --------------------------------------------------------------------------- noise


@pytest.mark.parametrize("i0", [400.0, 4000.0, 40000.0])
def test_noise_variance_is_poisson(renderer, pose, geometry, i0):
    st = ShotSettings(i0_photons_per_px=i0, detector_blur_px=0.0, focal_spot_mm=0.0,
                      scatter_fraction=0.0, seed=3)
    shot = simulate_shot(renderer, pose, geometry, settings=st)
    patch = (slice(35, 65), slice(45, 75))                     # flat water region
    t = shot.expected_image[patch]
    resid = (shot.image - shot.expected_image)[patch]
    assert t.min() > 0.5 * t.max()                             # really inside the water
    ratio = resid.var() / (t.mean() / i0)                      # Poisson: var(N / i0) = T / i0
    assert ratio == pytest.approx(1.0, abs=0.12)
    assert abs(resid.mean()) < 4 * math.sqrt(t.mean() / i0 / resid.size)


def test_detector_blur_correlates_and_reduces_noise(renderer, pose, geometry):
    sharp = simulate_shot(renderer, pose, geometry, settings=ShotSettings(i0_photons_per_px=1000.0,
                                                                          detector_blur_px=0.0))
    blurred = simulate_shot(renderer, pose, geometry, settings=ShotSettings(i0_photons_per_px=1000.0,
                                                                            detector_blur_px=1.0))
    patch = (slice(35, 65), slice(45, 75))
    var_sharp = (sharp.image - sharp.expected_image)[patch].var()
    var_blur = (blurred.image - blurred.expected_image)[patch].var()
    assert var_blur < 0.3 * var_sharp                          # 1 / (4 pi sigma^2) = 0.08 ideal


# --------------------------------------------------------------------------- geometry in the frame


def test_bead_appears_where_video_geometry_projects_it(renderer, empty_renderer, pose, geometry):
    st = ShotSettings(frame_size_px=(400, 300), frame_offset_px=(37, 10), frame_scale=2.5, **QUIET)
    shot = simulate_shot(renderer, pose, geometry, settings=st)
    assert shot.frame.shape == (300, 400)
    uv = project(BEAD_MM, pose, shot.video_geometry)
    np.testing.assert_allclose(dark_centroid(shot.frame, uv, half=12), uv, atol=0.6)
    # the detector image agrees with shot.geometry
    det_uv = project(BEAD_MM, pose, shot.geometry)
    empty = simulate_shot(empty_renderer, pose, geometry, settings=st)
    np.testing.assert_allclose(bead_centroid(shot, empty, det_uv), det_uv, atol=0.1)


def test_pin_appears_on_its_projected_axis_and_tip(renderer, pose, geometry):
    tip = np.array([-5.0, -10.0, -5.0])
    pin = GuidePin.from_tip_direction(tip, [1.0, 0.3, -0.6], 45.0)
    st = ShotSettings(frame_size_px=(320, 240), **QUIET)
    shot = simulate_shot(renderer, pose, geometry, pin=pin, settings=st)
    np.testing.assert_allclose(shot.pin_tip_px, project(tip, pose, shot.video_geometry))
    np.testing.assert_allclose(shot.pin_tail_px, project(pin.back_lps_mm, pose, shot.video_geometry))
    a, b = shot.pin_tail_px, shot.pin_tip_px
    length = np.linalg.norm(b - a)
    d = (b - a) / length
    n = np.array([-d[1], d[0]])
    offsets = np.arange(-10.0, 10.01, 0.5)
    for t in np.linspace(0.3, 0.85, 6) * length:              # across the line
        p = a + t * d
        prof = 255.0 - bilinear(shot.frame, p[0] + offsets * n[0], p[1] + offsets * n[1])
        w = np.clip(prof - np.median(np.r_[prof[:4], prof[-4:]]), 0, None)
        assert w.max() > 60                                    # a dark line is there
        assert abs((w * offsets).sum() / w.sum()) < 0.5        # centred on the projected axis
    along = np.arange(length - 15.0, length + 15.0, 0.25)      # along the axis, over the tip
    prof = 255.0 - bilinear(shot.frame, a[0] + along * d[0], a[1] + along * d[1])
    half = 0.5 * (prof[:10].mean() + prof[-10:].mean())
    end = along[np.flatnonzero(prof > half)[-1]]
    assert abs(end - length) < 1.0                             # the line ends at the projected tip


def test_distortion_moves_a_peripheral_bead_as_project_predicts(renderer, empty_renderer, pose, geometry):
    k1 = 6.0
    st = ShotSettings(ii_distortion=(k1, 0.0, 0.0, 0.0, 0.0), collimation=None, **QUIET)
    shot = simulate_shot(renderer, pose, geometry, settings=st)
    assert np.array_equal(shot.geometry.distortion, [k1, 0, 0, 0, 0])
    straight = project(PERIPHERAL_BEAD_MM, pose, geometry)
    bent = project(PERIPHERAL_BEAD_MM, pose, shot.geometry)
    centre = np.array(geometry.principal_point_px)
    assert np.linalg.norm(bent - straight) > 3.0               # a visible, outward shift
    assert np.linalg.norm(bent - centre) > np.linalg.norm(straight - centre)
    empty = simulate_shot(empty_renderer, pose, geometry, settings=st)
    np.testing.assert_allclose(bead_centroid(shot, empty, bent), bent, atol=0.1)


def test_distortion_given_twice_is_refused(renderer, pose, geometry):
    g = geometry.with_changes(distortion=[0.1, 0, 0, 0, 0])
    with pytest.raises(InputError, match="geometry"):
        simulate_shot(renderer, pose, g, settings=ShotSettings(ii_distortion=(0.2, 0, 0, 0, 0)))


# --------------------------------------------------------------------------- video chain


@pytest.mark.parametrize("kind", ["circle", "square"])
def test_collimation_blacks_out_outside_the_field(renderer, pose, geometry, kind):
    st = ShotSettings(collimation=kind, collimation_radius_fraction=0.8)
    shot = simulate_shot(renderer, pose, geometry, settings=st)
    outside = ~shot.fov_mask & ~shot.text_mask
    assert outside.any() and np.all(shot.frame[outside] == 0)
    assert np.mean(shot.frame[shot.fov_mask] > 0) > 0.9       # the field is lit
    r = 0.8 * 100 / 2
    area = math.pi * r * r if kind == "circle" else (2 * r) ** 2
    assert shot.fov_mask.sum() == pytest.approx(area, rel=0.03)


def test_text_pixels_are_in_the_text_mask(renderer, pose, geometry):
    st = ShotSettings(frame_size_px=(640, 480), text_top=("DOE^JOHN", "2024-01-02"), text_bottom=("70 kV 1.2 mA",))
    with_text = simulate_shot(renderer, pose, geometry, settings=st)
    without = simulate_shot(renderer, pose, geometry, settings=replace(st, text_top=(), text_bottom=()))
    changed = with_text.frame != without.frame
    assert changed.sum() > 200
    assert not np.any(changed & ~with_text.text_mask)
    assert with_text.frame[with_text.text_mask].max() == 255
    assert not without.text_mask.any()


def test_inversion_flips_polarity_inside_the_field(renderer, pose, geometry):
    st = ShotSettings(text_top=(), text_bottom=(), seed=2)
    normal = simulate_shot(renderer, pose, geometry, settings=st)
    inverted = simulate_shot(renderer, pose, geometry, settings=replace(st, invert=True))
    fov = normal.fov_mask
    total = normal.frame[fov].astype(int) + inverted.frame[fov].astype(int)
    assert np.all(np.abs(total - 255) <= 1)
    assert np.all(inverted.frame[~fov] == 0)
    uv = np.round(project(BEAD_MM, pose, normal.video_geometry)).astype(int)
    assert normal.frame[uv[1], uv[0]] < np.median(normal.frame[fov])     # bone dark ...
    assert inverted.frame[uv[1], uv[0]] > np.median(inverted.frame[fov])  # ... then white


def test_framing_into_1920x1080_keeps_the_aspect(renderer, pose, geometry):
    st = ShotSettings(frame_size_px=(1920, 1080), text_top=(), text_bottom=())
    shot = simulate_shot(renderer, pose, geometry, settings=st)
    assert shot.frame.shape == (1080, 1920)
    vg = shot.video_geometry
    assert vg.image_size_px == (1920, 1080)
    assert vg.pixel_spacing_mm[0] == pytest.approx(vg.pixel_spacing_mm[1])    # square pixels stay square
    assert vg.pixel_spacing_mm[0] == pytest.approx(2.5 * 100 / 1080)            # fitted to the height
    rows, cols = np.nonzero(shot.fov_mask)
    assert rows.max() - rows.min() == pytest.approx(cols.max() - cols.min(), abs=1)  # the circle is round
    assert np.all(shot.frame[:, :cols.min()] == 0) and np.all(shot.frame[:, cols.max() + 1:] == 0)
    assert (cols.min() + cols.max()) / 2 == pytest.approx(959.5, abs=1.0)      # centred


def test_placed_implants_are_dark_inside_their_outline(renderer, pose, geometry):
    item = load_catalogue().nearest_length("T7", 40.0)
    implant = Implant("L1", "left", item, np.array([30.0, -5.0, 0.0]), np.array([-5.0, -5.0, 5.0]))
    st = ShotSettings(frame_size_px=(240, 200), **QUIET)
    bare = simulate_shot(renderer, pose, geometry, settings=st)
    shot = simulate_shot(renderer, pose, geometry, implants=[implant], settings=st)
    mid = np.round(project(0.5 * (implant.entry_lps_mm + implant.apex_lps_mm), pose, shot.video_geometry))
    u, v = mid.astype(int)
    assert int(bare.frame[v, u]) - int(shot.frame[v, u]) > 40
    far = np.round(project(np.array([-30.0, 20.0, -30.0]), pose, shot.video_geometry)).astype(int)
    assert abs(int(bare.frame[far[1], far[0]]) - int(shot.frame[far[1], far[0]])) <= 3


def test_frame_scale_without_frame_size_scales_the_image(renderer, pose, geometry):
    shot = simulate_shot(renderer, pose, geometry, settings=ShotSettings(frame_scale=2.0, **QUIET))
    assert shot.frame.shape == (200, 240)
    assert shot.video_geometry.principal_point_px == pytest.approx((61.3 * 2 + 0.5, 48.7 * 2 + 0.5))
    with pytest.raises(InputError, match="frame_offset_px"):
        simulate_shot(renderer, pose, geometry, settings=ShotSettings(frame_offset_px=(0, 0)))


@pytest.mark.parametrize("bits", [4, 6])
def test_video_bits_limit_the_grey_levels(renderer, pose, geometry, bits):
    shot = simulate_shot(renderer, pose, geometry, settings=ShotSettings(video_bits=bits, text_top=(),
                                                                         text_bottom=()))
    assert len(np.unique(shot.frame)) <= 2 ** bits


def test_real_ct_lateral_shot_with_pin(real_ct_path):
    ct = load_ct(real_ct_path)
    geom = CArmGeometry((96, 96), 1000.0, (3.0, 3.0), (47.5, 47.5), 600.0)
    pose = pose_from_carm_angles(90, 0, [0.0, -100.0, 215.0], 600.0, "supine")
    pin = GuidePin.from_tip_direction([-15.0, -80.0, 222.0], [1.0, -0.25, 0.15], 150.0)
    shot = simulate_shot(ct, pose, geom, pin=pin, settings=ShotSettings(frame_size_px=(192, 108)))
    assert shot.frame.shape == (108, 192)
    field = shot.frame[shot.fov_mask & ~shot.text_mask]
    assert field.std() > 20                                    # anatomy, not a flat image
    tip = np.round(shot.pin_tip_px).astype(int)
    assert shot.frame[tip[1], tip[0] - 2:tip[0] + 1].mean() < np.percentile(field, 10)  # the steel is dark


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("field, value", [
    ("i0_photons_per_px", 0.0), ("i0_photons_per_px", float("nan")), ("energy_kev", 5.0),
    ("focal_spot_mm", -0.1), ("detector_blur_px", "1"), ("scatter_fraction", 0.95),
    ("scatter_kernel_mm", 0.0), ("range_compression", 1.5), ("range_compression_kernel_mm", -1.0),
    ("supersample", 0), ("supersample", 2.0), ("step_fraction", 0.0),
    ("collimation", "round"), ("collimation_radius_fraction", 1.2), ("metering_fraction", 0.0),
    ("text_top", "one string"), ("text_bottom", ("tab\there",)), ("video_bits", 9),
    ("invert", "yes"), ("frame_size_px", (1920,)), ("frame_size_px", (0, 1080)),
    ("frame_scale", -1.0), ("frame_offset_px", (-1, 0)), ("ii_distortion", (0.1, 0.2)),
    ("ii_distortion", "k1"), ("display", {"window": (0, 1)}), ("seed", -1), ("seed", 1.5),
])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(InputError, match=field):
        ShotSettings(**{field: value})


def test_bad_arguments_are_named(renderer, pose, geometry):
    with pytest.raises(InputError, match="volume_or_ct"):
        simulate_shot(np.zeros((4, 4, 4)), pose, geometry)
    with pytest.raises(InputError, match="pose"):
        simulate_shot(renderer, np.eye(4), geometry)
    with pytest.raises(InputError, match="geometry"):
        simulate_shot(renderer, pose, {"sid_mm": 1000})
    with pytest.raises(InputError, match="pin"):
        simulate_shot(renderer, pose, geometry, pin=np.zeros(3))
    with pytest.raises(InputError, match="implants"):
        simulate_shot(renderer, pose, geometry, implants=[np.zeros(3)])
    with pytest.raises(InputError, match="settings"):
        simulate_shot(renderer, pose, geometry, settings={"seed": 1})
    with pytest.raises(InputError, match="seed"):
        simulate_shot(renderer, pose, geometry, seed=-3)


def test_frame_too_small_or_image_placed_outside_is_refused(renderer, pose, geometry):
    with pytest.raises(InputError, match="frame_scale"):
        simulate_shot(renderer, pose, geometry, settings=ShotSettings(frame_size_px=(200, 200), frame_scale=3.0))
    with pytest.raises(InputError, match="frame_offset_px"):
        simulate_shot(renderer, pose, geometry, settings=ShotSettings(frame_size_px=(200, 200),
                                                                      frame_offset_px=(150, 0)))
