"""Digitally reconstructed radiographs (DRRs): perspective ray casting through a CT.

A DRR pixel is the line integral ``sum(mu * ds)`` (dimensionless) of the attenuation
along the ray from the X-ray source through that pixel's centre, with the frames of
``CONVENTIONS.md``: the pose is ``T_source_from_patient``, pixel ``(u, v)`` =
(column, row) with ``(0, 0)`` the centre of the top-left pixel. With a distorted
geometry each pixel's ray is the back-projected (undistorted) one, so the DRR is the
distorted picture the detector shows (as :func:`or_assist.core.geometry.project`).

Sampling (see :mod:`or_assist.render._drr_kernels`): each ray is clipped to the volume
box, the outer faces of the edge voxels (index ``-0.5`` to ``n - 0.5`` per axis), and
sampled at the midpoints of ``N = ceil(length / step_mm)`` equal steps, trilinearly
with clamped edges. The default step is half the smallest voxel spacing.

Examples
--------
>>> from or_assist.core.ct.load import load_ct                             # doctest: +SKIP
>>> renderer = DRRRenderer(AttenuationVolume.from_ct(load_ct("ct.nii.gz")))  # doctest: +SKIP
>>> image = renderer.render(pose, geometry, downsample=4)             # doctest: +SKIP

Longer than 400 lines because the renderer, its volume type and the plain reference
implementation the tests compare the numba kernels against stay side by side.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from or_assist.core.ct.voxel_grid import VoxelGrid
from or_assist.core.geometry import CArmGeometry, backproject, undistort_normalized
from or_assist.core.pose import Pose
from or_assist.core.validate import check_positive, check_vector, is_integer
from or_assist.errors import InputError
from or_assist.render import _drr_kernels as kernels

__all__ = ["AttenuationVolume", "DRRRenderer", "RenderStats", "render_drr", "render_reference", "as_pose",
           "effective_geometry"]

_GRID_CACHE_SIZE = 16
_KERNEL_LOCK = threading.Lock()  # numba's workqueue threading layer is not re-entrant
_warmed_up = False


@dataclass(frozen=True, eq=False, repr=False)
class AttenuationVolume(VoxelGrid):
    """Linear attenuation voxels with their LPS geometry (the DRR's input).

    Parameters
    ----------
    mu_per_mm : (Z, Y, X) array
        Attenuation in mm^-1, finite and >= 0; stored as C-contiguous float32
        (``mu_per_mm[k, j, i]`` is voxel index (i, j, k)). Treat as read-only.
    origin_mm : (3,) array_like
        LPS position (mm) of the centre of voxel (0, 0, 0).
    spacing_mm : (3,) array_like
        Voxel size (mm) along index axes (i, j, k), > 0.
    direction : (3, 3) array_like
        Column c is the LPS direction of index axis c (any invertible matrix; CTs have
        orthonormal ones, flips included).
    """

    _voxel_array_name = "mu_per_mm"
    mu_per_mm: np.ndarray
    origin_mm: np.ndarray
    spacing_mm: np.ndarray
    direction: np.ndarray

    def __post_init__(self):
        mu = self.mu_per_mm
        if not isinstance(mu, np.ndarray) or mu.ndim != 3 or not np.issubdtype(mu.dtype, np.number) \
                or min(mu.shape) < 1:
            raise InputError(f"must be a non-empty numeric (Z, Y, X) array, got "
                             f"{getattr(mu, 'shape', type(mu).__name__)}", "mu_per_mm")
        mu = np.ascontiguousarray(mu, dtype=np.float32)
        lo, hi = float(mu.min()), float(mu.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InputError("contains NaN or inf", "mu_per_mm")
        if lo < 0:
            raise InputError(f"attenuation must be >= 0 mm^-1, got a minimum of {lo:g} "
                             "(Hounsfield units? convert with AttenuationVolume.from_ct)", "mu_per_mm")
        origin = check_vector(self.origin_mm, 3, "origin_mm")
        spacing = check_vector(self.spacing_mm, 3, "spacing_mm")
        if np.any(spacing <= 0):
            raise InputError(f"must be 3 numbers > 0 (mm), got {spacing.tolist()}", "spacing_mm")
        try:
            direction = np.array(self.direction, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError("must be a 3 x 3 numeric matrix", "direction") from None
        if direction.shape != (3, 3) or not np.all(np.isfinite(direction)):
            raise InputError(f"must be a finite 3 x 3 matrix, got shape {direction.shape}", "direction")
        if abs(np.linalg.det(direction)) < 1e-6:
            raise InputError(f"must be invertible, got {direction.tolist()}", "direction")
        object.__setattr__(self, "mu_per_mm", mu)
        object.__setattr__(self, "origin_mm", origin)
        object.__setattr__(self, "spacing_mm", spacing)
        object.__setattr__(self, "direction", direction)

    @classmethod
    def from_ct(cls, ct, energy_kev: float = 60.0, mask: np.ndarray | None = None) -> "AttenuationVolume":
        """Attenuation volume of a :class:`or_assist.core.ct.load.CTVolume`.

        Parameters
        ----------
        ct : CTVolume
            The CT in Hounsfield units.
        energy_kev : float
            Effective photon energy for :func:`or_assist.core.ct.load.hu_to_attenuation`.
        mask : (Z, Y, X) array_like of bool, optional
            Keep only these voxels (e.g. bone only, or a pelvis crop); others get 0.
        """
        from or_assist.core.ct.attenuation import hu_to_attenuation

        for name in ("hu", "origin_mm", "spacing_mm", "direction"):
            if not hasattr(ct, name):
                raise InputError(f"expected a CTVolume, got {type(ct).__name__}", "ct")
        vol = cls(hu_to_attenuation(ct.hu, energy_kev), ct.origin_mm, ct.spacing_mm, ct.direction)
        return vol if mask is None else vol.masked(mask)

    def masked(self, mask: np.ndarray) -> "AttenuationVolume":
        """A copy with attenuation 0 outside ``mask`` ((Z, Y, X), non-zero = keep)."""
        m = np.asarray(mask)
        if m.shape != self.mu_per_mm.shape:
            raise InputError(f"must have the volume's shape (Z, Y, X) = {self.mu_per_mm.shape}, "
                             f"got {m.shape}", "mask")
        if not (m.dtype == bool or np.issubdtype(m.dtype, np.number)):
            raise InputError(f"must be a boolean or numeric array, got dtype {m.dtype}", "mask")
        return AttenuationVolume(np.where(m.astype(bool), self.mu_per_mm, np.float32(0.0)),
                                 self.origin_mm, self.spacing_mm, self.direction)

    @property
    def default_step_mm(self) -> float:
        """Half the smallest voxel spacing, mm."""
        return 0.5 * float(self.spacing_mm.min())

    def __repr__(self) -> str:
        return (f"AttenuationVolume(shape_xyz={self.shape_xyz}, spacing_mm={self.spacing_mm.round(3).tolist()}, "
                f"mu_max_per_mm={float(self.mu_per_mm.max()):.4g})")


@dataclass(frozen=True)
class RenderStats:
    """What one render did: rays cast, rays that hit the volume box, samples, wall time."""

    rays: int
    rays_hit: int
    samples: int
    seconds: float


class DRRRenderer:
    """Renders DRRs of one attenuation volume; build once per volume, render many times.

    Construction crops the volume to its non-zero voxels (plus a one-voxel margin, which
    does not change any line integral), pads it for the kernel and compiles (or loads)
    the numba kernel, so the first :meth:`render` is as fast as the others.

    Parameters
    ----------
    volume : AttenuationVolume
    mask : (Z, Y, X) array_like of bool, optional
        Render only these voxels (see :meth:`AttenuationVolume.masked`).
    warm_up : bool
        Compile the kernel now (default) rather than on the first render.

    Attributes
    ----------
    volume : AttenuationVolume
        The (masked) volume rendered.
    last_stats : RenderStats or None
        Of the most recent render by this renderer (informational).
    """

    def __init__(self, volume: AttenuationVolume, *, mask: np.ndarray | None = None, warm_up: bool = True):
        if not isinstance(volume, AttenuationVolume):
            raise InputError(f"expected an AttenuationVolume, got {type(volume).__name__}", "volume")
        self.volume = volume if mask is None else volume.masked(mask)
        self._index_from_lps3 = np.linalg.inv(self.volume.direction * self.volume.spacing_mm[None, :])
        self._prepare_crop()
        self._grids: OrderedDict[CArmGeometry, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._grids_lock = threading.Lock()
        self.last_stats: RenderStats | None = None
        if warm_up:
            _warm_up()

    def _prepare_crop(self) -> None:
        mu = self.volume.mu_per_mm
        n_ijk = np.array(self.volume.shape_xyz)
        self._box_lo = np.full(3, -0.5)
        self._box_hi = n_ijk - 0.5
        nonzero = mu > 0
        spans = []
        for axis in (2, 1, 0):  # i, j, k = array axes 2, 1, 0
            hit = np.flatnonzero(nonzero.any(axis=tuple(a for a in range(3) if a != axis)))
            spans.append((hit[0], hit[-1]) if hit.size else None)
        if any(s is None for s in spans):  # nothing to render: an all-zero volume
            self._crop_lo, self._crop_hi = np.ones(3), np.zeros(3)
            padded = np.zeros((3, 3, 3), np.float32)
            self._offset = np.ones(3)
        else:
            lo = np.array([max(s[0] - 1, 0) for s in spans])
            hi = np.array([min(s[1] + 1, n - 1) for s, n in zip(spans, n_ijk)])
            crop = mu[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
            padded = np.pad(crop, 1, mode="edge")
            self._crop_lo, self._crop_hi = lo - 0.5, hi + 0.5
            self._offset = 1.0 - lo
        if padded.size >= 2**32 - 1:
            raise InputError(f"volume too large for the kernel ({padded.shape} voxels after cropping)", "volume")
        self._padded = np.ascontiguousarray(padded, dtype=np.float32)
        self._flat = self._padded.reshape(-1)
        self._dims = np.array(padded.shape[::-1], dtype=np.int64)

    @property
    def default_step_mm(self) -> float:
        """Half the smallest voxel spacing, mm."""
        return self.volume.default_step_mm

    def render(self, pose: Pose, geometry: CArmGeometry, *, step_mm: float | None = None,
               roi: Sequence[int] | None = None, downsample: int = 1,
               ray_mask: np.ndarray | None = None) -> np.ndarray:
        """Render the DRR seen from ``pose`` with ``geometry``.

        Parameters
        ----------
        pose : Pose or (4, 4) array_like
            ``T_source_from_patient``; the source must be outside the volume box.
        geometry : CArmGeometry
            The detector (full size).
        step_mm : float, optional
            Largest sample spacing along each ray (> 0); default half the smallest voxel.
        roi : (u_min, v_min, width, height), optional
            Render only this sub-rectangle, in pixels of the (downsampled) detector.
        downsample : int
            Bin the detector ``downsample`` x ``downsample`` first
            (:meth:`CArmGeometry.downsampled`), e.g. for multi-resolution registration.
        ray_mask : (H, W) bool array, optional
            Cast only these rays (pixels of the rendered image); the others are 0. A
            registration that compares only the pixels of a shot's field saves the rest.

        Returns
        -------
        (H, W) float32 ndarray
            Line integrals ``sum(mu * ds)`` (dimensionless); rows v, columns u.

        Raises
        ------
        InputError
            A bad argument, a source inside the volume box, or a detector (region)
            none of whose rays meets the volume.
        """
        started = time.perf_counter()
        pose = as_pose(pose)
        geom = effective_geometry(geometry, roi, downsample)
        step = _check_step(step_mm, self.default_step_mm)
        src = (pose.source_position_lps_mm - self.volume.origin_mm) @ self._index_from_lps3.T
        _check_source_outside(src, self._box_lo, self._box_hi, pose)
        xn, yn = self._grid(geom)
        basis = self._index_from_lps3 @ pose.rotation.T
        active = _ray_mask(ray_mask, geom)
        out = np.empty((geom.height, geom.width), np.float32)
        stats = np.zeros((geom.height, 2), np.int64)
        with _KERNEL_LOCK:
            kernels.render_rays(self._flat, self._dims, self._offset, src, basis, xn, yn,
                                self._box_lo, self._box_hi, self._crop_lo, self._crop_hi,
                                step, kernels.row_stride(geom.height), active, out, stats)
        hits, samples = (int(x) for x in stats.sum(axis=0))
        if hits == 0:
            raise _miss_error(roi)
        self.last_stats = RenderStats(out.size, hits, samples, time.perf_counter() - started)
        return out

    def _grid(self, geom: CArmGeometry) -> tuple[np.ndarray, np.ndarray]:
        """Undistorted normalised coordinates (xn, yn), each (H, W) float64, of every pixel."""
        with self._grids_lock:
            grid = self._grids.get(geom)
            if grid is None:
                grid = _normalised_grid(geom)
                self._grids[geom] = grid
                if len(self._grids) > _GRID_CACHE_SIZE:
                    self._grids.popitem(last=False)
            else:
                self._grids.move_to_end(geom)
            return grid


def render_drr(volume: AttenuationVolume, pose: Pose, geometry: CArmGeometry, *,
               mask: np.ndarray | None = None, step_mm: float | None = None,
               roi: Sequence[int] | None = None, downsample: int = 1) -> np.ndarray:
    """Render one DRR (builds a :class:`DRRRenderer`; keep one for repeated renders).

    Parameters and return value as :meth:`DRRRenderer.render`; ``mask`` as
    :class:`DRRRenderer`.
    """
    return DRRRenderer(volume, mask=mask).render(pose, geometry, step_mm=step_mm, roi=roi,
                                                 downsample=downsample)


def render_reference(volume: AttenuationVolume, pose: Pose, geometry: CArmGeometry, *,
                     mask: np.ndarray | None = None, step_mm: float | None = None,
                     roi: Sequence[int] | None = None, downsample: int = 1) -> np.ndarray:
    """The plain, slow DRR the numba kernel is tested against (same sampling scheme).

    Rays come from :func:`or_assist.core.geometry.backproject`; the full volume is
    sampled in float64 without cropping. Slow: about 60 us per ray (1 s for 128 x 128
    pixels on a 3 mm CT), so use small detectors.

    Returns
    -------
    (H, W) float64 ndarray
        Line integrals; arguments and errors as :meth:`DRRRenderer.render`.
    """
    if not isinstance(volume, AttenuationVolume):
        raise InputError(f"expected an AttenuationVolume, got {type(volume).__name__}", "volume")
    if mask is not None:
        volume = volume.masked(mask)
    pose = as_pose(pose)
    geom = effective_geometry(geometry, roi, downsample)
    step = _check_step(step_mm, volume.default_step_mm)
    n_ijk = np.array(volume.shape_xyz, dtype=np.float64)
    src = volume.lps_to_index(pose.source_position_lps_mm)
    _check_source_outside(src, np.full(3, -0.5), n_ijk - 0.5, pose)
    vv, uu = np.mgrid[0:geom.height, 0:geom.width]
    uv = np.stack([uu.ravel(), vv.ravel()], axis=1).astype(np.float64)
    _, dirs_lps = backproject(uv, pose, geom)  # every ray starts at the source
    dirs_ijk = np.linalg.solve(volume.direction * volume.spacing_mm[None, :], dirs_lps.T).T
    out = kernels.reference_line_integrals(volume.mu_per_mm, src, dirs_ijk, step)
    hit = [kernels.clip_ray_to_box(src, d, np.full(3, -0.5), n_ijk - 0.5) for d in dirs_ijk]
    if not any(t1 > t0 for t0, t1 in hit):
        raise _miss_error(roi)
    return out.reshape(geom.height, geom.width)


# --------------------------------------------------------------------------- helpers


def _warm_up() -> None:
    global _warmed_up
    if not _warmed_up:
        with _KERNEL_LOCK:
            kernels.warm_up()
        _warmed_up = True


def as_pose(pose) -> Pose:
    """``pose`` as a :class:`Pose` (a 4 x 4 array is accepted); InputError naming 'pose'."""
    if isinstance(pose, Pose):
        return pose
    if isinstance(pose, (np.ndarray, list, tuple)):
        return Pose(np.asarray(pose))
    raise InputError(f"expected a Pose (T_source_from_patient), got {type(pose).__name__}", "pose")


def _check_step(step_mm, default: float) -> float:
    if step_mm is None:
        return default
    return check_positive(step_mm, "step_mm", "mm")


def _int_like(value) -> int | None:
    if not is_integer(value):
        return None
    return int(value)


def effective_geometry(geometry: CArmGeometry, roi, downsample) -> CArmGeometry:
    """The detector actually rendered: binned by ``downsample``, then cut to ``roi``."""
    if not isinstance(geometry, CArmGeometry):
        raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")
    f = _int_like(downsample)
    if f is None or f < 1 or f > min(geometry.image_size_px):
        raise InputError(f"must be an integer from 1 to {min(geometry.image_size_px)} (the detector's "
                         f"smaller side), got {downsample!r}", "downsample")
    geom = geometry.downsampled(f) if f > 1 else geometry
    if roi is None:
        return geom
    w_img, h_img = geom.image_size_px
    vals = [_int_like(x) for x in roi] if isinstance(roi, (list, tuple, np.ndarray)) else []
    if len(vals) != 4 or any(x is None for x in vals):
        raise InputError(f"must be 4 integers (u_min, v_min, width, height), got {roi!r}", "roi")
    u_min, v_min, w, h = vals
    if u_min < 0 or v_min < 0 or w < 1 or h < 1 or u_min + w > w_img or v_min + h > h_img:
        raise InputError(f"(u_min, v_min, width, height) = {tuple(vals)} must lie inside the "
                         f"{w_img} x {h_img} detector{' after downsampling' if f > 1 else ''}", "roi")
    return geom.cropped(u_min, v_min, w, h)


def _normalised_grid(geom: CArmGeometry) -> tuple[np.ndarray, np.ndarray]:
    u0, v0 = geom.principal_point_px
    xn = (np.arange(geom.width, dtype=np.float64) - u0) / geom.fx
    yn = (np.arange(geom.height, dtype=np.float64) - v0) / geom.fy
    xg, yg = np.meshgrid(xn, yn)
    if geom.distortion is not None:
        xg, yg = undistort_normalized(xg, yg, geom.distortion)
    return np.ascontiguousarray(xg), np.ascontiguousarray(yg)


def _check_source_outside(src_ijk: np.ndarray, lo: np.ndarray, hi: np.ndarray, pose: Pose) -> None:
    if np.all(src_ijk >= lo) and np.all(src_ijk <= hi):
        s = np.round(pose.source_position_lps_mm, 1).tolist()
        raise InputError(f"puts the X-ray source (LPS {s} mm) inside the CT volume box; the source "
                         "must be outside the volume (check the translation and its units, mm)", "pose")


_ALL_RAYS = np.ones((1, 1), np.uint8)


def _ray_mask(ray_mask, geom: CArmGeometry) -> np.ndarray:
    """The kernel's ``active`` array: (1, 1) ones for every ray, else (H, W) uint8."""
    if ray_mask is None:
        return _ALL_RAYS
    m = np.asarray(ray_mask)
    if m.shape != (geom.height, geom.width):
        raise InputError(f"must have the rendered image's shape ({geom.height}, {geom.width}), got {m.shape}",
                         "ray_mask")
    if m.dtype != bool:
        raise InputError(f"must be a boolean array, got dtype {m.dtype}", "ray_mask")
    if not m.any():
        raise InputError("selects no pixel (all False)", "ray_mask")
    return np.ascontiguousarray(m).view(np.uint8)


def _miss_error(roi) -> InputError:
    where = "detector region (roi)" if roi is not None else "detector"
    return InputError(f"no ray of the {where} meets the CT volume; the pose looks past the volume "
                      "(check the pose and that it is T_source_from_patient, not its inverse)", "pose")
