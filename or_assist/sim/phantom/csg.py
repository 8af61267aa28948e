"""Implicit shapes for the synthetic pelvis: signed distances, smooth unions, bounding boxes.

A shape is a signed distance field in LPS mm (negative inside) with an axis-aligned
bounding box outside which it is treated as empty (value :data:`BIG`). Composite shapes
evaluate each child only on the part of the grid inside the child's box, so a bone of
twenty primitives costs about as much as its largest part. The same code evaluates a
shape on a voxel grid (:class:`GridCtx`) or on a list of points (:class:`PointCtx`),
with the same bounding-box rule, so analytic landmarks agree with the voxels.

The distances are the usual cheap approximations (exact for spheres, capsules and
planes, close for ellipsoids and plates); they are used for inside/outside, cortical
shells of a few mm and partial-volume edges, where that is enough.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BIG",
    "GridCtx",
    "PointCtx",
    "Shape",
    "Ellipsoid",
    "Capsule",
    "RoundedCylinder",
    "HalfSpace",
    "Func",
    "Plate",
    "Offset",
    "Union",
    "Intersect",
    "Subtract",
    "evaluate",
    "frame_from_axis",
    "ellipse_sdf_2d",
]

BIG = np.float32(1.0e4)
_DEFAULT_MARGIN_MM = 12.0


# --------------------------------------------------------------------------- contexts


class GridCtx:
    """A rectilinear voxel grid: 1D coordinate arrays ``xs``, ``ys``, ``zs`` (mm).

    Values on it have shape ``(len(zs), len(ys), len(xs))`` (the (Z, Y, X) order of the
    volume).
    """

    def __init__(self, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray):
        self.xs = np.asarray(xs, np.float32)
        self.ys = np.asarray(ys, np.float32)
        self.zs = np.asarray(zs, np.float32)
        self.x = self.xs[None, None, :]
        self.y = self.ys[None, :, None]
        self.z = self.zs[:, None, None]
        self.shape = (self.zs.size, self.ys.size, self.xs.size)

    def sub(self, lo: np.ndarray, hi: np.ndarray):
        """The part inside the box ``[lo, hi]``: ``(index, GridCtx)`` or None if empty."""
        cuts = []
        for axis, arr in enumerate((self.xs, self.ys, self.zs)):
            i0 = int(np.searchsorted(arr, lo[axis], side="left"))
            i1 = int(np.searchsorted(arr, hi[axis], side="right"))
            if i1 <= i0:
                return None
            cuts.append(slice(i0, i1))
        sx, sy, sz = cuts
        return (sz, sy, sx), GridCtx(self.xs[sx], self.ys[sy], self.zs[sz])


class PointCtx:
    """A set of points, ``(N, 3)`` LPS mm; values on it have shape ``(N,)``."""

    def __init__(self, points_mm: np.ndarray):
        self.points = np.asarray(points_mm, np.float32).reshape(-1, 3)
        self.x, self.y, self.z = self.points[:, 0], self.points[:, 1], self.points[:, 2]
        self.shape = (self.points.shape[0],)

    def sub(self, lo: np.ndarray, hi: np.ndarray):
        """The points inside the box ``[lo, hi]``: ``(index, PointCtx)`` or None if none."""
        inside = np.all((self.points >= lo) & (self.points <= hi), axis=1)
        idx = np.nonzero(inside)[0]
        if idx.size == 0:
            return None
        return idx, PointCtx(self.points[idx])


# --------------------------------------------------------------------------- helpers


def frame_from_axis(axis, hint=(1.0, 0.0, 0.0)) -> np.ndarray:
    """Rows ``(u, v, w)``: an orthonormal frame with ``w`` along ``axis``, ``u`` near ``hint``."""
    w = np.asarray(axis, np.float64)
    w = w / np.linalg.norm(w)
    u = np.asarray(hint, np.float64)
    u = u - (u @ w) * w
    u = u / np.linalg.norm(u)
    v = np.cross(w, u)
    return np.vstack([u, v, w])


def _local(ctx, centre, rows) -> list:
    """Coordinates of the context's points in the frame ``rows`` centred at ``centre``."""
    dx = ctx.x - np.float32(centre[0])
    dy = ctx.y - np.float32(centre[1])
    dz = ctx.z - np.float32(centre[2])
    out = []
    for r in np.asarray(rows, np.float32):
        terms = [c * d for c, d in zip(r, (dx, dy, dz)) if c != 0.0]
        acc = terms[0]
        for t in terms[1:]:
            acc = acc + t
        out.append(acc)
    return out


def ellipse_sdf_2d(u, v, a, b):
    """Approximate signed distance to the ellipse ``(u/a)^2 + (v/b)^2 = 1`` (a, b may be arrays)."""
    k0 = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    k1 = np.sqrt((u / (a * a)) ** 2 + (v / (b * b)) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


def _smin(a, b, k: float):
    if k <= 0:
        return np.minimum(a, b)
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * (k * 0.25)


def _smax(a, b, k: float):
    return -_smin(-a, -b, k)


# --------------------------------------------------------------------------- shapes


class Shape:
    """Base class: a signed distance (mm, < 0 inside) with a bounding box ``lo``, ``hi``."""

    lo: np.ndarray
    hi: np.ndarray

    def eval(self, ctx):  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, points_mm) -> np.ndarray:
        """Signed distance at ``points_mm`` ((N, 3) LPS mm), :data:`BIG` outside the box."""
        return evaluate(self, PointCtx(points_mm))


def evaluate(shape: Shape, ctx) -> np.ndarray:
    """``shape`` on ``ctx`` with :data:`BIG` outside its bounding box (float32)."""
    out = np.full(ctx.shape, BIG, np.float32)
    found = ctx.sub(shape.lo, shape.hi)
    if found is not None:
        idx, sub = found
        out[idx] = shape.eval(sub)
    return out


def _box(centre, half, margin):
    c = np.asarray(centre, np.float64)
    h = np.asarray(half, np.float64) + margin
    return (c - h).astype(np.float32), (c + h).astype(np.float32)


class Ellipsoid(Shape):
    """Ellipsoid with semi-axes ``radii`` along the rows of ``rows`` (default: x, y, z)."""

    def __init__(self, centre, radii, rows=None, margin: float = _DEFAULT_MARGIN_MM):
        self.centre = np.asarray(centre, np.float64)
        self.radii = np.asarray(radii, np.float64)
        self.rows = np.eye(3) if rows is None else np.asarray(rows, np.float64)
        half = np.abs(self.rows.T) @ self.radii
        self.lo, self.hi = _box(self.centre, half, margin)

    def eval(self, ctx):
        u = _local(ctx, self.centre, self.rows)
        r = self.radii.astype(np.float32)
        k0 = np.sqrt((u[0] / r[0]) ** 2 + (u[1] / r[1]) ** 2 + (u[2] / r[2]) ** 2)
        k1 = np.sqrt((u[0] / r[0] ** 2) ** 2 + (u[1] / r[1] ** 2) ** 2 + (u[2] / r[2] ** 2) ** 2)
        return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


class Capsule(Shape):
    """A tube from ``a`` to ``b`` with radius going linearly from ``ra`` to ``rb``, round ends."""

    def __init__(self, a, b, ra: float, rb: float | None = None, margin: float = _DEFAULT_MARGIN_MM):
        self.a = np.asarray(a, np.float64)
        self.b = np.asarray(b, np.float64)
        self.ra = float(ra)
        self.rb = float(ra if rb is None else rb)
        r = max(self.ra, self.rb) + margin
        self.lo = (np.minimum(self.a, self.b) - r).astype(np.float32)
        self.hi = (np.maximum(self.a, self.b) + r).astype(np.float32)

    def eval(self, ctx):
        ba = (self.b - self.a).astype(np.float32)
        px, py, pz = ctx.x - np.float32(self.a[0]), ctx.y - np.float32(self.a[1]), ctx.z - np.float32(self.a[2])
        h = np.clip((px * ba[0] + py * ba[1] + pz * ba[2]) / np.float32(ba @ ba), 0.0, 1.0)
        dist = np.sqrt((px - ba[0] * h) ** 2 + (py - ba[1] * h) ** 2 + (pz - ba[2] * h) ** 2)
        return dist - (np.float32(self.ra) + np.float32(self.rb - self.ra) * h)


class RoundedCylinder(Shape):
    """An elliptic cylinder with rounded edges (a vertebral body).

    Parameters
    ----------
    centre : (3,)
    rows : (3, 3)
        Local axes as rows: lateral, anterior, axial.
    half_width, half_depth_anterior, half_depth_posterior, half_height : float
        Semi-axes in mm (the depth may differ in front of and behind the centre).
    rounding : float
        Edge radius in mm.
    """

    def __init__(self, centre, rows, half_width, half_depth_anterior, half_depth_posterior,
                 half_height, rounding=3.0, margin: float = _DEFAULT_MARGIN_MM):
        self.centre = np.asarray(centre, np.float64)
        self.rows = np.asarray(rows, np.float64)
        self.wx, self.wa, self.wp = float(half_width), float(half_depth_anterior), float(half_depth_posterior)
        self.hh, self.rr = float(half_height), float(rounding)
        half = np.abs(self.rows.T) @ np.array([self.wx, max(self.wa, self.wp), self.hh])
        self.lo, self.hi = _box(self.centre, half, margin)

    def eval(self, ctx):
        u, v, w = _local(ctx, self.centre, self.rows)
        rr = np.float32(self.rr)
        depth = np.where(v >= 0, np.float32(self.wa - self.rr), np.float32(self.wp - self.rr))
        d2 = ellipse_sdf_2d(u, v, np.float32(self.wx - self.rr), depth)
        dw = np.abs(w) - np.float32(self.hh - self.rr)
        outside = np.sqrt(np.maximum(d2, 0.0) ** 2 + np.maximum(dw, 0.0) ** 2)
        return outside + np.minimum(np.maximum(d2, dw), 0.0) - rr


class HalfSpace(Shape):
    """``normal . (p - point) <= 0`` (``normal`` need not be unit; it is normalised)."""

    def __init__(self, point, normal, lo=None, hi=None):
        self.point = np.asarray(point, np.float64)
        n = np.asarray(normal, np.float64)
        self.normal = n / np.linalg.norm(n)
        self.lo = np.full(3, -1e6, np.float32) if lo is None else np.asarray(lo, np.float32)
        self.hi = np.full(3, 1e6, np.float32) if hi is None else np.asarray(hi, np.float32)

    def eval(self, ctx):
        (d,) = _local(ctx, self.point, self.normal[None, :])
        return d


class Func(Shape):
    """A shape given by a function ``f(x, y, z) -> sdf`` of broadcastable float32 arrays."""

    def __init__(self, fn, lo, hi):
        self.fn = fn
        self.lo = np.asarray(lo, np.float32)
        self.hi = np.asarray(hi, np.float32)

    def eval(self, ctx):
        return np.broadcast_to(self.fn(ctx.x, ctx.y, ctx.z), ctx.shape).astype(np.float32, copy=False)


class Offset(Shape):
    """``shape`` grown by ``grow_mm`` (negative: shrunk)."""

    def __init__(self, shape: Shape, grow_mm: float):
        self.shape = shape
        self.grow = float(grow_mm)
        self.lo = (shape.lo - max(self.grow, 0.0)).astype(np.float32)
        self.hi = (shape.hi + max(self.grow, 0.0)).astype(np.float32)

    def eval(self, ctx):
        return evaluate(self.shape, ctx) - np.float32(self.grow)


class Union(Shape):
    """Union of ``children`` (smooth with blend radius ``k`` mm when ``k > 0``)."""

    def __init__(self, children, k: float = 0.0):
        self.children = list(children)
        self.k = float(k)
        self.lo = np.min([c.lo for c in self.children], axis=0)
        self.hi = np.max([c.hi for c in self.children], axis=0)

    def eval(self, ctx):
        out = np.full(ctx.shape, BIG, np.float32)
        for child in self.children:
            found = ctx.sub(child.lo, child.hi)
            if found is None:
                continue
            idx, sub = found
            out[idx] = _smin(out[idx], child.eval(sub), self.k)
        return out


class Intersect(Shape):
    """Intersection of ``children`` (smooth when ``k > 0``); box = the first child's box."""

    def __init__(self, children, k: float = 0.0):
        self.children = list(children)
        self.k = float(k)
        self.lo = np.max([c.lo for c in self.children], axis=0)
        self.hi = np.min([c.hi for c in self.children], axis=0)

    def eval(self, ctx):
        out = evaluate(self.children[0], ctx)
        for child in self.children[1:]:
            out = _smax(out, evaluate(child, ctx), self.k)
        return out


class Subtract(Shape):
    """``base`` minus the union of ``cuts``."""

    def __init__(self, base: Shape, cuts, k: float = 0.0):
        self.base = base
        self.cuts = list(cuts)
        self.k = float(k)
        self.lo, self.hi = base.lo, base.hi

    def eval(self, ctx):
        out = evaluate(self.base, ctx)
        for cut in self.cuts:
            found = ctx.sub(cut.lo, cut.hi)
            if found is None:
                continue
            idx, sub = found
            out[idx] = _smax(out[idx], -cut.eval(sub), self.k)
        return out


class Plate(Shape):
    """A curved plate of varying thickness with rounded rims (an iliac wing).

    In the frame ``rows`` = (U, V, N) at ``origin`` a point has coordinates (u, v, w). Three
    maps sampled on a regular (u, v) raster (origin ``uv0``, step ``step_mm``, shape
    (nv, nu)) give the mid-surface offset ``mid`` (w of the plate's middle), the half
    thickness ``half`` and the outline's signed distance ``outline`` (< 0 inside, in the
    (u, v) plane). The plate is the sweep of spheres of radius ``half`` over the
    mid-surface shrunk by ``half``: ``sqrt((w - mid)^2 + max(outline + half, 0)^2) - half``.
    """

    def __init__(self, origin, rows, uv0, step_mm: float, mid, half, outline,
                 margin: float = _DEFAULT_MARGIN_MM):
        self.origin = np.asarray(origin, np.float64)
        self.rows = np.asarray(rows, np.float64)
        self.uv0 = np.asarray(uv0, np.float64)
        self.step = float(step_mm)
        self.maps = np.stack([mid, half, outline], axis=-1).astype(np.float32)
        nv, nu = self.maps.shape[:2]
        inside = outline < 0
        w_lo = float(np.min((mid - half)[inside]))
        w_hi = float(np.max((mid + half)[inside]))
        vv, uu = np.nonzero(inside)
        u_lo, u_hi = self.uv0[0] + self.step * uu.min(), self.uv0[0] + self.step * uu.max()
        v_lo, v_hi = self.uv0[1] + self.step * vv.min(), self.uv0[1] + self.step * vv.max()
        corners = np.array([[u, v, w] for u in (u_lo, u_hi) for v in (v_lo, v_hi) for w in (w_lo, w_hi)])
        world = self.origin + corners @ self.rows
        self.lo = (world.min(axis=0) - margin).astype(np.float32)
        self.hi = (world.max(axis=0) + margin).astype(np.float32)

    def eval(self, ctx):
        u, v, w = _local(ctx, self.origin, self.rows)
        nv, nu = self.maps.shape[:2]
        fu = np.clip((u - np.float32(self.uv0[0])) / np.float32(self.step), 0.0, nu - 1.001)
        fv = np.clip((v - np.float32(self.uv0[1])) / np.float32(self.step), 0.0, nv - 1.001)
        iu = fu.astype(np.int32)
        iv = fv.astype(np.int32)
        tu = (fu - iu)[..., None]
        tv = (fv - iv)[..., None]
        flat = self.maps.reshape(-1, 3)
        k = iv * nu + iu
        m = (flat[k] * (1 - tu) + flat[k + 1] * tu) * (1 - tv) + (flat[k + nu] * (1 - tu) + flat[k + nu + 1] * tu) * tv
        mid, half, outline = m[..., 0], m[..., 1], m[..., 2]
        return np.sqrt((w - mid) ** 2 + np.maximum(outline + half, 0.0) ** 2) - half
