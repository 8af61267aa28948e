"""Shot preprocessing on realistic simulated frames of the real CT.

Frames come from :func:`or_assist.sim.shots.simulate.simulate_shot` (photon noise, glare,
range compression, collimation, framing, burnt-in text), rendered at 256 px detectors
and scaled into 1920 x 1080 / 1280 x 1024 video frames, or at 192 px as the frame
itself, so the whole module runs in a few seconds.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from or_assist.core.carm import pose_from_carm_angles
from or_assist.core.carm_profiles import load_profile
from or_assist.core.ct.load import load_ct
from or_assist.core.geometry import CArmGeometry, project
from or_assist.core.instruments import GuidePin
from or_assist.errors import InputError
from or_assist.render.drr import AttenuationVolume, DRRRenderer
from or_assist.sim.shots.simulate import simulate_shot
from or_assist.sim.shots.settings import ShotSettings
from or_assist.video.preprocess.shot import PreprocessSettings, PreprocessedShot, preprocess_shot
from or_assist.video.preprocess.fov import FieldOfView, FieldOfViewTracker, detect_field_of_view
from or_assist.video.preprocess.fov_fit import arc_coverage, ransac_circle
from or_assist.video.preprocess.frame import Orientation
from or_assist.video.preprocess.masks import detect_text_mask, metal_mask
from or_assist.video.preprocess.polarity import detect_polarity
from or_assist.video.preprocess.pyramid import normalise, pyramid

ISO_LPS_MM = np.array([-50.0, -95.0, 215.0])   # near the sacrum of the real CT
FAST = dict(supersample=1)


@pytest.fixture(scope="module")
def renderer(real_ct_path) -> DRRRenderer:
    return DRRRenderer(AttenuationVolume.from_ct(load_ct(real_ct_path)))


@pytest.fixture(scope="module")
def geometry() -> CArmGeometry:
    return load_profile("siemens_cios_fusion").geometry_at(256)


def pose_at(geometry, orbital_deg, tilt_deg, shift_mm=(0.0, 0.0, 0.0)):
    return pose_from_carm_angles(orbital_deg, tilt_deg, ISO_LPS_MM + np.asarray(shift_mm),
                                 geometry.source_to_isocenter_mm, "prone")


def shot(renderer, geometry, orbital_deg=0.0, tilt_deg=-25.0, **settings):
    return simulate_shot(renderer, pose_at(geometry, orbital_deg, tilt_deg), geometry,
                         settings=ShotSettings(**{**FAST, **settings}))


def replace_pose(pose, angle_deg):
    """``pose`` turned by ``angle_deg`` about the source frame's x axis through the isocentre."""
    from or_assist.core.pose import Pose, rotation_about_axis
    iso_src = pose.apply(ISO_LPS_MM)
    turn = np.eye(4)
    turn[:3, :3] = rotation_about_axis([1.0, 0.0, 0.0], math.radians(angle_deg))
    turn[:3, 3] = iso_src - turn[:3, :3] @ iso_src
    return Pose(turn).compose(pose)


def truth_circle(mask):
    vv, uu = np.nonzero(mask)
    return uu.mean(), vv.mean(), math.sqrt(mask.sum() / math.pi)


def truth_box(mask):
    vv, uu = np.nonzero(mask)
    return uu.min(), vv.min(), uu.max(), vv.max()


# framings: (collimation, frame size, invert, pose)
FRAMINGS = [
    ("circle", (1920, 1080), False, (0, -25)),
    ("square", (1920, 1080), False, (90, 0)),
    ("circle", (1920, 1080), True, (90, 0)),
    ("square", (1920, 1080), True, (20, 40)),
    ("circle", (1280, 1024), False, (-30, 30)),
    ("square", (1280, 1024), True, (0, -25)),
    ("circle", None, True, (60, -10)),
    ("square", None, False, (0, 40)),
]


@pytest.fixture(scope="module")
def framed_shots(renderer, geometry):
    return [shot(renderer, geometry, o, t, collimation=c, frame_size_px=fs, invert=inv, seed=i)
            for i, (c, fs, inv, (o, t)) in enumerate(FRAMINGS)]


# --------------------------------------------------------------------------- field of view


@pytest.mark.parametrize("index", range(len(FRAMINGS)))
def test_field_of_view_matches_the_collimation(framed_shots, index):
    s = framed_shots[index]
    fov = detect_field_of_view(s.frame)
    if s.settings.collimation == "circle":
        cu, cv, r = truth_circle(s.fov_mask)
        assert fov.shape == "circle"
        assert abs(fov.center_px[0] - cu) < 2 and abs(fov.center_px[1] - cv) < 2
        assert abs(fov.radius_px - r) < 2
    else:
        assert fov.shape == "rectangle"
        assert np.max(np.abs(np.subtract(fov.box_px, truth_box(s.fov_mask)))) < 2
    assert not np.any(fov.mask(s.frame.shape) & ~s.fov_mask)   # eroded 3 px: inside the true field
    core = cv2.erode(s.fov_mask.view(np.uint8), np.ones((11, 11), np.uint8)).view(bool)
    assert np.all(fov.mask(s.frame.shape, erode_px=0.0)[core])


@pytest.mark.parametrize("index", [0, 5])
def test_field_of_view_with_a_grabber_black_level_and_noise(framed_shots, index):
    """Limited-range video (black at 16) and analogue noise on the surround."""
    s = framed_shots[index]
    noise = np.random.default_rng(index).normal(0.0, 2.0, s.frame.shape)
    frame = np.clip(16 + s.frame * (219 / 255) + noise, 0, 255).astype(np.uint8)
    fov = detect_field_of_view(frame)
    if fov.shape == "circle":
        cu, cv, r = truth_circle(s.fov_mask)
        assert np.hypot(fov.center_px[0] - cu, fov.center_px[1] - cv) < 2 and abs(fov.radius_px - r) < 2
    else:
        assert np.max(np.abs(np.subtract(fov.box_px, truth_box(s.fov_mask)))) < 2


def test_field_of_view_cut_by_black_bars(framed_shots):
    """Table rails and a retractor as black as the surround cut the round field into pieces;
    the field is still the whole circle (not its largest piece)."""
    s = framed_shots[0]
    frame = s.frame.copy()
    h, w = frame.shape[:2]
    vv, uu = np.mgrid[0:h, 0:w]
    cu, cv, r = truth_circle(s.fov_mask)
    for offset in (-0.3 * r, 0.3 * r):      # a grid of bars: the largest piece is a square
        frame[np.abs(uu - cu - offset) < 12] = 0
        frame[np.abs(vv - cv - offset) < 9] = 0
    fov = detect_field_of_view(frame)
    assert fov.shape == "circle"
    assert np.hypot(fov.center_px[0] - cu, fov.center_px[1] - cv) < 3 and abs(fov.radius_px - r) < 3


def test_field_of_view_cut_by_a_wide_bar_with_dark_bays(framed_shots):
    """A rail seen flat (a bar wider than a closing could bridge) and dark anatomy biting
    into the rim of one piece: the field is the convex hull of its pieces, and the long
    straight edges are not taken for the arc of a huge circle."""
    s = framed_shots[0]
    frame = s.frame.copy()
    h, w = frame.shape[:2]
    vv, uu = np.mgrid[0:h, 0:w]
    cu, cv, r = truth_circle(s.fov_mask)
    frame[np.abs(uu - cu + 0.25 * r) < 0.04 * h] = 0                     # 8 % of the height
    for a in (-0.6, -0.2, 0.3):                                          # bays at the right rim
        bu, bv = cu + 0.95 * r * np.cos(a), cv + 0.95 * r * np.sin(a)
        frame[np.hypot(uu - bu, vv - bv) < 0.18 * r] = 0
    fov = detect_field_of_view(frame)
    assert fov.shape == "circle"
    assert np.hypot(fov.center_px[0] - cu, fov.center_px[1] - cv) < 3 and abs(fov.radius_px - r) < 3


def test_ransac_circle_does_not_take_a_straight_edge_for_a_huge_circle():
    """Points of a long straight edge and a shorter arc: without a largest radius the line
    wins as a circle millions of pixels wide; with the frame's size as the limit the arc does."""
    jitter = np.round(np.random.default_rng(0).normal(0.0, 0.4, 300))    # a contour's pixel steps
    line = np.stack([400.0 + jitter, np.linspace(0, 1000, 300)], axis=1)
    t = np.linspace(-0.6, 0.6, 150)
    arc = np.stack([500 + 300 * np.cos(t), 500 + 300 * np.sin(t)], axis=1)
    pts = np.concatenate([line, arc])
    unbounded = ransac_circle(pts, tol=1.5)
    assert unbounded is not None and unbounded[2] > 1e4
    cu, cv, r = ransac_circle(pts, tol=1.5, max_radius=1920)
    assert abs(cu - 500) < 1 and abs(cv - 500) < 1 and abs(r - 300) < 1


def test_field_of_view_with_a_dim_noisy_rim(framed_shots):
    """An intensifier's vignetting leaves the rim a few grey levels above black, with noise:
    the coarse outline is ragged there, the field is still found."""
    s = framed_shots[4]
    small = cv2.resize(s.frame, (768, 614), interpolation=cv2.INTER_AREA).astype(np.float32)
    h, w = small.shape
    cu, cv, r = (c * 768 / s.frame.shape[1] for c in truth_circle(s.fov_mask))
    rho = np.hypot(*np.mgrid[0:h, 0:w][::-1] - np.array([cu, cv])[:, None, None]) / r
    dimmed = small * (1.0 - 0.93 * np.clip(rho, 0, 1) ** 1.5)
    frame = np.clip(dimmed + np.random.default_rng(3).normal(0, 6.0, small.shape), 0, 255).astype(np.uint8)
    fov = detect_field_of_view(frame)
    assert fov.shape == "circle"
    assert np.hypot(fov.center_px[0] - cu, fov.center_px[1] - cv) < 4 and abs(fov.radius_px - r) < 6


def test_field_of_view_of_a_colour_frame_and_a_bare_image(framed_shots):
    s = framed_shots[0]
    bgr = np.repeat(s.frame[:, :, None], 3, axis=2)
    assert detect_field_of_view(bgr) == detect_field_of_view(s.frame)
    # an image without surround (a flat panel's full field) is a rectangle over all of it
    v0, v1 = np.nonzero(s.fov_mask.any(axis=1))[0][[0, -1]]
    u = int(np.nonzero(s.fov_mask[(v0 + v1) // 2])[0].mean())
    h = (v1 - v0) // 3
    bare = np.ascontiguousarray(s.frame[(v0 + v1) // 2 - h:(v0 + v1) // 2 + h, u - h:u + h])
    fov = detect_field_of_view(bare)
    assert fov.shape == "rectangle" and fov.box_px == (0.0, 0.0, bare.shape[1] - 1.0, bare.shape[0] - 1.0)


def test_field_of_view_mask_geometry():
    c = FieldOfView("circle", (20.3, 15.7), radius_px=10.2)
    m = c.mask((40, 50), erode_px=2.0)
    vv, uu = np.mgrid[0:40, 0:50]
    exact = (uu - 20.3) ** 2 + (vv - 15.7) ** 2 <= 8.2 ** 2
    assert np.count_nonzero(m != exact) <= 4
    r = FieldOfView("rectangle", (0, 0), box_px=(3.0, 4.0, 30.0, 20.0))
    assert r.mask((40, 50), erode_px=1.0).sum() == 26 * 15
    with pytest.raises(InputError, match="radius_px"):
        FieldOfView("circle", (1, 1))
    with pytest.raises(InputError, match="shape"):
        FieldOfView("oval", (1, 1), radius_px=3)


def test_tracker_is_stable_and_follows_a_real_change(renderer, geometry):
    base = dict(collimation="circle", frame_size_px=(1280, 1024))
    frames = [shot(renderer, geometry, 0, -25, seed=k, **base).frame for k in range(3)]
    other = shot(renderer, geometry, 0, -25, collimation_radius_fraction=0.8, seed=9,
                 frame_size_px=(1280, 1024)).frame
    tracker = FieldOfViewTracker(confirm_frames=2)
    first = tracker.update(frames[0])
    for f in frames[1:]:
        assert tracker.update(f) is first            # noise does not move it
    assert tracker.update(np.zeros_like(frames[0])) is first  # a blank frame between shots
    assert tracker.update(other) is first            # one odd frame is not enough
    new = tracker.update(other)
    assert new is not first and new.radius_px < 0.9 * first.radius_px
    with pytest.raises(InputError, match="frame"):
        FieldOfViewTracker().update(np.zeros((100, 100), np.uint8))


# --------------------------------------------------------------------------- text


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4, 5])
def test_text_mask_covers_burnt_in_text_and_little_anatomy(renderer, geometry, framed_shots, index):
    s = framed_shots[index]
    fov = detect_field_of_view(s.frame)
    text = detect_text_mask(s.frame, fov)
    assert text.shape == s.frame.shape and text.dtype == bool
    # white text over (nearly) white anatomy is invisible: count the text that shows
    bare = simulate_shot(renderer, s.pose, geometry, settings=replace(s.settings, text_top=(), text_bottom=()))
    visible = s.text_mask & (bare.frame <= 195)
    assert np.count_nonzero(text & visible) >= 0.95 * np.count_nonzero(visible)
    outside = s.text_mask & ~s.fov_mask
    assert np.count_nonzero(text & outside) >= 0.98 * np.count_nonzero(outside)
    anatomy = s.fov_mask & ~s.text_mask
    assert np.count_nonzero(text & anatomy) < 0.05 * np.count_nonzero(s.fov_mask)
    # and hardly any text pixel is left for the metric (hidden text lies on clipped white)
    pp = preprocess_shot(s.frame, s.video_geometry, fov=fov)
    u, v, w, h = pp.crop_px
    assert np.count_nonzero(pp.mask & s.text_mask[v:v + h, u:u + w]) <= 0.02 * np.count_nonzero(s.text_mask)


def test_text_inside_the_field_is_found(renderer, geometry):
    """White text burnt over the anatomy (an overlay inside the field)."""
    s = shot(renderer, geometry, 0, -25, collimation="square", frame_size_px=(1280, 1024),
             text_top=(), text_bottom=())
    frame = s.frame.copy()
    canvas = np.zeros_like(frame)
    cv2.putText(canvas, "L  ALIGN 12.5", (450, 520), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 255, 2, cv2.LINE_AA)
    truth = canvas > 0
    frame[truth] = np.maximum(frame[truth], canvas[truth])
    text = detect_text_mask(frame, detect_field_of_view(frame))
    assert np.count_nonzero(text & truth) >= 0.9 * np.count_nonzero(truth)
    assert np.count_nonzero(text & ~truth & s.fov_mask) < 0.02 * s.fov_mask.sum()


# --------------------------------------------------------------------------- polarity


def test_polarity_on_random_shots_both_ways(renderer, geometry):
    rng = np.random.default_rng(7)
    g = load_profile("siemens_cios_fusion").geometry_at(160)
    right = {False: 0, True: 0}
    for k in range(20):
        pose = pose_from_carm_angles(rng.uniform(-90, 90), rng.uniform(-40, 40),
                                     ISO_LPS_MM + rng.normal(0, 20, 3), g.source_to_isocenter_mm, "prone")
        settings = ShotSettings(supersample=1, collimation=("circle", "square")[k % 2], seed=k,
                                i0_photons_per_px=10 ** rng.uniform(3.5, 5.5),
                                range_compression=rng.uniform(0.0, 0.9), text_top=(), text_bottom=())
        for inv in (False, True):
            s = simulate_shot(renderer, pose, g, settings=replace(settings, invert=inv))
            right[inv] += detect_polarity(s.frame) == ("bone-bright" if inv else "bone-dark")
    assert right[False] >= 19 and right[True] >= 19


def test_polarity_unknown_without_noise_or_saturation():
    vv, uu = np.mgrid[0:200, 0:200]
    img = (100 + 40 * np.sin(uu / 9.0) * np.cos(vv / 13.0)).astype(np.uint8)
    assert detect_polarity(img) == "unknown"


# --------------------------------------------------------------------------- preprocess_shot


@pytest.fixture(scope="module")
def pin_shot(renderer, geometry):
    pin = GuidePin.from_tip_direction(ISO_LPS_MM + [5.0, 0.0, 10.0], [1.0, 0.2, 0.1], 120.0)
    return simulate_shot(renderer, pose_at(geometry, 0, -25), geometry, pin=pin,
                         settings=ShotSettings(frame_size_px=(1280, 1024), **FAST))


def check_against_line_integrals(renderer, geometry, s, min_corr):
    pp = preprocess_shot(s.frame, s.video_geometry)
    assert isinstance(pp, PreprocessedShot) and pp.image.dtype == np.float32
    assert pp.polarity == ("bone-bright" if s.settings.invert else "bone-dark")
    assert pp.polarity_source == "detected"
    m = pp.mask
    assert m.sum() > 0.5 * pp.fov.mask(m.shape).sum()
    assert abs(pp.image[m].mean()) < 1e-4 and abs(pp.image[m].std() - 1) < 1e-3
    assert not pp.image[~m].any()
    # compare at about 256 px (pyramid level), where the DRR is cheap
    level = max(0, int(round(math.log2(max(m.shape) / 256))))
    img, valid = pyramid(pp.image, m, level + 1)[level]
    g = pp.geometry.downsampled(2 ** level)
    drr = renderer.render(s.pose, g)                 # noise-free line integrals, same pixels
    right = np.corrcoef(img[valid], drr[valid])[0, 1]
    assert right > min_corr
    wrong = renderer.render(replace_pose(s.pose, 10.0), g)   # 10 deg off: worse
    assert np.corrcoef(img[valid], wrong[valid])[0, 1] < right - 0.03


@pytest.mark.parametrize("collimation,frame_size_px,invert,angles", [
    ("circle", (1920, 1080), False, (0, -25)), ("square", (1280, 1024), True, (90, 0)),
    ("circle", None, False, (-30, 30))])
def test_preprocessed_image_correlates_with_the_line_integrals(renderer, geometry, collimation,
                                                               frame_size_px, invert, angles):
    """Without the C-arm's range compression the image is the line integrals, windowed."""
    s = shot(renderer, geometry, *angles, collimation=collimation, frame_size_px=frame_size_px,
             invert=invert, range_compression=0.0)
    check_against_line_integrals(renderer, geometry, s, 0.95)


@pytest.mark.parametrize("index", [0, 4, 5])
def test_correlation_survives_range_compression(renderer, geometry, framed_shots, index):
    """The simulator's default removes 80 % of the broad variation (C-arm image processing)."""
    check_against_line_integrals(renderer, geometry, framed_shots[index], 0.85)


def test_pin_is_excluded_from_the_metric(pin_shot):
    s = pin_shot
    pp = preprocess_shot(s.frame, s.video_geometry)
    tip = project(s.pin.tip_lps_mm, s.pose, pp.geometry)
    back = project(s.pin.back_lps_mm, s.pose, pp.geometry)
    t = np.linspace(0, 1, 200)[:, None]
    pts = np.round(tip + t * (back - tip)).astype(int)
    h, w = pp.mask.shape
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    pts = pts[inside]
    pts = pts[pp.fov.mask((h, w))[pts[:, 1], pts[:, 0]]]
    assert len(pts) > 50
    assert pp.metal_mask[pts[:, 1], pts[:, 0]].all()
    assert not pp.mask[pts[:, 1], pts[:, 0]].any()
    assert pp.metal_mask.sum() < 0.25 * pp.fov.mask((h, w)).sum()
    # the detector alone, on the frame
    assert metal_mask(s.frame, detect_field_of_view(s.frame))[
        np.round(s.pin_tip_px[1]).astype(int), np.round(s.pin_tip_px[0]).astype(int)]


def test_thin_unsaturated_pin_found_by_the_line_detector():
    vv, uu = np.mgrid[0:300, 0:300]
    img = (150 + 30 * np.sin(uu / 40.0) + 20 * np.cos(vv / 55.0)).astype(np.float32)
    line = np.abs((vv - 60) - 0.7 * (uu - 40)) < 3.0
    line &= (uu > 40) & (uu < 260)
    img[line] -= 90                                 # dark, but far from saturated
    frame = np.clip(img, 0, 255).astype(np.uint8)
    m = metal_mask(frame, pin_width_px=6.0, dilate_px=0)
    assert m[line].mean() > 0.9 and m[~line].mean() < 0.01


def test_curved_cortical_line_is_not_taken_for_a_pin():
    """A dense line that curves (the pelvic brim, a cortex seen edge-on) is anatomy the
    registration needs; a pin of the same width and contrast is straight."""
    vv, uu = np.mgrid[0:300, 0:300]
    img = (150 + 30 * np.sin(uu / 40.0) + 20 * np.cos(vv / 55.0)).astype(np.float32)
    # an arc of radius 150 px over 200 px of length: it bends by about 35 px
    radius = np.hypot(uu - 150, vv - 260)
    arc = (np.abs(radius - 150) < 3.0) & (vv < 150)
    img[arc] -= 90
    pin = np.abs((vv - 200) - 0.1 * (uu - 40)) < 3.0
    pin &= (uu > 40) & (uu < 260)
    img[pin] -= 90
    frame = np.clip(img, 0, 255).astype(np.uint8)
    m = metal_mask(frame, pin_width_px=6.0, dilate_px=0)
    assert m[pin].mean() > 0.9
    assert m[arc].mean() < 0.05


@pytest.mark.parametrize("flip_h,flip_v,rotate_deg", [(True, False, 0), (False, True, 0), (True, True, 90),
                                                      (False, False, 270), (True, False, 180)])
def test_monitor_flips_round_trip(pin_shot, flip_h, flip_v, rotate_deg):
    s = pin_shot
    ref = preprocess_shot(s.frame, s.video_geometry)
    # the monitor shows the physical image through the inverse of the configured correction
    delivered = np.rot90(s.frame, k=rotate_deg // 90)
    if flip_v:
        delivered = delivered[::-1]
    if flip_h:
        delivered = delivered[:, ::-1]
    delivered = np.ascontiguousarray(delivered)
    o = Orientation((delivered.shape[1], delivered.shape[0]), flip_h, flip_v, rotate_deg)
    a_inv = np.linalg.inv(o.matrix)
    pp_del = (np.asarray(s.video_geometry.principal_point_px) - o.offset) @ a_inv.T
    g_del = s.video_geometry.with_changes(
        image_size_px=(delivered.shape[1], delivered.shape[0]), principal_point_px=tuple(pp_del),
        pixel_spacing_mm=tuple(np.abs(a_inv) @ np.asarray(s.video_geometry.pixel_spacing_mm)))
    assert o.apply_geometry(g_del) == s.video_geometry
    assert np.array_equal(o.apply_image(delivered), s.frame)
    settings = PreprocessSettings(flip_horizontal=flip_h, flip_vertical=flip_v, rotate_deg=rotate_deg)
    pp = preprocess_shot(delivered, g_del, settings)
    # the returned geometry projects anatomy where the returned pixels show it
    pts = np.array([s.pin.tip_lps_mm, s.pin.back_lps_mm, ISO_LPS_MM])
    np.testing.assert_allclose(project(pts, s.pose, pp.geometry) + pp.crop_px[:2],
                               project(pts, s.pose, ref.geometry) + ref.crop_px[:2], atol=1e-9)
    in_delivered = (project(pts, s.pose, s.video_geometry) - o.offset) @ a_inv.T
    np.testing.assert_allclose(pp.to_frame_px(project(pts, s.pose, pp.geometry)), in_delivered, atol=1e-6)
    np.testing.assert_allclose(pp.from_frame_px(in_delivered), project(pts, s.pose, pp.geometry), atol=1e-6)
    # same pixels as without the monitor's flip
    full_ref = np.zeros(s.frame.shape, np.float32)
    full = np.zeros(s.frame.shape, np.float32)
    for p, img in ((ref, full_ref), (pp, full)):
        u, v, w, h = p.crop_px
        img[v:v + h, u:u + w] = np.where(p.mask, p.image, np.nan)
    both = np.isfinite(full) & np.isfinite(full_ref)
    assert both.sum() > 0.95 * ref.mask.sum()
    assert np.corrcoef(full[both], full_ref[both])[0, 1] > 0.999


def test_orientation_moves_pixels_where_points_go():
    img = np.zeros((5, 7), np.uint8)
    img[1, 5] = 255
    for fh in (False, True):
        for fv in (False, True):
            for rot in (0, 90, 180, 270):
                o = Orientation((7, 5), fh, fv, rot)
                out = o.apply_image(img)
                assert (out.shape[1], out.shape[0]) == o.out_size_px
                v, u = np.argwhere(out == 255)[0]
                np.testing.assert_allclose(o.apply_points([[5, 1]])[0], [u, v])
                assert np.array_equal(o.apply_image(img.astype(bool)), out > 0)


def test_orientation_transforms_the_distortion_consistently():
    from or_assist.core.geometry import distort_normalized
    g = CArmGeometry((40, 30), 1000.0, (0.3, 0.35), (21.3, 13.9), 600.0, [0.05, -0.01, 0.004, -0.003, 0.001])
    rng = np.random.default_rng(3)
    und = rng.uniform([0, 0], [39, 29], size=(20, 2))    # undistorted pixels of the input grid

    def distorted_px(geom, uv):
        u0, v0 = geom.principal_point_px
        xd, yd = distort_normalized((uv[:, 0] - u0) / geom.fx, (uv[:, 1] - v0) / geom.fy, geom.distortion)
        return np.stack([xd * geom.fx + u0, yd * geom.fy + v0], axis=1)

    for fh, fv, rot in ((True, False, 0), (False, True, 90), (True, True, 270)):
        o = Orientation(g.image_size_px, fh, fv, rot)
        g2 = o.apply_geometry(g)
        np.testing.assert_allclose(o.apply_points(distorted_px(g, und)),
                                   distorted_px(g2, o.apply_points(und)), atol=1e-9)


def test_undistortion_keeps_projection_consistent(renderer, geometry):
    k = [0.08, 0.02, 0.0, 0.0, 0.0]                 # pincushion, as an image intensifier
    pin = GuidePin.from_tip_direction(ISO_LPS_MM + [5.0, 0.0, 10.0], [1.0, 0.2, 0.1], 120.0)
    s = simulate_shot(renderer, pose_at(geometry, 0, -25), geometry, pin=pin,
                      settings=ShotSettings(frame_size_px=(1280, 1024), ii_distortion=k, **FAST))
    assert s.video_geometry.distortion is not None
    pp = preprocess_shot(s.frame, s.video_geometry)
    assert pp.undistorted and pp.geometry.distortion is None
    pts = np.array([pin.tip_lps_mm, pin.back_lps_mm])
    in_frame = project(pts, s.pose, s.video_geometry)
    np.testing.assert_allclose(pp.from_frame_px(in_frame), project(pts, s.pose, pp.geometry), atol=1e-6)
    np.testing.assert_allclose(pp.to_frame_px(project(pts, s.pose, pp.geometry)), in_frame, atol=1e-6)
    img, valid = pyramid(pp.image, pp.mask, 3)[2]
    drr = renderer.render(s.pose, pp.geometry.downsampled(4))
    assert np.corrcoef(img[valid], drr[valid])[0, 1] > 0.85
    kept = preprocess_shot(s.frame, s.video_geometry, PreprocessSettings(undistort=False))
    assert kept.geometry.distortion is not None and not kept.undistorted


def test_geometry_region_scales_a_detector_geometry(framed_shots):
    s = framed_shots[4]                              # 256 px detector shown as 1024 px in 1280 x 1024
    region = (128, 0, 1024, 1024)
    pp = preprocess_shot(s.frame, s.geometry, PreprocessSettings(geometry_region_px=region))
    ref = preprocess_shot(s.frame, s.video_geometry)
    assert pp.geometry == ref.geometry


# --------------------------------------------------------------------------- pyramid, normalise


def test_pyramid_is_consistent_with_downsampled_geometry(pin_shot):
    s = pin_shot
    pp = preprocess_shot(s.frame, s.video_geometry)
    levels = pyramid(pp.image, pp.mask, 4)
    assert len(levels) == 4
    for k, (img, m) in enumerate(levels):
        g = pp.geometry.downsampled(2 ** k)
        assert img.shape == (g.height, g.width) and m.shape == img.shape and img.dtype == np.float32
        tip = project(s.pin.tip_lps_mm, s.pose, g)
        tip0 = project(s.pin.tip_lps_mm, s.pose, pp.geometry)
        np.testing.assert_allclose(tip, (tip0 + 0.5) / 2 ** k - 0.5, atol=1e-9)
    img1, m1 = levels[1]
    h, w = img1.shape
    blocks = np.where(pp.mask, pp.image, 0)[:2 * h, :2 * w].reshape(h, 2, w, 2)
    counts = pp.mask[:2 * h, :2 * w].reshape(h, 2, w, 2).sum(axis=(1, 3))
    expect = blocks.sum(axis=(1, 3)) / np.maximum(counts, 1)
    np.testing.assert_array_equal(m1, counts >= 2)
    np.testing.assert_allclose(img1[m1], expect[m1], rtol=1e-5, atol=1e-5)
    assert not img1[~m1].any()


def test_normalise_and_pyramid_bad_input():
    img = np.arange(20, dtype=np.float32).reshape(4, 5)
    m = np.ones((4, 5), bool)
    m[0] = False
    n = normalise(img, m)
    assert abs(n[m].mean()) < 1e-6 and abs(n[m].std() - 1) < 1e-5 and not n[~m].any()
    with pytest.raises(InputError, match="image"):
        normalise(np.ones((4, 5)), m)
    with pytest.raises(InputError, match="mask"):
        normalise(img, np.ones((3, 5), bool))
    with pytest.raises(InputError, match="levels"):
        pyramid(img, m, 0)
    with pytest.raises(InputError, match="levels"):
        pyramid(img, m, 4)


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def frame_and_geometry(framed_shots):
    s = framed_shots[0]
    return s.frame, s.video_geometry


def test_blank_frame_is_refused(frame_and_geometry):
    frame, g = frame_and_geometry
    with pytest.raises(InputError, match="frame.*blank"):
        preprocess_shot(np.zeros_like(frame), g)


def test_saturated_frame_is_refused(frame_and_geometry):
    frame, g = frame_and_geometry
    with pytest.raises(InputError, match="frame.*saturated"):
        preprocess_shot(np.full_like(frame, 255), g)


def test_colour_noise_is_refused(frame_and_geometry):
    frame, g = frame_and_geometry
    noise = np.random.default_rng(0).integers(0, 256, size=frame.shape + (3,), dtype=np.uint8)
    with pytest.raises(InputError, match="frame.*colour"):
        preprocess_shot(noise, g)


def test_grey_noise_is_refused(frame_and_geometry):
    frame, g = frame_and_geometry
    noise = np.random.default_rng(0).integers(0, 256, size=frame.shape, dtype=np.uint8)
    with pytest.raises(InputError, match="frame.*noise"):
        preprocess_shot(noise, g)


def test_smooth_gradient_is_refused(frame_and_geometry):
    frame, g = frame_and_geometry
    ramp = np.broadcast_to(np.linspace(0, 255, frame.shape[1]).astype(np.uint8), frame.shape)
    with pytest.raises(InputError, match="frame.*featureless"):
        preprocess_shot(np.ascontiguousarray(ramp), g)


def test_frame_size_must_match_the_geometry(frame_and_geometry):
    frame, g = frame_and_geometry
    with pytest.raises(InputError, match="geometry.*1920 x 1080"):
        preprocess_shot(frame[:, :1280], g)
    with pytest.raises(InputError, match="geometry"):
        preprocess_shot(frame, "geometry.json")


@pytest.mark.parametrize("bad", [np.zeros((1080, 1920), np.int64), np.zeros((1080, 1920), complex),
                                 np.zeros(1920, np.uint8), np.zeros((2, 1080, 1920, 3), np.uint8),
                                 np.zeros((1080, 1920, 2), np.uint8), [[0, 1], [2, 3]],
                                 np.full((1080, 1920), np.nan, np.float32)])
def test_wrong_dtype_or_shape_is_refused(frame_and_geometry, bad):
    _, g = frame_and_geometry
    with pytest.raises(InputError, match="frame"):
        preprocess_shot(bad, g)


def test_settings_are_validated():
    with pytest.raises(InputError, match="rotate_deg"):
        PreprocessSettings(rotate_deg=45)
    with pytest.raises(InputError, match="polarity"):
        PreprocessSettings(polarity="dark")
    with pytest.raises(InputError, match="video_response"):
        PreprocessSettings(video_response="gamma")
    with pytest.raises(InputError, match="flip_horizontal"):
        PreprocessSettings(flip_horizontal="yes")
    with pytest.raises(InputError, match="geometry_region_px"):
        PreprocessSettings(geometry_region_px=(0, 0, -5, 10))


def test_field_of_view_with_a_pin_notch_in_its_rim():
    """A guide pin entering from the rim cuts a long notch into the lit region (a real
    simulated frame, ``tests/data/frames``): the rim is on the outline's convex hull, so
    the field is still the intensifier's circle, not a box around the pin's edges."""
    frame = cv2.imread(str(Path(__file__).parents[1] / "data" / "frames" / "pin_notch_frame.png"),
                       cv2.IMREAD_GRAYSCALE)
    fov = detect_field_of_view(frame)
    assert fov.shape == "circle", fov
    assert abs(fov.center_px[0] - 957.0) < 3 and abs(fov.center_px[1] - 540.0) < 3
    assert abs(fov.radius_px - 518.4) < 3


def test_field_of_view_with_a_rim_as_dark_as_the_surround():
    """A lateral through the whole pelvis, gamma-darkened: much of the round field's left
    half is as black as the surround, so its outline is ragged and under a fifth of it lies
    on its convex hull; the hull's points still cover more than half of one circle, which
    is the field (a real simulated frame, ``tests/data/frames``; it was once taken for a
    box 422 x 107 px around the bright middle, and its registration refused for too few
    usable pixels)."""
    frame = cv2.imread(str(Path(__file__).parents[1] / "data" / "frames" / "dark_rim_lateral.png"),
                       cv2.IMREAD_GRAYSCALE)
    fov = detect_field_of_view(frame)
    assert fov.shape == "circle", fov
    assert np.hypot(fov.center_px[0] - 383.5, fov.center_px[1] - 287.5) < 2 and abs(fov.radius_px - 269.5) < 2


def test_arc_coverage_counts_the_arcs_points_fall_on():
    t = np.linspace(-0.5 * np.pi, 0.5 * np.pi, 200, endpoint=False)           # the right half
    half = np.stack([100 + 50 * np.cos(t), 80 + 50 * np.sin(t)], axis=1)
    assert arc_coverage(half, (100, 80, 50), tol=1.0) == pytest.approx(0.5, abs=1 / 36)
    assert arc_coverage(half, (100, 80, 60), tol=1.0) == 0.0                  # none within 1 px
    inside = np.array([[100.0, 80.0], [120.0, 80.0]])
    assert arc_coverage(np.concatenate([half, inside]), (100, 80, 50), tol=1.0) == \
        arc_coverage(half, (100, 80, 50), tol=1.0)
