"""Robust fits behind :func:`or_assist.video.preprocess.fov.detect_field_of_view`.

Circles (RANSAC on three-point circles, then Gauss-Newton on the geometric distance)
and axis-aligned boxes (densest runs of contour points per side; full-resolution edge
profiles, the crossing most profiles share per side, a square prior for one hidden
side). Coordinates are pixel centres, full resolution; ``s`` is the coarse pass's
binning factor.
"""

from __future__ import annotations

import cv2
import numpy as np

from or_assist.errors import InputError

__all__ = ["coarse_rectangle", "fine_circle", "fine_rectangle", "ransac_circle", "fit_circle", "arc_coverage"]

_RANSAC_ITERATIONS = 120
_CLEAR_EDGE = 20.0           # grey levels above black of the last pixel inside a clear edge


def coarse_rectangle(pts: np.ndarray, box, tol: float, size_px, s: int):
    """Axis-aligned box whose sides hold most contour points.

    Each side is the densest run of contour points at one coordinate on its half of
    the bounding box; a side with little support there (hidden by a dark region
    touching the edge) falls back to the bounding box's extent. Returns
    ``((left, top, right, bottom), inlier count)`` or ``(None, 0)``.
    """
    w, h = size_px
    edges = []
    inl = np.zeros(len(pts), bool)
    for axis, lo_half in ((0, True), (1, True), (0, False), (1, False)):
        lo, hi = box[axis], box[axis + 2]
        extent = lo if lo_half else hi
        limit = -0.5 if lo_half else (w if axis == 0 else h) - 0.5
        if abs(extent - limit) <= s:  # the field reaches the frame's edge
            edges.append(limit)
            continue
        x = pts[:, axis]
        cand = x[x < 0.5 * (lo + hi)] if lo_half else x[x >= 0.5 * (lo + hi)]
        side_len = (box[3 - axis] - box[1 - axis]) / s  # contour points along a full side
        pos = extent
        if len(cand) >= 5:
            bins = np.round(cand / tol).astype(np.int64)
            b0 = int(bins.min())
            counts = np.bincount(bins - b0)
            near = np.convolve(counts, np.ones(3, np.int64), mode="same")
            best = int(np.argmax(near))
            if near[best] >= 0.2 * side_len:
                pos = float(np.median(cand[np.abs(bins - b0 - best) <= 1]))
        edges.append(pos)
        inl |= np.abs(x - pos) < tol
    left, top, right, bottom = edges
    if right - left < 8 * s or bottom - top < 8 * s:
        return None, 0
    return (left, top, right, bottom), int(inl.sum())


def _edge_positions(gray: np.ndarray, start: np.ndarray, step: np.ndarray, n: int,
                    black: float, floor: float, common: bool = False):
    """Where the image falls to the surround along profiles ``start + i * step``.

    ``start`` (P, 2) lies inside the field, ``step`` (P, 2) points outwards; ``black``
    is the black level plus a noise margin, ``floor`` the black level itself. An edge
    is a crossing of ``black`` from above (located at half the edge pixel's height above
    ``floor``): a collimator's penumbra and the darker rim that glare and image
    processing leave inside the edge would bias a half-way crossing inwards.

    Per profile the crossing taken is the outermost one, or with ``common=True`` the
    one at the position most profiles share (an edge is straight; dark content inside
    and text outside give crossings that do not line up).

    Returns
    -------
    pos : (P,) float
        Fractional index of the crossing; NaN where a profile's inside is not clearly
        above the black level (or, with ``common``, has no crossing at the shared place).
    contrast : (P,) float
        Grey level of the last pixel inside above ``floor``.
    """
    i = np.arange(n, dtype=np.float32)
    mx = (start[:, None, 0] + i[None, :] * step[:, None, 0]).astype(np.float32)
    my = (start[:, None, 1] + i[None, :] * step[:, None, 1]).astype(np.float32)
    prof = cv2.remap(gray, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    inside = np.median(prof[:, : max(3, n // 4)], axis=1)
    ok = inside >= black + 10.0
    above = prof >= black
    down = above[:, :-1] & ~above[:, 1:] & ok[:, None]
    rows = np.arange(len(prof))
    if common:
        near = down.copy()
        near[:, 1:] |= down[:, :-1]
        near[:, :-1] |= down[:, 1:]
        support = near.sum(axis=0)
        j = int(len(support) - 1 - np.argmax(support[::-1]))    # ties: the outermost
        window = np.zeros_like(down)
        window[:, max(0, j - 1): j + 2] = True
        cand = down & window
        has = cand.any(axis=1)
        last = (n - 2) - np.argmax(cand[:, ::-1], axis=1)
    else:
        has = down.any(axis=1)
        last = (n - 2) - np.argmax(down[:, ::-1], axis=1)
    a, b = prof[rows, last], prof[rows, last + 1]
    half = np.minimum(np.maximum(0.5 * (a + floor), black), a)   # half-way between edge pixel and black
    frac = (a - half) / np.maximum(a - b, 1e-6)
    return np.where(has, last + np.clip(frac, 0.0, 1.0), np.nan), np.where(has, a - floor, 0.0)


def fine_circle(gray: np.ndarray, level: float, black: float, coarse, s: int) -> tuple[float, float, float]:
    """Refine a coarse circle ``(cu, cv, r)`` on 256 radial profiles at full resolution."""
    h, w = gray.shape
    cu, cv, r = coarse
    n_rays, half = 256, 2 * s + 6
    theta = np.linspace(0.0, 2 * np.pi, n_rays, endpoint=False)
    d = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    start = np.array([cu, cv]) + (r - half) * d
    pos, _ = _edge_positions(gray, start, d, 2 * half + 1, level, black)
    edge = start + pos[:, None] * d
    inside_frame = (edge[:, 0] > 1) & (edge[:, 0] < w - 2) & (edge[:, 1] > 1) & (edge[:, 1] < h - 2)
    good = np.isfinite(pos) & inside_frame
    fine = ransac_circle(edge[good], tol=1.0, max_radius=max(h, w)) if good.sum() >= 10 else None
    if fine is None:
        fine = coarse
    cu, cv, r = fine
    if r < 0.05 * min(h, w) or not (-r < cu < w + r and -r < cv < h + r):
        raise InputError(f"shows no plausible round field (centre {cu:.0f}, {cv:.0f}, radius {r:.0f} px)", "frame")
    return cu, cv, r


def ransac_circle(pts: np.ndarray, tol: float, iterations: int = _RANSAC_ITERATIONS,
                  max_radius: float | None = None):
    """Robust circle (cu, cv, r) through most of ``pts`` (N, 2); None when none fits.

    ``max_radius`` (pixels) rules out larger circles: a long straight edge (a leaf, a bar
    across the field) is otherwise fitted as an arc of a circle millions of pixels wide.

    Kept over ``skimage.measure.ransac`` with ``CircleModel`` (issue 18,
    ``docs/library_comparison_libfov.md``): on 48 held-out 1080p round-field shots the
    library, given the same tolerance, trials, radius limit and acceptance rule, was no
    more accurate (centre error median 0.84 vs 0.68 px; the same frame failed both) and
    made field detection 3.4x slower (58.7 vs 17.5 ms per frame; the fits alone 43 vs
    1.8 ms: it estimates one model per trial in Python, this scores all trials in one
    array operation).
    """
    if len(pts) < 3:
        return None
    rng = np.random.default_rng(12345)
    if len(pts) > 300:
        pts = pts[np.linspace(0, len(pts) - 1, 300).astype(int)]
    idx = rng.integers(0, len(pts), size=(iterations, 3))
    a, b, c = pts[idx[:, 0]], pts[idx[:, 1]], pts[idx[:, 2]]
    d = 2 * (a[:, 0] * (b[:, 1] - c[:, 1]) + b[:, 0] * (c[:, 1] - a[:, 1]) + c[:, 0] * (a[:, 1] - b[:, 1]))
    sa, sb, sc = (a ** 2).sum(1), (b ** 2).sum(1), (c ** 2).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ux = (sa * (b[:, 1] - c[:, 1]) + sb * (c[:, 1] - a[:, 1]) + sc * (a[:, 1] - b[:, 1])) / d
        uy = (sa * (c[:, 0] - b[:, 0]) + sb * (a[:, 0] - c[:, 0]) + sc * (b[:, 0] - a[:, 0])) / d
    rr = np.hypot(a[:, 0] - ux, a[:, 1] - uy)
    valid = np.isfinite(ux) & np.isfinite(uy) & np.isfinite(rr) & (np.abs(d) > 1e-9)
    if max_radius is not None:
        valid &= rr <= max_radius
    if not valid.any():
        return None
    ux, uy, rr = ux[valid], uy[valid], rr[valid]
    dist = np.abs(np.hypot(pts[None, :, 0] - ux[:, None], pts[None, :, 1] - uy[:, None]) - rr[:, None])
    score = (dist < tol).sum(axis=1)
    best = int(np.argmax(score))
    if score[best] < max(5, 0.25 * len(pts)):
        return None
    inl = pts[dist[best] < tol]
    cu, cv, r = ux[best], uy[best], rr[best]
    for _ in range(3):  # geometric least squares on the inliers, then re-select them
        cu, cv, r = fit_circle(inl, (cu, cv, r))
        res = np.abs(np.hypot(pts[:, 0] - cu, pts[:, 1] - cv) - r)
        sel = pts[res < tol]
        if len(sel) < 5:
            break
        inl = sel
    return float(cu), float(cv), float(r)


def arc_coverage(pts: np.ndarray, circle, tol: float, bins: int = 36) -> float:
    """Share of a circle's circumference that points on it cover.

    Parameters
    ----------
    pts : (N, 2) ndarray
        Pixel coordinates.
    circle : (cu, cv, r)
    tol : float
        Pixels: points farther than this from the circle do not count.
    bins : int
        The circumference is split into this many equal arcs (10 deg each by default).

    Returns
    -------
    float
        The share (0..1) of those arcs that hold at least one point within ``tol``.
    """
    cu, cv, r = circle
    d = np.asarray(pts, dtype=np.float64) - (cu, cv)
    on = np.abs(np.hypot(d[:, 0], d[:, 1]) - r) < tol
    angle = np.arctan2(d[on, 1], d[on, 0])
    return len(np.unique(np.floor((angle + np.pi) / (2 * np.pi) * bins).astype(np.int64) % bins)) / bins


def fit_circle(pts: np.ndarray, init) -> tuple[float, float, float]:
    """Least-squares circle (Gauss-Newton on the geometric distance) from ``init``."""
    cu, cv, r = (float(x) for x in init)
    for _ in range(8):
        du, dv = pts[:, 0] - cu, pts[:, 1] - cv
        dist = np.maximum(np.hypot(du, dv), 1e-9)
        res = dist - r
        jac = np.stack([-du / dist, -dv / dist, -np.ones_like(dist)], axis=1)
        try:
            delta = np.linalg.solve(jac.T @ jac, -(jac.T @ res))
        except np.linalg.LinAlgError:
            break
        cu, cv, r = cu + delta[0], cv + delta[1], r + delta[2]
        if np.abs(delta).max() < 1e-3:
            break
    return cu, cv, r


def fine_rectangle(gray: np.ndarray, level: float, black: float, coarse, s: int) -> tuple[float, ...]:
    """Refine coarse edges (left, top, right, bottom) to a box ``(u0, v0, u1, v1)`` of pixel centres."""
    h, w = gray.shape
    left, top, right, bottom = coarse           # coarse edges, full-resolution coordinates
    half, n_prof = 2 * s + 6, 64
    limits = {"left": -0.5, "top": -0.5, "right": w - 0.5, "bottom": h - 0.5}
    edges, clear = {}, {}
    for side, axis, sign, along_lo, along_hi, at in (
            ("left", 0, -1.0, top, bottom, left), ("right", 0, 1.0, top, bottom, right),
            ("top", 1, -1.0, left, right, top), ("bottom", 1, 1.0, left, right, bottom)):
        if abs(at - limits[side]) <= s:  # the field reaches the frame's edge here
            edges[side], clear[side] = limits[side], None
            continue
        span = along_hi - along_lo
        along = np.linspace(along_lo + 0.1 * span, along_hi - 0.1 * span, n_prof)
        d = np.zeros((n_prof, 2))
        d[:, axis] = sign
        start = np.empty((n_prof, 2))
        start[:, axis] = round(at - sign * half)   # samples on pixel centres across the edge
        start[:, 1 - axis] = along
        pos, contrast = _edge_positions(gray, start, d, 2 * half + 1, level, black, common=True)
        valid = np.isfinite(pos)
        found = float(np.median(pos[valid])) if np.count_nonzero(valid) >= max(5, 0.15 * n_prof) else None
        edges[side] = at if found is None else start[0, axis] + sign * found
        clear[side] = found is not None and bool(
            np.count_nonzero(valid & (np.abs(pos - found) <= 1.0) & (contrast >= _CLEAR_EDGE)) >= 0.15 * n_prof)
    _square_prior(edges, clear)
    u0, u1 = edges["left"] + 0.5, edges["right"] - 0.5
    v0, v1 = edges["top"] + 0.5, edges["bottom"] - 0.5
    if u1 - u0 < 0.05 * w or v1 - v0 < 0.05 * h:
        raise InputError("shows no plausible rectangular field", "frame")
    return u0, v0, u1, v1


def _square_prior(edges: dict, clear: dict) -> None:
    """Place one side that shows no clear edge so that the field is square.

    Dark content all along one side (bone-dark anatomy, or black direct exposure in a
    bone-bright image) hides the edge; flat-panel fields are square, so when the
    three other sides are clear, the hidden one is moved out to its opposite side plus
    the other axis's extent, if that is further out (in place).
    """
    hidden = [k for k, v in clear.items() if v is False]
    if len(hidden) != 1 or any(v is not True for k, v in clear.items() if k != hidden[0]):
        return
    side = hidden[0]
    if side in ("left", "right"):
        extent = edges["bottom"] - edges["top"]
        prior = edges["right"] - extent if side == "left" else edges["left"] + extent
    else:
        extent = edges["right"] - edges["left"]
        prior = edges["bottom"] - extent if side == "top" else edges["top"] + extent
    outward = (edges[side] - prior) if side in ("left", "top") else (prior - edges[side])
    if outward > 1.0:  # dark content can only pull an edge inwards: never shrink the field
        edges[side] = prior
