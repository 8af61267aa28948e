"""Reading a fluoroscopy shot from a file: PNG/TIFF/JPEG/BMP (8 or 16 bit) or DICOM.

The one reader of every command that takes a shot or a phantom frame as a file
(``or-assist register``, ``pin``, ``calibrate``). It decodes the bytes itself (any path,
non-ASCII included), keeps 16-bit images 16-bit and averages colour to grey. A DICOM file
(the ``DICM`` marker, or a name ending in one of :data:`DICOM_SUFFIXES`) is read by
:func:`or_assist.dicom.shot.read_dicom_shot`: a projection image only (XA, RF, DX, CR,
grey secondary capture), its last frame, more attenuation darker, its values scaled from
their minimum and maximum to ``uint16`` (:func:`dicom_to_image`);
:func:`read_shot_header` gives its header (geometry, positioner angles). Another image
format SimpleITK reads (MHA, NRRD) is scaled from its minimum and maximum to ``uint16``.
Imports only core and dicom.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from or_assist.errors import InputError

__all__ = ["DICOM_SUFFIXES", "read_shot_image", "read_shot_header", "is_dicom_shot_file", "dicom_to_image"]

#: File name endings taken as DICOM (a DICOM file often has none): a file with one of them
#: that does not decode is reported as an unreadable DICOM image.
DICOM_SUFFIXES = ("", ".dcm", ".dicom", ".ima")


def is_dicom_shot_file(path: str | os.PathLike) -> bool:
    """True when ``path`` is to be read as DICOM: the ``DICM`` marker at byte 128, or a name
    ending in ``.dcm``, ``.dicom`` or ``.ima`` (a file without an extension needs the marker)."""
    from or_assist.dicom.shot import is_dicom_file

    p = Path(path)
    return p.suffix.lower() in DICOM_SUFFIXES[1:] or is_dicom_file(p)


def dicom_to_image(pixels: np.ndarray, bits_stored: int) -> np.ndarray:
    """A DICOM shot's pixels as a shot image: ``uint16``, scaled linearly from their minimum
    and maximum to 0-65535 (order kept; a flat image is all 0). The stretch gives every
    DICOM shot the contrast the bead and pin detectors expect, whatever part of its stored
    range (``bits_stored``) the detector signal fills."""
    lo, hi = float(pixels.min()), float(pixels.max())
    if hi <= lo:
        return np.zeros(pixels.shape, np.uint16)
    return np.round((pixels.astype(np.float64) - lo) * (65535.0 / (hi - lo))).astype(np.uint16)


def read_shot_header(path: str | os.PathLike):
    """The DICOM header of a shot file (its last frame), or None when it is not a DICOM file.

    Returns
    -------
    DicomShotHeader or None

    Raises
    ------
    InputError
        A DICOM file that is not a projection image or has bad geometry tags.
    """
    from or_assist.dicom.shot import read_dicom_header

    if not Path(path).is_file() or not is_dicom_shot_file(path):
        return None
    return read_dicom_header(path)


def read_shot_image(path: str | os.PathLike) -> np.ndarray:
    """Read a shot: PNG/TIFF/JPEG/BMP (8 or 16 bit, grey or colour) or a 2-D DICOM file.

    Parameters
    ----------
    path : path-like
        The image file.

    Returns
    -------
    (H, W) uint8 or uint16 ndarray
        Colour images are averaged to grey (alpha ignored); a DICOM image's last frame as
        :func:`dicom_to_image` makes it.

    Raises
    ------
    InputError
        Missing or unreadable file, not an 8- or 16-bit image, not a single 2-D image, or a
        DICOM file that is not a grey projection image (the message says why).
    """
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InputError("image file not found", str(p))
    if is_dicom_shot_file(p):
        return _read_dicom(p)
    try:
        data = np.fromfile(str(p), dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"image file unreadable ({exc.strerror or exc})", str(p)) from None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        if data[:2].tobytes() in (b"\x08\x00", b"\x02\x00"):  # a DICOM dataset without the preamble
            return _read_dicom(p)
        img = _read_other(p)
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
    """The last frame of a DICOM projection image (:func:`dicom_to_image`)."""
    from or_assist.dicom.shot import read_dicom_shot

    try:
        shot = read_dicom_shot(path)
    except InputError as exc:
        text = str(exc)
        if "not a DICOM file" in text or "empty file" in text:
            why = text[len(exc.source) + 2:] if exc.source else text
            raise InputError(f"not a readable DICOM image ({why})", str(path)) from None
        raise
    return dicom_to_image(shot.pixels, shot.bits_stored)


def _read_other(path: Path) -> np.ndarray:
    """A 2-D image in another format SimpleITK reads (MHA, NRRD), scaled to ``uint16``."""
    import SimpleITK as sitk

    try:
        img = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    except RuntimeError:
        if path.suffix.lower() in DICOM_SUFFIXES:
            raise InputError("not a readable DICOM image (not an image OpenCV or SimpleITK decodes either)",
                             str(path)) from None
        raise InputError("not a readable image (expected PNG, TIFF, JPEG, BMP or DICOM)", str(path)) from None
    img = np.squeeze(img)
    if img.ndim != 2:
        raise InputError(f"expected a single 2D image, got an array of shape {img.shape}", str(path))
    lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        return np.zeros(img.shape, np.uint16)
    return np.round((img.astype(np.float64) - lo) / (hi - lo) * 65535).astype(np.uint16)
