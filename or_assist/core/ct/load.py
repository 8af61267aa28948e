"""CT loading, saving, sanity checks, cropping, resampling and a summary (``ct_info``).

Everything goes through SimpleITK, so the geometry is SimpleITK's (LPS mm, origin,
spacing and direction honoured). Supported inputs: a folder holding a DICOM series (the
series with the most slices is read, see :mod:`or_assist.core.ct.dicom`), a single
DICOM file (multi-frame), NIfTI (``.nii``, ``.nii.gz``), MetaImage (``.mha``, ``.mhd``)
and NRRD (``.nrrd``, ``.nhdr``).

Examples
--------
>>> ct = load_ct("ct_pelvis_dicom")                     # doctest: +SKIP
>>> ct_info(ct)["spacing_mm"]                # what `or-assist info CT` prints  # doctest: +SKIP
>>> mu = hu_to_attenuation(ct.hu, energy_kev=60.0)      # (Z, Y, X) float32 mm^-1  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from or_assist.core.ct.dicom import NotDicomError, read_dicom_file, read_dicom_folder, sitk_reason
from or_assist.core.ct.files import check_volume_file
from or_assist.core.ct.tilt import ResampledWarning, nifti_sform_shear, resample_sheared, tilt_deg
from or_assist.core.ct.volume import CTVolume, axis_codes
from or_assist.core.outputs import quiet_stderr
from or_assist.core.validate import check_vector
from or_assist.errors import InputError

__all__ = [
    "CTWarning",
    "load_ct",
    "save_ct",
    "check_hu",
    "crop_ct",
    "resample_ct",
    "ct_info",
    "VOLUME_SUFFIXES",
]

#: File name endings read and written as volumes (anything else is tried as DICOM).
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")

_PERCENTILE_MAX_VOXELS = 8_000_000


class CTWarning(UserWarning):
    """A CT loaded but its values look wrong (see :func:`check_hu`)."""


def _volume_suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in VOLUME_SUFFIXES if name.endswith(s)), None)


def _read_volume_file(path: Path) -> sitk.Image:
    check_volume_file(path, _volume_suffix(path))
    try:
        with quiet_stderr() as library_messages:   # ITK's "unexpected scales in sform": handled below
            img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"cannot read the image ({sitk_reason(exc)})", str(path)) from None
    sheared = nifti_sform_shear(img) if _volume_suffix(path) in (".nii", ".nii.gz") else None
    if sheared is None:
        library_messages.replay()
        return img
    img = resample_sheared(img, *sheared, where=str(path))
    warnings.warn(f"{path}: the NIfTI sform is sheared (slices tilted {tilt_deg(sheared[1]):.1f} deg against their "
                  f"stacking, as a gantry-tilted series converted without tilt correction), which SimpleITK "
                  f"drops: resampled onto an orthonormal grid by the sform (linear; outside the slab -1024 HU)",
                  ResampledWarning, stacklevel=3)
    return img


def _read_other_file(path: Path) -> tuple[sitk.Image, str | None, bool]:
    """Read a file as DICOM, else as any image SimpleITK knows; returns (image, uid, is_dicom)."""
    try:
        return read_dicom_file(path) + (True,)
    except NotDicomError as dicom_error:
        try:  # another format SimpleITK knows (e.g. a PNG): read it to say why it is unusable
            if path.suffix.lower() in (".dcm", ".ima"):
                raise RuntimeError("DICOM by name")
            return sitk.ReadImage(str(path)), None, False
        except RuntimeError:
            reason = str(dicom_error)[len(str(dicom_error.source)) + 2 :]
            raise InputError(
                f"{reason}; expected a DICOM series folder, a DICOM file, or a volume file "
                f"({', '.join(VOLUME_SUFFIXES)})",
                str(path),
            ) from None


def load_ct(path: str | os.PathLike) -> CTVolume:
    """Load a CT in Hounsfield units with its LPS geometry.

    Parameters
    ----------
    path : path-like
        A folder with a DICOM series (searched recursively; with several series the one
        with the most slices is read and its SeriesInstanceUID reported), a DICOM file
        (a multi-frame volume), or a ``.nii``, ``.nii.gz``, ``.mha``, ``.mhd``, ``.nrrd``
        or ``.nhdr`` file.

    Returns
    -------
    CTVolume
        ``source`` is the path; ``series_uid`` is set for DICOM input carrying one.
        :func:`check_hu` findings are emitted as :class:`CTWarning` warnings.

    Raises
    ------
    InputError
        Missing path, unreadable file, a folder without a DICOM series, a 2D image (or a
        volume one voxel thick), a non-scalar image, or a DICOM series with missing or
        duplicated slices or slices of several orientations. The message names the path.

    Warns
    -----
    ResampledWarning
        A gantry-tilted DICOM series, or a NIfTI whose sform is sheared, was resampled
        onto an orthonormal grid (:mod:`or_assist.core.ct.tilt`).
    """
    p = Path(path)
    where = str(p)
    if not p.exists():
        raise InputError("no such file or folder", where)
    uid, dicom_file = None, False
    if p.is_dir():
        img, uid = read_dicom_folder(p)
    elif _volume_suffix(p):
        img = _read_volume_file(p)
    else:
        img, uid, dicom_file = _read_other_file(p)
    if img.GetDimension() == 2 or (img.GetDimension() == 3 and min(img.GetSize()) == 1):
        size = " x ".join(str(s) for s in img.GetSize())
        hint = "; give the folder holding the whole series" if dicom_file else ""
        raise InputError(f"a 2D image ({size} pixels), not a CT volume{hint}", where)
    ct = CTVolume.from_sitk(img, source=where, series_uid=uid)
    for message in check_hu(ct):
        warnings.warn(f"{where}: {message}", CTWarning, stacklevel=2)
    return ct


def save_ct(ct: CTVolume, path: str | os.PathLike) -> Path:
    """Write a CT with its geometry; the format follows the extension.

    HU are written as int16 when every value is an integer in range (lossless, half the
    size), otherwise as float32; :func:`load_ct` gives back the same float32 voxels.

    Parameters
    ----------
    ct : CTVolume
    path : path-like
        Ending in one of :data:`VOLUME_SUFFIXES`; parent folders are created.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    InputError
        Unsupported extension (DICOM writing is not supported) or the write failed.
    """
    p = Path(path)
    if _volume_suffix(p) is None:
        raise InputError(f"unsupported extension; expected one of {', '.join(VOLUME_SUFFIXES)}", str(p))
    img = ct.to_sitk()
    hu = ct.hu
    if hu.size and np.all(np.isfinite(hu)) and hu.min() >= -32768 and hu.max() <= 32767:
        if np.array_equal(hu, np.round(hu)):
            img = sitk.Cast(img, sitk.sitkInt16)
    suffix = _volume_suffix(p)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with quiet_stderr() as library_messages:
            sitk.WriteImage(img, str(p), useCompression=p.name.lower().endswith((".gz", ".mha", ".nrrd")))
        # ITK's NIfTI writer reports a short write (disk full) only on stderr: read the file back.
        check_volume_file(p, suffix)
    except (RuntimeError, OSError, InputError) as exc:
        _remove_volume_file(p, suffix)
        reason = _write_reason(exc)
        raise InputError(f"could not write the CT: {reason}", str(p)) from None
    library_messages.replay()
    return p


def _write_reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        from or_assist.core.outputs import write_reason

        return write_reason(exc)
    if isinstance(exc, InputError):
        return "the file came out incomplete (disk full or the write failed)"
    return sitk_reason(exc)


def _remove_volume_file(path: Path, suffix: str) -> None:
    from or_assist.core.outputs import remove_quietly

    remove_quietly(path)
    if suffix in (".mhd", ".nhdr"):
        stem = path.name[: -len(suffix)]
        for data in (".raw", ".zraw", ".raw.gz"):
            remove_quietly(path.with_name(stem + data))


def check_hu(ct: CTVolume) -> list[str]:
    """Sanity checks on the HU values.

    Flags: non-finite values; a minimum ≥ 0 with values in the thousands (stored values
    without RescaleIntercept, e.g. 0..4095); no air (nothing below -500 HU); a maximum
    above 4000 HU or a minimum below -2000 HU (implausible for CT). Metal up to ~3100 HU
    (standard scale) passes.

    Parameters
    ----------
    ct : CTVolume

    Returns
    -------
    list of str
        One message per finding; empty when the values look like a CT in HU.
    """
    hu = ct.hu
    lo, hi = float(np.min(hu)), float(np.max(hu))
    found = []
    if not (math.isfinite(lo) and math.isfinite(hi)):
        n_bad = int(np.count_nonzero(~np.isfinite(hu)))
        found.append(f"{n_bad} voxels are NaN or infinite")
        finite = hu[np.isfinite(hu)]
        if finite.size == 0:
            return found
        lo, hi = float(finite.min()), float(finite.max())
    if lo >= 0 and hi >= 1000:
        found.append(
            f"values range {lo:g}..{hi:g} with nothing negative: looks like unscaled stored values "
            f"(RescaleIntercept, typically -1024, not applied), not Hounsfield units"
        )
    elif lo > -500:
        found.append(f"minimum {lo:g} HU: no air (nothing below -500 HU); is this a CT in HU?")
    if hi > 4000:
        found.append(f"maximum {hi:g} HU above 4000: implausible for CT (wrong scaling?)")
    if lo < -2000:
        found.append(
            f"minimum {lo:g} HU below -2000: implausible for CT (a padding value or wrong scaling?)"
        )
    return found


def _vector3(value, name: str, positive: bool = False) -> np.ndarray:
    if isinstance(value, (int, float, np.number)) or (isinstance(value, np.ndarray) and value.ndim == 0):
        value = [value] * 3  # one number for all three axes
    kind = "positive " if positive else ""
    return check_vector(value, 3, name, positive=positive, expected=f"one or three finite {kind}numbers")


def crop_ct(ct: CTVolume, min_lps_mm, max_lps_mm, margin_mm: float = 0.0) -> CTVolume:
    """Crop to the voxels covering an LPS box (a sub-block in index space).

    Parameters
    ----------
    ct : CTVolume
    min_lps_mm, max_lps_mm : (3,) array_like
        Opposite corners of an axis-aligned LPS box, mm (min ≤ max per coordinate).
    margin_mm : float
        Grow the box by this much on every side.

    Returns
    -------
    CTVolume
        The smallest index block whose voxel-centre box contains the LPS box, clipped to
        the CT; same spacing and direction, origin moved. Voxels are copied.

    Raises
    ------
    InputError
        Malformed or inverted box, or a box that does not overlap the CT.
    """
    lo = _vector3(min_lps_mm, "min_lps_mm") - float(margin_mm)
    hi = _vector3(max_lps_mm, "max_lps_mm") + float(margin_mm)
    if np.any(lo > hi):
        raise InputError(f"min_lps_mm {lo.tolist()} exceeds max_lps_mm {hi.tolist()} (after margin)", "max_lps_mm")
    bits = np.array([[(b >> a) & 1 for a in range(3)] for b in range(8)], dtype=bool)
    corners = np.where(bits, hi, lo)
    idx = ct.lps_to_index(corners)
    n = np.array(ct.shape_xyz)
    i0 = np.maximum(np.floor(idx.min(axis=0) + 1e-6).astype(int), 0)
    i1 = np.minimum(np.ceil(idx.max(axis=0) - 1e-6).astype(int), n - 1)
    if np.any(i0 > i1):
        ext = ct.corners_lps_mm()
        raise InputError(
            f"box {lo.round(1).tolist()}..{hi.round(1).tolist()} mm does not overlap the CT "
            f"(LPS {ext.min(0).round(1).tolist()}..{ext.max(0).round(1).tolist()} mm)",
            ct.source or "CT",
        )
    hu = ct.hu[i0[2] : i1[2] + 1, i0[1] : i1[1] + 1, i0[0] : i1[0] + 1].copy()
    return CTVolume(hu, ct.index_to_lps(i0.astype(float)), ct.spacing_mm, ct.direction, ct.source, ct.series_uid)


def resample_ct(
    ct: CTVolume, spacing_mm: float | Sequence[float], *, antialias: bool = True, default_hu: float = -1000.0
) -> CTVolume:
    """Resample to a new voxel spacing on the same origin and direction.

    Parameters
    ----------
    ct : CTVolume
    spacing_mm : float or (3,) sequence
        New spacing along index axes (i, j, k), mm.
    antialias : bool
        Before downsampling, smooth with a Gaussian of variance ``((new - old) / 2)²`` mm²
        per axis (zero where the spacing does not grow), so thin bright structures are
        averaged rather than hit or missed.
    default_hu : float
        Value for output voxels outside the input (none with the grid chosen here).

    Returns
    -------
    CTVolume
        Linear interpolation (SimpleITK ResampleImageFilter). Size per axis is
        ``floor((n - 1) * old / new) + 1``, so every new voxel centre lies inside the old
        voxel-centre box.
    """
    new = _vector3(spacing_mm, "spacing_mm", positive=True)
    old = ct.spacing_mm
    n_old = np.array(ct.shape_xyz)
    size = np.floor((n_old - 1) * old / new + 1e-6).astype(int) + 1
    img = ct.to_sitk()
    sigma = np.maximum(new - old, 0.0) / 2.0
    if antialias and np.any(sigma > 0):
        img = sitk.DiscreteGaussian(img, variance=[float(v) for v in sigma**2], maximumKernelWidth=64,
                                    useImageSpacing=True)
    rs = sitk.ResampleImageFilter()
    rs.SetOutputOrigin(tuple(float(v) for v in ct.origin_mm))
    rs.SetOutputDirection(tuple(float(v) for v in ct.direction.ravel()))
    rs.SetOutputSpacing(tuple(float(v) for v in new))
    rs.SetSize([int(v) for v in size])
    rs.SetInterpolator(sitk.sitkLinear)
    rs.SetDefaultPixelValue(float(default_hu))
    rs.SetOutputPixelType(sitk.sitkFloat32)
    return CTVolume.from_sitk(rs.Execute(img), source=ct.source, series_uid=ct.series_uid)


def ct_info(ct: CTVolume) -> dict:
    """Summary of a CT for ``or-assist info CT`` (JSON-friendly values).

    Returns
    -------
    dict
        ``source``, ``series_uid``, ``size_xyz``, ``spacing_mm``, ``origin_mm``,
        ``direction`` (3 x 3, columns = index axes), ``axis_codes``, ``extent_mm`` (voxel
        box size along i, j, k), ``hu_min``, ``hu_max``, ``hu_p1``, ``hu_p99`` (1st/99th
        percentiles, from at most 8 M evenly strided voxels), ``memory_bytes`` and
        ``voxel_sha256``.
    """
    flat = ct.hu.reshape(-1)
    step = max(1, flat.size // _PERCENTILE_MAX_VOXELS)
    sample = flat[::step]
    sample = sample[np.isfinite(sample)]
    p1, p99 = (np.percentile(sample, [1, 99]) if sample.size else (math.nan, math.nan))
    return {
        "source": ct.source,
        "series_uid": ct.series_uid,
        "size_xyz": list(ct.shape_xyz),
        "spacing_mm": ct.spacing_mm.tolist(),
        "origin_mm": ct.origin_mm.tolist(),
        "direction": ct.direction.tolist(),
        "axis_codes": axis_codes(ct.direction),
        "extent_mm": (np.array(ct.shape_xyz) * ct.spacing_mm).tolist(),
        "hu_min": float(np.nanmin(ct.hu)) if sample.size else math.nan,
        "hu_max": float(np.nanmax(ct.hu)) if sample.size else math.nan,
        "hu_p1": float(p1),
        "hu_p99": float(p99),
        "memory_bytes": ct.memory_bytes,
        "voxel_sha256": ct.voxel_sha256(),
    }

