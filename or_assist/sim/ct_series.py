"""A CT written as a DICOM series (pydicom), as a scanner exports it, straight or gantry-tilted.

:func:`write_ct_series` writes one CT Image Storage file per slice: int16 pixels in HU
(RescaleIntercept -1024, slope 1, stored unsigned when nothing lies below -1024 HU), with
ImagePositionPatient, ImageOrientationPatient and PixelSpacing stating the geometry; the
slice positions may be given (a gantry-tilted stack: slices tilted but stepping along the
table). :func:`scanner_slice_positions` gives the true positions of a
:func:`~or_assist.sim.postop_scanner.scanner_postop_ct` scan: for a ``sheared`` model (a
tilted series read without tilt correction) the slices step along LPS z, so the series
written states the scan's true geometry and the project's reader
(:mod:`or_assist.core.ct.dicom`) must undo the tilt. :func:`postop_via_dicom` writes a
post-op scan and reads it back through :func:`~or_assist.core.ct.load.load_ct`, as
``or-assist evaluate --postop DIR`` would.

Examples
--------
>>> post, truth = scanner_postop_ct(ct, placed, motion, scanner_family("tilted_dicom_15"))  # doctest: +SKIP
>>> post_read = postop_via_dicom(post, scanner_family("tilted_dicom_15"), tmp / "postop")    # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np

from or_assist.core.ct.volume import CTVolume
from or_assist.errors import InputError

__all__ = ["write_ct_series", "scanner_slice_positions", "postop_via_dicom"]

_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters)."""
    for digits in (10, 8, 6, 4):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{value:.3e}"


def write_ct_series(ct: CTVolume, folder: str | os.PathLike, *, slice_positions_mm=None,
                    series_uid: str | None = None, gantry_tilt_deg: float = 0.0,
                    description: str = "synthetic CT") -> list[Path]:
    """Write a CT as a DICOM series, one file per slice (module doc).

    Parameters
    ----------
    ct : CTVolume
        Voxels (HU) and the in-plane geometry: rows along index axis i (``direction[:, 0]``),
        columns along j, slices along k.
    folder : path-like
        Created if missing; files ``ct0000.dcm`` ... are written into it.
    slice_positions_mm : (K, 3) array_like, optional
        LPS position of voxel (0, 0, k) of each slice (ImagePositionPatient); default: the
        CT's own (slices along ``direction[:, 2]``).
    series_uid : str, optional
        SeriesInstanceUID; default: a new one.
    gantry_tilt_deg : float
        Written to GantryDetectorTilt (0018,1120); the geometry is in the positions.
    description : str
        SeriesDescription.

    Returns
    -------
    list of pathlib.Path
        The files, in slice order.

    Raises
    ------
    InputError
        Positions of the wrong shape, or HU outside what int16 holds.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    n_k = ct.hu.shape[0]
    if slice_positions_mm is None:
        positions = ct.index_to_lps(np.column_stack([np.zeros(n_k), np.zeros(n_k), np.arange(n_k)]))
    else:
        positions = np.asarray(slice_positions_mm, dtype=np.float64)
        if positions.shape != (n_k, 3) or not np.all(np.isfinite(positions)):
            raise InputError(f"expected ({n_k}, 3) finite positions (one per slice), got shape {positions.shape}",
                             "slice_positions_mm")
    hu = np.round(ct.hu)
    lo, hi = float(hu.min()), float(hu.max())
    signed = lo < -1024.0
    offset = 0.0 if signed else -1024.0
    if lo - offset < -32768 or hi - offset > (32767 if signed else 65535):
        raise InputError(f"HU {lo:g}..{hi:g} do not fit 16-bit pixels", "ct")
    stored = (hu - offset).astype("<i2" if signed else "<u2")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), series_uid or generate_uid()
    now = datetime.now()
    iop = [_ds(v) for v in np.concatenate([ct.direction[:, 0], ct.direction[:, 1]])]
    sx, sy, sz = (float(v) for v in ct.spacing_mm)
    files = []
    for k in range(n_k):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = _CT_IMAGE_STORAGE, generate_uid()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.Modality, ds.PatientID, ds.PatientName = "CT", "SIM", "Simulated^Patient"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.StudyDate = ds.SeriesDate = now.strftime("%Y%m%d")
        ds.SeriesNumber, ds.InstanceNumber = 2, k + 1
        ds.SeriesDescription, ds.Manufacturer = description[:64], "or_assist"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [_ds(v) for v in positions[k]]
        ds.ImageOrientationPatient = iop
        ds.PixelSpacing = [_ds(sy), _ds(sx)]                   # row spacing \ column spacing
        ds.SliceThickness = _ds(sz)
        ds.GantryDetectorTilt = _ds(float(gantry_tilt_deg))
        ds.Rows, ds.Columns = int(ct.hu.shape[1]), int(ct.hu.shape[2])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1 if signed else 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = _ds(offset), "1", "HU"
        ds.PixelData = stored[k].tobytes()
        path = out / f"ct{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def scanner_slice_positions(ct: CTVolume, sheared: bool) -> np.ndarray:
    """True LPS positions of voxel (0, 0, k) of each slice of a scanner post-op scan.

    Parameters
    ----------
    ct : CTVolume
        As :func:`~or_assist.sim.postop_scanner.scanner_postop_ct` returns it.
    sheared : bool
        The model's ``sheared``: the slices truly step ``slice_mm`` along LPS z (the sign
        of the declared normal's z), the centre of the grid fixed, as the simulator samples
        them; otherwise the declared positions.

    Returns
    -------
    (K, 3) float64 array, LPS mm
    """
    n_k = ct.hu.shape[0]
    k = np.arange(n_k, dtype=np.float64)
    declared = ct.index_to_lps(np.column_stack([np.zeros(n_k), np.zeros(n_k), k]))
    if not sheared:
        return declared
    normal = ct.direction[:, 2]
    dz = float(ct.spacing_mm[2])
    step = np.array([0.0, 0.0, math.copysign(dz, normal[2])])
    kc = 0.5 * (n_k - 1)
    return declared + np.outer(k - kc, step - dz * normal)


def postop_via_dicom(ct: CTVolume, model, folder: str | os.PathLike) -> tuple[CTVolume, list[str]]:
    """Write a scanner post-op scan as a DICOM series and read it back with ``load_ct``.

    Parameters
    ----------
    ct : CTVolume
        From :func:`~or_assist.sim.postop_scanner.scanner_postop_ct` with ``model``.
    model : ScannerModel
        Its ``sheared`` and ``tilt_deg`` place the slices (:func:`scanner_slice_positions`).
    folder : path-like
        Where the series is written (an empty or new folder).

    Returns
    -------
    (CTVolume, list of str)
        The CT as the project's reader gives it, and the warnings it raised (e.g. the
        tilt resampled).
    """
    from or_assist.core.ct.load import load_ct

    write_ct_series(ct, folder, slice_positions_mm=scanner_slice_positions(ct, bool(model.sheared)),
                    gantry_tilt_deg=float(model.tilt_deg), description=ct.source)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = load_ct(folder)
    return out, [str(w.message) for w in caught]
