"""Reading a CT from DICOM: a series folder or a single (multi-frame) file.

Series are found by reading each file's header and grouping by SeriesInstanceUID
(0020|000E), image orientation and matrix size; GDCM's own series ids are not used
because anonymised exports often carry an empty UID (which GDCM then reports as ``''``).
The series with the most slices is read. Slices are ordered along the slice normal
(row x column cosines), so index axis k points along the normal and the geometry is the
one the ImagePositionPatient / ImageOrientationPatient / PixelSpacing tags state.
A gantry-tilted series (slices stacked along the table, not along their normal) is
resampled onto an orthonormal grid (:mod:`or_assist.core.ct.tilt`; a
:class:`~or_assist.core.ct.tilt.ResampledWarning` says the tilt). Missing slices,
duplicates, slices off one straight line and a series whose slices change orientation
are rejected instead of giving a silently distorted volume.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from or_assist.core.ct.tilt import ResampledWarning, resample_sheared, tilt_deg
from or_assist.errors import InputError

__all__ = ["read_dicom_folder", "read_dicom_file", "sitk_reason", "NotDicomError"]

_TAG_UID = "0020|000e"
_TAG_IPP = "0020|0032"
_TAG_IOP = "0020|0037"
_TAG_PIXEL_SPACING = "0028|0030"
_TAG_SLICE_THICKNESS = "0018|0050"
_TAG_SLICE_GAP = "0018|0088"
_IOP_TOL = 1e-3  # |row|, |col| within 1 +- tol and |row . col| below tol
_SPACING_RTOL = 0.01  # relative variation of slice gaps accepted as uniform
_SPACING_ATOL_MM = 0.01
_TILT_TOL_MM = 0.1  # in-plane drift of the slice positions over the whole series
_LINE_TOL_MM = 0.1  # a tilted series' slice positions off the straight line through them (+ 1 % of the step)


class NotDicomError(InputError):
    """A file that is not a readable DICOM image (as opposed to a DICOM file with bad values)."""


def sitk_reason(exc: Exception) -> str:
    """The useful last line of a SimpleITK exception message."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    text = re.sub(r"^(ITK ERROR|sitk::ERROR):\s*", "", text)
    return re.sub(r"^\w+\(0x[0-9a-fA-F]+\):\s*", "", text)


@dataclass
class _Header:
    path: Path
    uid: str
    ipp: np.ndarray | None
    iop: np.ndarray | None
    size: tuple[int, int, int]
    spacing_tags: dict[str, str]


def _floats(text: str, n: int) -> np.ndarray | None:
    try:
        vals = np.array([float(v) for v in text.strip().split("\\")], dtype=np.float64)
    except ValueError:
        return None
    return vals if vals.shape == (n,) and np.all(np.isfinite(vals)) else None


def _read_header(path: Path) -> _Header:
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    reader.LoadPrivateTagsOff()
    reader.ReadImageInformation()  # raises RuntimeError for non-DICOM / corrupt files

    def tag(key: str) -> str:
        return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""

    size = tuple(int(v) for v in reader.GetSize()) + (1,) * (3 - reader.GetDimension())
    spacing_tags = {key: tag(key) for key in (_TAG_PIXEL_SPACING, _TAG_SLICE_THICKNESS, _TAG_SLICE_GAP)
                    if reader.HasMetaDataKey(key)}
    return _Header(path, tag(_TAG_UID), _floats(tag(_TAG_IPP), 3), _floats(tag(_TAG_IOP), 6), size[:3],
                   spacing_tags)


_SPACING_NAMES = {_TAG_PIXEL_SPACING: ("PixelSpacing (0028,0030)", 2),
                  _TAG_SLICE_THICKNESS: ("SliceThickness (0018,0050)", 1),
                  _TAG_SLICE_GAP: ("SpacingBetweenSlices (0018,0088)", 1)}


def _check_spacing_tags(header: _Header, keys: tuple[str, ...]) -> None:
    """Refuse a present but damaged spacing tag (GDCM would read it as 1 mm)."""
    for key in keys:
        if key not in header.spacing_tags:
            continue
        text = header.spacing_tags[key]
        name, n = _SPACING_NAMES[key]
        try:
            vals = [float(v) for v in text.split("\\")]
        except ValueError:
            vals = []
        if len(vals) != n or not all(np.isfinite(v) and v > 0 for v in vals):
            what = "two finite numbers" if n == 2 else "a finite number"
            raise InputError(f"{name} must be {what} > 0 mm, got {text!r}", str(header.path))


def _check_orientation(header: _Header) -> None:
    """ImageOrientationPatient must be two orthogonal unit vectors."""
    row, col = header.iop[:3], header.iop[3:]
    if (abs(np.linalg.norm(row) - 1) > _IOP_TOL or abs(np.linalg.norm(col) - 1) > _IOP_TOL
            or abs(float(row @ col)) > _IOP_TOL):
        text = "\\".join(f"{v:g}" for v in header.iop)
        raise InputError(f"ImageOrientationPatient (0020,0037) must be two orthogonal unit vectors, "
                         f"got {text!r}", str(header.path))


def _has_dicom_marker(path: Path) -> bool:
    """Whether the file carries the DICOM Part 10 marker ``DICM`` at byte 128."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _candidate_files(folder: Path) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            files.append(Path(root) / name)
    return files


def _orthonormal(iop: np.ndarray) -> np.ndarray:
    row = iop[:3] / np.linalg.norm(iop[:3])
    col = iop[3:] - row * float(row @ iop[3:])
    col /= np.linalg.norm(col)
    return np.column_stack([row, col, np.cross(row, col)])


def read_dicom_file(path: Path) -> tuple[sitk.Image, str | None]:
    """Read one DICOM file (a multi-frame volume, or a single slice to be rejected later).

    Returns
    -------
    image : SimpleITK.Image
        Rescaled to HU by GDCM (RescaleSlope / RescaleIntercept applied).
    series_uid : str or None

    Raises
    ------
    InputError
        The file is not a readable DICOM image.
    """
    try:
        header = _read_header(path)
    except RuntimeError as exc:
        raise NotDicomError(f"not a readable DICOM image ({sitk_reason(exc)})", str(path)) from None
    _check_spacing_tags(header, tuple(_SPACING_NAMES) if header.size[2] > 1 else (_TAG_PIXEL_SPACING,))
    if header.iop is not None:
        _check_orientation(header)
    try:
        reader = sitk.ImageFileReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileName(str(path))
        img = reader.Execute()
    except RuntimeError as exc:
        raise NotDicomError(f"not a readable DICOM image ({sitk_reason(exc)})", str(path)) from None
    return img, header.uid or None


def _pick_series(folder: Path, headers: list[_Header]) -> list[_Header]:
    groups: dict[tuple, list[_Header]] = {}
    for h in headers:
        iop_key = None if h.iop is None else tuple(np.round(h.iop, 3))
        groups.setdefault((h.uid, h.size[:2], iop_key), []).append(h)

    def n_slices(group: list[_Header]) -> int:
        return sum(h.size[2] for h in group)

    # most slices first; ties broken by the UID so the choice is reproducible
    chosen = sorted(groups.values(), key=lambda g: (-n_slices(g), g[0].uid, str(g[0].path)))[0]
    _check_one_orientation(folder, chosen, groups)
    return chosen


def _check_one_orientation(folder: Path, chosen: list[_Header], groups: dict[tuple, list[_Header]]) -> None:
    """Refuse a series (one non-empty UID, one matrix size) whose slices change orientation."""
    h0 = chosen[0]
    if not h0.uid or h0.iop is None:
        return
    others = [g[0] for g in groups.values() if g is not chosen and g[0].uid == h0.uid
              and g[0].size[:2] == h0.size[:2] and g[0].iop is not None]
    if others:
        def iop(h: _Header) -> str:
            return "\\".join(f"{v:.4g}" for v in h.iop)
        raise InputError(
            f"series {h0.uid}: its slices have {len(others) + 1} different orientations "
            f"(ImageOrientationPatient {iop(h0)} in {h0.path.name}, {iop(others[0])} in {others[0].path.name}); "
            f"slices that change orientation (a gantry tilt changed during the scan, or two series under one "
            f"SeriesInstanceUID) cannot be stacked into one volume: export one orientation as its own series",
            str(folder),
        )


def _ordered_slices(folder: Path, group: list[_Header]) -> tuple[list[_Header], np.ndarray, float, np.ndarray | None]:
    """Sort slices along the normal and check the spacing; returns (slices, direction, dz, tilted step or None)."""
    where = str(folder)
    missing = [h.path.name for h in group if h.ipp is None or h.iop is None]
    if missing:
        raise InputError(
            f"{len(missing)} slice(s) lack ImagePositionPatient/ImageOrientationPatient "
            f"(e.g. {missing[0]}): cannot place them in space",
            where,
        )
    for h in group:
        _check_spacing_tags(h, (_TAG_PIXEL_SPACING,))
        _check_orientation(h)
    direction = _orthonormal(group[0].iop)
    normal = direction[:, 2]
    pos = np.array([h.ipp @ normal for h in group])
    order = np.argsort(pos, kind="stable")
    group = [group[i] for i in order]
    pos = pos[order]
    gaps = np.diff(pos)
    if np.any(gaps < 1e-3):
        k = int(np.argmin(gaps))
        raise InputError(
            f"two slices at the same position ({group[k].path.name}, {group[k + 1].path.name}): "
            f"duplicated files or two series mixed under one SeriesInstanceUID",
            where,
        )
    dz = float(np.mean(gaps))
    if gaps.max() - gaps.min() > max(_SPACING_ATOL_MM, _SPACING_RTOL * dz):
        raise InputError(
            f"slice spacing is not uniform ({gaps.min():.3f} to {gaps.max():.3f} mm): missing slices "
            f"or a variable-thickness reconstruction; export a uniformly spaced series",
            where,
        )
    drift = group[-1].ipp - group[0].ipp
    lateral = drift - normal * float(drift @ normal)
    if np.linalg.norm(lateral) <= _TILT_TOL_MM:
        return group, direction, dz, None                        # stacked along the normal: as read
    ipp = np.array([h.ipp for h in group])
    k = np.arange(len(group), dtype=np.float64)
    step = np.polyfit(k, ipp, 1)[0]                               # (3,) mm per slice
    off_line = np.linalg.norm(ipp - ipp.mean(0) - np.outer(k - k.mean(), step), axis=1)
    if off_line.max() > _LINE_TOL_MM + 0.01 * float(np.linalg.norm(step)):
        j = int(np.argmax(off_line))
        raise InputError(
            f"slices drift sideways but their positions do not lie evenly on one line (slice "
            f"{group[j].path.name} is {off_line[j]:.2f} mm off the line through the others): not a gantry-tilted "
            f"stack; export the series again",
            where,
        )
    return group, direction, dz, step


def read_dicom_folder(folder: Path) -> tuple[sitk.Image, str | None]:
    """Read the DICOM series with the most slices under ``folder`` (searched recursively).

    Returns
    -------
    image : SimpleITK.Image
        3D, in HU, with origin = ImagePositionPatient of the first slice along the normal,
        direction = (row cosine, column cosine, normal), spacing = (column spacing, row
        spacing, slice gap). A gantry-tilted series comes resampled (module doc), with a
        :class:`~or_assist.core.ct.tilt.ResampledWarning`.
    series_uid : str or None
        The SeriesInstanceUID of the series read (None when the files carry none).

    Raises
    ------
    InputError
        No DICOM image in the folder, the chosen series is a single 2D slice, slices are
        missing, duplicated, off one straight line, of several orientations or unreadable, a file with the DICOM marker cannot be
        read (truncated), or a PixelSpacing / ImageOrientationPatient tag is damaged.
    """
    where = str(folder)
    headers, unreadable = [], 0
    for path in _candidate_files(folder):
        try:
            headers.append(_read_header(path))
        except RuntimeError as exc:
            if _has_dicom_marker(path):  # a DICOM file, cut short or damaged: do not skip it silently
                raise InputError(f"damaged DICOM file {path.name}: it has the DICM marker but cannot be read "
                                 f"({sitk_reason(exc)}); truncated copy? remove it or copy the series again",
                                 where) from None
            unreadable += 1
    if not headers:
        what = f"{unreadable} file(s), none a readable DICOM image" if unreadable else "no files"
        raise InputError(f"no DICOM series found ({what})", where)
    group = _pick_series(folder, headers)
    uid = group[0].uid or None
    if len(group) == 1:
        img, _ = read_dicom_file(group[0].path)
        return img, uid
    group, direction, dz, step = _ordered_slices(folder, group)
    reader = sitk.ImageSeriesReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileNames([str(h.path) for h in group])
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        for h in group:  # name the culprit
            try:
                sitk.ReadImage(str(h.path), imageIO="GDCMImageIO")
            except RuntimeError:
                raise InputError(f"unreadable slice {h.path.name} ({sitk_reason(exc)})", where) from None
        raise InputError(f"cannot read the series ({sitk_reason(exc)})", where) from None
    if step is not None:
        columns = np.column_stack([direction[:, 0] * img.GetSpacing()[0], direction[:, 1] * img.GetSpacing()[1], step])
        img = resample_sheared(img, group[0].ipp, columns, where=where)
        warnings.warn(f"{where}: gantry tilt of {tilt_deg(columns):.1f} deg (slices stacked along the table, "
                      f"{np.linalg.norm(step):.3g} mm apart, not along their normal): resampled onto an orthonormal "
                      f"grid of {' x '.join(f'{v:.3g}' for v in img.GetSpacing())} mm along the slices' rows, columns "
                      f"and normal (linear interpolation; outside the slab -1024 HU)", ResampledWarning, stacklevel=3)
        return img, uid
    img.SetOrigin(tuple(float(v) for v in group[0].ipp))
    img.SetSpacing(tuple(img.GetSpacing()[:2]) + (dz,))
    img.SetDirection(tuple(float(v) for v in direction.ravel()))
    return img, uid
