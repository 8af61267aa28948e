"""The pin detector's own ridge filter and Hough search against scikit-image's (issue 18).

They stayed (``docs/library_comparison_libpin.md``); these tests pin down the two reasons
given in their docstrings and cross-check the Hough search against the library's on lines
where both must agree.
"""

from __future__ import annotations

import math

import numpy as np
from skimage import filters, transform

from or_assist.guidance import _pin_profile as prof

W = 5.0  # pin width at the working scale, px


def _ridge_line(shape, p, angle_deg, length_px, value):
    """A ridge-map line (one pixel wide, ``value``) through ``p`` at ``angle_deg``."""
    img = np.zeros(shape, np.float32)
    d = np.array([math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))])
    for t in np.arange(-length_px / 2, length_px / 2, 0.25):
        x, y = np.rint(np.asarray(p) + t * d).astype(int)
        img[y, x] = value
    return img


def _angle_and_distance(line, p, angle_deg):
    """Image angle (deg) between a candidate ``(point, direction)`` and a true line, and the
    distance of the true line's point ``p`` from the candidate (px)."""
    q, d = line
    d_true = np.array([math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))])
    ang = math.degrees(math.acos(min(1.0, abs(float(d @ d_true)))))
    n = np.array([-d[1], d[0]])
    return ang, abs(float((np.asarray(p, float) - q) @ n))


def test_two_sided_ridge_ignores_a_step_edge_that_sato_sees():
    """A wide implant's or a cortex's edge (a step) is darker than one side only: the
    two-sided ridge gives it nothing, skimage's sato half of a pin's response."""
    img = np.zeros((80, 140), np.float32)
    img[:, 20:25] = 1.0     # a pin, 5 px wide, unit contrast
    img[:, 80:] = 1.0       # a step edge
    ours = prof.two_sided_ridge(img, W)
    sig = [0.3 * W, 0.5 * W]
    sato = filters.sato(img, sigmas=sig, black_ridges=False)
    pin_ours, pin_sato = ours[40, 15:30].max(), sato[40, 15:30].max()
    assert pin_ours > 0.8                                   # about the pin's contrast
    assert ours[20:60, 60:100].max() < 0.02 * pin_ours      # the edge: nothing
    assert sato[20:60, 60:100].max() > 0.3 * pin_sato       # the edge: a ridge for sato


def test_hough_candidates_agree_with_skimage_hough_line():
    """On single lines at several angles, the first candidate is the line skimage's
    hough_line + hough_line_peaks finds (same angle within 1 deg, same place within 1 px)."""
    rng = np.random.default_rng(3)
    for angle in (0.0, 17.0, 44.5, 90.0, 133.0, 171.0):
        p = rng.uniform(40, 80, 2)
        ridge = _ridge_line((120, 120), p, angle, 60.0, 0.5)
        ours = prof.hough_candidates(ridge, 0.06, None, 1, 20.0)
        acc, th, dist = transform.hough_line(ridge > 0.06, theta=np.radians(np.arange(-90.0, 90.0, 0.5)))
        _, a, r = transform.hough_line_peaks(acc, th, dist, num_peaks=1)
        lib = (np.array([r[0] * math.cos(a[0]), r[0] * math.sin(a[0])]), np.array([-math.sin(a[0]), math.cos(a[0])]))
        for cand in (ours[0], lib):
            ang, dist_px = _angle_and_distance(cand, p, angle)
            assert ang <= 1.0 and dist_px <= 1.0, (angle, cand)


def test_hough_candidates_rank_a_strong_pin_above_a_long_faint_line():
    """Votes weighted by ridge strength: a strong pin outranks a line twice as long but
    barely over the threshold, which an unweighted Hough (skimage's) puts first."""
    pin = _ridge_line((160, 160), (60.0, 50.0), 30.0, 40.0, 0.5)
    faint = _ridge_line((160, 160), (80.0, 110.0), -20.0, 100.0, 0.07)
    ridge = np.maximum(pin, faint)
    ours = prof.hough_candidates(ridge, 0.06, None, 1, 20.0)
    ang, dist_px = _angle_and_distance(ours[0], (60.0, 50.0), 30.0)
    assert ang <= 1.0 and dist_px <= 1.0
    acc, th, dist = transform.hough_line(ridge > 0.06, theta=np.radians(np.arange(-90.0, 90.0, 0.5)))
    _, a, r = transform.hough_line_peaks(acc, th, dist, num_peaks=1)
    lib = (np.array([r[0] * math.cos(a[0]), r[0] * math.sin(a[0])]), np.array([-math.sin(a[0]), math.cos(a[0])]))
    ang, dist_px = _angle_and_distance(lib, (80.0, 110.0), -20.0)
    assert ang <= 1.0 and dist_px <= 1.0       # the library's first line is the faint one


def test_hough_candidates_keep_to_the_priors_angles():
    """With a prior, only lines within the angle tolerance of the planned axis are candidates."""
    from or_assist.guidance.pin import PinPrior

    ridge = np.maximum(_ridge_line((160, 160), (80.0, 80.0), 60.0, 80.0, 0.5),
                       _ridge_line((160, 160), (80.0, 80.0), 10.0, 60.0, 0.3))
    prior = PinPrior(np.array([40.0, 73.0]), np.array([120.0, 87.0]), 600.0, 600.0, 1.0)  # axis at 10 deg
    cands = prof.hough_candidates(ridge, 0.06, prior, 1, 20.0)
    assert cands
    for q, d in cands:
        assert math.degrees(math.acos(min(1.0, abs(float(d @ [math.cos(math.radians(10)),
                                                              math.sin(math.radians(10))]))))) <= 20.5
    ang, dist_px = _angle_and_distance(cands[0], (80.0, 80.0), 10.0)
    assert ang <= 1.0 and dist_px <= 1.0
