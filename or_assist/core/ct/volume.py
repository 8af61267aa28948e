"""The CT volume type: HU voxels with their physical (LPS) geometry.

Geometry follows SimpleITK exactly: voxel index (i, j, k) (i fastest, along x of the
array's last axis) maps to the LPS point ``origin + direction @ diag(spacing) @ (i, j, k)``
in mm, where the columns of ``direction`` are the LPS directions of the index axes. Any
orthonormal direction works, flips (det = -1) and oblique rotations included.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from or_assist.core.ct.voxel_grid import VoxelGrid, corner_indices
from or_assist.core.validate import check_vector
from or_assist.errors import InputError

__all__ = ["CTVolume", "axis_codes"]

_ORTHONORMAL_TOL = 1e-4


def axis_codes(direction: np.ndarray) -> str:
    """Patient direction each index axis points to, as three LPS letters.

    Parameters
    ----------
    direction : (3, 3) array
        Columns are the LPS directions of index axes i, j, k.

    Returns
    -------
    str
        E.g. ``"LPS"`` for the identity (i towards the patient's left, j posterior,
        k superior), ``"RAS"`` for diag(-1, -1, 1); suffixed ``" (oblique)"`` when an axis
        deviates more than ~2.6° from the nearest patient axis.
    """
    d = np.asarray(direction, dtype=np.float64)
    letters = []
    for col in d.T:
        a = int(np.argmax(np.abs(col)))
        letters.append(("LPS" if col[a] > 0 else "RAI")[a])
    oblique = bool(np.any(np.max(np.abs(d), axis=0) < 0.999))
    return "".join(letters) + (" (oblique)" if oblique else "")


@dataclass(frozen=True, eq=False, repr=False)
class CTVolume(VoxelGrid):
    """A CT in Hounsfield units with its LPS geometry.

    Parameters
    ----------
    hu : (Z, Y, X) array
        Hounsfield units; stored as C-contiguous float32 (SimpleITK array order, so
        ``hu[k, j, i]`` is voxel index (i, j, k)). Treat as read-only.
    origin_mm : (3,) array
        LPS position (mm) of the centre of voxel (0, 0, 0).
    spacing_mm : (3,) array
        Voxel size (mm) along index axes (i, j, k), positive.
    direction : (3, 3) array
        Orthonormal; column c is the LPS unit vector of index axis c.
    source : str
        Where the CT came from (path), for messages.
    series_uid : str or None
        DICOM SeriesInstanceUID when loaded from DICOM and the files carry one.
    """

    _voxel_array_name = "hu"
    hu: np.ndarray
    origin_mm: np.ndarray
    spacing_mm: np.ndarray
    direction: np.ndarray
    source: str = ""
    series_uid: str | None = None

    def __post_init__(self):
        where = self.source or "CT"
        hu = self.hu
        if not isinstance(hu, np.ndarray) or not np.issubdtype(hu.dtype, np.number) or hu.ndim != 3:
            shape = getattr(hu, "shape", None)
            raise InputError(f"hu must be a numeric (Z, Y, X) array, got shape {shape}", where)
        if min(hu.shape) < 1:
            raise InputError(f"hu is empty (shape {hu.shape})", where)
        object.__setattr__(self, "hu", np.ascontiguousarray(hu, dtype=np.float32))
        origin = check_vector(self.origin_mm, 3, f"{where}: origin_mm")
        spacing = check_vector(self.spacing_mm, 3, f"{where}: spacing_mm", positive=True)
        direction = np.array(self.direction, dtype=np.float64)
        if direction.shape != (3, 3) or not np.all(np.isfinite(direction)):
            raise InputError(f"direction must be a finite 3 x 3 matrix, got {self.direction!r}", where)
        if not np.allclose(direction.T @ direction, np.eye(3), atol=_ORTHONORMAL_TOL):
            raise InputError(f"direction must be orthonormal, got {direction.tolist()}", where)
        object.__setattr__(self, "origin_mm", origin)
        object.__setattr__(self, "spacing_mm", spacing)
        object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "series_uid", self.series_uid or None)

    # ------------------------------------------------------------------ geometry
    def corners_lps_mm(self) -> np.ndarray:
        """The 8 corners of the box spanned by the voxel centres at the extreme indices.

        Returns
        -------
        (8, 3) float64 array, LPS mm
            Row ``b`` is the centre of voxel ``(i, j, k) = ((b & 1) (X-1), (b >> 1 & 1) (Y-1),
            (b >> 2 & 1) (Z-1))``. The voxel box edges lie half a voxel further out.
        """
        return self.index_to_lps(corner_indices(self.shape_xyz))

    def contains(self, points_mm, margin_mm: float = 0.0) -> np.ndarray:
        """Whether points lie inside the voxel-centre box (see :meth:`corners_lps_mm`).

        Parameters
        ----------
        points_mm : (N, 3) or (3,) array_like
            LPS points in mm.
        margin_mm : float
            Grow (positive) or shrink (negative) the box by this much on every side.

        Returns
        -------
        numpy.ndarray
            Bool, shape (N,) (or a 0-d array for one point). NaN points are outside.
        """
        return self._inside(self.lps_to_index(points_mm), float(margin_mm))

    def _inside(self, idx: np.ndarray, margin_mm: float = 0.0) -> np.ndarray:
        m = margin_mm / self.spacing_mm
        hi = np.array(self.shape_xyz, dtype=np.float64) - 1.0
        tol = 1e-9
        return np.all((idx >= -m - tol) & (idx <= hi + m + tol), axis=-1)

    def sample_hu(self, points_mm, outside: float = -1000.0) -> np.ndarray:
        """Trilinear HU at LPS points.

        Parameters
        ----------
        points_mm : (N, 3) or (3,) array_like
            LPS points in mm.
        outside : float
            Value returned for points outside the voxel-centre box (:meth:`contains`).

        Returns
        -------
        numpy.ndarray
            float32 HU, shape (N,) (or 0-d for one point).
        """
        idx = self.lps_to_index(points_mm)
        inside = self._inside(idx)
        flat = idx.reshape(-1, 3)
        ok = inside.reshape(-1)
        n = np.array(self.shape_xyz)
        c = np.where(ok[:, None], np.clip(flat, 0.0, n - 1.0), 0.0)
        i0 = np.minimum(np.floor(c).astype(np.int64), np.maximum(n - 2, 0))
        f = c - i0
        i1 = np.minimum(i0 + 1, n - 1)
        vol = self.hu
        fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
        x0, y0, z0 = i0[:, 0], i0[:, 1], i0[:, 2]
        x1, y1, z1 = i1[:, 0], i1[:, 1], i1[:, 2]
        c00 = vol[z0, y0, x0] * (1 - fx) + vol[z0, y0, x1] * fx
        c10 = vol[z0, y1, x0] * (1 - fx) + vol[z0, y1, x1] * fx
        c01 = vol[z1, y0, x0] * (1 - fx) + vol[z1, y0, x1] * fx
        c11 = vol[z1, y1, x0] * (1 - fx) + vol[z1, y1, x1] * fx
        val = (c00 * (1 - fy) + c10 * fy) * (1 - fz) + (c01 * (1 - fy) + c11 * fy) * fz
        out = np.where(ok, val, float(outside)).astype(np.float32)
        return out.reshape(inside.shape)

    # ------------------------------------------------------------------ data
    @property
    def memory_bytes(self) -> int:
        """Bytes held by the HU voxels."""
        return int(self.hu.nbytes)

    def voxel_sha256(self) -> str:
        """SHA-256 identifying the voxel data (plans reference their CT with it).

        Returns
        -------
        str
            Hex digest of the HU voxels as little-endian float32 in C order (Z, Y, X),
            followed by the shape (Z, Y, X) as three little-endian int64.
        """
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.hu, dtype="<f4").data)
        h.update(np.asarray(self.hu.shape, dtype="<i8").tobytes())
        return h.hexdigest()

    # ------------------------------------------------------------------ SimpleITK
    def to_sitk(self) -> sitk.Image:
        """A float32 SimpleITK image with the same voxels and geometry."""
        img = sitk.GetImageFromArray(self.hu)
        img.SetOrigin(tuple(float(v) for v in self.origin_mm))
        img.SetSpacing(tuple(float(v) for v in self.spacing_mm))
        img.SetDirection(tuple(float(v) for v in self.direction.ravel()))
        return img

    @classmethod
    def from_sitk(cls, img: sitk.Image, source: str = "", series_uid: str | None = None) -> "CTVolume":
        """Build a CT from a 3D scalar SimpleITK image (values taken as HU).

        Raises
        ------
        InputError
            The image is not 3D or not scalar, or its geometry is invalid.
        """
        where = source or "image"
        if img.GetDimension() != 3:
            raise InputError(f"expected a 3D image, got a {img.GetDimension()}D image", where)
        if img.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(
                f"expected a scalar (grayscale) image, got {img.GetNumberOfComponentsPerPixel()} "
                f"components per voxel ({img.GetPixelIDTypeAsString()})",
                where,
            )
        if "complex" in img.GetPixelIDTypeAsString():
            raise InputError(f"expected real-valued voxels, got {img.GetPixelIDTypeAsString()}", where)
        hu = sitk.GetArrayViewFromImage(img).astype(np.float32, order="C")
        return cls(
            hu=hu,
            origin_mm=np.array(img.GetOrigin()),
            spacing_mm=np.array(img.GetSpacing()),
            direction=np.array(img.GetDirection()).reshape(3, 3),
            source=source,
            series_uid=series_uid,
        )

    def __repr__(self) -> str:
        x, y, z = self.shape_xyz
        sp = ", ".join(f"{v:.3g}" for v in self.spacing_mm)
        return (
            f"CTVolume({x} x {y} x {z} voxels, spacing ({sp}) mm, {axis_codes(self.direction)}, "
            f"{self.memory_bytes / 2**20:.1f} MiB, source={self.source!r})"
        )
