"""Reading a fluoroscopy shot from a DICOM object: the pixels at full bit depth and the header.

:func:`read_dicom_shot` takes a file path, the file's bytes or a pydicom Dataset of a
projection image: X-ray angiography (XA, Enhanced XA), radiofluoroscopy (RF, Enhanced XRF),
digital X-ray (DX, for presentation and for processing), computed radiography (CR) or
grey secondary capture (single and multi-frame). Anything else is refused with an
:class:`~or_assist.errors.InputError` naming the file and what was wrong: a CT, MR or
ultrasound object ("not a projection image: Modality CT ..."), missing pixel data or image
size tags, a colour image, a truncated file, a file that is not DICOM.

Pixels: compressed transfer syntaxes are decoded by pydicom with what is installed (RLE
natively; JPEG baseline and JPEG 2000 through Pillow; JPEG-LS through pyjpegls), else by
SimpleITK (GDCM: JPEG lossless, JPEG-LS, JPEG 2000); when nothing decodes, the error names
the transfer syntax. The result is ``uint16`` at the stored bit depth (0 .. 2**BitsStored - 1),
oriented so that more attenuation is darker (MONOCHROME2 display values): see
:func:`_orient` for the rule.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from or_assist.dicom.header import DicomShotHeader, _frame_count, _transfer_syntax, header_from_dataset, shutter_mask
from or_assist.errors import InputError

__all__ = ["DicomShot", "read_dicom_shot", "read_dicom_shots", "read_dicom_header", "read_dicom_dataset",
           "PROJECTION_SOP_CLASSES", "PROJECTION_MODALITIES", "is_dicom_file"]

#: SOP classes read as shots, with a short name for messages.
PROJECTION_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.12.1": "X-Ray Angiographic Image",
    "1.2.840.10008.5.1.4.1.1.12.1.1": "Enhanced XA Image",
    "1.2.840.10008.5.1.4.1.1.12.2": "X-Ray Radiofluoroscopic Image",
    "1.2.840.10008.5.1.4.1.1.12.2.1": "Enhanced XRF Image",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image (For Presentation)",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image (For Processing)",
    "1.2.840.10008.5.1.4.1.1.1": "Computed Radiography Image",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte Secondary Capture Image",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word Secondary Capture Image",
}
#: Modalities of projection images (a secondary capture of any other modality is refused).
PROJECTION_MODALITIES = ("XA", "RF", "DX", "CR", "PX", "OT")
_SECONDARY_CAPTURE = ("1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.2", "1.2.840.10008.5.1.4.1.1.7.3")


@dataclass(frozen=True)
class DicomShot:
    """One frame of a DICOM projection image.

    Attributes
    ----------
    pixels : (H, W) uint16 ndarray
        Values 0 .. 2**bits_stored - 1, more attenuation darker (MONOCHROME2); 0 (black)
        outside the header's circular and rectangular shutters, as a C-arm shows them.
    bits_stored : int
        The stored bit depth (1-16): the pixels' full-scale value is ``2**bits_stored - 1``.
    header : DicomShotHeader
        Identity, geometry and exposure tags.
    """

    pixels: np.ndarray
    bits_stored: int
    header: DicomShotHeader

    @property
    def max_value(self) -> int:
        """Full-scale pixel value, ``2**bits_stored - 1``."""
        return (1 << self.bits_stored) - 1


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True when ``path`` is a file with the DICOM preamble (``DICM`` at byte 128)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def read_dicom_dataset(source, *, name: str | None = None):
    """The pydicom Dataset of a path, bytes or Dataset, with a clear error when it is not DICOM.

    Parameters
    ----------
    source : path-like, bytes or pydicom.Dataset
    name : str, optional
        What to call the source in messages (default: the path, ``"<bytes>"``).

    Returns
    -------
    (pydicom.Dataset, str)
        The dataset and the name used in messages.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    if isinstance(source, pydicom.Dataset):
        return source, name or "<dataset>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, where = bytes(source), name or "<bytes>"
    elif isinstance(source, (str, os.PathLike)):
        where = name or str(source)
        p = Path(source)
        if not p.is_file():
            raise InputError("DICOM file not found", where)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise InputError(f"DICOM file unreadable ({exc.strerror or exc})", where) from None
    else:
        raise InputError(f"expected a path, bytes or a pydicom Dataset, got {type(source).__name__}", "source")
    if not data:
        raise InputError("empty file (0 bytes), not a DICOM image", where)
    # a raw dataset without the preamble usually starts with a group-0008 tag
    force = data[128:132] != b"DICM" and data[:2] in (b"\x08\x00", b"\x02\x00")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=force)
    except InvalidDicomError:
        raise InputError("not a DICOM file (no 'DICM' marker at byte 128)", where) from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on a damaged file
        text = " ".join(str(exc).split())[:300]
        raise InputError(f"damaged or truncated DICOM file ({type(exc).__name__}: {text})", where) from None
    if force and not any(k in ds for k in ("SOPClassUID", "Modality", "PixelData")):
        raise InputError("not a DICOM file (no 'DICM' marker and no SOP class)", where)
    return ds, where


def _check_projection(ds, where: str) -> None:
    from pydicom.uid import UID

    sop = str(ds.get("SOPClassUID", "") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "")
              or "").strip()
    modality = str(ds.get("Modality", "") or "").strip().upper()
    expected = "expected XA, RF, DX, CR or grey secondary capture"
    if sop in PROJECTION_SOP_CLASSES:
        if sop in _SECONDARY_CAPTURE and modality and modality not in PROJECTION_MODALITIES:
            raise InputError(f"not a projection image: Modality {modality} in a secondary capture; {expected}", where)
        return
    if not sop and modality in PROJECTION_MODALITIES[:4]:
        return
    what = f"Modality {modality or '(missing)'}"
    if sop:
        what += f", SOP class {UID(sop).name if UID(sop).is_valid else sop} ({sop})"
    else:
        what += ", no SOPClassUID"
    raise InputError(f"not a projection image: {what}; {expected}", where)


def _check_image_tags(ds, where: str) -> tuple[int, int, int, int]:
    for key in ("Rows", "Columns", "BitsAllocated", "BitsStored", "SamplesPerPixel"):
        if ds.get(key) in (None, ""):
            raise InputError(f"missing {key}; a projection image needs Rows, Columns, BitsAllocated, BitsStored "
                             "and SamplesPerPixel", where)
    try:
        rows, cols, alloc, stored, samples = (int(ds.get(k)) for k in
                                              ("Rows", "Columns", "BitsAllocated", "BitsStored", "SamplesPerPixel"))
    except (TypeError, ValueError) as exc:
        raise InputError(f"malformed image size tags ({exc}); Rows, Columns, BitsAllocated, BitsStored and "
                         "SamplesPerPixel must be integers", where) from None
    if rows <= 0 or cols <= 0:
        raise InputError(f"Rows/Columns must be > 0, got {rows}x{cols}", where)
    if alloc not in (1, 8, 16) or not 1 <= stored <= alloc:
        raise InputError(f"BitsStored {stored} / BitsAllocated {alloc} not supported; expected 1-16 bits stored "
                         "in 8 or 16 allocated", where)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    if not photometric:
        raise InputError("missing PhotometricInterpretation; expected MONOCHROME1 or MONOCHROME2", where)
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(f"colour image (PhotometricInterpretation {photometric or 'missing'}, SamplesPerPixel "
                         f"{samples}); expected a grey MONOCHROME1 or MONOCHROME2 image", where)
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise InputError("no pixel data (PixelData 7FE0,0010 missing)", where)
    if "PixelData" not in ds:
        raise InputError("float pixel data is not a projection image; expected integer PixelData", where)
    return rows, cols, alloc, stored


def _decode(ds, where: str, index: int | None, shape: tuple[int, int], count: int) -> np.ndarray:
    """Decoded stored values: (H, W) for ``index``, (F, H, W) for ``index=None``."""
    from pydicom.pixels import pixel_array

    ts = _transfer_syntax(ds)
    ts_name = f"{ts.name} ({ts})" if ts is not None else "unknown transfer syntax"
    errors = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = pixel_array(ds, index=index, raw=True)
        return _shaped(arr, where, shape, count if index is None else 1)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom's decoders raise many kinds
        errors.append(f"pydicom: {' '.join(str(exc).split())[:300] or type(exc).__name__}")
    if ts is None or not ts.is_compressed:
        hint = "; the file may be truncated" if "less than expected" in errors[0] else ""
        raise InputError(f"pixel data unreadable ({errors[0]}){hint}", where)
    arr = _decode_sitk(ds, errors)
    if arr is None:
        raise InputError(f"cannot decode {ts_name}: " + "; ".join(errors), where)
    arr = _shaped(arr, where, shape, count)
    return arr if index is None else (arr[index] if arr.ndim == 3 else arr)


def _shaped(arr: np.ndarray, where: str, shape: tuple[int, int], count: int) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] == 1 and count == 1:
        arr = arr[0]
    want = shape if count == 1 else (count, *shape)
    if arr.shape != want:
        raise InputError(f"decoded pixel data has shape {arr.shape}, expected {want} from Rows/Columns/"
                         "NumberOfFrames", where)
    return arr


def _decode_sitk(ds, errors: list) -> np.ndarray | None:
    """Stored values through SimpleITK (GDCM), or None (the reason appended to ``errors``)."""
    import tempfile

    import SimpleITK as sitk

    with tempfile.TemporaryDirectory(prefix="or_assist_dicom_") as tmp:
        path = os.path.join(tmp, "shot.dcm")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.save_as(path, enforce_file_format=False)
            reader = sitk.ImageFileReader()
            reader.SetImageIO("GDCMImageIO")
            reader.SetFileName(path)
            arr = sitk.GetArrayFromImage(reader.Execute())
        except Exception as exc:  # noqa: BLE001 - SimpleITK raises RuntimeError, writing may raise more
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            errors.append(f"SimpleITK/GDCM: {lines[-1][:200] if lines else type(exc).__name__}")
            return None
    return arr


def _tag_number(ds, keyword: str, where: str) -> float | None:
    """A single-valued numeric element, None when absent; an InputError naming it when bad."""
    try:
        value = ds.get(keyword)
        return None if value in (None, "") else float(value)
    except Exception:  # noqa: BLE001 - a multi-valued or undecodable element
        raise InputError(f"{keyword} must be a single number", where) from None


def _orient(arr: np.ndarray, ds, stored: int, where: str = "<dataset>") -> tuple[np.ndarray, bool]:
    """Stored values as ``uint16`` 0 .. 2**stored - 1, more attenuation darker.

    Signed data is offset by ``2**(stored-1)`` (order kept). The values are inverted when
    PixelIntensityRelationshipSign is -1 (higher value = less X-ray intensity), or, without
    that tag, when the image is MONOCHROME1; a negative RescaleSlope reverses the order
    once more. Rescale is otherwise not applied: the stored values are the detector signal.
    """
    full = (1 << stored) - 1
    values = arr.astype(np.int64)
    if _tag_number(ds, "PixelRepresentation", where) == 1:
        values = values + (1 << (stored - 1))
    values = np.clip(values, 0, full)
    sign = _tag_number(ds, "PixelIntensityRelationshipSign", where)
    invert = sign == -1 if sign is not None else \
        str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"
    slope = _tag_number(ds, "RescaleSlope", where)
    if slope is not None and slope < 0:
        invert = not invert
    if invert:
        values = full - values
    return values.astype(np.uint16), invert


def _prepare(source, name):
    ds, where = read_dicom_dataset(source, name=name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _check_projection(ds, where)
            rows, cols, _alloc, stored = _check_image_tags(ds, where)
            count = _frame_count(ds, where)
    except InputError as exc:
        import pydicom

        if "PixelData" in ds or isinstance(source, pydicom.Dataset) or "pixel data" in str(exc):
            raise
        raise InputError(f"{exc.args[0]} (no pixel data either: is the file truncated?)") from None
    return ds, where, (rows, cols), stored, count


def _header(ds, where, index, count):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return header_from_dataset(ds, where, frame_index=index, frame_count=count)


def read_dicom_shot(source, *, frame: int = -1, name: str | None = None) -> DicomShot:
    """Read one frame of a DICOM projection image (the last one by default).

    Parameters
    ----------
    source : path-like, bytes or pydicom.Dataset
        The DICOM file, its bytes, or a dataset already read.
    frame : int
        Which frame of a multi-frame object, 0-based; negative counts from the end
        (``-1``, the default, is the last frame: the one a fluoroscopy run ends on).
    name : str, optional
        What to call the source in messages (default: the path, ``"<bytes>"``, ``"<dataset>"``).

    Returns
    -------
    DicomShot

    Raises
    ------
    InputError
        Not DICOM, damaged or truncated, not a projection image, colour, missing pixel data or
        image size tags, a frame out of range, pixel data no installed decoder can read, or a
        geometry tag with a bad value. The message names the file and the problem.
    """
    ds, where, shape, stored, count = _prepare(source, name)
    try:
        k = int(frame)
    except (TypeError, ValueError):
        raise InputError(f"must be an integer, got {frame!r}", "frame") from None
    if not -count <= k < count:
        raise InputError(f"frame {k} out of range: the object has {count} frame(s)", where)
    k %= count
    arr = _decode(ds, where, k if count > 1 else None, shape, 1)
    header = _header(ds, where, k, count)
    return DicomShot(pixels=_shuttered(_orient(arr, ds, stored, where)[0], header), bits_stored=stored, header=header)


def read_dicom_shots(source, *, name: str | None = None) -> list[DicomShot]:
    """Every frame of a DICOM projection image, in order (a fluoroscopy run as a sequence).

    Parameters
    ----------
    source : path-like, bytes or pydicom.Dataset
    name : str, optional
        What to call the source in messages.

    Returns
    -------
    list of DicomShot
        One per frame; each header's ``frame_index`` says which.

    Raises
    ------
    InputError
        As :func:`read_dicom_shot`.
    """
    ds, where, shape, stored, count = _prepare(source, name)
    arr = _decode(ds, where, None, shape, count)
    frames = arr[None] if count == 1 else arr
    out = []
    for k in range(count):
        header = _header(ds, where, k, count)
        out.append(DicomShot(pixels=_shuttered(_orient(frames[k], ds, stored, where)[0], header), bits_stored=stored,
                             header=header))
    return out


def _shuttered(pixels: np.ndarray, header: DicomShotHeader) -> np.ndarray:
    mask = shutter_mask(header, pixels.shape)
    if mask is not None:
        pixels[~mask] = 0
    return pixels


def read_dicom_header(source, *, frame: int = -1, name: str | None = None) -> DicomShotHeader:
    """The header of a DICOM projection image's frame, without decoding its pixels.

    Parameters
    ----------
    source : path-like, bytes or pydicom.Dataset
    frame : int
        As in :func:`read_dicom_shot` (default the last frame).
    name : str, optional
        What to call the source in messages.

    Raises
    ------
    InputError
        As :func:`read_dicom_shot`, except for undecodable pixel data.
    """
    ds, where, _shape, _stored, count = _prepare(source, name)
    if not -count <= int(frame) < count:
        raise InputError(f"frame {frame} out of range: the object has {count} frame(s)", where)
    return _header(ds, where, int(frame) % count, count)
