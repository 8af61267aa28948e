"""The geometry of a voxel grid in the patient frame, shared by CT and attenuation volumes.

A grid is described by ``origin_mm`` (LPS position of voxel index (0, 0, 0)),
``spacing_mm`` (along index axes i, j, k = X, Y, Z) and ``direction`` (3 x 3, columns are
the LPS directions of the index axes), exactly as SimpleITK reports them. Arrays are
stored (Z, Y, X), SimpleITK's array order.
"""

from __future__ import annotations

import numpy as np

from or_assist.errors import InputError

__all__ = ["VoxelGrid", "as_points", "corner_indices"]


def corner_indices(size_xyz) -> np.ndarray:
    """Index (i, j, k) of the 8 corner voxel centres of a grid of ``size_xyz`` voxels.

    Returns
    -------
    (8, 3) float64 array
        Row ``b`` is ``((b & 1) (X-1), (b >> 1 & 1) (Y-1), (b >> 2 & 1) (Z-1))``.
    """
    n = np.asarray(size_xyz, dtype=np.float64) - 1.0
    bits = np.array([[(b >> a) & 1 for a in range(3)] for b in range(8)], dtype=np.float64)
    return bits * n


def as_points(points, name: str) -> np.ndarray:
    """``points`` as a float64 array of shape (N, 3) or (3,); InputError naming ``name``."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] != 3:
        raise InputError(f"expected points of shape (N, 3), got shape {arr.shape}", name)
    return arr


class VoxelGrid:
    """Mixin: index <-> LPS maps for classes with ``origin_mm``, ``spacing_mm``,
    ``direction`` and a (Z, Y, X) voxel array named by ``_voxel_array_name``."""

    _voxel_array_name = "voxels"
    origin_mm: np.ndarray
    spacing_mm: np.ndarray
    direction: np.ndarray

    @property
    def shape_xyz(self) -> tuple[int, int, int]:
        """Number of voxels along index axes (i, j, k) = (X, Y, Z)."""
        z, y, x = getattr(self, self._voxel_array_name).shape
        return (int(x), int(y), int(z))

    @property
    def affine(self) -> np.ndarray:
        """(4, 4) float64 matrix mapping homogeneous index (i, j, k, 1) to LPS mm."""
        a = np.eye(4)
        a[:3, :3] = self.direction * self.spacing_mm[None, :]
        a[:3, 3] = self.origin_mm
        return a

    def index_to_lps(self, ijk) -> np.ndarray:
        """Continuous voxel index (i, j, k) -> LPS mm; (N, 3) or (3,), float64.

        Integer indices are voxel centres.
        """
        idx = as_points(ijk, "ijk")
        return idx @ (self.direction * self.spacing_mm[None, :]).T + self.origin_mm

    def lps_to_index(self, points_mm) -> np.ndarray:
        """LPS mm -> continuous voxel index (i, j, k); (N, 3) or (3,), float64."""
        p = as_points(points_mm, "points_mm")
        inv = np.linalg.inv(self.direction * self.spacing_mm[None, :])
        return (p - self.origin_mm) @ inv.T
