"""Image kernels of the pin detector (:mod:`or_assist.guidance.pin`): filling, binning,
the two-sided ridge filter, the prior band, the weighted Hough transform and the
cross-profile analysis that verifies a line and refines it to sub-pixel precision (its
ends: :mod:`or_assist.guidance._pin_ends`). Internal: the public surface is :func:`or_assist.guidance.pin.detect_pin`.

Conventions: full-resolution pixel (u, v) = column, row; a working pixel ``x`` of a
``factor``-binned image covers full pixels ``factor * x .. factor * x + factor - 1``,
so its centre is at ``factor * x + (factor - 1) / 2``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__: list[str] = []

_MAX_CANDIDATES = 6
_ANGLE_STEP_DEG = 0.5


def fill_invalid(img: np.ndarray, valid: np.ndarray, width_px: float) -> np.ndarray:
    """Replace invalid pixels by a normalised-convolution average of valid ones nearby."""
    if valid.all():
        return img.copy()
    f = max(1, int(width_px // 2))
    h2, w2 = img.shape[0] // f, img.shape[1] // f
    small = cv2.resize(img * valid, (w2, h2), interpolation=cv2.INTER_AREA)
    wsmall = cv2.resize(valid.astype(np.float32), (w2, h2), interpolation=cv2.INTER_AREA)
    out_small = np.zeros_like(small)
    todo = np.ones(small.shape, bool)
    for sigma in (2.0, 6.0, 20.0, 60.0):
        num = cv2.GaussianBlur(small, (0, 0), sigma)
        den = cv2.GaussianBlur(wsmall, (0, 0), sigma)
        ok = todo & (den > 0.05)
        out_small[ok] = num[ok] / den[ok]
        todo &= ~ok
    out_small[todo] = float(np.median(img[valid]))
    full = cv2.resize(out_small, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.where(valid, img, full).astype(np.float32)


def bin_image(img: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` blocks (the remainder rows/columns dropped)."""
    if factor == 1:
        return img.astype(np.float32)
    h2, w2 = img.shape[0] // factor, img.shape[1] // factor
    return img[:h2 * factor, :w2 * factor].reshape(h2, factor, w2, factor).mean(axis=(1, 3)).astype(np.float32)


def bin_mask(mask: np.ndarray, factor: int) -> np.ndarray:
    """Blocks that are entirely valid."""
    return bin_image(mask.astype(np.float32), factor) > 0.999


def two_sided_ridge(work: np.ndarray, width_px: float) -> np.ndarray:
    """Per pixel: value minus the larger of the values one width to either side across the ridge.

    The normal comes from the Hessian's most negative eigenvalue; pixels whose
    cross-curvature is not negative get 0.

    Kept over scikit-image's ridge filters (issue 18; ``docs/library_comparison_libpin.md``,
    ``benchmarks/library_libpin.py``): on 90 held-out shots with a pin and 72 without,
    ``sato`` and ``meijering`` in its place found 85 pins against 84 (one end-on lateral
    more in one set of 30, none in the other of 60; on it both ridges lead to the same
    pin, and a different one of its near-equal refinements passed the confidence
    threshold), no false detection either, the same tips (paired median difference
    0.000 mm), but took 6-10 times as long (32-55 ms per shot against 3-7 ms); ``frangi``
    found 82. They also answer a one-sided step (the edge of a placed implant or a cortex)
    with half a pin's response, where this filter gives none
    (``tests/guidance/test_pin_ridge_hough.py``).
    """
    g = cv2.GaussianBlur(work, (0, 0), max(0.5, 0.35 * width_px))
    hxx = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3)
    hyy = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3)
    hxy = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3)
    half_diff = 0.5 * (hxx - hyy)
    root = np.sqrt(half_diff * half_diff + hxy * hxy)
    lam_min = 0.5 * (hxx + hyy) - root
    phi = 0.5 * np.arctan2(2.0 * hxy, hxx - hyy) + 0.5 * np.pi  # direction of lam_min: the normal
    nx, ny = np.cos(phi).astype(np.float32), np.sin(phi).astype(np.float32)
    s = cv2.GaussianBlur(work, (0, 0), max(0.4, 0.2 * width_px))
    ys, xs = np.mgrid[0:work.shape[0], 0:work.shape[1]].astype(np.float32)
    d = np.float32(width_px)
    left = cv2.remap(s, xs - d * nx, ys - d * ny, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    right = cv2.remap(s, xs + d * nx, ys + d * ny, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    ridge = s - np.maximum(left, right)
    ridge[(lam_min >= 0) | (ridge < 0)] = 0.0
    return ridge


def prior_band(prior, factor: int, offset_work_px: float, shape: tuple[int, int],
               angle_tolerance_deg: float = 20.0) -> np.ndarray:
    """Working pixels where the active pin may lie (near the planned axis, see the pin module)."""
    c = (factor - 1) / 2.0
    e = (prior.entry_px - c) / factor
    a = (prior.apex_px - c) / factor
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    axis = a - e
    n = float(np.linalg.norm(axis))
    if prior.foreshortening < 0.3 or n < 2.0:
        mid = 0.5 * (a + e)
        return np.hypot(xs - mid[0], ys - mid[1]) <= offset_work_px + n
    d = axis / n
    t = (xs - a[0]) * d[0] + (ys - a[1]) * d[1]            # 0 at the apex, negative towards the entry
    dist = np.abs(-(xs - a[0]) * d[1] + (ys - a[1]) * d[0])
    allowed = offset_work_px + np.abs(t) * math.tan(math.radians(angle_tolerance_deg))
    return (dist <= allowed) & (t <= offset_work_px)


def hough_candidates(ridge: np.ndarray, threshold: float, prior, factor: int,
                     angle_tolerance_deg: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Candidate lines ``(point_px, direction_px)`` at full resolution from a weighted Hough transform.

    Each ridge pixel votes with its ridge strength, so a strong pin outranks a longer line
    barely over ``threshold``. Kept over the libraries' Hough transforms (issue 18;
    ``docs/library_comparison_libpin.md``): on 90 held-out shots with a pin and 72 without,
    ``skimage.transform.hough_line`` + ``hough_line_peaks`` found 83 pins and
    ``cv2.HoughLines`` 82 against 84 (both count pixels, unweighted; the pins lost were
    laterals, the pin seen nearly end on) and took 2-9 times as long (3.4-16 ms per shot
    against 1.6-1.8 ms);
    ``probabilistic_hough_line`` found 85 but put tips further off (median 0.12 against
    0.10 mm; 5 of 56 tips worse by more than 0.1 mm) and, after ``sato``, made a false
    detection on a pin-free shot.
    """
    ys, xs = np.nonzero(ridge > threshold)
    if len(xs) < 3:
        return []
    wts = ridge[ys, xs].astype(np.float64)
    if prior is not None and prior.foreshortening >= 0.3 and np.linalg.norm(prior.apex_px - prior.entry_px) > 2:
        ax = prior.apex_px - prior.entry_px
        alpha0 = math.degrees(math.atan2(ax[1], ax[0]))
        alphas = np.arange(alpha0 - angle_tolerance_deg, alpha0 + angle_tolerance_deg + 1e-9, _ANGLE_STEP_DEG)
    else:
        alphas = np.arange(0.0, 180.0, _ANGLE_STEP_DEG)
    thetas = np.radians(alphas + 90.0)  # normal angles
    rho = np.outer(np.cos(thetas), xs) + np.outer(np.sin(thetas), ys)  # (n_theta, n_pix)
    rmin = int(np.floor(rho.min()))
    nbins = int(np.ceil(rho.max())) - rmin + 2
    acc = np.zeros((len(thetas), nbins))
    idx = np.rint(rho - rmin).astype(np.int64)
    for i in range(len(thetas)):
        acc[i] = np.bincount(idx[i], weights=wts, minlength=nbins)
    acc = cv2.GaussianBlur(acc.astype(np.float32), (0, 0), 1.0)
    out = []
    peak = float(acc.max())
    work = acc.copy()
    for _ in range(_MAX_CANDIDATES):
        i, j = np.unravel_index(int(np.argmax(work)), work.shape)
        if work[i, j] <= 0.15 * peak:
            break
        theta, r = thetas[i], j + rmin
        p_work = np.array([r * math.cos(theta), r * math.sin(theta)])
        d = np.array([-math.sin(theta), math.cos(theta)])
        out.append((p_work * factor + (factor - 1) / 2.0, d))
        di = int(round(4.0 / _ANGLE_STEP_DEG))
        work[max(0, i - di):i + di + 1, max(0, j - 4):j + 5] = 0.0
    return out


def point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Distance from point ``p`` to segment ``a``-``b`` (2-D)."""
    ab = b - a
    L2 = float(ab @ ab)
    t = 0.0 if L2 == 0 else float(np.clip((p - a) @ ab / L2, 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


# --------------------------------------------------------------------------- profiles


def _line_range(p0: np.ndarray, d: np.ndarray, shape: tuple[int, int]) -> tuple[float, float]:
    """Parameter range of ``p0 + t d`` inside the image rectangle."""
    h, w = shape
    lo, hi = -np.inf, np.inf
    for k, size in ((0, w), (1, h)):
        if abs(d[k]) < 1e-12:
            if not 0 <= p0[k] <= size - 1:
                return 0.0, -1.0
            continue
        t1, t2 = (0 - p0[k]) / d[k], (size - 1 - p0[k]) / d[k]
        lo, hi = max(lo, min(t1, t2)), min(hi, max(t1, t2))
    return lo, hi


def sample_profiles(img: np.ndarray, valid: np.ndarray, p0: np.ndarray, d: np.ndarray, ts: np.ndarray,
                    offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cross-profiles ``img(p0 + t d + s n)``: values (nt, ns) and whether each lies on valid pixels."""
    n = np.array([-d[1], d[0]])
    px = (p0[0] + ts[:, None] * d[0] + offsets[None, :] * n[0]).astype(np.float32)
    py = (p0[1] + ts[:, None] * d[1] + offsets[None, :] * n[1]).astype(np.float32)
    vals = cv2.remap(img, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = (px >= 0) & (py >= 0) & (px <= img.shape[1] - 1) & (py <= img.shape[0] - 1)
    vi = valid[np.clip(np.rint(py).astype(int), 0, img.shape[0] - 1), np.clip(np.rint(px).astype(int), 0, img.shape[1] - 1)]
    return vals, inside & vi


def analyse_profiles(vals: np.ndarray, ok: np.ndarray, offsets: np.ndarray, w: float) -> dict:
    """Per profile: two-sided contrast, centre offset, width, centre value, validity."""
    core = np.abs(offsets) <= 0.25 * w
    left = (offsets <= -0.75 * w) & (offsets >= -1.25 * w)
    right = (offsets >= 0.75 * w) & (offsets <= 1.25 * w)
    c = vals[:, core].mean(axis=1)
    sl, sr = vals[:, left].mean(axis=1), vals[:, right].mean(axis=1)
    base = np.maximum(sl, sr)
    contrast = c - base
    inner = np.abs(offsets) <= 1.0 * w
    excess = np.clip(vals[:, inner] - 0.5 * (sl + sr)[:, None], 0.0, None)
    mass = excess.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        height = c - 0.5 * (sl + sr)
        step = offsets[1] - offsets[0]
        width = mass * step / height
        centre = _edge_midpoints(vals, offsets, c, sl, sr, w)
    good = ok.all(axis=1)
    return {"contrast": contrast, "centre": np.nan_to_num(centre), "width": np.nan_to_num(width, nan=np.inf),
            "value": c, "ok": good}


def _edge_midpoints(vals: np.ndarray, offsets: np.ndarray, c: np.ndarray, sl: np.ndarray, sr: np.ndarray,
                    w: float) -> np.ndarray:
    """Centre of each profile: midpoint of its half-height crossings on either side (sub-pixel)."""
    centre = np.zeros(len(vals))
    k0 = int(np.argmin(np.abs(offsets)))
    for i in range(len(vals)):
        prof = vals[i]
        half_l, half_r = 0.5 * (c[i] + sl[i]), 0.5 * (c[i] + sr[i])
        left = _crossing(prof[k0::-1], half_l, offsets[k0::-1])
        right = _crossing(prof[k0:], half_r, offsets[k0:])
        if left is not None and right is not None and right - left < 2.0 * w:
            centre[i] = 0.5 * (left + right)
    return centre


def _crossing(prof: np.ndarray, level: float, offs: np.ndarray) -> float | None:
    below = np.flatnonzero(prof < level)
    if len(below) == 0 or below[0] == 0:
        return None
    k = below[0]
    f = (prof[k - 1] - level) / (prof[k - 1] - prof[k])
    return float(offs[k - 1] + f * (offs[k] - offs[k - 1]))


def longest_run(on: np.ndarray, max_gap: int) -> tuple[int, int] | None:
    """First and last index of the longest run of True allowing gaps up to ``max_gap``."""
    idx = np.flatnonzero(on)
    if len(idx) == 0:
        return None
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(idx) - 1]])
    k = int(np.argmax(idx[ends] - idx[starts]))
    return int(idx[starts[k]]), int(idx[ends[k]])


def fit_line(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Robust weighted total-least-squares line: (centroid, unit direction, rms residual)."""
    w = weights.astype(np.float64).copy()
    for _ in range(3):
        c = (points * w[:, None]).sum(0) / w.sum()
        q = points - c
        cov = (q * w[:, None]).T @ q
        evals, evecs = np.linalg.eigh(cov)
        d = evecs[:, 1]
        r = q @ np.array([-d[1], d[0]])
        s = 1.4826 * np.median(np.abs(r)) + 0.3
        w = weights * (np.abs(r) < 3.0 * s)
        if w.sum() <= 0:
            break
    rms = float(np.sqrt(np.average(r ** 2, weights=np.maximum(w, 1e-12))))
    return c, d, rms


def verify_line(img: np.ndarray, valid: np.ndarray, line, factor: int, width_px: float, settings) -> dict | None:
    """Check a candidate line along its length; refine it; None when it is no pin."""
    p0, d = np.asarray(line[0], float), np.asarray(line[1], float)
    w = width_px
    offsets = np.arange(-1.5 * w, 1.5 * w + 1e-9, max(0.5, w / 10.0))
    seg = None
    for _ in range(3):
        t_lo, t_hi = _line_range(p0, d, img.shape)
        if t_hi - t_lo < w:
            return None
        ts = np.arange(t_lo, t_hi, 0.5 * w)
        vals, ok = sample_profiles(img, valid, p0, d, ts, offsets)
        a = analyse_profiles(vals, ok, offsets, w)
        on = a["ok"] & (a["contrast"] > settings.min_contrast) & (a["width"] < settings.max_width_ratio * w)
        run = longest_run(on, max_gap=2)
        if run is None:
            return None
        sel = np.arange(run[0], run[1] + 1)
        sel = sel[on[sel]]
        if len(sel) < 3:
            return None
        n = np.array([-d[1], d[0]])
        pts = p0 + ts[sel, None] * d + a["centre"][sel, None] * n
        c, d_new, rms = fit_line(pts, np.clip(a["contrast"][sel], 1e-6, None))
        if d_new @ d < 0:
            d_new = -d_new
        t_a, t_b = (p0 + ts[run[0]] * d - c) @ d_new, (p0 + ts[run[1]] * d - c) @ d_new
        p0, d = c, d_new
        seg = {"point": c, "direction": d, "t": (float(t_a), float(t_b)), "rms": rms,
               "contrast": float(np.median(a["contrast"][sel])), "width": float(np.median(a["width"][sel])),
               "fill": len(sel) / (run[1] - run[0] + 1)}
    length = seg["t"][1] - seg["t"][0]
    min_len_px = settings.min_length_mm / (settings.pin_diameter_mm / w)
    if length < min_len_px or seg["width"] > settings.max_width_ratio * w or seg["width"] < 0.3 * w:
        return None
    seg["ends"] = [seg["point"] + seg["t"][0] * seg["direction"], seg["point"] + seg["t"][1] * seg["direction"]]
    seg["length"] = length
    seg["quality"] = seg["contrast"] * math.sqrt(length / w) * seg["fill"] / (1.0 + seg["rms"] / (0.1 * w))
    return seg
