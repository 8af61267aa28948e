"""The simulated C-arm's DICOM output: a shot as the X-ray object a real C-arm would send.

:func:`shot_dataset` wraps a simulated shot (:mod:`or_assist.sim.shots`) in a valid DICOM
object (XA, RF, DX or secondary capture) with the geometry tags a C-arm writes: the
source-detector and source-isocentre distances, the imager pixel spacing, the positioner
angles of the pose's beam (:func:`or_assist.dicom.header_geometry.positioner_angles_from_beam`,
DICOM's patient-relative definition), the patient position and orientation, and an
exposure. The image keeps its full bit depth: a float image is the detector signal
(counts / unattenuated counts, 1 = air, :attr:`SimulatedShot.image`), written as its
logarithm over ``bits_stored`` bits (more attenuation darker); an integer image is written
as it is. :func:`encode_dataset` re-encodes an object in a compressed transfer syntax with
whatever encoder is installed (pydicom's RLE and JPEG-LS, Pillow's JPEG and JPEG 2000,
SimpleITK's GDCM writer for JPEG lossless).

For tests, benchmarks and the demo only (``sim`` is imported by nothing else).
"""

from __future__ import annotations

import io
import os
from datetime import datetime
from pathlib import Path
from typing import Sequence

import numpy as np

from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose
from or_assist.dicom.header_geometry import positioner_angles_from_beam
from or_assist.errors import InputError

__all__ = ["SOP_CLASSES", "shot_dataset", "write_shot_dicom", "simulated_shot_dataset", "encode_dataset",
           "orientation_codes", "field_windowed_values"]

#: ``sop_class`` names: (SOP class UID of a single-frame, of a multi-frame object, Modality).
SOP_CLASSES = {
    "xa": ("1.2.840.10008.5.1.4.1.1.12.1", "1.2.840.10008.5.1.4.1.1.12.1", "XA"),
    "rf": ("1.2.840.10008.5.1.4.1.1.12.2", "1.2.840.10008.5.1.4.1.1.12.2", "RF"),
    "dx": ("1.2.840.10008.5.1.4.1.1.1.1", None, "DX"),
    "sc": ("1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.3", "XA"),
}
_LOG_FLOOR = 1e-6  # transmission mapped to stored value 0 (six decades: a lateral pelvis transmits ~1e-4)
_LPS_CODES = (("L", "R"), ("P", "A"), ("H", "F"))


def orientation_codes(direction_lps: Sequence[float]) -> str:
    """DICOM patient direction code of a vector (``"L"``, ``"PH"``, ...): its components above
    a quarter of its length, the largest first."""
    d = np.asarray(direction_lps, dtype=float)
    d = d / np.linalg.norm(d)
    order = np.argsort(-np.abs(d))
    return "".join(_LPS_CODES[i][0 if d[i] > 0 else 1] for i in order if abs(d[i]) > 0.25)


def _stored(image: np.ndarray, bits_stored: int) -> np.ndarray:
    full = (1 << bits_stored) - 1
    img = np.asarray(image)
    if img.ndim != 2:
        raise InputError(f"expected a (H, W) image, got shape {img.shape}", "image")
    if np.issubdtype(img.dtype, np.integer):
        if img.min() < 0 or img.max() > full:
            raise InputError(f"integer values must lie in 0..{full} for bits_stored={bits_stored}", "image")
        return img.astype(np.uint16)
    if not np.all(np.isfinite(img)):
        raise InputError("float image has non-finite values", "image")
    log = np.log(np.clip(img.astype(np.float64), _LOG_FLOOR, 1.0))
    return np.round((log - np.log(_LOG_FLOOR)) / -np.log(_LOG_FLOOR) * full).astype(np.uint16)


def shot_dataset(image: np.ndarray, geometry: CArmGeometry, pose: Pose | None = None, *,
                 patient_id: str = "SIM-0001", patient_name: str = "Simulated^Patient",
                 study_instance_uid: str | None = None, series_instance_uid: str | None = None,
                 patient_position: str = "prone", sop_class: str = "xa", bits_stored: int = 12,
                 frames: Sequence[np.ndarray] | None = None, photometric: str = "MONOCHROME2",
                 transfer_syntax: str | None = None, angles_deg: tuple[float, float] | None = None,
                 instance_number: int = 1, acquisition_datetime: datetime | None = None,
                 kvp: float = 80.0, exposure_mas: float = 2.0, shutter: tuple | None = None,
                 extra: dict | None = None):
    """A shot as the DICOM object a C-arm would send.

    Parameters
    ----------
    image : (H, W) ndarray
        Float: the detector signal (1 = air), written log-encoded; integer: stored values.
    geometry : CArmGeometry
        Of ``image`` (its size must match): SID, pixel spacing and source-isocentre distance.
    pose : Pose, optional
        ``T_source_from_patient``: gives the positioner angles and PatientOrientation.
    patient_id, patient_name, study_instance_uid, series_instance_uid : str
        Identity; new UIDs when None.
    patient_position : {'prone', 'supine'} or a DICOM code (HFS, HFP, ...)
    sop_class : {'xa', 'rf', 'dx', 'sc'}
    bits_stored : {8, 12, 16}
    frames : sequence of (H, W) ndarray, optional
        Earlier frames of a run: the object is multi-frame and ``image`` its last frame.
    photometric : {'MONOCHROME2', 'MONOCHROME1'}
        MONOCHROME1 stores the inverted values (and PixelIntensityRelationshipSign -1).
    transfer_syntax : str, optional
        Default Explicit VR Little Endian; others through :func:`encode_dataset`.
    angles_deg : (float, float), optional
        Positioner (primary, secondary) angles to write instead of the pose's.
    instance_number : int
    acquisition_datetime : datetime, optional
        Default now.
    kvp, exposure_mas : float
    shutter : tuple, optional
        The collimated field as display shutter tags: ``("circle", (u, v), radius_px)`` or
        ``("rectangle", (u_min, u_max, v_min, v_max))`` in 0-based pixels.
    extra : dict, optional
        More elements to set, keyword -> value (``None`` deletes the element).

    Returns
    -------
    pydicom.Dataset
        With file meta, ready for ``save_as(..., enforce_file_format=True)``.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    if sop_class not in SOP_CLASSES:
        raise InputError(f"expected one of {', '.join(SOP_CLASSES)}, got {sop_class!r}", "sop_class")
    if bits_stored not in (8, 12, 16):
        raise InputError(f"expected 8, 12 or 16, got {bits_stored!r}", "bits_stored")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(f"expected MONOCHROME1 or MONOCHROME2, got {photometric!r}", "photometric")
    stack = [_stored(f, bits_stored) for f in (list(frames or []) + [image])]
    h, w = stack[-1].shape
    if (w, h) != tuple(geometry.image_size_px) or any(s.shape != (h, w) for s in stack):
        raise InputError(f"frames must all be {geometry.height}x{geometry.width} (the geometry's image size)",
                         "image")
    single_uid, multi_uid, modality = SOP_CLASSES[sop_class]
    multi = len(stack) > 1
    if multi and multi_uid is None:
        raise InputError(f"{sop_class!r} objects are single-frame; frames are not allowed", "frames")
    full = (1 << bits_stored) - 1
    if photometric == "MONOCHROME1":
        stack = [full - s for s in stack]
    now = acquisition_datetime or datetime.now()

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = multi_uid if multi else single_uid
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = modality
    ds.PatientID, ds.PatientName = patient_id, patient_name
    ds.PatientBirthDate, ds.PatientSex = "", ""
    ds.StudyInstanceUID = study_instance_uid or generate_uid()
    ds.SeriesInstanceUID = series_instance_uid or generate_uid()
    ds.StudyDate = ds.ContentDate = ds.AcquisitionDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.ContentTime = ds.AcquisitionTime = now.strftime("%H%M%S.%f")
    ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
    ds.SeriesNumber, ds.InstanceNumber = 900, int(instance_number)
    ds.Manufacturer, ds.ManufacturerModelName = "or_assist", "simulated C-arm"
    position = str(patient_position)
    ds.PatientPosition = {"prone": "HFP", "supine": "HFS"}.get(position, position)
    ds.Rows, ds.Columns = h, w
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated = 8 if bits_stored == 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, 0
    if sop_class != "sc":
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = -1 if photometric == "MONOCHROME1" else 1
        ds.KVP, ds.ExposureInmAs = f"{kvp:g}", float(exposure_mas)
    if sop_class == "dx":
        ds.PresentationIntentType, ds.ImageType = "FOR PRESENTATION", ["ORIGINAL", "PRIMARY"]
    else:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "SINGLE PLANE"] if sop_class != "sc" else ["DERIVED", "SECONDARY"]
    if sop_class == "sc":
        ds.ConversionType = "WSD"
    ds.DistanceSourceToDetector = f"{geometry.sid_mm:.4f}"
    ds.DistanceSourceToPatient = f"{geometry.source_to_isocenter_mm:.4f}"
    px, py = geometry.pixel_spacing_mm
    ds.ImagerPixelSpacing = [f"{py:.6g}", f"{px:.6g}"]  # row spacing \ column spacing
    if angles_deg is None and pose is not None:
        angles_deg = positioner_angles_from_beam(pose.beam_direction_lps)
    if angles_deg is not None:
        ds.PositionerPrimaryAngle, ds.PositionerSecondaryAngle = (f"{a:.4f}" for a in angles_deg)
    if pose is not None:
        ds.PatientOrientation = [orientation_codes(pose.rotation[0]), orientation_codes(pose.rotation[1])]
    ds.FieldOfViewShape = "RECTANGLE"
    ds.FieldOfViewDimensions = [int(round(h * py)), int(round(w * px))]
    if shutter is not None:
        _write_shutter(ds, shutter)
    if multi:
        ds.NumberOfFrames = len(stack)
        ds.FrameTime = "66.7"
        ds.FrameIncrementPointer = 0x00181063
    dtype = np.uint8 if bits_stored == 8 else np.dtype("<u2")
    ds.PixelData = np.stack(stack).astype(dtype).tobytes()
    ds["PixelData"].VR = "OB" if bits_stored == 8 else "OW"
    for key, value in (extra or {}).items():
        if value is None:
            if key in ds:
                delattr(ds, key)
        else:
            setattr(ds, key, value)
    if transfer_syntax is not None and transfer_syntax != ExplicitVRLittleEndian:
        ds = encode_dataset(ds, transfer_syntax)
    return ds


def encode_dataset(ds, transfer_syntax: str):
    """``ds`` re-encoded in ``transfer_syntax`` (in place where pydicom can; else a new dataset).

    RLE and JPEG-LS through pydicom's encoders, JPEG baseline (8-bit) and JPEG 2000 through
    Pillow, JPEG lossless (process 14) through SimpleITK's GDCM writer, deflate through pydicom.

    Raises
    ------
    InputError
        No installed encoder for ``transfer_syntax``.
    """
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.pixels import get_encoder
    from pydicom.uid import (UID, DeflatedExplicitVRLittleEndian, JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit,
                             JPEGLosslessSV1)

    ts = UID(str(transfer_syntax))
    if ts == DeflatedExplicitVRLittleEndian:
        buf = io.BytesIO()
        ds.file_meta.TransferSyntaxUID = ts
        ds.save_as(buf, enforce_file_format=True)
        return pydicom.dcmread(io.BytesIO(buf.getvalue()))
    try:
        if get_encoder(ts).is_available:
            ds.compress(ts)
            return ds
    except (ValueError, NotImplementedError, RuntimeError):
        pass
    if ts in (JPEGBaseline8Bit, JPEG2000, JPEG2000Lossless):
        from PIL import Image

        frames = ds.pixel_array if int(ds.get("NumberOfFrames", 1) or 1) > 1 else ds.pixel_array[None]
        pieces = []
        for f in frames:
            buf = io.BytesIO()
            if ts == JPEGBaseline8Bit:
                if ds.BitsAllocated != 8:
                    raise InputError("JPEG baseline needs 8-bit pixels (bits_stored=8)", "transfer_syntax")
                Image.fromarray(f.astype(np.uint8)).save(buf, format="JPEG", quality=95)
            else:
                Image.fromarray(f.astype(np.uint16 if ds.BitsAllocated == 16 else np.uint8)).save(
                    buf, format="JPEG2000", irreversible=ts == JPEG2000, no_jp2=True)
            pieces.append(buf.getvalue())
        ds.PixelData = encapsulate(pieces)
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = ts
        if ts == JPEG2000:
            ds.LossyImageCompression = "01"
        return ds
    if ts == JPEGLosslessSV1:
        return _encode_gdcm(ds, "JPEG")
    raise InputError(f"no encoder installed for {ts.name} ({ts})", "transfer_syntax")


def _encode_gdcm(ds, compressor: str):
    """Re-encode through SimpleITK's GDCM writer, keeping the original header elements."""
    import tempfile

    import pydicom
    import SimpleITK as sitk

    with tempfile.TemporaryDirectory(prefix="or_assist_enc_") as tmp:
        src, dst = os.path.join(tmp, "in.dcm"), os.path.join(tmp, "out.dcm")
        ds.save_as(src, enforce_file_format=True)
        img = sitk.ReadImage(src)
        writer = sitk.ImageFileWriter()
        writer.SetImageIO("GDCMImageIO")
        writer.SetFileName(dst)
        writer.SetUseCompression(True)
        writer.SetCompressor(compressor)
        writer.KeepOriginalImageUIDOn()
        writer.Execute(img)
        encoded = pydicom.dcmread(dst)
    ds.PixelData = encoded.PixelData
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = encoded.file_meta.TransferSyntaxUID
    return ds


def _write_shutter(ds, shutter: tuple) -> None:
    kind = shutter[0]
    if kind == "circle":
        (u, v), r = shutter[1], shutter[2]
        ds.ShutterShape = "CIRCULAR"
        ds.CenterOfCircularShutter = [int(round(v)) + 1, int(round(u)) + 1]  # row \ column, 1-based
        ds.RadiusOfCircularShutter = int(round(r))
    elif kind == "rectangle":
        u0, u1, v0, v1 = (int(round(x)) + 1 for x in shutter[1])
        ds.ShutterShape = "RECTANGULAR"
        ds.ShutterLeftVerticalEdge, ds.ShutterRightVerticalEdge = u0, u1
        ds.ShutterUpperHorizontalEdge, ds.ShutterLowerHorizontalEdge = v0, v1
    else:
        raise InputError(f"expected ('circle', (u, v), r) or ('rectangle', (u0, u1, v0, v1)), got {shutter!r}",
                         "shutter")
    ds.ShutterPresentationValue = 0


def simulated_shot_dataset(shot, *, blank: bool = False, **kwargs):
    """:func:`shot_dataset` of a :class:`~or_assist.sim.shots.simulate.SimulatedShot`: its
    detector signal, geometry and pose, with its collimated field as display shutter tags
    (a C-arm's shutters; outside them the detector sees only scatter). A collimator leaf,
    which no shutter tag describes, and ``blank=True`` store 0 outside the field instead.
    ``kwargs`` go to :func:`shot_dataset`."""
    from or_assist.sim.shots.chain import field_mask

    st, geom = shot.settings, shot.geometry
    image = shot.image.astype(np.float64)
    if st.collimation is not None:
        half = min(geom.width, geom.height) / 2.0
        r = st.collimation_radius_fraction * half
        u = (geom.width - 1) / 2.0 + st.collimation_offset_fraction[0] * half
        v = (geom.height - 1) / 2.0 + st.collimation_offset_fraction[1] * half
        kwargs.setdefault("shutter", ("circle", (u, v), r) if st.collimation == "circle"
                          else ("rectangle", (u - r, u + r, v - r, v + r)))
        if blank or st.collimation_leaf is not None:
            field = field_mask(geom.image_size_px, st.collimation, st.collimation_radius_fraction,
                               offset_fraction=st.collimation_offset_fraction, leaf=st.collimation_leaf)
            image = np.where(field, image, 0.0)
    return shot_dataset(image, geom, kwargs.pop("pose", shot.pose), **kwargs)


def write_shot_dicom(path: str | os.PathLike, image: np.ndarray, geometry: CArmGeometry,
                     pose: Pose | None = None, **kwargs) -> Path:
    """Write :func:`shot_dataset` to ``path`` (a valid DICOM file with preamble); returns the path."""
    ds = shot_dataset(image, geometry, pose, **kwargs)
    p = Path(path)
    ds.save_as(p, enforce_file_format=True)
    return p


def field_windowed_values(shot, bits: int = 12) -> np.ndarray:
    """A simulated shot's detector signal as a C-arm that windows its log signal on the
    field stores it: log, windowed on the field's 0.5-99.9 percentiles to ``bits`` bits,
    0 outside the collimated field (compare :func:`simulated_shot_dataset`, which keeps six
    fixed decades of transmission and describes the field by shutter tags).

    Parameters
    ----------
    shot : SimulatedShot
    bits : int
        Stored bits (8-16).

    Returns
    -------
    (H, W) uint16 ndarray
    """
    from or_assist.sim.shots.chain import field_mask

    st = shot.settings
    field = field_mask(shot.geometry.image_size_px, st.collimation, st.collimation_radius_fraction) > 0.5
    img = shot.image.astype(np.float64)
    lo, hi = np.percentile(img[field], [0.5, 99.9])
    out = np.clip((np.log(np.clip(img, lo, hi)) - np.log(lo)) / (np.log(hi) - np.log(lo)), 0, 1)
    return np.where(field, np.round(out * ((1 << bits) - 1)), 0).astype(np.uint16)
