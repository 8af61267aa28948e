"""DRR ray-casting kernels: a parallel numba kernel and the plain reference it must match.

Both work in *continuous voxel index space* of the attenuation volume: index (i, j, k)
(i along the array's last axis) with integer values at voxel centres. A ray is
``p(t) = source_idx + t * dir_idx`` with ``t`` in mm along the ray (``dir_idx`` is the
index-space image of a unit LPS direction), so any direction matrix works.

Sampling scheme (shared by both, so they agree to float rounding):

* The ray is clipped to the volume box ``[-0.5, n - 0.5]`` per axis (the outer faces of
  the edge voxels), giving ``[t0, t1]`` mm; rays that miss give 0.
* ``N = ceil((t1 - t0) / step_mm)`` samples at the midpoints
  ``t0 + (k + 0.5) * ds`` with ``ds = (t1 - t0) / N <= step_mm`` (the midpoint rule
  over exactly the clipped segment, so a uniform volume is integrated exactly).
* Each sample is trilinearly interpolated with clamped edges (the edge voxel's value out
  to the box face); the line integral is ``ds * sum``.

The numba kernel reads a *cropped, padded* copy of the volume: the bounding box of the
non-zero voxels dilated by one voxel, then padded by one voxel of edge replication (so
no clamping is needed in the inner loop). Samples outside the cropped box are exactly
zero in the full volume, so the kernel only visits the sample indices ``k`` inside it;
the sample positions are still those of the full box, so the result is the same sum.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["render_rays", "row_stride", "reference_line_integrals", "clip_ray_to_box", "warm_up"]

_BIG = 1.0e30


@numba.njit(parallel=True, fastmath=True, cache=True, nogil=True)
def render_rays(vol, dims, offset, src, basis, xn, yn, box_lo, box_hi, crop_lo, crop_hi,
                step_mm, row_stride, active, out, stats):
    """Line integrals of every detector pixel (parallel over image rows).

    Parameters
    ----------
    vol : (Zp * Yp * Xp,) float32, C order
        The cropped volume padded by one voxel of edge replication, flattened; mm^-1.
    dims : (3,) int64
        ``(Xp, Yp, Zp)`` of the padded crop.
    offset : (3,) float64
        Added to a full-volume index (i, j, k) to get the padded-crop index.
    src : (3,) float64
        Source position in full-volume index coordinates.
    basis : (3, 3) float64
        Maps a source-frame direction ``(x, y, z)`` (mm) to index units per mm:
        ``inverse(direction @ diag(spacing)) @ R^T``.
    xn, yn : (H, W) float64
        Undistorted normalised image coordinates of each pixel's ray
        (the ray in the source frame is ``(xn, yn, 1)``).
    box_lo, box_hi : (3,) float64
        The full volume box in index coordinates (``-0.5`` and ``n - 0.5``).
    crop_lo, crop_hi : (3,) float64
        The cropped box in full-volume index coordinates (empty when ``lo > hi``).
    step_mm : float
        Largest sample spacing along the ray, mm.
    row_stride : int
        Coprime to H: the rows are visited in the order ``(n * row_stride) % H`` so that
        each thread's share of ``prange`` is spread over the image (load balance when
        part of the image misses the volume).
    active : (H, W) uint8 or (1, 1) uint8
        Rays to cast (non-zero); the others give 0 and are not counted. A (1, 1) array
        casts every ray.
    out : (H, W) float32
        Receives the line integrals (dimensionless).
    stats : (H, 2) int64
        Per row: number of rays that hit the volume box, number of samples taken.
    """
    h, w = out.shape
    nx = np.uint32(dims[0])
    nxy = np.uint32(dims[0] * dims[1])
    every = active.shape[0] == 1 and active.shape[1] == 1
    for rr in numba.prange(h):
        r = (rr * row_stride) % h
        hits = 0
        samples = 0
        for c in range(w):
            out[r, c] = 0.0
            if not every and active[r, c] == 0:
                continue
            a = xn[r, c]
            b = yn[r, c]
            inv = 1.0 / math.sqrt(a * a + b * b + 1.0)
            d0 = (basis[0, 0] * a + basis[0, 1] * b + basis[0, 2]) * inv
            d1 = (basis[1, 0] * a + basis[1, 1] * b + basis[1, 2]) * inv
            d2 = (basis[2, 0] * a + basis[2, 1] * b + basis[2, 2]) * inv
            t0, t1 = _clip(src, d0, d1, d2, box_lo, box_hi)
            if not t1 > t0:
                continue
            hits += 1
            c0, c1 = _clip(src, d0, d1, d2, crop_lo, crop_hi)
            if not c1 > c0:
                continue
            length = t1 - t0
            n = int(math.ceil(length / step_mm))
            n = max(n, 1)
            ds = length / n
            k_lo = max(0, int(math.ceil((c0 - t0) / ds - 0.5)))
            k_hi = min(n, int(math.floor((c1 - t0) / ds - 0.5)) + 1)
            if k_hi <= k_lo:
                continue
            samples += k_hi - k_lo
            tt = t0 + (k_lo + 0.5) * ds
            px = np.float32(src[0] + offset[0] + d0 * tt)
            py = np.float32(src[1] + offset[1] + d1 * tt)
            pz = np.float32(src[2] + offset[2] + d2 * tt)
            qx = np.float32(d0 * ds)
            qy = np.float32(d1 * ds)
            qz = np.float32(d2 * ds)
            acc = np.float32(0.0)
            for k in range(k_hi - k_lo):
                kf = np.float32(k)
                x = px + kf * qx
                y = py + kf * qy
                z = pz + kf * qz
                ix = np.uint32(x)
                iy = np.uint32(y)
                iz = np.uint32(z)
                fx = x - np.float32(ix)
                fy = y - np.float32(iy)
                fz = z - np.float32(iz)
                i000 = (iz * np.uint32(dims[1]) + iy) * nx + ix
                i010 = i000 + nx
                i100 = i000 + nxy
                i110 = i100 + nx
                v000 = vol[i000]
                v001 = vol[i000 + 1]
                v010 = vol[i010]
                v011 = vol[i010 + 1]
                v100 = vol[i100]
                v101 = vol[i100 + 1]
                v110 = vol[i110]
                v111 = vol[i110 + 1]
                v00 = v000 + fx * (v001 - v000)
                v01 = v010 + fx * (v011 - v010)
                v10 = v100 + fx * (v101 - v100)
                v11 = v110 + fx * (v111 - v110)
                v0 = v00 + fy * (v01 - v00)
                v1 = v10 + fy * (v11 - v10)
                acc += v0 + fz * (v1 - v0)
            out[r, c] = acc * np.float32(ds)
        stats[r, 0] = hits
        stats[r, 1] = samples


@numba.njit(fastmath=False, cache=True, inline="always")
def _clip(src, d0, d1, d2, lo, hi):
    """Slab clip of ``src + t d`` against the box ``[lo, hi]``; returns ``(t0, t1)``."""
    t0 = -_BIG
    t1 = _BIG
    for ax in range(3):
        d = d0 if ax == 0 else (d1 if ax == 1 else d2)
        o = src[ax]
        if d != 0.0:
            ta = (lo[ax] - o) / d
            tb = (hi[ax] - o) / d
            if ta > tb:
                ta, tb = tb, ta
            t0 = max(t0, ta)
            t1 = min(t1, tb)
        elif o < lo[ax] or o > hi[ax]:
            t1 = -_BIG
    return t0, t1


def warm_up() -> None:
    """Compile (or load from numba's cache) :func:`render_rays` with its real types."""
    vol = np.zeros(27, np.float32)
    dims = np.array([3, 3, 3], np.int64)
    lo = np.full(3, -0.5)
    hi = np.full(3, 0.5)
    render_rays(vol, dims, np.ones(3), np.array([0.0, 0.0, -5.0]), np.eye(3), np.zeros((1, 1)),
                np.zeros((1, 1)), lo, hi, lo, hi, 0.5, 1, np.ones((1, 1), np.uint8), np.zeros((1, 1), np.float32),
                np.zeros((1, 2), np.int64))


def row_stride(height: int) -> int:
    """A stride coprime to ``height`` near ``0.618 * height`` (see :func:`render_rays`)."""
    s = max(1, round(0.618 * height))
    while math.gcd(s, height) != 1:
        s += 1
    return s


# --------------------------------------------------------------------------- reference


def clip_ray_to_box(origin: np.ndarray, direction: np.ndarray, lo: np.ndarray,
                    hi: np.ndarray) -> tuple[float, float]:
    """Parameter interval ``[t0, t1]`` where ``origin + t * direction`` is inside a box.

    Parameters
    ----------
    origin, direction : (3,) float64
    lo, hi : (3,) float64
        Box corners, per axis.

    Returns
    -------
    (float, float)
        ``t1 <= t0`` when the line misses the box.
    """
    t0, t1 = -np.inf, np.inf
    for ax in range(3):
        if direction[ax] == 0.0:
            if not lo[ax] <= origin[ax] <= hi[ax]:
                return 0.0, -1.0
            continue
        ta = (lo[ax] - origin[ax]) / direction[ax]
        tb = (hi[ax] - origin[ax]) / direction[ax]
        t0 = max(t0, min(ta, tb))
        t1 = min(t1, max(ta, tb))
    return float(t0), float(t1)


def _trilinear_clamped(mu: np.ndarray, pts_ijk: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of ``mu`` (Z, Y, X) at (N, 3) index points (i, j, k)."""
    n_ijk = np.array(mu.shape[::-1])
    p = np.clip(pts_ijk, 0.0, n_ijk - 1.0)
    i0 = np.minimum(np.floor(p).astype(np.int64), n_ijk - 1)
    f = p - i0
    i1 = np.minimum(i0 + 1, n_ijk - 1)
    result = np.zeros(len(p))
    for ci in (0, 1):
        wi = f[:, 0] if ci else 1.0 - f[:, 0]
        ii = i1[:, 0] if ci else i0[:, 0]
        for cj in (0, 1):
            wj = f[:, 1] if cj else 1.0 - f[:, 1]
            jj = i1[:, 1] if cj else i0[:, 1]
            for ck in (0, 1):
                wk = f[:, 2] if ck else 1.0 - f[:, 2]
                kk = i1[:, 2] if ck else i0[:, 2]
                result += wi * wj * wk * mu[kk, jj, ii]
    return result


def reference_line_integrals(mu: np.ndarray, source_ijk: np.ndarray, directions_ijk: np.ndarray,
                             step_mm: float) -> np.ndarray:
    """Plain, slow line integrals with the sampling scheme of the module docstring.

    Parameters
    ----------
    mu : (Z, Y, X) array
        Attenuation, mm^-1 (the full volume; no cropping).
    source_ijk : (3,) float64
        Ray origin in continuous index coordinates.
    directions_ijk : (N, 3) float64
        Index-space image of each ray's unit LPS direction (index units per mm).
    step_mm : float
        Largest sample spacing, mm.

    Returns
    -------
    (N,) float64
        Line integrals ``sum(mu * ds)``; 0 where a ray misses the volume box.
    """
    mu = np.asarray(mu, dtype=np.float64)
    n_ijk = np.array(mu.shape[::-1], dtype=np.float64)
    lo, hi = np.full(3, -0.5), n_ijk - 0.5
    out = np.zeros(len(directions_ijk))
    for r, d in enumerate(directions_ijk):
        t0, t1 = clip_ray_to_box(source_ijk, d, lo, hi)
        if not t1 > t0:
            continue
        n = max(1, math.ceil((t1 - t0) / step_mm))
        ds = (t1 - t0) / n
        t = t0 + (np.arange(n) + 0.5) * ds
        pts = source_ijk[None, :] + t[:, None] * d[None, :]
        out[r] = ds * _trilinear_clamped(mu, pts).sum()
    return out
