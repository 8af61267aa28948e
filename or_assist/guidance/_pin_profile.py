"""Image kernels of the pin detector (:mod:`or_assist.guidance.pin`): filling, binning,
the two-sided ridge filter, the prior band, the weighted Hough transform and the
cross-profile analysis that verifies a line, refines it to sub-pixel precision and
finds the tip. Internal: the public surface is :func:`or_assist.guidance.pin.detect_pin`.

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
# the confidence (finish_detection): a steel pin is the most contrasted, straightest line
# in a shot. Calibrated on the calibration seeds (demo shots, real-CT seeds 1000-1011, the
# demo's pin-free shots at registration-like pose errors): pins reach contrast 0.47-1.0
# and a line rms of 0.006-0.023 pin widths, the bone edges that pass verification 0.09-0.6
# and 0.026-0.19; with these scales the edges stay below 0.56 and the pins above 0.63
_FULL_CONTRAST = 0.45     # share of the field's range at which the contrast factor is 1
_STRAIGHT_SIGMA = 0.03    # line rms, in pin widths, at which the straightness factor is exp(-1/2)
_WIDTH_SIGMA = 0.2        # width error (beyond 10 %) at which the width factor is exp(-1/2)
# the walk along the pin to its ends (walk_end): a sample is "as dark as the pin" within
# this share of the plateau below the pin's value where last seen; a stretch as dark as
# the pin without showing it, longer than this many pin widths, hides the pin (occluded)
_DARK_PLATEAU = 0.25
_MAX_DARK_WIDTHS = 4.0
# excluded pixels (burnt-in text) on the pin's centre line up to this many pin widths long
# are looked past; a longer stretch is the field's border for the walk
_MAX_PATCH_WIDTHS = 3.0
# below this foreshortening of the planned axis the tip end is told by the pin's perspective
# (width_trend): a relative widening of at least _MIN_WIDTH_TREND over the segment (end-on
# real-CT laterals, calibration seeds: 0.12-0.27, the right end every time)
_END_ON_FORESHORTENING = 0.3
_MIN_WIDTH_TREND = 0.06
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
    """Candidate lines ``(point_px, direction_px)`` at full resolution from a weighted Hough transform."""
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


def _pin_edges(vals: np.ndarray, ok: np.ndarray, offsets: np.ndarray, w: float, w_meas: float,
               plateau: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cross-profile: centre value, whether the centre is usable, whether it shows the pin.

    A profile shows the pin when, on at least one side whose pixels are usable, the value
    falls by at least half the pin's plateau contrast and the half-way crossing lies where
    the pin's edge is (half the measured width from the line, within a quarter of the
    expected width). One side suffices: a pin lying along an implant or an edge of bone
    has only one free edge; a side on excluded pixels (burnt-in text) is left out.
    """
    core = np.abs(offsets) <= 0.25 * w
    c = vals[:, core].mean(axis=1)
    good = ok[:, core].all(axis=1)
    shows = np.zeros(len(vals), bool)
    k0 = int(np.argmin(np.abs(offsets)))
    for sign, sl in ((-1.0, slice(k0, None, -1)), (1.0, slice(k0, None))):
        band = (sign * offsets >= 0.75 * w) & (sign * offsets <= 1.25 * w)
        side_ok = ok[:, band].all(axis=1)
        side = vals[:, band].mean(axis=1)
        drop = (c - side) >= 0.5 * plateau
        offs = offsets[sl]
        for i in np.flatnonzero(good & side_ok & drop & ~shows):
            x = _crossing(vals[i, sl], 0.5 * (c[i] + side[i]), offs)
            shows[i] = x is not None and abs(abs(x) - 0.5 * w_meas) <= 0.25 * w
    return c, good, shows


def walk_end(img, valid, p0, d, t_end: float, sign: float, w: float, plateau: float,
             width_measured_px: float, max_width_ratio: float) -> dict:
    """Follow the pin from one end of its verified run outwards to where it really ends.

    Along the line, a sample *shows the pin* when its cross-profile has the pin's
    two-sided signature (contrast at least a quarter of the plateau, a pin-wide band) or
    at least one of the pin's edges where it should be (:func:`_pin_edges`). The walk
    goes on over samples that do not show it as long as their centre stays as dark as
    the pin was where it was last seen (less half its contrast): a bone cortex or an
    instrument that crosses the pin darkens one side and breaks the signature for a
    while, but not the pin's own darkness. It stops where the centre falls below that
    for more than half a pin width, or at the field's border / an excluded region.

    The pin counts as seen only where it shows for a few samples in a row, and a pin
    seen to its end only along one free edge (lying on a placed implant's edge, where the
    two cannot be told apart) has its end not seen.

    Returns a dict: ``t`` (the end along the line: the half-way crossing of the centre
    value between the pin and what lies beyond, searched from the last sample that showed
    the pin, or that last sample when the end was not seen), ``seen`` (the pin's end itself was seen), ``occluded`` (it
    disappears into something as dark as itself for more than a pin width: the end
    may lie anywhere inside it), ``at_border`` (the field's border or an excluded region
    comes first) and ``t_seen`` (the last sample showing the pin's signature).
    """
    offsets = np.arange(-1.5 * w, 1.5 * w + 1e-9, max(0.5, w / 10.0))
    step = max(0.5, w / 8.0)
    t_lo, t_hi = _line_range(p0, d, img.shape)
    t_far = t_hi if sign > 0 else t_lo
    n_back = int(math.ceil(2.0 * w / step))
    n_out = max(0, int(sign * (t_far - t_end) / step)) + 1
    ts = t_end + sign * step * np.arange(-n_back, n_out)
    vals, ok = sample_profiles(img, valid, p0, d, ts, offsets)
    val, good, shows = _pin_edges(vals, ok, offsets, w, width_measured_px, plateau)
    a = analyse_profiles(vals, ok, offsets, w)   # the two-sided signature, as on the verified run
    two = a["ok"] & (a["contrast"] >= 0.25 * plateau) & (a["width"] < max_width_ratio * w) & (a["width"] > 0.3 * w)
    shows |= two
    # the pin is seen where it shows for a sustained stretch (a few samples in a row), not
    # where noise or a bone edge beyond its end happens to pass for one sample
    n_sus = max(2, int(round(0.4 * w / step)))
    run = np.convolve(shows.astype(float), np.ones(n_sus), mode="full")[:len(shows)] >= n_sus - 0.5
    sustained = np.zeros_like(shows)
    for i in np.flatnonzero(run):
        sustained[i - n_sus + 1:i + 1] = True
    k = n_back      # the verified run's end; its gap bridging may have run onto a collinear bone line
    while k > 0 and not sustained[k]:
        k -= 1
    last_seen = last_two = k
    recent = [float(val[k])]
    ref = float(val[k])
    max_gap = max(1, int(round(0.5 * w / step)))
    max_dark = int(round(_MAX_DARK_WIDTHS * w / step))
    j, gap, reason, patch_end, last_on = k, 0, "drop", -1, k
    while j + 1 < len(ts):
        j += 1
        if not good[j]:
            nxt = j + 1
            while nxt < len(ts) and not good[nxt]:
                nxt += 1
            if nxt < len(ts) and (nxt - j) * step <= _MAX_PATCH_WIDTHS * w:
                j = patch_end = nxt - 1      # a small excluded patch (burnt-in text) on the pin: look past it
                continue
            reason = "border"
            break
        if shows[j]:
            last_on, gap = j, 0
            if sustained[j]:
                last_seen = j
                if two[j]:
                    last_two = j
            recent = (recent + [float(val[j])])[-max(3, n_back):]
            ref = float(np.median(recent))
        elif val[j] >= ref - _DARK_PLATEAU * plateau:
            last_on, gap = j, 0
            if j - last_seen > max_dark:
                reason = "dark"
                break
        else:
            gap += 1
            if gap > max_gap:
                break
    else:
        reason = "border"      # the line leaves the image
    chain_end = last_on
    dark_after = (chain_end - last_seen) * step
    # the pin was last seen right before the border or an excluded patch: its end may lie beyond
    at_border = (reason == "border" and gap <= max_gap) or (patch_end >= 0 and chain_end <= patch_end + 1)
    # seen to the end only along one free edge (a pin lying on an implant's edge): the pin
    # and the implant cannot be told apart there, so neither can where the pin ends
    one_sided = (last_seen - last_two) * step > w
    occluded = (reason == "dark" or dark_after > w or one_sided) and not at_border
    if one_sided:
        last_seen = last_two
    if at_border or occluded:
        t = float(ts[last_seen]) if occluded else float(ts[chain_end])
        return {"t": t, "seen": False, "occluded": occluded, "at_border": at_border, "t_seen": float(ts[last_seen])}
    # the end: where the centre value falls half-way from the pin's to what lies beyond,
    # searched from the last sample that showed the pin
    lo = last_seen + max(1, n_back // 4)
    beyond = slice(min(len(ts) - 1, lo), min(len(ts), lo + max(2, n_back // 2)))
    bg = float(np.median(val[beyond])) if lo < len(ts) else float(val[-1])
    half = 0.5 * (ref + bg)
    i = last_seen + 1
    while i < len(ts) and val[i] >= half:
        i += 1
    t = float(ts[min(i, len(ts) - 1)])
    if i < len(ts) and val[i - 1] > val[i]:
        f = (val[i - 1] - half) / (val[i - 1] - val[i])
        t = float(ts[i - 1] + sign * step * f)
    return {"t": t, "seen": True, "occluded": False, "at_border": False, "t_seen": float(ts[last_seen])}


def width_trend(img, valid, p0, d, t_a: float, t_b: float, w: float) -> int:
    """+1 when the band widens from end ``a`` to end ``b`` by at least ``_MIN_WIDTH_TREND``
    of its width over the segment's inner 70 %, -1 when it narrows, 0 when unclear."""
    length = t_b - t_a
    if length < 2.0 * w:
        return 0
    ts = np.linspace(t_a + 0.15 * length, t_b - 0.15 * length, 15)
    offsets = np.arange(-1.5 * w, 1.5 * w + 1e-9, max(0.5, w / 10.0))
    vals, ok = sample_profiles(img, valid, p0, d, ts, offsets)
    a = analyse_profiles(vals, ok, offsets, w)
    keep = a["ok"] & np.isfinite(a["width"]) & (a["width"] > 0.3 * w) & (a["width"] < 2.0 * w)
    if keep.sum() < 8:
        return 0
    slope = np.polyfit((ts[keep] - ts[0]) / (ts[-1] - ts[0]), a["width"][keep], 1)[0]
    rel = float(slope) / float(np.median(a["width"][keep]))
    return 0 if abs(rel) < _MIN_WIDTH_TREND else (1 if rel > 0 else -1)


def tip_end_offset_px(width_px: float, diameter_mm: float, cone_mm: float, foreshortening: float) -> float:
    """How far the visible end (half-way drop of the centre value) lies beyond the tip, pixels.

    A flat end is a disk across the pin: seen at foreshortening ``f`` (projected over true
    length) its silhouette reaches ``r sqrt(1 - f^2)`` beyond the axis's end. A pointed
    end of axial length ``cone_mm`` thins to nothing at the tip: the centre value falls
    to half at half the cone's projected length before it (a negative offset).
    """
    f = float(np.clip(foreshortening, 0.0, 1.0))
    if cone_mm > 0:
        return -0.5 * cone_mm * f * width_px / diameter_mm
    return 0.5 * width_px * math.sqrt(1.0 - f * f)


def finish_detection(img, valid, seg: dict, width_px: float, prior, settings, mm_per_px: float,
                     n_candidates: int) -> dict | None:
    """Tip and back end, tip side from the prior or the field border, confidence."""
    p0, d, w = seg["point"], seg["direction"], width_px
    t_a, t_b = seg["t"]
    offsets = np.arange(-1.5 * w, 1.5 * w + 1e-9, max(0.5, w / 10.0))
    ts = np.linspace(t_a, t_b, max(3, int((t_b - t_a) / (0.5 * w))))
    vals, ok = sample_profiles(img, valid, p0, d, ts, offsets)
    a = analyse_profiles(vals, ok, offsets, w)
    plateau = float(np.median(a["contrast"]))
    ends = {}
    for name, t_end, sign in (("a", t_a, -1.0), ("b", t_b, 1.0)):
        ends[name] = walk_end(img, valid, p0, d, t_end, sign, w, plateau, seg["width"],
                              settings.max_width_ratio)
    pa, pb = p0 + ends["a"]["t"] * d, p0 + ends["b"]["t"] * d
    tip_is_b = _tip_is_b(pa, pb, ends["a"]["at_border"], ends["b"]["at_border"], prior, img.shape)
    ambiguous = False
    if prior is not None and prior.foreshortening < _END_ON_FORESHORTENING:
        # the planned axis is seen nearly end on: the pin's image direction says little about
        # which end is the tip, its perspective does (the end nearer the source is wider)
        wider_b = width_trend(img, valid, p0, d, ends["a"]["t"], ends["b"]["t"], w)
        if wider_b != 0:
            tip_is_b = (wider_b > 0) == (prior.apex_depth_mm < prior.entry_depth_mm)
        elif prior.foreshortening < 0.15:
            ambiguous = True
    tip, back = (pb, pa) if tip_is_b else (pa, pb)
    tip_state = ends["b"] if tip_is_b else ends["a"]
    direction = (tip - back) / max(np.linalg.norm(tip - back), 1e-9)
    if tip_state["seen"] and not ambiguous:
        tip = tip - direction * tip_end_offset_px(w, settings.pin_diameter_mm, settings.tip_cone_mm,
                                                  1.0 if prior is None else prior.foreshortening)
    length_mm = float(np.linalg.norm(tip - back)) * mm_per_px
    f_contrast = min(1.0, plateau / _FULL_CONTRAST)
    f_length = min(1.0, length_mm / (3.0 * settings.min_length_mm))
    f_straight = math.exp(-0.5 * (seg["rms"] / (_STRAIGHT_SIGMA * w)) ** 2)
    excess = max(0.0, abs(seg["width"] / w - 1.0) - 0.1)
    f_width = math.exp(-0.5 * (excess / _WIDTH_SIGMA) ** 2)
    conf = float(math.sqrt(f_contrast * f_length * f_straight * f_width))
    return {"tip_px": tip, "back_px": back, "direction_px": direction, "width_px": seg["width"],
            "contrast": plateau, "line_rms_px": seg["rms"], "confidence": conf,
            "tip_occluded": tip_state["occluded"], "tip_at_border": tip_state["at_border"],
            "tip_ambiguous": ambiguous}


def _tip_is_b(pa, pb, a_border: bool, b_border: bool, prior, shape) -> bool:
    if prior is not None:
        axis = prior.apex_px - prior.entry_px
        if prior.foreshortening >= 0.15 and np.linalg.norm(axis) > 1e-6:
            return bool((pb - pa) @ axis > 0)
        return bool(np.linalg.norm(pb - prior.apex_px) < np.linalg.norm(pa - prior.apex_px))
    if a_border != b_border:
        return a_border
    centre = np.array([shape[1] - 1, shape[0] - 1]) / 2.0
    return bool(np.linalg.norm(pb - centre) < np.linalg.norm(pa - centre))
