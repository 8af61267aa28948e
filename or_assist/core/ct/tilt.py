"""Gantry-tilted (sheared) volumes resampled onto an orthonormal grid.

A series acquired with gantry tilt has its slices tilted (ImageOrientationPatient) but
stacked along the table: slice ``k`` sits at ``IPP_0 + k step`` with ``step`` not along
the slice normal. Its voxel index maps to LPS mm by an affine map whose columns are not
orthogonal (``origin + A (i, j, k)``, ``A = [dx row, dy col, step]``), which
:class:`~or_assist.core.ct.volume.CTVolume` (orthonormal direction) cannot hold.
SimpleITK reads such a series with an orthogonalised direction by default
(``ImageSeriesReader.ForceOrthogonalDirection``), i.e. sheared; a NIfTI whose sform has
shear is read with the qform instead (ITK prints "unexpected scales in sform" and drops
the shear). :func:`resample_sheared` resamples the voxels (linear interpolation,
``sitk.Resample`` through the exact affine map) onto the grid whose axes are the slices'
row and column directions and their normal, spacing = the row / column spacing and the
gap between slice planes along the normal, aligned so that every slice plane is a plane
of the new grid (the interpolation is then within slices only). Voxels outside the
acquired slab hold :data:`FILL_HU` (air, as outside a scanner's field of view).

:func:`nifti_sform_shear` finds the shear a NIfTI sform states and SimpleITK dropped.
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk

from or_assist.core.ct.voxel_grid import corner_indices
from or_assist.errors import InputError

__all__ = ["FILL_HU", "ResampledWarning", "tilt_deg", "resample_sheared", "nifti_sform_shear"]

#: HU of output voxels outside the acquired slab.
FILL_HU = -1024.0
#: The resampled grid may hold at most this many times the input's voxels (a 45 deg tilt of a long series: ~2).
_MAX_GROWTH = 4.0
_ORTHO_TOL = 1e-4
_GEOMETRY_TOL_MM = 0.1


class ResampledWarning(UserWarning):
    """A CT was resampled on reading (gantry tilt, sheared affine); the message says how."""


def tilt_deg(columns_mm: np.ndarray) -> float:
    """Angle between the slice step (column 2) and the normal of the slice plane (columns 0, 1).

    Parameters
    ----------
    columns_mm : (3, 3) array
        Columns = LPS step (mm) of index i, j, k.

    Returns
    -------
    float
        Degrees, 0 for slices stacked along their normal.
    """
    a = np.asarray(columns_mm, dtype=np.float64)
    n = np.cross(a[:, 0], a[:, 1])
    n /= np.linalg.norm(n)
    step = a[:, 2]
    return math.degrees(math.acos(min(1.0, abs(float(step @ n)) / float(np.linalg.norm(step)))))


def _output_frame(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(direction, spacing) of the orthonormal grid: row, column (orthogonalised) and normal towards the step."""
    r = a[:, 0] / np.linalg.norm(a[:, 0])
    c = a[:, 1] - r * float(r @ a[:, 1])
    c /= np.linalg.norm(c)
    n = np.cross(r, c)
    if float(n @ a[:, 2]) < 0:
        n = -n
    direction = np.column_stack([r, c, n])
    spacing = np.array([np.linalg.norm(a[:, 0]), float(c @ a[:, 1]), float(n @ a[:, 2])])
    return direction, spacing


def resample_sheared(image: sitk.Image, origin_mm, columns_mm, *, where: str = "",
                     fill_hu: float = FILL_HU) -> sitk.Image:
    """Resample voxels whose index maps to LPS by a sheared affine onto an orthonormal grid (module doc).

    Parameters
    ----------
    image : SimpleITK.Image
        3D scalar voxels (HU); only the voxel array is used, not the image's geometry.
    origin_mm : (3,) array_like
        LPS position of voxel (0, 0, 0), mm.
    columns_mm : (3, 3) array_like
        Columns = LPS step (mm) of index i, j, k (non-singular).
    where : str
        Names the input in errors.
    fill_hu : float
        Value of output voxels outside the input's voxel box.

    Returns
    -------
    SimpleITK.Image
        float32, direction (row, column, normal), spacing (|column 0|, column 1 across the
        row, gap of the slice planes along the normal); voxel (0, 0, 0) of the input is a
        voxel centre of the output, and the output covers the input's whole voxel-centre box.

    Raises
    ------
    InputError
        A singular map, or an output more than four times the input's size.
    """
    a = np.asarray(columns_mm, dtype=np.float64).reshape(3, 3)
    o = np.asarray(origin_mm, dtype=np.float64).reshape(3)
    if not np.all(np.isfinite(a)) or abs(np.linalg.det(a)) < 1e-9 * np.prod(np.linalg.norm(a, axis=0)):
        raise InputError(f"the voxel axes {a.T.round(4).tolist()} are degenerate (singular map)", where)
    direction, spacing = _output_frame(a)
    size_in = np.array(image.GetSize(), dtype=np.float64)
    corners = corner_indices(size_in) @ a.T                        # relative to o
    u = corners @ direction / spacing                              # output index units
    lo = np.floor(u.min(axis=0) + 1e-6)
    hi = np.ceil(u.max(axis=0) - 1e-6)
    size = (hi - lo + 1).astype(int)
    if np.prod(size.astype(float)) > _MAX_GROWTH * np.prod(size_in):
        raise InputError(f"resampling the sheared volume ({tilt_deg(a):.1f} deg) onto an orthonormal grid would "
                         f"take {' x '.join(map(str, size))} voxels, over {_MAX_GROWTH:g} times the input's", where)
    ref = sitk.Image([int(v) for v in size], sitk.sitkFloat32)
    ref.SetOrigin(tuple(float(v) for v in o + direction @ (lo * spacing)))
    ref.SetSpacing(tuple(float(v) for v in spacing))
    ref.SetDirection(tuple(float(v) for v in direction.ravel()))
    src = sitk.Image(image)
    src.SetOrigin((0.0, 0.0, 0.0))
    src.SetSpacing((1.0, 1.0, 1.0))
    src.SetDirection(tuple(np.eye(3).ravel()))
    inv = np.linalg.inv(a)
    tx = sitk.AffineTransform(3)                                   # output LPS point -> input index
    tx.SetMatrix(tuple(float(v) for v in inv.ravel()))
    tx.SetTranslation(tuple(float(v) for v in -inv @ o))
    return sitk.Resample(src, ref, tx, sitk.sitkLinear, float(fill_hu), sitk.sitkFloat32)


def _srow(image: sitk.Image, key: str) -> np.ndarray | None:
    if not image.HasMetaDataKey(key):
        return None
    try:
        vals = np.array([float(v) for v in image.GetMetaData(key).split()], dtype=np.float64)
    except ValueError:
        return None
    return vals if vals.shape == (4,) and np.all(np.isfinite(vals)) else None


def nifti_sform_shear(image: sitk.Image) -> tuple[np.ndarray, np.ndarray] | None:
    """The sheared index-to-LPS map a NIfTI sform states when SimpleITK did not use it.

    SimpleITK (ITK 5.4) exposes the header as metadata (``sform_code``, ``srow_x`` ...);
    when the sform is not a rotation times scales it reads the qform instead and drops
    the shear.

    Parameters
    ----------
    image : SimpleITK.Image
        As read from a NIfTI file (with its metadata).

    Returns
    -------
    (origin_mm, columns_mm) or None
        LPS origin (3,) and the (3, 3) LPS columns of index i, j, k that the sform states,
        when ``sform_code`` > 0, its columns are not orthogonal and the image's geometry
        differs from the sform's by more than 0.1 mm at a corner; None otherwise (no
        sform, an orthogonal one, or one SimpleITK honoured).
    """
    try:
        code = int(float(image.GetMetaData("sform_code"))) if image.HasMetaDataKey("sform_code") else 0
    except ValueError:
        code = 0
    rows = [_srow(image, f"srow_{ax}") for ax in "xyz"]
    if code <= 0 or image.GetDimension() != 3 or any(r is None for r in rows):
        return None
    ras = np.vstack(rows)
    lps = np.diag([-1.0, -1.0, 1.0]) @ ras                        # NIfTI is RAS+, ITK LPS
    a, o = lps[:, :3], lps[:, 3]
    unit = a / np.linalg.norm(a, axis=0)
    if np.allclose(unit.T @ unit, np.eye(3), atol=_ORTHO_TOL):
        return None
    idx = corner_indices(image.GetSize())
    itk_a = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    got = np.array(image.GetOrigin()) + idx @ itk_a.T
    want = o + idx @ a.T
    if np.max(np.linalg.norm(got - want, axis=1)) <= _GEOMETRY_TOL_MM:
        return None
    return o, a
