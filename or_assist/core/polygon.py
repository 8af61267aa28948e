"""Plane polygons in image pixels: convex hull, area, centroid, point containment.

Coordinates are (u, v) pairs (any 2D frame works). Polygons are (K, 2) arrays of
vertices in order, implicitly closed (the last vertex connects to the first).

Examples
--------
>>> pts = np.array([[0, 0], [4, 0], [4, 2], [0, 2], [2, 1], [4, 1]], dtype=float)
>>> convex_hull_2d(pts).tolist()
[[0.0, 0.0], [4.0, 0.0], [4.0, 2.0], [0.0, 2.0]]
>>> polygon_centroid(convex_hull_2d(pts)).tolist()
[2.0, 1.0]
"""

from __future__ import annotations

import numpy as np

from or_assist.errors import InputError

__all__ = ["convex_hull_2d", "polygon_area", "polygon_centroid", "polygon_contains"]

_CHUNK_ELEMENTS = 1 << 20   # points x edges per vectorised block


def _points(points, name: str, min_count: int = 1) -> np.ndarray:
    try:
        p = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("must be a numeric (N, 2) array", name) from None
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < min_count or not np.all(np.isfinite(p)):
        raise InputError(f"must be a finite (N >= {min_count}, 2) array, got shape {p.shape}", name)
    return p


def convex_hull_2d(points: np.ndarray) -> np.ndarray:
    """Convex hull by Andrew's monotone chain.

    Parameters
    ----------
    points : (N, 2) array_like
        N >= 1 finite points.

    Returns
    -------
    (K, 2) float64
        Hull vertices, counter-clockwise in (u, v) (positive :func:`polygon_area`),
        starting at the lowest-u (then lowest-v) point; collinear points dropped.
        Fewer than 3 vertices when all points are collinear.
    """
    p = _points(points, "points")
    p = np.unique(p, axis=0)          # sorted by u, then v
    if len(p) < 3:
        return p
    tol = 1e-12 * float(np.abs(p).max() + 1.0) ** 2

    def chain(seq: np.ndarray) -> list:
        out: list = []
        for q in seq:
            while len(out) >= 2:
                a, b = out[-2], out[-1]
                if (b[0] - a[0]) * (q[1] - a[1]) - (b[1] - a[1]) * (q[0] - a[0]) > tol:
                    break
                out.pop()
            out.append(q)
        return out

    lower = chain(p)
    upper = chain(p[::-1])
    return np.array(lower[:-1] + upper[:-1])


def polygon_area(polygon: np.ndarray) -> float:
    """Signed area (shoelace); positive for counter-clockwise vertices in (u, v)."""
    p = _points(polygon, "polygon")
    q = np.roll(p, -1, axis=0)
    return 0.5 * float(np.sum(p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]))


def polygon_centroid(polygon: np.ndarray) -> np.ndarray:
    """(2,) area centroid of a simple polygon (the vertex mean if its area is ~0)."""
    p = _points(polygon, "polygon")
    q = np.roll(p, -1, axis=0)
    cross = p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]
    area = 0.5 * cross.sum()
    if abs(area) <= 1e-12 * float(np.ptp(p, axis=0).max() + 1.0) ** 2:
        return p.mean(axis=0)
    return ((p + q) * cross[:, None]).sum(axis=0) / (6.0 * area)


def polygon_contains(points: np.ndarray, polygon: np.ndarray, margin_px: float = 0.0) -> np.ndarray:
    """Whether points lie inside a simple polygon dilated by ``margin_px``.

    Parameters
    ----------
    points : (N, 2) array_like
    polygon : (K, 2) array_like
        K >= 3 vertices in order, either orientation.
    margin_px : float
        >= 0: points within this distance of the boundary count as inside.

    Returns
    -------
    (N,) bool
        Inside by the even-odd rule, or within ``margin_px`` of an edge.
    """
    pts = _points(points, "points", 0)
    poly = _points(polygon, "polygon", 3)
    if not isinstance(margin_px, (int, float, np.floating)) or not margin_px >= 0:
        raise InputError(f"must be a number >= 0, got {margin_px!r}", "margin_px")
    out = np.zeros(len(pts), dtype=bool)
    lo = poly.min(axis=0) - margin_px
    hi = poly.max(axis=0) + margin_px
    near = np.flatnonzero(np.all((pts >= lo) & (pts <= hi), axis=1))    # the rest is outside
    chunk = max(1, _CHUNK_ELEMENTS // len(poly))
    for start in range(0, len(near), chunk):
        idx = near[start:start + chunk]
        out[idx] = _contains(pts[idx], poly, float(margin_px))
    return out


def _contains(pts: np.ndarray, poly: np.ndarray, margin_px: float) -> np.ndarray:
    a = poly[None, :, :]
    b = np.roll(poly, -1, axis=0)[None, :, :]
    x = pts[:, None, 0]
    y = pts[:, None, 1]
    crosses = (a[..., 1] > y) != (b[..., 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = a[..., 0] + (y - a[..., 1]) * (b[..., 0] - a[..., 0]) / (b[..., 1] - a[..., 1])
    inside = np.count_nonzero(crosses & (x < x_at), axis=1) % 2 == 1
    if margin_px > 0:
        ab = b - a
        len2 = np.maximum((ab ** 2).sum(axis=-1), 1e-300)
        t = np.clip(((pts[:, None, :] - a) * ab).sum(axis=-1) / len2, 0.0, 1.0)
        dist2 = ((a + t[..., None] * ab - pts[:, None, :]) ** 2).sum(axis=-1).min(axis=1)
        inside |= dist2 <= margin_px * margin_px
    return inside
