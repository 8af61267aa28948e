"""Sub-voxel fit of a triangular implant to its metal in a post-op CT.

At 3 mm voxels a 7 mm implant is two or three voxels wide and titanium saturates the
scale (3071 HU), so the metal is nearly binary and its principal axis is only good to
about 1-2 degrees. The grey levels at the edges, where the metal fraction of a voxel is
small enough not to saturate, carry the sub-voxel information; this module fits a model
of the whole implant to them.

Model, per voxel of a box around the implant (the physics of a CT voxel)::

    HU(x) = min(pre(x) + f(x) * (M - pre(x)), hu_max)

``pre`` is the registered pre-op CT (the tissue the metal displaced), ``f`` the voxel's
metal fraction (partial volume: the share of ``supersample**3`` sub-voxel points inside
the implant, each with a soft 0.1-voxel edge so the model is smooth in the pose) blurred
by the scanner (a 3-tap kernel per axis, variance fitted), ``M`` the metal's HU before
clipping (fitted) and ``hu_max`` the scanner's maximum (3071 on a standard scale). The
implant is the catalogue item's triangular prism with its tapered tip (seven face
planes). The fit varies the apex (3), the axis direction (2), the roll about the axis
(1), ``M`` and the blur by ``scipy.optimize.least_squares`` (trust-region reflective,
the blur variance bounded to the kernel's range) on forward-difference derivatives;
voxels of other metal objects are left out.

Implants as they are (issue 19): a **cannulated** implant (a central channel for the
guide pin) is the prism less a coaxial cylinder (``channel_mm``; where the metal is dim
enough not to saturate, a solid model fills the channel by dimming ``M`` and tilts the
axis up to 3-4 degrees); a **porous coating** makes the metal look larger, taken up by an
optional outward growth of the three side faces (``fit_grow``, bounded to -0.5..2 mm);
**fenestrations** (holes through the walls, their pattern unknown to the fit) and the
coating's roughness are voxels the model cannot describe, so the residuals count
quadratically only up to 200 HU and linearly beyond (Huber loss). The choice between a
solid and a cannulated model is made by the caller (:func:`or_assist.postop.match.locate_implants`
fits both, the smaller residual wins). The library solver replaced our own
Levenberg-Marquardt loop (issue 18): on held-out synthetic cases (seeds 1 and 2, 24
implants) it is as accurate or better (apex error max 0.23 vs 0.58 mm and 0.086 vs 0.108
mm, medians equal within 0.005 mm; axis error medians and maxima within 0.02 deg) in the
same time (1.44 vs 1.57 and 1.89 vs 1.85 s per case); see
docs/library_comparison_libmetal.md. The metal fraction, evaluated 80-150 times per fit,
is a numba kernel (:mod:`or_assist.postop._prism_kernel`, 9x faster than the numpy
reference it is tested against), which brought a 0.5 mm-grid case from 33 to 13-15 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scipy.ndimage import correlate1d
from scipy.optimize import least_squares

from or_assist.core.catalogue import CatalogueItem
from or_assist.core.pose import rotation_about_axis
from or_assist.errors import InputError

__all__ = ["PrismFit", "prism_planes", "fit_prism", "roll_about_axis_rad"]

#: Residuals beyond this (HU) count linearly, not squared (Huber loss): voxels the model
#: cannot describe (fenestrations, a rough coating, streaks) pull the fit less.
_HUBER_HU = 200.0
#: Bounds of the fitted growth of the side faces (a porous coating), mm.
_GROW_RANGE_MM = (-0.5, 2.0)
#: Upper bound of the fitted log blur variance (voxels^2): the 3-tap kernel's largest.
_LOG_VAR_MAX = float(np.log(0.5))


@dataclass
class PrismFit:
    """Result of :func:`fit_prism` (CT frame, LPS mm).

    Attributes
    ----------
    apex_lps_mm, entry_lps_mm, axis_unit : (3,) float64
        Entry = apex - catalogue length * axis.
    roll_deg : float
        Angle of the first triangle vertex about the axis from an arbitrary reference.
    metal_hu, blur_mm : float
        Fitted metal HU ``M`` (before clipping) and blur sigma.
    rms_hu : float
        Residual RMS over the fitted voxels (HU).
    iterations : int
        Solver iterations (Jacobian evaluations).
    grow_mm : float
        Fitted outward growth of the side faces (a porous coating), mm; 0 when not fitted.
    channel_mm : float
        The central channel's diameter the model had (0: solid), mm.
    """

    apex_lps_mm: np.ndarray
    entry_lps_mm: np.ndarray
    axis_unit: np.ndarray
    roll_deg: float
    metal_hu: float
    blur_mm: float
    rms_hu: float
    iterations: int
    grow_mm: float = 0.0
    channel_mm: float = 0.0


def _frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.array([0.0, 1.0, 0.0]) if abs(axis[1]) <= 0.9 else np.array([0.0, 0.0, 1.0])
    u = ref - axis * (ref @ axis)
    u /= np.linalg.norm(u)
    return u, np.cross(axis, u)


def roll_about_axis_rad(axis_unit, vertex_direction) -> float:
    """The roll (radians) that puts the first triangle vertex of :func:`prism_planes` along
    ``vertex_direction`` (projected perpendicular to the axis)."""
    axis = np.asarray(axis_unit, dtype=np.float64)
    u, v = _frame(axis / np.linalg.norm(axis))
    d = np.asarray(vertex_direction, dtype=np.float64)
    return float(np.arctan2(d @ v, d @ u))


def prism_planes(apex: np.ndarray, axis: np.ndarray, roll_rad: float, item: CatalogueItem,
                 length_mm: float | None = None, grow_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Outward unit normals (7, 3) and offsets (7,) of the implant's faces: ``n . x <= d`` inside.

    ``grow_mm`` moves the three side faces outwards (a coating; the tip keeps its apex
    and taper length, the entry face stays)."""
    length = float(item.length_mm if length_mm is None else length_mm)
    r_out = float(item.circumradius_mm)
    r_in = 0.5 * r_out + float(grow_mm)
    taper = min(float(item.tip_taper_mm), 0.5 * length)
    u, v = _frame(axis)
    ang = roll_rad + np.array([0.0, 2.0, 4.0]) * np.pi / 3.0
    vert = np.cos(ang)[:, None] * u + np.sin(ang)[:, None] * v            # (3, 3) vertex directions
    face = -vert                                                          # side-face normals (opposite vertices)
    entry = apex - length * axis
    shoulder = apex - taper * axis
    normals = [face[k] for k in range(3)]
    offsets = [float(face[k] @ shoulder) + r_in for k in range(3)]
    normals.append(-axis)
    offsets.append(float(-axis @ entry))
    if taper > 0:
        for k in range(3):
            n = r_in * axis + taper * face[k]
            n /= np.linalg.norm(n)
            normals.append(n)
            offsets.append(float(n @ apex))
    return np.asarray(normals), np.asarray(offsets)


def _unpack(p: np.ndarray, axis0: np.ndarray):
    e1, e2 = _frame(axis0)
    axis = rotation_about_axis(e2, p[4]) @ (rotation_about_axis(e1, p[3]) @ axis0)
    return p[:3], axis / np.linalg.norm(axis), p[5], float(np.exp(p[6])), float(np.exp(p[7])), \
        (float(p[8]) if len(p) > 8 else 0.0)


def _blur3(a: np.ndarray, var_vox: float) -> np.ndarray:
    """Separable 3-tap blur [c, 1 - 2c, c] per axis, variance ``2 c`` voxels^2 (c <= 0.25).

    ``scipy.ndimage.correlate1d`` (edge voxels repeated): the same values as our earlier
    pad-and-shift loop (largest difference 0 on a 20x16x24 box) in half the time
    (71 vs 142 us; ``benchmarks/library_libmetal.py``, docs/library_comparison_libmetal.md).
    """
    c = min(0.5 * var_vox, 0.25)
    out = np.asarray(a, dtype=np.float64)
    for ax in range(out.ndim):
        out = correlate1d(out, [c, 1.0 - 2.0 * c, c], axis=ax, mode="nearest")
    return out


class _Grid:
    """Voxel centres of a box and their sub-voxel offsets, for the fraction model."""

    def __init__(self, centres: np.ndarray, shape: tuple, index_to_lps: np.ndarray, supersample):
        self.centres = centres                                  # (N, 3) LPS, N = prod(shape)
        self.shape = shape
        s = np.broadcast_to(np.asarray(supersample, dtype=int), (3,))     # per index axis (i, j, k)
        offs = [(np.arange(n) + 0.5) / n - 0.5 for n in s]
        sub = np.stack(np.meshgrid(*offs, indexing="ij"), axis=-1).reshape(-1, 3)
        self.sub = sub @ index_to_lps.T                         # (s_i s_j s_k, 3) LPS offsets
        self.reach = 0.5 * np.abs(index_to_lps).sum(axis=1).max() * 1.8   # > half voxel diagonal
        self.soft = 0.35 * float((np.linalg.norm(index_to_lps, axis=0) / s).min())

    def fraction(self, normals: np.ndarray, offsets: np.ndarray, channel=None) -> np.ndarray:
        """Metal fraction per voxel; ``channel`` = (point on the axis, axis unit, radius mm) or None.

        The numba kernel (:func:`or_assist.postop._prism_kernel.metal_fraction`, one thread,
        about 9x faster); :meth:`fraction_reference` is the numpy original it matches."""
        from or_assist.postop._prism_kernel import metal_fraction

        return metal_fraction(self.centres, normals, offsets, self.sub, self.reach, self.soft,
                              channel).reshape(self.shape)

    def fraction_reference(self, normals: np.ndarray, offsets: np.ndarray, channel=None) -> np.ndarray:
        """:meth:`fraction` in numpy (the reference the kernel is tested against)."""
        sd = self._signed(self.centres, normals, offsets, channel)
        frac = (sd < 0).astype(np.float64)
        edge = np.flatnonzero(np.abs(sd) < self.reach)
        if edge.size:
            pts = self.centres[edge, None, :] + self.sub[None, :, :]
            sds = self._signed(pts, normals, offsets, channel)
            frac[edge] = (0.5 * (1.0 - np.tanh(0.5 * sds / self.soft))).mean(axis=1)
        return frac.reshape(self.shape)

    @staticmethod
    def _signed(pts: np.ndarray, normals: np.ndarray, offsets: np.ndarray, channel) -> np.ndarray:
        """Signed distance-like value, < 0 inside the metal: the prism less a coaxial cylinder."""
        sd = (pts @ normals.T - offsets).max(axis=-1)
        if channel is not None:
            point, axis, radius = channel
            d = pts - point
            radial = np.sqrt(np.maximum(np.einsum("...i,...i->...", d, d) - (d @ axis) ** 2, 0.0))
            sd = np.maximum(sd, radius - radial)
        return sd


def fit_prism(box, preop_hu: np.ndarray, use: np.ndarray, item: CatalogueItem, apex0_lps_mm, axis0_unit, *,
              hu_max: float, roll0_rad: float = 0.0, metal0_hu: float = 8000.0, blur0_var_vox: float = 0.05,
              supersample=5, iterations: int = 30, channel_mm: float = 0.0, fit_grow: bool = False,
              grow0_mm: float = 0.0) -> PrismFit:
    """Fit the implant model (module doc) to the post-op voxels of a box around it.

    Parameters
    ----------
    box : CTVolume
        The post-op CT cropped around one implant (a few voxels of margin).
    preop_hu : (Z, Y, X) array
        The registered pre-op CT resampled on the box's grid (the tissue before the metal).
    use : (Z, Y, X) bool array
        Voxels to fit (leave out other metal objects and their surroundings).
    item : CatalogueItem
        The implant size (length, triangle, taper).
    apex0_lps_mm, axis0_unit : (3,) array_like
        Start (e.g. :func:`or_assist.postop.segment.fit_implant`); axis entry -> apex.
    hu_max : float
        The scanner's maximum (the largest value in the post-op CT).
    roll0_rad, metal0_hu, blur0_var_vox : float
        Starting roll (about the axis, from the reference of :func:`prism_planes`),
        metal HU ``M`` and blur variance (voxels^2).
    supersample : int or (3,) ints
        Sub-voxel points per axis for the partial volume (one per index axis i, j, k
        for anisotropic voxels, e.g. 2 x 2 x 5 on 0.8 x 0.8 x 3 mm).
    iterations : int
        Model evaluations at most (``max_nfev`` of ``scipy.optimize.least_squares``;
        the Jacobian's evaluations are not counted).
    channel_mm : float
        Diameter of a central channel along the whole implant (a cannulated implant,
        placed over the guide pin), mm; 0: solid. The model's metal is then the prism
        less a coaxial cylinder of this diameter (module doc).
    fit_grow : bool
        Also fit an outward growth of the side faces (a porous coating; module doc),
        starting at ``grow0_mm``; else the catalogue's triangle as it is.
    grow0_mm : float
        Starting growth, mm (clipped to -0.5..2 mm).

    Returns
    -------
    PrismFit
    """
    shape = box.hu.shape
    kk, jj, ii = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    centres = box.index_to_lps(np.column_stack([ii.ravel(), jj.ravel(), kk.ravel()]))
    grid = _Grid(centres, shape, box.direction * box.spacing_mm[None, :], supersample)
    post = box.hu.astype(np.float64)[use]
    pre = np.asarray(preop_hu, dtype=np.float64)
    if not np.isfinite(channel_mm) or not 0.0 <= channel_mm < float(item.inscribed_diameter_mm):
        raise InputError(f"must be 0 (solid) or a diameter below the implant's inscribed "
                         f"{item.inscribed_diameter_mm:g} mm, got {channel_mm!r}", "channel_mm")
    radius = 0.5 * float(channel_mm)
    axis0 = np.asarray(axis0_unit, dtype=np.float64) / np.linalg.norm(axis0_unit)
    p = np.concatenate([np.asarray(apex0_lps_mm, dtype=np.float64),
                        [0.0, 0.0, roll0_rad, np.log(metal0_hu), min(np.log(blur0_var_vox), _LOG_VAR_MAX)]]
                       + ([[float(np.clip(grow0_mm, *_GROW_RANGE_MM))]] if fit_grow else []))
    steps = np.array([0.03, 0.03, 0.03, 5e-4, 5e-4, 3e-3, 1e-3, 1e-2, 0.03][:len(p)])
    lower, upper = np.full(len(p), -np.inf), np.full(len(p), np.inf)
    upper[7] = _LOG_VAR_MAX
    if fit_grow:
        lower[8], upper[8] = _GROW_RANGE_MM

    last = {}

    def residual(q):
        apex, axis, roll, metal, var, grow = _unpack(q, axis0)
        channel = (apex, axis, radius) if radius > 0 else None
        frac = _blur3(grid.fraction(*prism_planes(apex, axis, roll, item, grow_mm=grow), channel), var)
        pred = np.minimum(pre + frac * (metal - pre), hu_max)
        return pred[use] - post

    def model(q):                          # the solver asks the Jacobian where it just evaluated
        last["q"], last["r"] = q.copy(), residual(q)
        return last["r"]

    def jacobian(q):                       # forward differences with per-parameter steps
        r = last["r"] if "q" in last and np.array_equal(last["q"], q) else residual(q)
        jac = np.empty((len(r), len(q)))
        for k in range(len(q)):
            step = steps[k] if q[k] + steps[k] <= upper[k] else -steps[k]
            qq = q.copy()
            qq[k] += step
            jac[:, k] = (residual(qq) - r) / step
        return jac

    res = least_squares(model, p, jac=jacobian, bounds=(lower, upper), method="trf",
                        x_scale=10.0 * steps, ftol=1e-4, xtol=1e-8, max_nfev=iterations,
                        loss="huber", f_scale=_HUBER_HU)
    apex, axis, roll, metal, var, grow = _unpack(res.x, axis0)
    cost = float(res.fun @ res.fun)
    length = float(item.length_mm)
    return PrismFit(apex.copy(), apex - length * axis, axis, float(np.degrees(roll)), metal,
                    float(np.sqrt(var)) * float(np.min(box.spacing_mm)),
                    float(np.sqrt(cost / max(len(res.fun), 1))), int(res.njev), grow, float(channel_mm))
