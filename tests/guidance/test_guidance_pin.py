"""Guide-pin detection: synthetic bars (sub-pixel accuracy, rejections) and simulated real-CT shots."""

from __future__ import annotations

import math

import numpy as np
import pytest

from or_assist.core.geometry import CArmGeometry
from or_assist.errors import InputError
from or_assist.guidance.pin import PinDetectorSettings, PinPrior, attenuation_from_frame, detect_pin

GEOM = CArmGeometry((640, 480), 1000.0, (0.8, 0.8), (320.0, 240.0), 600.0)  # pin about 6.7 px wide


def bar(shape, a, b, width_px, value=1.0):
    """Soft-edged bar from a to b with a flat end at b (attenuation-like)."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    a, ab = np.asarray(a, float), np.asarray(b, float) - a
    length = np.linalg.norm(ab)
    along = ((xs - a[0]) * ab[0] + (ys - a[1]) * ab[1]) / length
    perp = np.abs(-(xs - a[0]) * ab[1] + (ys - a[1]) * ab[0]) / length

    def soft(x):
        return 1.0 / (1.0 + np.exp(np.clip(x / 0.6, -50.0, 50.0)))

    return value * soft(perp - width_px / 2) * soft(along - length) * soft(-along)


def background(seed=0):
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:480, 0:640]
    img = 0.3 + 0.2 * np.sin(xs / 90.0) * np.cos(ys / 70.0) + rng.normal(0, 0.02, (480, 640))
    return img.astype(np.float32)


def prior_for(entry, apex, depth=600.0):
    return PinPrior(np.asarray(entry, float), np.asarray(apex, float), depth, depth, 1.0)


def test_subpixel_line_and_tip():
    tip, back = np.array([401.3, 251.7]), np.array([-50.0, 190.0])
    img = background() + bar((480, 640), back, tip, 3.2 * 1000 / 600 / 0.8).astype(np.float32)
    det = detect_pin(img, GEOM, prior=prior_for([150.0, 230.0], [420.0, 262.0]))
    assert det is not None and det.confidence > 0.8
    assert np.linalg.norm(det.tip_px - tip) < 1.0
    d_true = (tip - back) / np.linalg.norm(tip - back)
    assert math.degrees(math.acos(min(1.0, d_true @ det.direction_px))) < 0.3
    assert not det.tip_occluded and not det.tip_at_border
    assert det.back_px[0] < 5  # runs out of the image on the back side


def test_no_pin_gives_none():
    assert detect_pin(background(1), GEOM, prior=prior_for([150.0, 230.0], [420.0, 262.0])) is None


def test_wide_band_and_edge_are_not_pins():
    img = background(2) + bar((480, 640), [150, 230], [420, 262], 22.0).astype(np.float32)  # an implant
    img[:, 500:] += 0.6  # a bone edge
    assert detect_pin(img, GEOM, prior=prior_for([150.0, 230.0], [420.0, 262.0])) is None


def test_prior_picks_the_active_pin():
    w = 3.2 * 1000 / 600 / 0.8
    img = background(3) + bar((480, 640), [0, 100], [380, 120], w) + bar((480, 640), [0, 330], [400, 360], w)
    det = detect_pin(img.astype(np.float32), GEOM, prior=prior_for([100.0, 330.0], [420.0, 362.0]))
    assert det is not None and abs(det.tip_px[1] - 360) < 2
    det = detect_pin(img.astype(np.float32), GEOM, prior=prior_for([100.0, 105.0], [400.0, 122.0]))
    assert det is not None and abs(det.tip_px[1] - 120) < 2


def test_tip_at_field_border_is_reported():
    w = 3.2 * 1000 / 600 / 0.8
    img = background(4) + bar((480, 640), [0, 240], [600, 250], w).astype(np.float32)
    valid = np.zeros((480, 640), bool)
    valid[:, :520] = True
    det = detect_pin(img, GEOM, valid_mask=valid, prior=prior_for([100.0, 240.0], [500.0, 247.0]))
    assert det is not None and det.tip_at_border


def test_attenuation_from_frame():
    frame = np.array([[0, 255] * 8] * 16, np.uint8)
    assert attenuation_from_frame(frame)[0, 0] == 1.0 and attenuation_from_frame(frame, "bone-bright")[0, 0] == 0.0
    with pytest.raises(InputError, match="polarity"):
        attenuation_from_frame(frame, "dark")


def test_bad_input():
    img = background()
    with pytest.raises(InputError, match="does not match"):
        detect_pin(img[:, :600], GEOM)
    bad = img.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        detect_pin(bad, GEOM)
    with pytest.raises(InputError, match="valid_mask"):
        detect_pin(img, GEOM, valid_mask=np.ones((10, 10), bool))
    with pytest.raises(InputError, match="min_confidence"):
        PinDetectorSettings(min_confidence=2.0)


# ----------------------------------------------------------------- simulated shots of the real CT


@pytest.fixture(scope="module")
def real_cases(real_ct_path):
    from or_assist.sim.pin_cases import make_case
    from tests.conftest import REAL_PLAN

    kw = dict(detector_px=256, frame_px=(960, 540), supersample=1)
    return [make_case(s, REAL_PLAN, **kw) for s in (11, 12)], [make_case(s, REAL_PLAN, pin=False, **kw) for s in (11, 12)]


def _detect(shot, implant):
    valid = shot.fov_mask & ~shot.text_mask
    prior = PinPrior.from_implant(implant, shot.pose, shot.video_geometry)
    return detect_pin(attenuation_from_frame(shot.frame), shot.video_geometry, valid_mask=valid, prior=prior)


def test_real_ct_shots_detection(real_cases):
    with_pin, without = real_cases
    for case in with_pin:
        for shot in case.shots:
            det = _detect(shot, case.implant)
            assert det is not None
            n = np.array([-det.direction_px[1], det.direction_px[0]])
            assert abs((shot.pin_tip_px - det.tip_px) @ n) < 1.5  # px, about 0.4 mm at the isocentre
            if not det.tip_occluded:
                assert np.linalg.norm(shot.pin_tip_px - det.tip_px) < 3.0
    for case in without:
        for shot in case.shots:
            assert _detect(shot, case.implant) is None


def test_real_ct_two_view_accuracy(real_cases):
    from or_assist.guidance.triangulate import _deviation_numbers, two_view_deviation

    for case in real_cases[0]:
        dets = [_detect(s, case.implant) for s in case.shots]
        dev = two_view_deviation(case.implant, dets, [s.pose for s in case.shots],
                                 [s.video_geometry for s in case.shots])
        pin = case.pin
        d = (pin.tip_lps_mm - pin.back_lps_mm) / np.linalg.norm(pin.tip_lps_mm - pin.back_lps_mm)
        apex, angle, *_ = _deviation_numbers(pin.tip_lps_mm, d, case.implant)
        assert abs(dev.apex_deviation_mm - apex) < 1.0
        assert abs(dev.angle_deg - angle) < 1.0


def test_guide_shot_finds_the_pin_and_says_why_not(real_cases):
    """The per-shot guidance the OR display and ``or-assist pin`` share."""
    from or_assist.core.pose import Pose
    from or_assist.guidance.shot_guidance import guide_shot
    from or_assist.video.preprocess.shot import PreprocessSettings, preprocess_shot

    (case, _), (free, _) = real_cases
    plan_landmarks = ()
    settings = PreprocessSettings(polarity="bone-dark", mask_metal=False, mask_saturated=False, normalise=False)
    shot = case.shots[0]
    pre = preprocess_shot(shot.frame, shot.video_geometry, settings)
    g = guide_shot(pre, case.implant, shot.pose, plan_landmarks)
    assert g.axis_in_field and g.problem is None
    assert g.detection is not None and g.deviation is not None and g.cue is not None
    assert g.valid_mask.shape == pre.image.shape and not g.valid_mask[pre.text_mask].any()
    pre_free = preprocess_shot(free.shots[0].frame, free.shots[0].video_geometry, settings)
    g = guide_shot(pre_free, free.implant, free.shots[0].pose, plan_landmarks)
    assert g.detection is None and g.deviation is None and "no guide pin" in g.problem
    # a pose that puts the planned axis far outside the image: nothing is searched
    moved = shot.pose.matrix.copy()
    moved[0, 3] += 400.0
    away = Pose(moved)
    g = guide_shot(pre, case.implant, away, plan_landmarks)
    assert not g.axis_in_field and g.detection is None and "outside the field of view" in g.problem
