"""Reading a fluoroscopy shot from a file: PNG/TIFF/JPEG/BMP (8 or 16 bit) or DICOM.

The one reader of every command that takes a shot or a phantom frame as a file
(``or-assist register``, ``pin``, ``calibrate``). It decodes the bytes itself (any path,
non-ASCII included), keeps 16-bit images 16-bit, averages colour to grey, and falls back
to a 2-D DICOM file, whose stored values are scaled to the full ``uint16`` range.
Imports only core.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from or_assist.errors import InputError

__all__ = ["DICOM_SUFFIXES", "read_shot_image"]

#: File name endings taken as DICOM (a DICOM file often has none): a file with one of them
#: that does not decode is reported as an unreadable DICOM image.
DICOM_SUFFIXES = ("", ".dcm", ".dicom", ".ima")


def read_shot_image(path: str | os.PathLike) -> np.ndarray:
    """Read a shot: PNG/TIFF/JPEG/BMP (8 or 16 bit, grey or colour) or a 2-D DICOM file.

    Parameters
    ----------
    path : path-like
        The image file.

    Returns
    -------
    (H, W) uint8 or uint16 ndarray
        Colour images are averaged to grey (alpha ignored); a DICOM image's stored values
        are scaled linearly from their minimum and maximum to 0-65535.

    Raises
    ------
    InputError
        Missing or unreadable file, not an 8- or 16-bit image, or not a single 2-D image.
    """
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InputError("image file not found", str(p))
    try:
        data = np.fromfile(str(p), dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"image file unreadable ({exc.strerror or exc})", str(p)) from None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        img = _read_dicom(p)
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[..., 0]
        elif img.shape[2] in (3, 4):
            img = img[..., :3].mean(axis=2).round().astype(img.dtype)
        else:
            raise InputError(f"unsupported channel count {img.shape[2]}", str(p))
    if img.ndim != 2 or img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"expected an 8- or 16-bit grey image, got {img.dtype} with shape {img.shape}", str(p))
    return img


def _read_dicom(path: Path) -> np.ndarray:
    """A 2-D DICOM (or other SimpleITK-readable) image scaled to ``uint16``."""
    import SimpleITK as sitk

    try:
        img = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    except RuntimeError as exc:
        if path.suffix.lower() in DICOM_SUFFIXES:
            why = (str(exc).strip().splitlines() or ["unknown format"])[-1]
            raise InputError(f"not a readable DICOM image ({why})", str(path)) from None
        raise InputError("not a readable image (expected PNG, TIFF, JPEG, BMP or DICOM)", str(path)) from None
    img = np.squeeze(img)
    if img.ndim != 2:
        raise InputError(f"expected a single 2D image, got an array of shape {img.shape}", str(path))
    lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        return np.zeros(img.shape, np.uint16)
    return np.round((img.astype(np.float64) - lo) / (hi - lo) * 65535).astype(np.uint16)
